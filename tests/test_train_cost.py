"""stats --train against torch's own accounting of a training step (tests/train_reference.py).

For every network of the zoo, on CPU tensors at batch 2 and the smallest input the spec takes with
the same parameters: flops_fwd and flops_bwd equal FlopCounterMode's counts exactly, saved_bytes
equals the bytes of the unique storages saved_tensors_hooks sees (parameters excluded) within 1 %
(the rules aim at, and so far reach, exactness). fp32 for every network in make test; bf16-mixed
(CPU autocast) for one network of each family of ops there, for all under -m heavy.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from archspec.analysis import compile_spec
from archspec.analysis.train import (CUBLAS_WORKSPACE, OPTIMIZERS, max_batch, network_train, optimizer_of, parse_bytes,
                                     train_cost)
from archspec.codegen import render_specs, write_outputs
from archspec.errors import SpecError
from archspec.ir import lower
from archspec.load import load_networks
from archspec.ops import REGISTRY

from .conftest import HEAVY, ROOT
from .test_codegen import PAPER_HEAVY, ZOO, load_module
from .train_reference import measure, meta_flops

#: fp32 on the CPU in make test: a network for each family that steps in a second or two at batch 2
#: and its smallest input (one of a paper spec and its torchvision twin; the small networks below
#: hold the ops they leave out); the others under -m heavy. The FLOPs of every network run in make test on the meta device.
FP32_FAST = {"conv5x5_reduced_28x28x192", "lenet5", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small",
             "regnet_x_400mf", "regnet_y_400mf", "resnet18", "resnet20_cifar", "shufflenet_v2_x0_5",
             "squeezenet1_1", "googlenet", "convnext_tiny"}
#: bf16-mixed in make test: a network for each kind of op that the CPU runs in bf16 in a few seconds
#: (the rest, Swin, ViT and the large ones, under -m heavy: bf16 matmuls are slow on CPUs without
#: bf16 units)
BF16_FAST = {"lenet5", "resnet20_cifar", "mobilenet_v3_small", "squeezenet1_1", "mnasnet0_5",
             "regnet_y_400mf", "shufflenet_v2_x0_5", "convnext_tiny"}


#: deep networks whose meta-device step takes seconds (the meta kernels are Python): -m heavy
META_SLOW = {"resnet1202_cifar", "resnet1202", "densenet264", "densenet_bc250_k24", "densenet201",
             "densenet_bc190_k40", "densenet161", "densenet169", "maxvit_s", "densenet100_k12", "densenet121",
             "preact_resnet164_cifar", "densenet100_k24", "resnet152", "resnet101", "regnet_y_1_6gf",
             "efficientnet_b3", "regnet_y_3_2gf", "mobilenet_v3_large", "resnet110", "inception_v3",
             "densenet_bc100_k12", "regnet_x_3_2gf", "resnet110_cifar", "wide_resnet101_2", "resnext101_64x4d",
             "resnext101_32x8d", "resnext101_32x4d"}


def _heavy(net) -> bool:
    return net.name in HEAVY | PAPER_HEAVY


def _params(precision: str):
    out = []
    seen = set()
    for net, path in ZOO:
        if precision == "meta":
            heavy = _heavy(net) or net.name in META_SLOW | seen
        else:
            heavy = _heavy(net) or net.name not in (FP32_FAST if precision == "fp32" else BF16_FAST) or net.name in seen
        if not heavy:
            seen.add(net.name)  # a paper spec and its torchvision twin: one of them in make test
        out.append(pytest.param(net, path, id=f"{net.ref}-{precision}",
                                marks=[pytest.mark.heavy] if heavy else []))
    return out


def _small(net):
    """(net, graph, stats) at the smallest square input of 32, 64, 96 … that keeps the parameters
    (a global pool before the head), else at the spec's own input."""
    [(n0, g0, s0)] = compile_spec(net.ref)
    c, *hw = net.input
    if len(hw) == 2 and hw[0] == hw[1]:
        for side in (32, 64, 96, 128, 160):
            if side >= hw[0]:
                break
            try:
                [(n1, g1, s1)] = compile_spec(net.ref, (c, side, side))
            except SpecError:
                continue
            if s1.params_with_aux == s0.params_with_aux:
                return n1, g1, s1
    return n0, g0, s0


def _check(net, path, precision: str) -> None:
    n, g, st = _small(net)
    bf16 = precision == "bf16"
    ours = network_train(g, st, n.train, batch=2, precision="bf16-mixed" if bf16 else "fp32", device="cpu")
    mod = load_module(path)
    torch.manual_seed(0)
    model = mod.build(init_weights=False)
    ref = measure(model, torch.randn(2, *n.input), bf16=bf16)
    assert (ours.flops_fwd, ours.flops_bwd) == (ref["flops_fwd"], ref["flops_bwd"])
    assert ours.saved_bytes == pytest.approx(ref["saved_bytes"], rel=0.01)


