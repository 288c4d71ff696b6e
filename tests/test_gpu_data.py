"""The emitted scripts' GPU data path (templates/train_gpu_data.py.j2), run on CPU tensors: crop laws
equal to the PIL path's transforms, decode + augmentation values, an image folder through
``--loader gpu --device cpu`` next to ``--loader pil``, and the loader benchmark's smoke run."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "generated" / "torchvision" / "train_resnet50.py"  # random_resized, centre crop
VGG_LIKE = ROOT / "generated" / "resnet" / "train_resnet50.py"  # scale jitter, lighting, ten crop
LENET = ROOT / "generated" / "train_lenet5.py"  # one grey channel, 32 x 32


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"_gpu_data_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Bound(mod)


class Bound:
    """A training script's runtime (archspec_train.py) with the script's network bound to the
    functions that take it first: ``tv.parse_args(argv)``, ``tv.make_data(args, ...)``."""

    def __init__(self, script):
        self.script, self.rt, self.net = script, script.load_runtime(), script.network()

    def parse_args(self, argv):
        return self.rt.parse_args(self.net, argv)

    def make_data(self, *args):
        return self.rt.make_data(self.net, *args)

    def main(self, argv):
        return self.script.main(argv)

    def __getattr__(self, name):
        return getattr(self.rt, name)


@pytest.fixture(scope="module")
def tv():
    return load_script(RESNET)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photograph-like smooth RGB image (resizing it is well defined up to the filter)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8))
    return np.array(small.resize((w, h), Image.BICUBIC))


def test_random_resized_crop_params_are_torchvisions_draws(tv):
    for seed in range(200):
        h, w = 100 + seed % 37 * 11, 90 + seed % 23 * 17
        scale = (0.08, 1.0) if seed % 2 else (0.5, 0.9)
        torch.manual_seed(seed)
        ours = tv.rrc_params(h, w, scale)
        torch.manual_seed(seed)
        ref = T.RandomResizedCrop.get_params(torch.empty(3, h, w), list(scale), [3 / 4, 4 / 3])
        assert ours == ref
    # the fallback central crop (10 failed draws): an extreme aspect ratio
    torch.manual_seed(0)
    ours = tv.rrc_params(10, 400, (0.9, 1.0))
    torch.manual_seed(0)
    assert ours == T.RandomResizedCrop.get_params(torch.empty(3, 10, 400), [0.9, 1.0], [3 / 4, 4 / 3])


def test_crop_views_follow_the_pil_transforms(tv):
    size = (224, 224)
    args = tv.parse_args([])
    # random-resized crop + flip: the same draws, in the same order, as RandomResizedCrop then
    # RandomHorizontalFlip on a PIL image
    spec = tv.view_spec(args, size, True)
    assert spec == ("random_resized", (0.08, 1.0), True)
    flips = []
    for seed in range(50):
        torch.manual_seed(seed)
        (top, left, h, w, flip), = tv.crop_views(375, 500, spec, size)
        torch.manual_seed(seed)
        i, j, hh, ww = T.RandomResizedCrop.get_params(torch.empty(3, 375, 500), [0.08, 1.0], [3 / 4, 4 / 3])
        assert (top, left, h, w) == (i, j, hh, ww)
        assert flip == float(torch.rand(1) < 0.5)
        flips.append(flip)
    assert 0 < sum(flips) < 50
    # evaluation: resize 256 + centre crop 224 == the crop box scaled back to the image's pixels
    (top, left, h, w, flip), = tv.crop_views(375, 500, tv.view_spec(args, size, False), size)
    rh, rw = 256, int(256 * 500 / 375)
    assert flip == 0.0 and (rh, rw) == tv.resized_size(375, 500, 256)
    assert math.isclose(top, round((rh - 224) / 2) * 375 / rh) and math.isclose(h, 224 * 375 / rh)
    assert math.isclose(left, round((rw - 224) / 2) * 500 / rw) and math.isclose(w, 224 * 500 / rw)
    assert tv.resized_size(500, 375, 256) == (int(256 * 500 / 375), 256)  # portrait
    # scale jitter: the shorter side uniform in [lo, hi] (python's random), then RandomCrop's draw
    vgg = load_script(VGG_LIKE)
    vargs = vgg.parse_args([])
    spec = vgg.view_spec(vargs, size, True)
    assert spec == ("scale_jitter", (256, 480), True)
    random.seed(3)
    shorts = [vgg.crop_views(375, 500, spec, size)[0][2] for _ in range(400)]  # crop height in pixels
    shorts = [round(224 * 375 / s) for s in shorts]  # back to the drawn shorter side (up to rounding)
    assert 250 <= min(shorts) <= 262 and 470 <= max(shorts) <= 482
    ten = vgg.crop_views(375, 500, vgg.view_spec(vargs, size, False), size)
    assert len(ten) == 10 and [v[4] for v in ten] == [0.0] * 5 + [1.0] * 5
    # five crops (tl, tr, bl, br, centre) of the unflipped image, then of the flipped one, mirrored
    assert ten[0][:2] == (0.0, 0.0) and ten[6][:2] == (0.0, 0.0) and ten[5][1] == ten[1][1]


def _ks(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov distance."""
    a, b = np.sort(a), np.sort(b)
    v = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, v, "right") / len(a) - np.searchsorted(b, v, "right") / len(b)).max())


