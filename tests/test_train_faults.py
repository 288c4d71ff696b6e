"""The emitted training scripts check before they spend (issue #16): a bad flag, an output path
they cannot write, a checkpoint of something else, a broken image folder or an input too small
for the network is one ``error:`` line and exit code 2, found at start-up where it can be.

Budget (2 CPU cores): everything runs the LeNet-5 script in-process (~1 s each) except one
subprocess that decodes images in a loader worker (~5 s).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archspec.codegen.train import input_size_range
from archspec.load import load_networks

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "generated" / "train_lenet5.py"
PREFIX = "train_lenet5.py: error: "
# a few seconds of training: 64 synthetic images in 4 steps
QUICK = ["--optimizer", "sgd", "--data", "synthetic", "--synthetic-size", "64", "--batch-size", "16", "--lr", "0.01",
         "--no-plot", "--device", "cpu", "--no-compile"]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"_faults_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lenet():
    return load_script(LENET)


def fails(mod, argv: list[str], capsys) -> str:
    """Run the script in-process; it must exit 2 with exactly one line on stderr: that line."""
    with pytest.raises(SystemExit) as e:
        mod.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    return err[0]


# --------------------------------------------------------------------------- hyper-parameters
@pytest.mark.parametrize("flags, message", [
    (["--lr", "nan"], "argument --lr: nan is not a finite number"),
    (["--lr", "-1"], "argument --lr: -1 is not greater than 0"),
    (["--lr", "0"], "argument --lr: 0 is not greater than 0"),
    (["--momentum", "inf"], "argument --momentum: inf is not a finite number"),
    (["--weight-decay", "nan"], "argument --weight-decay: nan is not a finite number"),
    (["--weight-decay", "-0.1"], "argument --weight-decay: -0.1 is negative"),
    (["--epochs", "0"], "argument --epochs: 0 is not at least 1"),
    (["--iterations", "-5"], "argument --iterations: -5 is not at least 1"),
    (["--batch-size", "0"], "argument --batch-size: 0 is not at least 1"),
    (["--betas", "0.9", "1.5"], "argument --betas: 1.5 is not in [0, 1)"),
    (["--eps", "0"], "argument --eps: 0 is not greater than 0"),
    (["--grad-clip", "inf"], "argument --grad-clip: inf is not a finite number"),
    (["--gamma", "abc"], "argument --gamma: 'abc' is not a number"),
    (["--std", "0.5", "0"], "argument --std: 0 is not greater than 0"),
    (["--workers", "-1"], "argument --workers: -1 is negative"),
    (["--aux-weight", "aux1=nan"], "argument --aux-weight: nan is not a finite number"),
    (["--aux-weight", "0.3"], "argument --aux-weight: expected NAME=WEIGHT, got '0.3'"),
    (["--piecewise", "2:0.1,0:0.01"],
     "argument --piecewise: 2:0.1,0:0.01: each SPAN must be > 0 and each LR >= 0, both finite"),
    (["--area", "0.5", "0.2"], "argument --area: 0.5 0.2 is not a range LOW <= HIGH <= 1"),
])
def test_hyper_parameters_out_of_range_are_usage_errors(lenet, capsys, flags, message):
    assert fails(lenet, flags, capsys) == PREFIX + message


# ------------------------------------------------------------------------------- input size
def test_input_size_outside_what_the_network_takes(lenet, capsys):
    # flatten -> linear(400) fixes LeNet-5's input: 32 ... 35 all end in its 5x5 x 16 feature map
    assert (lenet.MIN_INPUT_SIZE, lenet.MAX_INPUT_SIZE) == (32, 35)
    assert fails(lenet, ["--input-size", "28"], capsys) == (
        PREFIX + "argument --input-size: 28 is smaller than 32, the smallest input lenet5 takes")
    assert fails(lenet, ["--input-size", "40"], capsys) == (
        PREFIX + "argument --input-size: 40 is larger than 35, the largest input lenet5 takes")
    # the constants are the model's real limits
    with torch.device("meta"):
        net = lenet.load_runtime().load_model_module(lenet.network()).build(num_classes=10, init_weights=False)
        for size in (32, 35):
            assert net(torch.empty(1, 1, size, size)).shape == (1, 10)
        for size in (31, 36):
            with pytest.raises(RuntimeError):
                net(torch.empty(1, 1, size, size))


def test_input_size_range_follows_the_shape_rules(tmp_path):
    spec = tmp_path / "s.yaml"
    head = "name: s\ninput: [3, 32, 32]\nnum_classes: 4\nnetwork: [{conv: {out: 4, kernel: 5}}, "
    spec.write_text(head + "{maxpool: 2}, global_avgpool, flatten, {linear: num_classes}]\n")
    assert input_size_range(load_networks(str(spec))[0]) == (6, None)  # a 5x5 conv, a 2x2 pool
    spec.write_text(head + "{maxpool: 2}, flatten, {linear: num_classes}]\n")
    assert input_size_range(load_networks(str(spec))[0]) == (32, 33)  # the linear layer's width
    texts = {p: (ROOT / "generated" / p).read_text() for p in ("torchvision/train_vgg16.py",
                                                                "train_vgg16.py", "train_resnet50.py")}
    assert "MIN_INPUT_SIZE = 32\nMAX_INPUT_SIZE = None\n" in texts["torchvision/train_vgg16.py"]
    assert "MIN_INPUT_SIZE = 224\nMAX_INPUT_SIZE = 255\n" in texts["train_vgg16.py"]  # 7x7 x 512 -> fc
    assert "MIN_INPUT_SIZE = 1\nMAX_INPUT_SIZE = None\n" in texts["train_resnet50.py"]


# ------------------------------------------------------------------------------ output paths
def test_unwritable_out_dir_is_found_before_the_data(lenet, capsys, tmp_path):
    (tmp_path / "file").write_text("")
    # the data path does not exist either: the output folder is checked first
    argv = ["--data", f"imagefolder:{tmp_path / 'none'}", "--out-dir", str(tmp_path / "file" / "run")]
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--out-dir: cannot write to {tmp_path / 'file' / 'run'} (Not a directory)")
    assert fails(lenet, ["--out-dir", str(tmp_path / "file")], capsys) == (
        PREFIX + f"--out-dir: {tmp_path / 'file'} is a file, not a folder")


def test_unwritable_metrics_json_is_found_before_training(lenet, capsys, tmp_path):
    (tmp_path / "file").write_text("")
    argv = QUICK + ["--out-dir", str(tmp_path / "run"), "--metrics-json", str(tmp_path / "file" / "m.json")]
    assert fails(lenet, argv, capsys) == PREFIX + f"--metrics-json: {tmp_path / 'file'} is a file, not a folder"
    argv = QUICK + ["--out-dir", str(tmp_path / "run"), "--metrics-json", str(tmp_path)]
    assert fails(lenet, argv, capsys) == PREFIX + f"--metrics-json: {tmp_path} is a folder, not a file"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    # a folder that does not exist yet is made, as --out-dir is
    summary = lenet.main(QUICK + ["--epochs", "1", "--out-dir", str(tmp_path / "run"),
                                  "--metrics-json", str(tmp_path / "new" / "m.json")])
    assert (tmp_path / "new" / "m.json").is_file() and summary["steps"] == 4


# ------------------------------------------------------------------------------- checkpoints
def _checkpoint(**entries) -> dict:
    state = {"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 1, "step_in_epoch": 0, "step": 4,
             "rng": []}
    state.update(entries)
    return state


def test_foreign_checkpoints_are_named(lenet, capsys, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    argv = QUICK + ["--out-dir", str(tmp_path), "--resume"]
    ckpt.write_bytes(b"not a checkpoint at all")
    line = fails(lenet, argv, capsys)
    assert line.startswith(PREFIX + f"--resume: cannot read {ckpt}: "), line
    torch.save([1, 2, 3], ckpt)
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--resume: {ckpt} is not an archspec training checkpoint: it holds a list, not a dict")
    torch.save({"state_dict": {}}, ckpt)
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--resume: {ckpt} is not an archspec training checkpoint: it has no 'model' entry")
    # another network's weights: the first names that differ
    nin_script = load_script(ROOT / "generated" / "train_nin_cifar10.py")
    nin = nin_script.load_runtime().load_model_module(nin_script.network())
    torch.save(_checkpoint(model=nin.build(num_classes=10).state_dict(), network="nin_cifar10"), ckpt)
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--resume: {ckpt} holds the weights of another network (a checkpoint of nin_cifar10): "
        "missing 'conv1.weight', 'conv1.bias', 'conv2.weight' and 7 more; unexpected "
        "'mlpconv1.conv.weight', 'mlpconv1.conv.bias', 'mlpconv1.cccp1.weight' and 15 more")
    # the same network with another class count: the first shape that differs
    own = lenet.load_runtime().load_model_module(lenet.network())
    torch.save(_checkpoint(model=own.build(num_classes=5).state_dict()), ckpt)
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--resume: {ckpt} holds the weights of another network: fc3.weight is 5x84 there "
        "and 10x84 here")


def test_checkpoint_of_another_optimizer(lenet, capsys, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    argv = QUICK + ["--out-dir", str(tmp_path), "--resume"]
    torch.save(_checkpoint(optimizer_class="Adam"), ckpt)
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--resume: {ckpt} holds the state of a Adam optimizer, not of the SGD of --optimizer sgd")
    torch.save(_checkpoint(args={"optimizer": "rmsprop"}), ckpt)  # an older checkpoint: its saved flags
    assert fails(lenet, argv + ["--optimizer", "adamw"], capsys) == (
        PREFIX + f"--resume: {ckpt} holds the state of a RMSprop optimizer, not of the AdamW of "
        "--optimizer adamw")


def test_own_checkpoint_resumes_with_or_without_the_new_entries(lenet, capsys, tmp_path):
    lenet.main(QUICK + ["--epochs", "1", "--out-dir", str(tmp_path)])
    ckpt = tmp_path / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    assert (state["network"], state["optimizer_class"], state["epoch"]) == ("lenet5", "SGD", 1)
    del state["network"], state["optimizer_class"], state["args"]  # as an older script wrote it
    torch.save(state, ckpt)
    summary = lenet.main(QUICK + ["--epochs", "2", "--out-dir", str(tmp_path), "--resume"])
    assert summary["steps"] == 8
    capsys.readouterr()
    lenet.main(QUICK + ["--epochs", "2", "--out-dir", str(tmp_path), "--resume"])
    assert "has all 2 epochs already: nothing to train" in capsys.readouterr().err


# ------------------------------------------------------------------------------ image folders
def _image_folder(root: Path, classes=("a", "b"), per_class: int = 2) -> None:
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = (torch.rand(8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / c / f"{i}.jpg")


def test_corrupt_image_is_named(lenet, capsys, tmp_path):
    _image_folder(tmp_path)
    bad = tmp_path / "train" / "a" / "x.jpg"
    bad.write_bytes(os.urandom(64))
    argv = ["--optimizer", "sgd", "--data", f"imagefolder:{tmp_path}", "--batch-size", "5", "--epochs", "1", "--lr", "0.01",
            "--no-plot", "--device", "cpu", "--no-compile", "--out-dir", str(tmp_path / "run")]
    line = PREFIX + f"--data: cannot read the image {bad} (not an image file)"
    assert fails(lenet, argv + ["--workers", "0"], capsys) == line
    # in a loader worker process, as training runs: the same line, no worker traceback
    r = subprocess.run([sys.executable, str(LENET), *argv, "--workers", "1"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == line, r.stderr
    assert "Traceback" not in r.stderr


def test_empty_class_folder_and_mismatched_classes(lenet, capsys, tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS
    _image_folder(tmp_path)
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "train" / "c" / "notes.txt").write_text("no images here")
    argv = ["--optimizer", "sgd", "--data", f"imagefolder:{tmp_path}", "--batch-size", "2", "--workers", "0", "--no-plot",
            "--device", "cpu", "--out-dir", str(tmp_path / "run")]
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--data imagefolder:{tmp_path}: the class folder {tmp_path / 'train' / 'c'} holds no "
        f"images ({', '.join(IMG_EXTENSIONS)})")
    (tmp_path / "train" / "c" / "notes.txt").unlink()
    (tmp_path / "train" / "c").rmdir()
    for f in (tmp_path / "val" / "b").iterdir():
        f.unlink()
    (tmp_path / "val" / "b").rmdir()
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--data imagefolder:{tmp_path}: the class 'b' has no folder in {tmp_path / 'val'}")
    for c in ("a",):
        for f in (tmp_path / "val" / c).iterdir():
            f.unlink()
        (tmp_path / "val" / c).rmdir()
    assert fails(lenet, argv, capsys) == (
        PREFIX + f"--data imagefolder:{tmp_path}: no class folders in {tmp_path / 'val'}")