@pytest.mark.parametrize("net,path", _params("meta"))
def test_train_flops_equal_torch_on_meta(net, path):
    """At the spec's own input: FlopCounterMode on the meta device, no memory and no compute."""
    [(n, g, st)] = compile_spec(net.ref)
    ours = network_train(g, st, n.train, batch=2)
    mod = load_module(path)
    with torch.device("meta"):
        model = mod.build(init_weights=False)
        x = torch.empty(2, *n.input)
    ref = meta_flops(model, x)
    assert (ours.flops_fwd, ours.flops_bwd) == (ref["flops_fwd"], ref["flops_bwd"])


@pytest.mark.parametrize("net,path", _params("fp32"))
def test_train_cost_equals_torch_fp32(net, path):
    _check(net, path, "fp32")


@pytest.mark.parametrize("net,path", _params("bf16"))
def test_train_cost_equals_torch_bf16_mixed(net, path):
    _check(net, path, "bf16")


def test_every_op_declares_its_training_cost():
    missing = [name for name, op in REGISTRY.items() if op.train is None]
    assert missing == []


def test_first_layer_computes_no_input_gradient():
    [net] = load_networks("specs/torchvision/resnet18.yaml")
    g = lower(net)
    [_, _, st] = compile_spec("specs/torchvision/resnet18.yaml")[0]
    tr = network_train(g, st, net.train, batch=2)
    conv1, layer1_conv = tr.layers[0], next(r for r in tr.layers[1:] if r.op == "conv")
    assert conv1.op == "conv" and conv1.flops_bwd == conv1.flops_fwd  # the weight gradient only
    assert layer1_conv.flops_bwd == 2 * layer1_conv.flops_fwd


def test_flops_and_saved_bytes_grow_linearly_with_the_batch():
    [(net, g, st)] = compile_spec("specs/torchvision/resnet50.yaml")
    one, four = (network_train(g, st, net.train, batch=b) for b in (1, 4))
    assert four.flops_fwd == 4 * one.flops_fwd == 4 * 2 * st.macs
    assert four.flops_bwd == 4 * one.flops_bwd
    assert four.saved_bytes < 4 * one.saved_bytes  # BN's running statistics are saved once
    assert four.peak_bytes > one.peak_bytes


def test_peak_counts_two_cublas_workspaces_on_cuda_when_the_network_has_gemms():
    """One cuBLAS workspace per thread that runs GEMMs (forward, autograd's backward): 2 x 32 MiB
    on CUDA for a network with a linear layer; none on the CPU, none without GEMMs (SqueezeNet's
    classifier is a conv)."""
    assert CUBLAS_WORKSPACE == 32 * 2**20
    for spec, gemms in (("specs/torchvision/resnet18.yaml", True), ("specs/torchvision/squeezenet1_0.yaml", False)):
        [(net, g, st)] = compile_spec(spec)
        with_ws, without = (network_train(g, st, net.train, batch=2, cublas_workspace=w).peak_bytes
                            for w in (CUBLAS_WORKSPACE, 0))
        assert with_ws - without == (2 * CUBLAS_WORKSPACE if gemms else 0)
        cpu = [network_train(g, st, net.train, batch=2, device="cpu", cublas_workspace=w).peak_bytes
               for w in (CUBLAS_WORKSPACE, 0)]
        assert cpu[0] == cpu[1]


def test_optimizer_state():
    [(net, g, st)] = compile_spec("specs/torchvision/resnet18.yaml")
    sizes = {o: network_train(g, st, None, optimizer=o).optimizer_bytes for o in OPTIMIZERS}
    p = 4 * st.params_with_aux
    assert sizes == {"sgd": 0, "sgd-momentum": p, "adam": 2 * p, "adamw": 2 * p, "rmsprop": p, "none": 0}
    assert optimizer_of(net.train) == "sgd-momentum"


def test_parse_bytes_and_max_batch():
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("40GB") == 40 * 10**9
    assert parse_bytes("24000MiB") == 24000 * 2**20
    assert parse_bytes("0.5GiB") == 2**29
    assert parse_bytes("512") == 512
    for bad in ("", "GiB", "80 XB", "-1GiB", "1iB"):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    assert max_batch(lambda b: 100 + 10 * b, 1000) == 90
    assert max_batch(lambda b: 100 + 10 * b, 50) == 0


def test_unknown_precision_or_optimizer_is_an_error():
    [(net, g, st)] = compile_spec("specs/lenet5.yaml")
    params = {ls.name: ls.params for ls in st.layers}
    with pytest.raises(ValueError):
        train_cost(g, params, precision="fp16")
    with pytest.raises(ValueError):
        train_cost(g, params, optimizer="lamb")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", "stats", *args], cwd=ROOT, capture_output=True,
                          text=True)


