"""Image-folder loader throughput of the emitted training script, PIL path vs GPU path.

Usage (from the repository root; one command, about 4 minutes on one H200 with 16 cores)::

    python benchmarks/loader_throughput.py --make-folder /tmp/jpegs --n 12800
    python benchmarks/loader_throughput.py --make-folder /tmp/jpegs --n 16 --n-val 8 \\
        --device cpu --batch-size 4 --input-size 32 --workers 1 --epochs 1 --no-compile  # smoke

1. ``--make-folder DIR --n N``: N training JPEGs (and --n-val validation ones) in class folders,
   500x375 (or 375x500) at quality 90, encoded by PIL in a process pool. The content is varied
   like photographs': a smooth random colour field, shapes, edges and a little sensor-like noise
   (about 40-60 kB a file; ImageNet's average is about 110 kB). Kept and reused when complete.
2. The loader alone (``make_data`` of ``generated/torchvision/train_resnet50.py``, one epoch
   over the training folder, each batch moved to the device and, on CUDA, synchronised): the PIL
   path (torchvision ImageFolder + PIL transforms, --workers processes, default cores - 2) and
   the GPU path (same workers only read files; nvJPEG decode and augmentation on the device).
3. ResNet-50 training through that script (its CUDA defaults: batch 256, bf16, channels_last,
   compile): ``--benchmark`` on synthetic data, then --epochs epochs with each loader; the figure
   is the last epoch's images/s from metrics.jsonl (the first epoch includes compilation).

Prints a table and writes JSON (--json). Goals (issue #14, one H200 with 16 cores): the GPU path's
epoch >= 90 % of the synthetic figure, and the GPU loader alone >= 1.2x the synthetic step rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "generated" / "torchvision" / "train_resnet50.py"
CLASSES = 10


def _make_jpeg(job: tuple[str, int, int]) -> None:
    """One photograph-like JPEG: seeded by its index, so a folder is the same on every run."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter
    path, index, quality = job
    rng = np.random.default_rng(index)
    w, h = (500, 375) if index % 4 else (375, 500)
    base = Image.fromarray(rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3),
                                        dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
        x1, y1 = x0 + int(rng.integers(20, 250)), y0 + int(rng.integers(20, 250))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    img = base.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=quality)


def make_folder(root: Path, n: int, n_val: int, quality: int = 90) -> float:
    """DIR/train/cK/*.jpg and DIR/val/cK/*.jpg; returns seconds spent (0 when already there)."""
    jobs, classes = [], max(1, min(CLASSES, n, n_val))
    for split, count, offset in (("train", n, 0), ("val", n_val, 10**8)):
        for i in range(count):
            folder = root / split / f"c{i % classes:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:07d}.jpg"
            if not path.exists():
                jobs.append((str(path), offset + i, quality))
    if not jobs:
        return 0.0
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(os.cpu_count()) as pool:
        pool.map(_make_jpeg, jobs, chunksize=16)
    return time.perf_counter() - t0


