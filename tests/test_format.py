"""The line-length formatting of generated code (archspec/codegen/format.py)."""

from archspec.codegen.format import LIMIT, wrap_long_lines

from .conftest import ROOT


def test_a_long_call_gets_its_arguments_on_one_indented_line():
    line = ("        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, "
            "groups=groups, bias=False)")
    assert wrap_long_lines(line) == (
        "        self.conv2 = nn.Conv2d(\n"
        "            width, width, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False\n"
        "        )")


def test_arguments_that_still_do_not_fit_go_one_per_line_with_a_trailing_comma():
    args = ", ".join(f"argument_number_{i}=f(a, [b, c])" for i in range(4))
    assert wrap_long_lines(f"    x = call({args})", limit=60) == "\n".join(
        ["    x = call("] + [f"        argument_number_{i}=f(a, [b, c])," for i in range(4)] + ["    )"])


def test_a_conditional_expression_is_parenthesised_and_split():
    line = "        x = some_long_function_name(x, self.stride) if self.use_pad_shortcut else x"
    assert wrap_long_lines(line, limit=60) == (
        "        x = (\n"
        "            some_long_function_name(x, self.stride)\n"
        "            if self.use_pad_shortcut\n"
        "            else x\n"
        "        )")


def test_a_one_line_docstring_is_wrapped_and_short_lines_are_untouched():
    text = '    """' + " ".join(["word"] * 30) + '."""\n    x = 1\n'
    out = wrap_long_lines(text, limit=40).split("\n")
    assert out[0] == '    """word word word word word word'
    assert out[-3].endswith('."""') and out[-2:] == ["    x = 1", ""]
    assert all(len(line) <= 40 for line in out)
    assert " ".join(line.strip().strip('"') for line in out[:-2]) == " ".join(["word"] * 30) + "."


def test_strings_and_nested_brackets_are_not_split():
    line = '    y = f("a, b, c, d, e, f, g, h, i", g(1, 2), [3, (4, 5)])'
    assert wrap_long_lines(line, limit=40) == (
        '    y = f(\n        "a, b, c, d, e, f, g, h, i",\n        g(1, 2),\n        [3, (4, 5)],\n    )')


def test_every_generated_file_keeps_to_the_line_limit():
    """The network modules, their training scripts and the training runtimes."""
    files = sorted((ROOT / "generated").rglob("*.py"))
    runtimes = sum(p.name == "archspec_train.py" for p in files)
    assert len(files) > 200 and sum(p.name.startswith("train_") for p in files) == (len(files) - runtimes) // 2
    long = [f"{p.relative_to(ROOT)}:{i}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if len(line) > LIMIT]
    assert long == []


def test_prose_inside_a_multiline_docstring_is_left_alone():
    text = '"""Title\n\nPaper: Someone et al. 2021, arXiv:2010.11929 (torchvision/models/vision_transformer.py)\n"""\n'
    assert wrap_long_lines(text, limit=40) == text


def test_a_def_or_a_loop_header_splits_its_longest_bracket_pair():
    line = "def train_step(args, rt: Runtime, run: nn.Module, opt, x, y) -> tuple[torch.Tensor, torch.Tensor]:"
    assert wrap_long_lines(line, limit=60) == (
        "def train_step(\n    args, rt: Runtime, run: nn.Module, opt, x, y\n) -> tuple[torch.Tensor, torch.Tensor]:")
    line = '    for name in ("batch_size", "accum_steps", "synthetic_size", "benchmark"):'
    assert wrap_long_lines(line, limit=70) == (
        '    for name in (\n        "batch_size", "accum_steps", "synthetic_size", "benchmark"\n    ):')


def test_a_lambdas_parameters_are_not_split_like_arguments():
    source = "key = sorted(items, key=lambda a, b=1: (a, b))\n"
    assert wrap_long_lines(source, limit=30) == "key = sorted(\n    items,\n    key=lambda a, b=1: (a, b),\n)\n"
