"""Issue #10: every spec that validates builds code that runs and agrees with the IR. One test per
failure found, each with the smallest spec that showed it; each built spec goes through the whole
contract (tests/contract.py: build, import, build(), params, output shape, FlopCounterMode / 2 =
MACs, byte-identical rebuild)."""

import textwrap

import pytest

from archspec.load import load_networks
from archspec.ir import lower

from .contract import check_spec, lowering_error

HEAD = """
name: net
input: [3, 16, 16]
num_classes: 10
"""


def _spec(tmp_path, body: str):
    f = tmp_path / "net.yaml"
    f.write_text(HEAD + textwrap.dedent(body))
    return f


def _built(tmp_path, body: str) -> str:
    f = _spec(tmp_path, body)
    assert check_spec(f, tmp_path / "out").kind == "ok"
    return (tmp_path / "out" / "net.py").read_text()


def _error(tmp_path, body: str) -> str:
    return lowering_error(_spec(tmp_path, body))


def test_repeat_inside_a_list_held_by_a_key(tmp_path):
    """#10.1: the inner Sequential's lines were dropped and the stages merged."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {out: int}
            body: [{conv: {out: out, kernel: 3, padding: 1}}, relu]
        network:
          features: [{conv: {out: 8, kernel: 1}}, {B: {out: 16}, repeat: 3}]
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "nn.Sequential(B(8, 16), B(16, 16), B(16, 16))" in code


def test_named_group_inside_a_block_takes_the_values_it_reads(tmp_path):
    """#10.2: the group became a class without arguments that read in_channels and w."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {w: int}
            body: {f: {a: {conv: {out: w, kernel: 1}}, r: relu}}
        network:
          b: {B: {w: 8}}
          c: {B: {w: 4}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "class BF(nn.Module):" in code
    assert "def __init__(self, in_channels: int, w: int) -> None:" in code
    assert "self.f = BF(in_channels, w)" in code
    assert code.count("\nclass B") == 2  # BF and B: both instances share them


def test_when_on_a_block_parameter_inside_a_numbered_list(tmp_path):
    """#10.3: an optional layer takes an index only when present (as in the IR)."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {w: int, use_bn: false}
            body:
              seq: [{conv: {out: w, kernel: 1}}, {bn: {}, when: use_bn}, relu]
        network:
          b1: {B: {w: 8, use_bn: true}}
          b2: {B: {w: 8}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "        if use_bn:\n            self.seq.append(nn.BatchNorm2d(w))\n" in code
    net = load_networks(str(tmp_path / "net.yaml"))[0]
    ids = [n.id for n in lower(net).nodes()]
    assert "b1.seq.2" in ids and "b2.seq.1" in ids and "b2.seq.2" not in ids


def test_layernorm_on_a_feature_map_is_an_error_naming_the_choices(tmp_path):
    """#10.4: it silently normalised the width axis."""
    msg = _error(tmp_path, """
        network:
          c: {conv: {out: 8, kernel: 1}}
          ln: layernorm
        """)
    assert "error: network.ln.layernorm: 'layernorm' normalises the last dimension of a T×D token sequence" in msg
    assert "hint: choose the axes: to_tokens first" in msg
    assert msg.startswith(str(tmp_path / "net.yaml") + ":8:7:")


def test_conv_after_to_tokens_hints_at_tokens_not_flatten(tmp_path):
    """#10.5"""
    msg = _error(tmp_path, """
        network:
          c: {conv: {out: 8, kernel: 4, stride: 4}}
          t: to_tokens
          d: {conv: {out: 8, kernel: 1}}
        """)
    assert "'conv' needs a C×H×W feature map, got shape [16, 8]" in msg
    assert "hint: the input is a T×D token sequence (after to_tokens)" in msg
    assert "flatten" not in msg


def test_init_takes_expressions(tmp_path):
    """#10.5: init: values were literal numbers only."""
    code = _built(tmp_path, """
        init:
          linear: {weight: {uniform: {a: "-1 / num_classes ** 0.5", b: "1 / num_classes ** 0.5"}},
                   bias: "1 / 4"}
        network:
          c: {conv: {out: 4, kernel: 1}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "nn.init.uniform_(m.weight, a=-0.31622776601683794, b=0.31622776601683794)" in code
    assert "nn.init.constant_(m.bias, 0.25)" in code


def test_from_inside_a_group_reads_an_earlier_top_level_layer(tmp_path):
    """#10.6: the group's forward takes the outer value as a second input."""
    code = _built(tmp_path, """
        network:
          stem: {conv: {out: 8, kernel: 1}}
          mid: {conv: {out: 4, kernel: 3, padding: 1}}
          grp:
            a: {conv: {out: 8, kernel: 1}, from: stem}
            r: relu
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "def forward(self, x: Tensor, stem: Tensor) -> Tensor:" in code
    assert "self.grp(x, stem)" in code.replace("out", "x") or "self.grp(" in code


def test_when_tests_the_input_height_width_and_rank(tmp_path):
    """#10.7: only in.c could be tested."""
    code = _built(tmp_path, """
        blocks:
          H:
            body:
              - {conv: {out: 8, kernel: 3, padding: 1}}
              - {bn: {}, when: "in.h > 8 and in.w > 8 and in.rank == 3"}
        network:
          h1: H
          pool: {maxpool: 2}
          h2: H
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "self.h1 = H(3, in_height=16, in_width=16, in_rank=3)" in code
    assert "self.h2 = H(8, in_height=8, in_width=8, in_rank=3)" in code


def test_a_layer_held_in_an_any_parameter(tmp_path):
    """#10.8: 'cannot write the value ... into generated code' at <spec>:1:1."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {inner: any}
            body: [{conv: {out: 8, kernel: 1}}, $inner]
        network:
          b1: {B: {inner: [bn, relu]}}
          b2: {B: {inner: {conv: {out: 8, kernel: 3, padding: 1}}}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "self.b1 = B(3)" in code and "self.b2 = B2(8)" in code


def test_when_on_a_dense_call_inside_a_block(tmp_path):
    """#10.9"""
    code = _built(tmp_path, """
        blocks:
          D:
            params: {use: bool}
            body:
              - {dense: {conv: {out: 4, kernel: 1}}, repeat: 2, when: use}
              - relu
        network:
          d1: {D: {use: true}}
          d2: {D: {use: false}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "        self.dense = None\n        if use:\n" in code


def test_a_block_reads_num_classes(tmp_path):
    """#10.10"""
    code = _built(tmp_path, """
        blocks:
          Head:
            body: [global_avgpool, flatten, {linear: num_classes}]
        network:
          c: {conv: {out: 8, kernel: 1}}
          head: Head
        """)
    assert "def __init__(self, in_channels: int, num_classes: int = 10) -> None:" in code
    assert "self.head = Head(8, num_classes=num_classes)" in code


def test_a_text_default_of_a_block_parameter_is_a_word(tmp_path):
    """#10.11: `params: {act: relu}` was emitted as the bare name relu."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {act: relu}
            body: [{conv: {out: 8, kernel: 1}}, {relu: {}, when: "act == 'relu'"}, {tanh: {}, when: "act != 'relu'"}]
        network:
          a: B
          b: {B: {act: tanh}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "act: str = 'relu'" in code
    assert "self.b = B(8, act='tanh')" in code


def test_generated_names_yield_to_the_spec(tmp_path):
    """#10.12: layer names x, in_channels, torch, nn, build were refused."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {stride: 1}
            body:
              - x: {conv: {out: 8, kernel: 1}}
                in_channels: relu
                torch: {pad_shortcut: {out: 8, stride: stride}}
                stride: relu
        network:
          build: {conv: {out: 8, kernel: 1}}
          nn: {B: {stride: 2}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "self.x = nn.Conv2d(in_channels, 8, kernel_size=1)" in code
    assert "self.stride_1 = stride" in code


def test_pytorch_s_own_attribute_names_are_refused_at_validate(tmp_path):
    msg = _error(tmp_path, """
        network:
          train: {conv: {out: 8, kernel: 1}}
        """)
    assert "error: network.train.conv: the layer name 'train' is an attribute of torch.nn.Module" in msg
    assert "hint: rename the layer (e.g. 'train_')" in msg


def test_a_merge_inside_a_numbered_list(tmp_path):
    """A list held by a key whose items branch: a class whose children are self["0"], ..."""
    code = _built(tmp_path, """
        network:
          features:
            - {conv: {out: 8, kernel: 1}}
            - add: [[{conv: {out: 8, kernel: 3, padding: 1}}, bn], []]
            - relu
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "class Features(nn.ModuleDict):" in code
    assert 'self["0"] = nn.Conv2d(3, 8, kernel_size=1)' in code


def test_signature_puts_required_parameters_first(tmp_path):
    code = _built(tmp_path, """
        blocks:
          B:
            params: {k: 3, out: int}
            body: [{conv: {out: out, kernel: k, padding: same}}]
        network:
          a: {B: {out: 4}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "def __init__(self, in_channels: int, out: int, k: int = 3) -> None:" in code


def test_a_repeat_with_from_reads_it_once_then_chains(tmp_path):
    """from: on a repeated call fed every repetition the same input (found in review)."""
    f = _spec(tmp_path, """
        network:
          stem: {conv: {out: 4, kernel: 1}}
          mid: {conv: {out: 6, kernel: 1}}
          r: {conv: {out: 4, kernel: 3, padding: 1}, repeat: 3, from: stem}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    g = lower(load_networks(str(f))[0])
    assert [g.node(f"r.{i}").inputs for i in range(3)] == [["stem"], ["r.0"], ["r.1"]]
    assert check_spec(f, tmp_path / "out").kind == "ok"


def test_a_conditional_repeat_inside_a_block_tests_its_condition_once(tmp_path):
    code = _built(tmp_path, """
        blocks:
          Inner:
            params: {w: int}
            body: [{conv: {out: w, kernel: 1}}, relu]
          B:
            params: {w: int, deep: false}
            body:
              c: {conv: {out: w, kernel: 1}}
              inner: {Inner: {w: w}, repeat: 2, when: deep}
        network:
          b1: {B: {w: 4, deep: true}}
          b2: {B: {w: 4}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert code.count("if deep:") == 1
    assert "            self.inner = nn.Sequential(Inner(w, w), Inner(w, w))\n" in code


@pytest.mark.parametrize("word, hint", [
    ("elu", "hint: archspec has no such op (see `archspec ops`)"),
    ("swish", "hint: archspec calls it 'silu'"),
    ("rleu", "hint: did you mean 'relu', 'relu6'?"),
    ("drop_path", "hint: archspec calls it 'stochastic_depth'"),          # timm's name, the same op
    ("window_attention", "hint: archspec calls it 'shifted_window_attention'"),
    ("patch_merging", "hint: Swin's patch merging is a block of ops: space_to_depth, layernorm, linear"),
])
def test_a_hint_never_offers_another_op_as_a_spelling_fix(tmp_path, word, hint):
    msg = _error(tmp_path, f"""
        network:
          c: {{conv: {{out: 8, kernel: 1}}}}
          a: {word}
        """)
    assert f"unknown op or block '{word}'" in msg and hint in msg
    assert "did you mean" not in msg or word == "rleu"


def test_new_activations_and_expression_functions(tmp_path):
    code = _built(tmp_path, """
        params: {width: "make_divisible(32 * 0.75, 8)", depth: "ceil(log(8, 2))"}
        network:
          c: {conv: {out: width, kernel: 1}}
          a: relu6
          b: hardswish
          d: silu
          e: {gelu: {approximate: tanh}}
          f: hardsigmoid
          r: {conv: {out: 8, kernel: 1}, repeat: depth}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "nn.Conv2d(3, 24, kernel_size=1)" in code  # torchvision's _make_divisible(24.0, 8) = 24
    for m in ("nn.ReLU6(inplace=True)", "nn.Hardswish()", "nn.SiLU(inplace=True)",
              "nn.GELU(approximate='tanh')", "nn.Hardsigmoid()"):
        assert m in code
    assert code.count("nn.Conv2d(8, 8, kernel_size=1)") == 2 and "nn.Conv2d(24, 8, kernel_size=1)" in code


def test_an_internal_error_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """A bug in archspec (simulated) still ends in one line and exit 3; ARCHSPEC_DEBUG=1 re-raises."""
    from typer.testing import CliRunner

    from archspec.cli.main import app
    import archspec.analysis.stats as stats_mod

    f = _spec(tmp_path, "network: [relu]\n")
    monkeypatch.setattr(stats_mod, "analyse", lambda *a, **k: 1 / 0)
    r = CliRunner().invoke(app, ["stats", str(f)])
    assert r.exit_code == 3
    assert r.stderr.splitlines() == [
        "archspec: internal error: ZeroDivisionError: division by zero",
        "  hint: this is a bug in archspec; ARCHSPEC_DEBUG=1 shows the traceback — please report it with "
        "the spec"]
    monkeypatch.setenv("ARCHSPEC_DEBUG", "1")
    r = CliRunner().invoke(app, ["stats", str(f)])
    assert isinstance(r.exception, ZeroDivisionError)


def test_a_group_only_a_shallow_instance_has_is_named_before_its_block(tmp_path):
    """Found by `make fuzz` (seed 2643): the deepest instance of a block skipped its optional
    group, so the group's class was not named when the block's class was rendered (KeyError)."""
    code = _built(tmp_path, """
        blocks:
          B:
            params: {out: int}
            body:
              - {conv: {out: out, kernel: 1}}
              - {g: {c: {conv: {out: 2, kernel: 1}}, a: relu}, when: "out > 2"}
        network:
          a: {B: {out: 4}}
          deep: {x: {y: {B: {out: 2}}}}
          head: [global_avgpool, flatten, {linear: num_classes}]
        """)
    assert "        self.g = None\n        if out > 2:\n            self.g = BG(out)\n" in code
