"""Training throughput of the emitted scripts: generated ResNet-50 vs torchvision's, same loop.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_throughput.py                     # CUDA: batch 256, 3x224x224
    .venv/bin/python benchmarks/train_throughput.py --device cpu --batch-size 8 --input-size 64 \\
        --steps 3 --warmup 1 --rounds 1 --configs eager              # a CPU smoke figure

(a) The same training loop — the emitted ``generated/torchvision/train_resnet50.py``'s own
    ``benchmark()`` (synthetic batch, SGD step per batch: forward, cross-entropy, backward,
    fused/foreach optimizer step) — around two models: the generated
    ``generated/torchvision/resnet50.py`` and ``torchvision.models.resnet50()``. Configurations:
    ``eager`` (fp32, no channels_last, no compile) and ``fast`` (bf16 autocast + channels_last +
    ``torch.compile``, the scripts' CUDA defaults). Rounds alternate the two models; the figure is
    the median of the rounds' images/s (N timed steps after the warm-up, CUDA-synchronised),
    and the ratio generated / torchvision (goal >= 0.99).
(b) The emitted script's defaults for ResNet-50, as a user runs it:
    ``python generated/train_resnet50.py --benchmark N --batch-size B`` in a subprocess
    (synthetic data; on CUDA: bf16, channels_last, compile, fused SGD, cudnn.benchmark), which
    prints images/s and peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: max RSS).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def loop_args(script, a, fast: bool) -> list[str]:
    argv = ["--benchmark", str(a.steps), "--warmup-steps", str(a.warmup), "--batch-size", str(a.batch_size),
            "--device", a.device]
    if a.input_size:
        argv += ["--input-size", str(a.input_size)]
    flags = ("--compile", "--bf16", "--channels-last") if fast else ("--no-compile", "--no-bf16", "--no-channels-last")
    return argv + list(flags)


def same_loop(a) -> list[dict]:
    import torchvision

    script = load(ROOT / "generated/torchvision/train_resnet50.py", "train_resnet50_tv")
    rt_mod, net = script.load_runtime(), script.network()  # archspec_train.py beside it
    generated = rt_mod.load_model_module(net)
    reference = types.SimpleNamespace(build=lambda num_classes: torchvision.models.resnet50(num_classes=num_classes))
    rows = []
    for config in a.configs:
        fast = config == "fast"
        ips = {"generated": [], "torchvision": []}
        mem = {}
        for _ in range(a.rounds):
            for label, module in (("generated", generated), ("torchvision", reference)):
                args = rt_mod.parse_args(net, loop_args(script, a, fast))
                rt = rt_mod.Runtime(args)
                shape = script.INPUT_SHAPE if a.input_size is None else (3, a.input_size, a.input_size)
                res = rt_mod.benchmark(net, args, rt, module, shape)
                ips[label].append(res["images_per_s"])
                mem[label] = res["peak_memory_mb"]
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                torch._dynamo.reset()
        g, t = statistics.median(ips["generated"]), statistics.median(ips["torchvision"])
        rows.append({"config": config, "generated_ips": g, "torchvision_ips": t, "ratio": g / t,
                     "generated_peak_mb": mem["generated"], "torchvision_peak_mb": mem["torchvision"],
                     "rounds": ips})
    return rows


def script_defaults(a) -> dict:
    cmd = [sys.executable, str(ROOT / "generated/train_resnet50.py"), "--benchmark", str(a.steps),
           "--warmup-steps", str(a.warmup), "--batch-size", str(a.batch_size), "--device", a.device,
           "--metrics-json", "/dev/stdout"]
    if a.input_size:
        cmd += ["--input-size", str(a.input_size)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return {"command": " ".join(cmd[1:]).replace(str(ROOT) + "/", ""), **json.loads(r.stdout)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=["eager", "fast"], choices=("eager", "fast"))
    p.add_argument("--skip-script", action="store_true", help="skip (b)")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {dev}; torch {torch.__version__}; batch {a.batch_size}; input "
          f"{a.input_size or 224}; {a.steps} timed steps after {a.warmup} warm-up; median of {a.rounds} rounds")
    rows = same_loop(a)
    print("\n(a) same training loop (images/s)")
    print(f"{'config':8} {'generated':>12} {'torchvision':>12} {'ratio':>7} {'peak MiB gen/tv':>18}")
    for r in rows:
        print(f"{r['config']:8} {r['generated_ips']:12.1f} {r['torchvision_ips']:12.1f} {r['ratio']:7.3f} "
              f"{r['generated_peak_mb']:8.0f}/{r['torchvision_peak_mb']:.0f}")
    out = {"device": dev, "same_loop": rows}
    if not a.skip_script:
        d = script_defaults(a)
        out["script_defaults"] = d
        print(f"\n(b) {d['command']}\n    {d['images_per_s']:.1f} images/s, peak memory {d['peak_memory_mb']:.0f} MiB "
              f"(compile={d['compile']}, bf16={d['bf16']}, channels_last={d['channels_last']})")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
