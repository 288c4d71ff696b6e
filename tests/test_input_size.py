"""MIN_INPUT_SIZE / MAX_INPUT_SIZE of the training scripts (archspec.codegen.train.input_size_range).

The searches lower each network once and re-run only the shape rules for every size they try
(``_Replay``); these tests hold that shortcut to the whole lowering it stands for: the bounds equal
those of the same searches over whole lowerings, and at every size the replay answers, it answers
what a whole lowering gives. No torch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import archspec.codegen.train as train
from archspec.codegen.train import _Replay, _weights_at, input_size_range
from archspec.ir import lower
from archspec.load import load_networks

ROOT = Path(__file__).resolve().parent.parent


def searched_with_whole_lowerings(net):
    """The searches as they were: every size tried is a whole lowering."""
    if len(net.input) != 3 or net.input[1] != net.input[2]:
        return None, None
    size = net.input[1]
    own = _weights_at(net, size)
    if own is None:
        return None, None
    if _weights_at(net, 1) == own:
        lo = 1
    else:
        lo, hi = 2, size
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _weights_at(net, mid) == own else (mid + 1, hi)
    if _weights_at(net, 4 * size) == own:
        return lo, None
    a, b = size, 4 * size - 1
    while a < b:
        mid = (a + b + 1) // 2
        a, b = (mid, b) if _weights_at(net, mid) == own else (a, mid - 1)
    return lo, a


def net_of(ref: str):
    return load_networks(str(ROOT / ref) if ":" not in ref else ref)[0]


@pytest.mark.parametrize("ref, want", [
    ("specs/lenet5.yaml", (32, 35)),               # flatten -> linear: bounded on both sides
    ("specs/zfnet.yaml", (213, 244)),
    ("specs/vit_b_16.yaml", (224, 239)),           # the position embedding fixes the token count
    ("specs/resnet34_a.yaml", (1, None)),          # blocks read in.c; a global pool
    ("specs/densenet40_k12.yaml", (4, None)),      # dense: blocks
    ("specs/torchvision/googlenet.yaml", (31, None)),
    ("specs/torchvision/swin_t.yaml", (4, None)),   # channels-last maps: the replay keeps the layout
])
def test_bounds_equal_the_search_over_whole_lowerings(ref, want):
    net = net_of(ref)
    assert input_size_range(net) == want
    assert searched_with_whole_lowerings(net) == want


def test_the_zoo_is_searched_without_lowering_again(monkeypatch):
    calls = []
    real = train.lower
    monkeypatch.setattr(train, "lower", lambda net, *a, **k: calls.append(net.input) or real(net, *a, **k))
    for ref in ("specs/vgg16.yaml", "specs/resnet50.yaml", "specs/se_resnext50_32x4d.yaml"):
        calls.clear()
        input_size_range(net_of(ref))
        assert len(calls) == 1, ref  # the network's own size only


BLOCK_READS_H = """\
name: s
input: [3, 32, 32]
num_classes: 4
blocks:
  stage:
    params: {out: int}
    body:
      - {conv: {out: out, kernel: 3, padding: 1}}
      - {maxpool: 2, when: "in.h >= 16"}
network:
  - {stage: {out: 8}}
  - {stage: {out: 8}}
  - flatten
  - {linear: num_classes}
"""

DENSE = """\
name: d
input: [3, 16, 16]
num_classes: 4
network:
  - {conv: {out: 8, kernel: 3, padding: 1}}
  - {dense: [{conv: {out: 4, kernel: 3, padding: 1}}, relu], repeat: 3}
  - {conv: {out: 8, kernel: 3, stride: 2}}
  - flatten
  - {linear: num_classes}
"""

CHANNELS = """\
name: c
input: [3, 20, 20]
num_classes: 4
blocks:
  widen:
    params: {}
    body: [{conv: {out: in.c * 2, kernel: 3}}, relu]
network:
  - {widen: {}}
  - {maxpool: 2}
  - {widen: {}}
  - flatten
  - {linear: num_classes}
"""


@pytest.mark.parametrize("text, sizes, unknown", [
    (BLOCK_READS_H, range(1, 129), True),   # in.h changes with the size: whole lowerings
    (DENSE, range(1, 65), False),
    (CHANNELS, range(1, 81), False),
])
def test_replay_is_a_whole_lowering_at_every_size(tmp_path, text, sizes, unknown):
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    net = load_networks(str(spec))[0]
    replay = _Replay(net, lower(net))
    answered = 0
    for s in sizes:
        got = replay.weights_at(s)
        if got is _Replay.UNKNOWN:
            continue
        answered += 1
        assert got == _weights_at(net, s), s
    assert (answered <= 1) if unknown else answered == len(sizes)
    assert input_size_range(net) == searched_with_whole_lowerings(net)


def test_in_fields_reads_expressions_only(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(BLOCK_READS_H)
    assert train._in_fields(load_networks(str(spec))[0]) == {"h"}
    spec.write_text(BLOCK_READS_H.replace('"in.h >= 16"', '"in.shape[1] >= 16"'))
    assert train._in_fields(load_networks(str(spec))[0]) == {"shape"}
    spec.write_text(BLOCK_READS_H.replace('"in.h >= 16"', '"len(in) > 0"'))
    assert train._in_fields(load_networks(str(spec))[0]) is None  # in itself: every field
    assert train._in_fields(net_of("specs/lenet5.yaml")) == frozenset()
    assert train._in_fields(net_of("specs/se_resnext50_32x4d.yaml")) == {"c"}  # prose "in" ignored
