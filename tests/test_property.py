"""The compiler contract as a property (issue #10), on random specs drawn from the language's
grammar (tests/specgen.py) by hypothesis: validate ok => build ok => the module imports, build()
works, params, output shape and FlopCounterMode / 2 equal the IR's, a rebuild is byte-identical;
a random edit that breaks a spec => one error line with file:line:col, no traceback.

CI runs a fixed-seed sample (derandomized); `make fuzz` runs 10,000 specs (benchmarks/fuzz.py)."""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .contract import check_spec
from .specgen import Chooser, SpecGen, dump, mutate, table_specs

_case = itertools.count()


class DrawChooser(Chooser):
    """Choices drawn by hypothesis, so a failing spec shrinks."""

    def __init__(self, data) -> None:
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_valid_specs_build_run_and_agree_with_the_ir(tmp_path_factory, data):
    ch = DrawChooser(data)
    d = tmp_path_factory.mktemp(f"spec{next(_case)}")
    f = d / "fuzz.yaml"
    f.write_text(dump(SpecGen(ch).spec()))
    check_spec(f, d / "out", tag=d.name)  # raises Violation when the contract breaks


@settings(max_examples=40, **SETTINGS)
@given(st.data())
def test_broken_specs_give_one_located_error(tmp_path_factory, data):
    ch = DrawChooser(data)
    d = tmp_path_factory.mktemp(f"mut{next(_case)}")
    f = d / "fuzz.yaml"
    f.write_text(mutate(dump(SpecGen(ch, max_layers=4).spec()), ch))
    check_spec(f, d / "out", tag=d.name)


@settings(max_examples=10, **SETTINGS)
@given(st.data())
def test_tables_and_files_that_extend_a_column(tmp_path_factory, data):
    ch = DrawChooser(data)
    d = tmp_path_factory.mktemp(f"tbl{next(_case)}")
    for name, text in table_specs(ch).items():
        (d / name).write_text(text)
    for name in ("tbl.yaml", "tbl_child.yaml"):
        assert check_spec(d / name, d / f"out_{name}", tag=f"{d.name}_{name[:-5]}").kind == "ok"