def test_random_resized_scale_and_ratio_law(tv):
    """Many draws, different seeds: the crops' area fraction and log aspect ratio follow
    torchvision's law (two-sample KS distance below the 0.1 % critical value, 0.044 for 4000 + 4000),
    and where no draw is rejected they are uniform over the recipe's ranges."""
    def law(draws, h, w):
        return [(ch * cw) / (h * w) for _, _, ch, cw in draws], [math.log(cw / ch) for _, _, ch, cw in draws]
    for (h, w), scale in (((375, 500), (0.08, 1.0)), ((1000, 1000), (0.08, 0.5))):
        torch.manual_seed(0)
        ours = law([tv.rrc_params(h, w, scale) for _ in range(4000)], h, w)
        torch.manual_seed(1)
        ref = law([T.RandomResizedCrop.get_params(torch.empty(3, h, w), list(scale), [3 / 4, 4 / 3])
                   for _ in range(4000)], h, w)
        assert _ks(ours[0], ref[0]) < 0.044 and _ks(ours[1], ref[1]) < 0.044
    # (1000 x 1000, area <= 0.5: every draw fits) uniform area and log-ratio
    uniform = np.linspace(0, 1, 4001)
    assert _ks([(v - 0.08) / 0.42 for v in ours[0]], list(uniform)) < 0.044
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    assert _ks([(v - lo) / (hi - lo) for v in ours[1]], list(uniform)) < 0.044