def test_cli_train_json_and_no_torch():
    code = ("import sys\nfrom archspec.cli.main import app\n"
            "try:\n    app(['stats', 'specs/resnet50.yaml', '--train', '--batch', '256', '--precision', "
            "'bf16-mixed'])\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert "conv5_x.2.conv_2" in r.stdout and "total" in r.stdout  # the per-layer table, one network
    r = _cli("specs/torchvision/resnet18.yaml", "--train", "--batch", "8", "--optimizer", "adam",
             "--memory", "24GiB", "--cuda-context", "0.5GiB", "--per-layer", "--format", "json")
    assert r.returncode == 0, r.stderr
    [obj] = json.loads(r.stdout)
    t = obj["train"]
    assert {"batch", "precision", "optimizer", "flops_fwd", "flops_bwd", "saved_bytes", "params_bytes",
            "grad_bytes", "optimizer_bytes", "peak_bytes", "max_batch", "layers"} <= set(t)
    assert (t["batch"], t["precision"], t["optimizer"]) == (8, "fp32", "adam")
    assert t["optimizer_bytes"] == 2 * t["params_bytes"] == 2 * 4 * obj["params"]
    assert sum(r["flops_fwd"] for r in t["layers"]) == t["flops_fwd"]
    assert sum(r["saved_bytes"] for r in t["layers"]) == t["saved_bytes"]
    assert t["max_batch"] > 8
    assert t["layers"][0]["flops_bwd"] == t["layers"][0]["flops_fwd"]


def test_cli_train_usage_errors():
    r = _cli("specs/lenet5.yaml", "--batch", "4")
    assert r.returncode == 2 and "--train" in r.stderr
    r = _cli("specs/lenet5.yaml", "--train", "--memory", "lots")
    assert r.returncode == 2 and "not a size" in r.stderr
    r = _cli("specs/lenet5.yaml", "--train", "--precision", "fp16")
    assert r.returncode == 2


#: small networks that hold every op the zoo's make-test networks leave out (LRN, leaky ReLU, ViT's
#: tokens and attention, MaxViT's windows, Swin's and Swin V2's attention, space_to_depth ...), in
#: both precisions in make test
SMALL = {
    "classic": ("[3, 16, 16]", """
        network:
          c1: {conv: {out: 8, kernel: 3, padding: 1}}
          n1: lrn
          a1: {leaky_relu: 0.1}
          c2: {conv: {out: 8, kernel: 3, padding: 1, groups: 2}}
          a2: tanh
          c3: {conv: {out: 8, kernel: 3, padding: 1, bias: false}}
          b3: bn
          a3: sigmoid
          a4: hardswish
          a5: relu6
          a6: silu
          p: {avgpool: 2}
          f: flatten
          d: {dropout: 0.5}
          fc: {linear: 10}
          s: softmax
        """),
    "tokens": ("[3, 16, 16]", """
        network:
          p: {conv: {out: 32, kernel: 4, stride: 4}}
          t: to_tokens
          c: class_token
          e: pos_embedding
          n: layernorm
          a: {self_attention: 4}
          g: gelu
          k: token
          fc: {linear: 10}
        """),
    "windows": ("[3, 16, 16]", """
        network:
          p: {conv: {out: 16, kernel: 2, stride: 2}}
          w: {window_partition: 4}
          n: layernorm
          a: {relative_position_attention: {head_dim: 8}}
          s: {stochastic_depth: {p: 0.5, mode: row}}
          d: {window_departition: 4}
          l: {layer_scale: 0.1}
          q: {permute: [0, 2, 3, 1]}
          v1: {shifted_window_attention: {heads: 2, window: 4, shift: 2}}
          v2: {shifted_window_attention_v2: {heads: 2, window: 4, shift: 2}}
          m: space_to_depth
          ln: layernorm
          b: {permute: [0, 3, 1, 2]}
          gp: global_avgpool
          f: flatten
          fc: {linear: 10}
        """),
}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_train_cost_equals_torch_on_small_networks(tmp_path, name, precision):
    shape, body = SMALL[name]
    f = tmp_path / "net.yaml"
    f.write_text(f"name: net\ninput: {shape}\nnum_classes: 10\n" + textwrap.dedent(body))
    write_outputs(render_specs([str(f)], tmp_path / "out"))
    spec = importlib.util.spec_from_file_location(f"archspec_train_cost_{name}_{precision}", tmp_path / "out" / "net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    [(net, g, st)] = compile_spec(str(f))
    bf16 = precision == "bf16"
    ours = network_train(g, st, None, batch=2, precision="bf16-mixed" if bf16 else "fp32", device="cpu")
    torch.manual_seed(0)
    ref = measure(mod.build(), torch.randn(2, *net.input), bf16=bf16)
    assert (ours.flops_fwd, ours.flops_bwd) == (ref["flops_fwd"], ref["flops_bwd"])
    assert ours.saved_bytes == ref["saved_bytes"]
