"""Issue #11: the language features torchvision's module trees need — sequential: blocks (an
nn.Sequential numbered 0, 1, ...), splice: true (a repeat's repetitions as items of the enclosing
numbered list), a list of layers held by an op's name (MobileNetV2's `conv`), and make_divisible in
a block (the generated file defines it). Each built spec goes through the whole compiler contract
(tests/contract.py) and its state_dict keys are checked exactly."""

import importlib.util
import sys
import textwrap

import pytest

from .contract import check_spec, lowering_error

HEAD = """
name: net
input: [3, 16, 16]
num_classes: 10
blocks:
  CNA:
    sequential: true
    params: {out: int, kernel: 3, stride: 1, groups: 1, act: relu6}
    body:
      - {conv: {out: out, kernel: kernel, stride: stride, padding: (kernel - 1) // 2, groups: groups, bias: false}}
      - bn
      - {$act: {}, when: act != 'none'}
  IR:
    params: {oup: int, stride: 1, t: 6}
    body:
      conv:
        - {CNA: {out: in.c * t, kernel: 1}, when: t != 1}
        - {CNA: {out: in.c * t, stride: stride, groups: in.c * t}}
        - {CNA: {out: oup, kernel: 1, act: none}}
      add: {add: {}, from: [conv, input], when: stride == 1 and in.c == oup}
"""


def _spec(tmp_path, body: str):
    """HEAD, then ``body``; a ``blocks:`` section in ``body`` joins HEAD's."""
    body = textwrap.dedent(body)
    extra = ""
    if body.lstrip().startswith("blocks:"):
        lines = body.lstrip().splitlines()[1:]
        k = next(i for i, l in enumerate(lines) if l and not l.startswith(" "))
        extra, body = "\n".join(lines[:k]) + "\n", "\n".join(lines[k:]) + "\n"
    f = tmp_path / "net.yaml"
    f.write_text(HEAD + extra + body)
    return f