def test_augment_shapes_values_and_agreement_with_pil(tv):
    img = torch.from_numpy(smooth_image(375, 500)).permute(2, 0, 1).contiguous()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    # a constant image normalises to (c/255 - mean) / std everywhere
    const = torch.full((3, 40, 60), 128, dtype=torch.uint8)
    views = torch.tensor([[0, 3.0, 5.0, 20.0, 30.0, 0.0], [1, 0.0, 0.0, 375.0, 500.0, 1.0]], dtype=torch.float64)
    x = tv.augment([const, img], views, (32, 32), mean, std)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    want = (128 / 255 - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(x[0].mean((1, 2)), want, atol=1e-5, rtol=0)
    assert float((x[0] - want[:, None, None]).abs().max()) < 1e-5
    # the same crop box through PIL's crop + antialiased resize + flip + ToTensor + Normalize
    pil = Image.fromarray(smooth_image(375, 500))
    norm = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    for top, left, h, w, flip in [(40, 60, 200, 300, 0), (0, 0, 375, 500, 1), (100, 150, 60, 50, 1)]:
        views = torch.tensor([[0, top, left, h, w, flip]], dtype=torch.float64)
        ours = tv.augment([img], views, (64, 64), mean, std)[0]
        ref = TF.resized_crop(pil, top, left, h, w, [64, 64], antialias=True)
        ref = norm(TF.hflip(ref) if flip else ref)
        # in 0..255 pixel units: the filters differ (roi_align averages bilinear samples, PIL's
        # antialias is a triangle filter), the geometry and the flip do not
        diff = ((ours - ref) * torch.tensor(std)[:, None, None] * 255).abs()
        assert float(diff.mean()) < 1.5 and float(diff.max()) < 12, (top, left, h, w, flip)
        wrong = norm(TF.resized_crop(pil, top, left, h, w, [64, 64], antialias=True) if flip
                     else TF.hflip(TF.resized_crop(pil, top, left, h, w, [64, 64], antialias=True)))
        assert float(((ours - wrong) * torch.tensor(std)[:, None, None] * 255).abs().mean()) > 3
    # one grey channel: ITU-R 601-2 luma, as PIL's convert("L")
    g = tv.augment([img], torch.tensor([[0, 0, 0, 375, 500, 0]], dtype=torch.float64), (16, 16), [0.5], [0.25],
                   channels=1)
    assert g.shape == (1, 1, 16, 16)


def test_jpeg_header(tv, tmp_path):
    arr = smooth_image(37, 53)
    Image.fromarray(arr).save(tmp_path / "rgb.jpg", quality=90)
    Image.fromarray(arr).save(tmp_path / "prog.jpg", quality=90, progressive=True)
    Image.fromarray(arr[:, :, 0]).save(tmp_path / "grey.jpg")
    Image.fromarray(arr).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(arr).save(tmp_path / "x.png")
    head = {p.name: tv.jpeg_header(p.read_bytes()) for p in tmp_path.iterdir()}
    assert head == {"rgb.jpg": (37, 53), "prog.jpg": (37, 53), "grey.jpg": None, "cmyk.jpg": None,
                    "x.png": None}
    assert tv.jpeg_header(b"\xff\xd8\xff") is None and tv.jpeg_header(b"") is None


def _folder(root: Path) -> dict[str, int]:
    """Two classes; JPEGs of two sizes, a grey JPEG, a CMYK JPEG and a PNG in each."""
    for split in ("train", "val"):
        for c, cls in enumerate(("cat", "dog")):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(smooth_image(40 + 8 * (i % 2), 50, seed=10 * c + i)).save(d / f"{i}.jpg", quality=90)
            arr = smooth_image(45, 45, seed=99 + c)
            Image.fromarray(arr[:, :, 1]).save(d / "grey.jpg")
            Image.fromarray(arr).convert("CMYK").save(d / "cmyk.jpg")
            Image.fromarray(arr).save(d / "p.png")
    return {"cat": 0, "dog": 1}


def test_image_folder_gpu_path_on_cpu_next_to_pil(tv, tmp_path):
    _folder(tmp_path)
    shape = (3, 32, 32)
    for loader, workers in (("gpu", 0), ("gpu", 1), ("pil", 0)):
        args = tv.parse_args(["--data", f"imagefolder:{tmp_path}", "--loader", loader, "--batch-size", "7",
                              "--workers", str(workers), "--device", "cpu", "--input-size", "32"])
        train, val, k = tv.make_data(args, shape, 0, 1, torch.device("cpu"))
        assert k == 2 and len(train) == 2 and len(val) == 2
        assert type(train).__name__ == ("GpuJpegBatches" if loader == "gpu" else "LoaderBatches")
        xs, ys = zip(*train.batches())
        assert [x.shape for x in xs] == [(7, 3, 32, 32)] * 2 and all(x.dtype == torch.float32 for x in xs)
        assert sorted(torch.cat(ys).tolist()) in ([0] * 7 + [1] * 7, [0] * 6 + [1] * 8, [0] * 8 + [1] * 6)
        vx, vy = zip(*val.batches())
        assert [x.shape[0] for x in vx] == [7, 7] and torch.cat(vy).tolist() == [0] * 7 + [1] * 7
        # normalised: roughly zero mean, unit-ish spread over a batch of photographs
        x = torch.cat(vx)
        assert -1.5 < float(x.mean()) < 1.5 and 0.1 < float(x.std()) < 2
    # the recipe of the VGG-style ResNet paper: scale jitter, lighting noise, ten-crop evaluation
    args = tv.parse_args(["--data", f"imagefolder:{tmp_path}", "--loader", "gpu", "--batch-size", "7", "--workers",
                          "0", "--device", "cpu", "--input-size", "32", "--crop", "scale_jitter", "--scale", "36",
                          "48", "--lighting", "0.1", "--eval-crop", "ten_crop", "--eval-resize", "36"])
    train, val, _ = tv.make_data(args, shape, 0, 1, torch.device("cpu"))
    assert [x.shape for x, _ in train.batches()] == [(7, 3, 32, 32)] * 2
    assert [x.shape for x, _ in val.batches()] == [(7, 10, 3, 32, 32)] * 2
    # the evaluation batches of the two paths show the same images (same order, same crop)
    got = {}
    for loader in ("gpu", "pil"):
        args = tv.parse_args(["--data", f"imagefolder:{tmp_path}", "--loader", loader, "--batch-size", "7",
                              "--workers", "0", "--device", "cpu", "--input-size", "32"])
        _, val, _ = tv.make_data(args, shape, 0, 1, torch.device("cpu"))
        got[loader] = torch.cat([x for x, _ in val.batches()])
    diff = (got["gpu"] - got["pil"]) * 0.226 * 255  # back to 0..255 pixel units
    assert float(diff.abs().mean()) < 3


def test_loader_choice_is_said(tv, tmp_path, capsys):
    _folder(tmp_path)
    cpu = torch.device("cpu")
    kind, why = tv.pick_loader(tv.parse_args([]), (3, 224, 224), cpu)
    assert kind == "pil" and why is None  # the CPU runs' own path: nothing to say
    kind, why = tv.pick_loader(tv.parse_args(["--loader", "gpu"]), (3, 224, 224), cpu)
    assert kind == "gpu" and why.startswith("data: GPU path (nvJPEG")
    kind, why = tv.pick_loader(tv.parse_args(["--loader", "gpu", "--crop", "random", "--padding", "4"]),
                               (3, 224, 224), cpu)
    assert kind == "pil" and "--padding 4" in why
    assert tv.pick_loader(tv.parse_args(["--loader", "pil"]), (3, 224, 224), cpu)[0] == "pil"
    with pytest.raises(tv.UsageError, match="invalid choice: 'dali'"):
        tv.parse_args(["--loader", "dali"])


def test_lenet_trains_through_the_gpu_path_on_cpu(tmp_path, capsys):
    """End to end, one grey channel (luma on the device), scale jitter is not LeNet's: its recipe."""
    _folder(tmp_path / "imf")
    mod = load_script(LENET)
    res = mod.main(["--optimizer", "sgd", "--data", f"imagefolder:{tmp_path / 'imf'}", "--loader", "gpu",
                    "--device", "cpu", "--batch-size", "4", "--epochs", "1", "--workers", "0", "--lr", "0.01",
                    "--out-dir", str(tmp_path / "run"), "--no-plot"])
    assert res["steps"] == 3 and 0 <= res["val_top1"] <= 100
    assert "data: GPU path" in capsys.readouterr().err


def test_loader_benchmark_smoke(tmp_path):
    """benchmarks/loader_throughput.py: folder generation and both loaders alone, tiny, on CPU."""
    out = tmp_path / "res.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loader_throughput.py"), "--make-folder",
                        str(tmp_path / "jpegs"), "--n", "8", "--n-val", "4", "--device", "cpu", "--batch-size", "4",
                        "--input-size", "32", "--workers", "1", "--skip-training", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert len(list((tmp_path / "jpegs" / "train").rglob("*.jpg"))) == 8
    with Image.open(next((tmp_path / "jpegs" / "train").rglob("*.jpg"))) as im:
        assert im.format == "JPEG" and sorted(im.size) == [375, 500]
    assert set(res["loader_alone"]) == {"pil", "gpu"}
    assert all(v["images_per_s"] > 0 for v in res["loader_alone"].values())
    assert "loader alone, gpu" in r.stdout