def load_script():
    spec = importlib.util.spec_from_file_location("_train_resnet50", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def loader_alone(a, loader: str) -> dict:
    """One epoch of the script's own training batches, each on the device: images/s."""
    import torch
    mod = load_script()
    argv = ["--data", f"imagefolder:{a.make_folder}", "--loader", loader, "--workers",
            str(a.workers), "--batch-size", str(a.batch_size), "--device", a.device]
    argv += ["--input-size", str(a.input_size)] if a.input_size else []
    rt, net = mod.load_runtime(), mod.network()
    args = rt.parse_args(net, argv)
    shape = net.input_shape if args.input_size is None else (3, args.input_size, args.input_size)
    device = torch.device(a.device)
    torch.manual_seed(0)
    train, _, _ = rt.make_data(net, args, shape, 0, 1, device)
    n, t0, first = 0, time.perf_counter(), None
    for x, y in train.batches():
        x = x.to(device, non_blocking=True)
        float(x[0, 0, 0, 0])  # the batch is ready (synchronises CUDA)
        if first is None:  # the first batch waits for the worker processes to start
            first, t0 = time.perf_counter() - t0, time.perf_counter()
            continue
        n += len(y)
    dt = time.perf_counter() - t0
    return {"loader": loader, "images_per_s": n / dt, "images": n, "seconds": dt,
            "first_batch_s": first, "workers": a.workers}


def run_script(a, extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, str(SCRIPT), "--batch-size", str(a.batch_size), "--device", a.device,
           "--out-dir", str(out), "--metrics-json", str(out / "summary.json"), "--no-plot",
           "--no-progress", *extra]
    cmd += ["--input-size", str(a.input_size)] if a.input_size else []
    cmd += ["--no-compile"] if a.no_compile else []
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    result = json.loads((out / "summary.json").read_text())
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    said = [line for line in r.stderr.splitlines() if line.startswith("data: ")]
    return {**result, "epochs_rows": rows, "wall_s": time.perf_counter() - t0,
            "loader_line": said[0] if said else None}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--make-folder", type=Path, required=True, metavar="DIR",
                   help="the image folder (made here unless complete)")
    p.add_argument("--n", type=int, default=12800, help="training images")
    p.add_argument("--n-val", type=int, default=1024, help="validation images")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--input-size", type=int, default=None, help="default: the model's 224")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--epochs", type=int, default=2, help="training epochs; the last is reported")
    p.add_argument("--steps", type=int, default=30, help="--benchmark steps (synthetic)")
    p.add_argument("--no-compile", action="store_true", help="torch.compile off (saves ~1 min)")
    p.add_argument("--skip-training", action="store_true", help="loader figures only")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    a = p.parse_args(argv)
    import torch
    res: dict = {"device": a.device, "gpu": torch.cuda.get_device_name(0)
                 if a.device.startswith("cuda") else None, "cpus": os.cpu_count(),
                 "torch": torch.__version__, "batch_size": a.batch_size, "n": a.n,
                 "n_val": a.n_val, "compile": not a.no_compile, "workers": a.workers}
    import torchvision
    res["torchvision"] = torchvision.__version__
    res["make_folder_s"] = make_folder(a.make_folder, a.n, a.n_val, a.quality)
    files = sorted((a.make_folder / "train").rglob("*.jpg"))
    res["mean_file_kb"] = sum(f.stat().st_size for f in files) / max(len(files), 1) / 1024
    print(f"folder: {a.make_folder} ({len(files)} training JPEGs, "
          f"{res['mean_file_kb']:.0f} kB mean, made in {res['make_folder_s']:.1f} s)", flush=True)
    res["loader_alone"] = {}
    for loader in ("pil", "gpu"):
        r = loader_alone(a, loader)
        res["loader_alone"][loader] = r
        print(f"loader alone, {loader}: {r['images_per_s']:.0f} images/s", flush=True)
    if not a.skip_training:
        with tempfile.TemporaryDirectory() as tmp:
            syn = run_script(a, ["--benchmark", str(a.steps), "--warmup-steps", "10"],
                             Path(tmp) / "syn")
            res["synthetic"] = {"images_per_s": syn["images_per_s"], "wall_s": syn["wall_s"]}
            print(f"synthetic (--benchmark {a.steps}): {syn['images_per_s']:.0f} images/s",
                  flush=True)
            res["epoch"] = {}
            for loader in ("gpu", "pil"):
                r = run_script(a, ["--data", f"imagefolder:{a.make_folder}", "--loader", loader,
                                   "--epochs", str(a.epochs), "--workers", str(a.workers)],
                               Path(tmp) / loader)
                last = r["epochs_rows"][-1]
                res["epoch"][loader] = {"images_per_s": last["images_per_s"],
                                        "epoch_s": last["epoch_s"], "epochs": a.epochs,
                                        "wall_s": r["wall_s"], "loader_line": r["loader_line"]}
                print(f"training epoch {a.epochs}, {loader}: {last['images_per_s']:.0f} images/s"
                      f" ({r['loader_line']})", flush=True)
    print(table(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


def table(res: dict) -> str:
    syn = res.get("synthetic", {}).get("images_per_s")
    rows = [("what", "images/s", "vs synthetic")]

    def add(name: str, ips: float | None) -> None:
        if ips is not None:
            rows.append((name, f"{ips:.0f}", f"{ips / syn:.2f}x" if syn else "-"))

    add("synthetic data (--benchmark)", syn)
    for loader, r in res["loader_alone"].items():
        add(f"loader alone, {loader}", r["images_per_s"])
    for loader, r in res.get("epoch", {}).items():
        add(f"ResNet-50 epoch, {loader} loader", r["images_per_s"])
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    head = (f"{res['device']} ({res['gpu'] or 'cpu'}), {res['cpus']} cores, torch {res['torch']}, "
            f"torchvision {res['torchvision']}, batch {res['batch_size']}, "
            f"compile {'on' if res['compile'] else 'off'}, {res['workers']} workers")
    lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