def _module(tmp_path, body: str):
    f = _spec(tmp_path, body)
    assert check_spec(f, tmp_path / "out").kind == "ok"
    path = tmp_path / "out" / "net.py"
    spec = importlib.util.spec_from_file_location("lang_tv_net", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.pop("lang_tv_net", None)
    spec.loader.exec_module(mod)
    return mod, path.read_text()


def _error(tmp_path, body: str) -> str:
    return lowering_error(_spec(tmp_path, body))


def test_sequential_block_is_an_nn_sequential_numbered_like_torchvision(tmp_path):
    mod, text = _module(tmp_path, """
        network:
          features:
            - {CNA: {out: 8, stride: 2}}
            - {CNA: {out: 8, kernel: 1, act: none}}
          avgpool: global_avgpool
          flatten: flatten
          fc: {linear: num_classes}
        """)
    import torch
    net = mod.build()
    assert isinstance(net.features[0], torch.nn.Sequential)
    assert [k for k in net.state_dict() if k.startswith("features.")] == [
        "features.0.0.weight", "features.0.1.weight", "features.0.1.bias", "features.0.1.running_mean",
        "features.0.1.running_var", "features.0.1.num_batches_tracked",
        "features.1.0.weight", "features.1.1.weight", "features.1.1.bias", "features.1.1.running_mean",
        "features.1.1.running_var", "features.1.1.num_batches_tracked"]
    assert len(net.features[0]) == 3 and len(net.features[1]) == 2  # act: none takes no index
    assert "class CNA(nn.Sequential):" in text and "def forward" not in text.split("class CNA")[1].split("class ")[0]
    assert "if act != 'none':\n            self.append(nn.ReLU6(inplace=True))" in text


def test_splice_puts_repetitions_into_the_enclosing_numbered_list(tmp_path):
    mod, text = _module(tmp_path, """
        network:
          features:
            - {CNA: {out: 16, stride: 2}}
            - {IR: {oup: 16, t: 1}}
            - {IR: {oup: 24}, repeat: 3, first: {stride: 2}, splice: true}
            - {IR: {oup: 32}, repeat: 2}
          avgpool: global_avgpool
          flatten: flatten
          fc: {linear: num_classes}
        """)
    net = mod.build()
    tops = sorted({".".join(k.split(".")[:2]) for k in net.state_dict() if k.startswith("features.")})
    assert tops == ["features.0", "features.1", "features.2", "features.3", "features.4", "features.5"]
    # the spliced repeat takes indices 2, 3, 4; the plain repeat nests (features.5.0, features.5.1)
    assert "features.4.conv.0.0.weight" in net.state_dict()
    assert "features.5.1.conv.2.0.weight" in net.state_dict()
    # MobileNetV2's `conv` list: t = 1 skips the expansion, so the depthwise conv is conv.0
    assert net.state_dict()["features.1.conv.0.0.weight"].shape == (16, 1, 3, 3)
    assert net.state_dict()["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)


def test_make_divisible_in_a_block_is_written_into_the_generated_file(tmp_path):
    mod, text = _module(tmp_path, """
        blocks:
          SE:
            params: {ratio: 4}
            body:
              - mul:
                  - []
                  - - global_avgpool
                    - {conv: {out: "make_divisible(in.c // ratio, 8)", kernel: 1}}
                    - relu
                    - {conv: {out: in.c, kernel: 1}}
                    - hardsigmoid
        network:
          - {conv: {out: 40, kernel: 3, padding: 1}}
          - SE
          - {conv: {out: 72, kernel: 1}}
          - SE
          - global_avgpool
          - flatten
          - {linear: num_classes}
        """)
    assert "def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:" in text
    assert "make_divisible(in_channels // ratio, 8)" in text
    assert text.count("class SE") == 1  # one class: the width is computed, not a constant per instance
    assert mod.make_divisible(40 // 4, 8) == 16 and mod.make_divisible(72 // 4, 8) == 24


def test_sequential_body_must_be_a_list(tmp_path):
    msg = _error(tmp_path, """
        blocks:
          S:
            sequential: true
            body: {a: relu}
        network: [S, flatten, {linear: num_classes}]
        """)
    assert msg.startswith(f"{tmp_path / 'net.yaml'}:")
    assert "block 'S' is sequential: its body must be a list" in msg


@pytest.mark.parametrize("body, message", [
    ("network: [{CNA: {out: 8}, repeat: 2, splice: true}, flatten]",
     "splice: true puts the repetitions into the numbered list that holds the call"),
    ("network:\n  f: [{CNA: {out: 8}, splice: true}]",
     "splice: goes with repeat:"),
    ("network:\n  f: [{CNA: {out: 8}, repeat: 2, splice: yes please}]",
     "splice: takes true or false"),
    ("network:\n  f: [{CNA: {out: 8}, repeat: 2, splice: true, expect: {params: 1}}]",
     "expect: needs a module to total, and splice: true makes none"),
])
def test_splice_misuse_is_one_located_error(tmp_path, body, message):
    msg = _error(tmp_path, body)
    first = msg.splitlines()[0]
    assert first.startswith(str(tmp_path / "net.yaml") + ":") and message in first


def test_comprehensions_and_list_functions_compute_regnet_stages():
    from archspec.spec.expr import evaluate
    from torchvision.models.regnet import BlockParams

    env = {"w_0": 48, "w_a": 27.89, "w_m": 2.09, "depth": 16}
    bw = evaluate("quantized_linear(w_0, w_a, w_m, depth, 8)", env)
    widths = evaluate("unique(bw)", {"bw": bw})
    depths = evaluate("[count(bw, w) for w in widths]", {"bw": bw, "widths": widths})
    ref = BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    assert widths == ref.widths == [48, 104, 208, 440] and depths == ref.depths == [1, 3, 6, 6]
    assert evaluate("[i * 2 for i in range(1, 4)]", {}) == [2, 4, 6]


@pytest.mark.parametrize("text, message", [
    ("[[x for x in y] for y in z]", "comprehensions do not nest"),
    ("[x for x in range(5000)]", "a comprehension runs over at most 1000 items"),
    ("[x for x in 3]", "a comprehension runs over a list"),
    ("range(20000)", "range() gives at most 10000 numbers"),
    ("[range(10000) for j in range(1000)]", "a comprehension builds at most 100,000 values"),
    ("quantized_linear(0, 1, 2, 4)", "quantized_linear needs w_0 > 0"),
    ("quantized_linear(8, 1, 2, 100000)", "quantized_linear needs w_0 > 0"),
])
def test_expression_limits_are_errors(text, message):
    from archspec.spec.expr import ExprError, evaluate
    with pytest.raises(ExprError) as e:
        evaluate(text, {"y": [[1]], "z": [[1]]})
    assert message in e.value.message


def test_repetition_names_may_hold_dashes_like_torchvision_regnet(tmp_path):
    mod, text = _module(tmp_path, """
        network:
          trunk:
            block1: {CNA: {out: 8}, repeat: 2, names: "block1-{i}"}
          avgpool: global_avgpool
          flatten: flatten
          fc: {linear: num_classes}
        """)
    keys = [k for k in mod.build().state_dict() if k.startswith("trunk.")]
    assert keys[0] == "trunk.block1.block1-0.0.weight" and "trunk.block1.block1-1.1.bias" in keys
    assert '("block1-0", CNA(3, 8))' in text  # a plain list: no generator for two names


def test_a_name_that_cannot_be_a_module_key_is_one_error(tmp_path):
    msg = _error(tmp_path, """
        network:
          trunk: {CNA: {out: 8}, repeat: 2, names: "block.{i}"}
        """)
    assert "names: gives 'block.0' for i = 0, which cannot name a module" in msg.splitlines()[0]


def test_a_cell_word_takes_when_and_name_as_a_call(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(textwrap.dedent("""
        name: net
        input: [3, 16, 16]
        num_classes: 10
        params: {deep: false}
        cells:
          "c{k}-{out}": [{conv: {out: out, kernel: k, padding: same}}, relu]
        network:
          features:
            - c3-8
            - {c3-16: {}, when: deep}
            - {c1-12: {}}
            - {c3-4: {}, when: not deep, name: last}
          avgpool: global_avgpool
          flatten: flatten
          fc: {linear: num_classes}
        """))
    assert check_spec(f, tmp_path / "out").kind == "ok"
    from archspec.ir import lower
    from archspec.load import load_networks
    ids = [n.id for n in lower(load_networks(str(f))[0]).nodes() if n.id.startswith("features.")]
    assert ids == ["features.0", "features.1", "features.2", "features.3", "features.last.0", "features.last.1"]


def test_a_constant_expression_default_is_written_as_its_value(tmp_path):
    """len([...]) * 4 has no names: it was written into the class as the string 'len(...) * 4'."""
    mod, text = _module(tmp_path, """
        blocks:
          B:
            params: {w: "len([x for x in [1, 2]]) * 4"}
            body: [{conv: {out: w, kernel: 1}}]
        network: [B, {B: {w: 6}}, global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "w: int = 8" in text
    assert mod.build().B.conv.out_channels == 8


def test_a_comprehension_default_over_parameters_is_one_located_error(tmp_path):
    f = _spec(tmp_path, """
        blocks:
          B:
            params: {v: 2, w: "[v * x for x in [1, 2]][1]"}
            body: [{conv: {out: w, kernel: 1}}]
        network: [B, {B: {v: 3}}, global_avgpool, flatten, {linear: num_classes}]
        """)
    out = check_spec(f, tmp_path / "out")
    assert out.kind == "rejected"
    assert "the default of parameter 'w' of block 'B': a list comprehension cannot be written" in out.detail
