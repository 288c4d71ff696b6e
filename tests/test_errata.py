"""docs/errata.md (every erratum and variant of the zoo, grouped by paper) and the check that no two
specs disagree about the same printed number (issue #12): one an erratum (the paper is wrong), the
other right (a pass, or a variant). Small specs are written into ``tmp_path``; the CLI runs in-process."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli.main import app

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


# A tiny network: conv 3→4 3×3 (112 params) + linear 4→10 (50): 162 parameters. "0.2K" (200 ± 50)
# matches it as printed; "170" (exact) does not.
NET = """\
input: [3, 8, 8]
num_classes: 10
network:
  conv: {conv: {out: 4, kernel: 3, padding: 1}}
  pool: global_avgpool
  fc: [flatten, {linear: num_classes}]
"""
PAPER = 'paper: {authors: [Doe, Roe], year: 2020, arxiv: "2001.00001"}\n'

PASS = "expect:\n  params: 0.2K\n"
ERRATUM = ('expect:\n  params: {value: 0.2K, erratum: "Table 1 misprints it", derived: 162}\n')
VARIANT = ('expect:\n  params: {value: 0.2K, variant: "right for the net with a 2-way head", derived: 162}\n')


def spec(tmp_path: Path, fname: str, body: str, name: str = "tiny", paper: str = PAPER) -> str:
    path = tmp_path / fname
    path.write_text(f"name: {name}\n{paper}{NET}{body}")
    return str(path)


def line_col(path: str, key: str) -> str:
    """``path:line:col`` of the value of the first ``key:`` in the file (where the loader marks it)."""
    for i, text in enumerate(Path(path).read_text().splitlines(), 1):
        m = re.search(rf"\b{key}: ", text)
        if m:
            return f"{path}:{i}:{m.end() + 1}"
    raise AssertionError(key)


def assert_contradiction(r, erratum_at: str, right_at: str, how: str) -> None:
    detail = f"exit={r.exit_code} exception={r.exception!r}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.exit_code == 1 and isinstance(r.exception, (SystemExit, type(None))), detail
    assert "Traceback" not in r.stderr, detail
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("  hint: "), detail
    assert lines[0].startswith(f"{erratum_at}: error: expect.params: this erratum says arXiv:2001.00001 misprints "
                               f"params 0.2K of "), detail
    assert f"but {right_at} (" in lines[0] and lines[0].endswith(how), detail
    assert r.stdout == "", detail  # one located error, no tables


# --------------------------------------------------------------------- contradictions
def test_an_erratum_and_a_pass_of_the_same_printed_number_contradict(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM)
    b = spec(tmp_path, "b.yaml", PASS)
    r = cli("check", a, b)
    assert_contradiction(r, line_col(a, "params"), line_col(b, "params"), "matches it as printed")
    # whichever comes first, the error is at the erratum and names the other place
    r = cli("check", b, a)
    assert_contradiction(r, line_col(a, "params"), line_col(b, "params"), "matches it as printed")


def test_an_erratum_and_a_variant_of_the_same_printed_number_contradict(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM)
    b = spec(tmp_path, "b.yaml", VARIANT)
    r = cli("check", "--format", "json", b, a)
    assert_contradiction(r, line_col(a, "params"), line_col(b, "params"),
                         "keeps it as a variant (right for a neighbouring network)")


def test_a_column_and_a_file_that_reads_it_are_one_network(tmp_path):
    """resnet.yaml's resnet34 column, plain34.yaml and resnet34_c.yaml: `column:` names the network
    the paper prints the number for, whatever the spec's own name."""
    table = tmp_path / "table.yaml"
    table.write_text(f"name: table\n{PAPER}{NET}columns:\n  tiny:\n    expect:\n"
                     f"      params: {{value: 0.2K, erratum: 'a misprint', derived: 162}}\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("extends: table.yaml\ncolumn: tiny\nname: tiny_plain\nexpect:\n  params: 0.2K\n")
    r = cli("check", str(table), str(plain))
    assert_contradiction(r, line_col(str(table), "params"), line_col(str(plain), "params"),
                         "matches it as printed")


def test_network_names_are_compared_without_case_and_punctuation(tmp_path):
    """vit.yaml's column ViT-B/16 and torchvision's vit_b_16 are one network; an arXiv id is one
    paper with or without its prefix and version."""
    a = tmp_path / "a.yaml"
    a.write_text(f"name: table\n{PAPER}{NET}columns:\n  Tiny-B/16:\n    expect:\n"
                 f"      params: {{value: 0.2K, erratum: 'a misprint', derived: 162}}\n")
    b = spec(tmp_path, "b.yaml", PASS, name="tiny_b_16",
             paper='paper: {authors: [Doe], year: 2020, arxiv: "arXiv:2001.00001v3"}\n')
    r = cli("check", str(a), b)
    assert_contradiction(r, line_col(str(a), "params"), line_col(b, "params"), "matches it as printed")


def test_the_same_erratum_in_two_files_agrees(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM)
    b = spec(tmp_path, "b.yaml", ERRATUM.replace("Table 1 misprints it", "the same misprint"))
    r = cli("check", a, b)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert r.stderr == "check: 0 match, 0 mismatch, 2 errata/variants\n"


@pytest.mark.parametrize("other", [
    pytest.param({"body": VARIANT}, id="variant-and-pass"),
    pytest.param({"body": PASS.replace("0.2K", "0.16K")}, id="another-printed-value"),
    pytest.param({"body": PASS, "name": "tiny2"}, id="another-network"),
    pytest.param({"body": PASS, "paper": 'paper: {authors: [Doe], year: 2020, arxiv: "2001.99999"}\n'},
                 id="another-paper"),
    pytest.param({"body": PASS, "paper": ""}, id="no-paper"),
    pytest.param({"body": VARIANT.replace("params", "weights").replace("162", "148")}, id="another-metric"),
])
def test_entries_about_different_numbers_never_contradict(tmp_path, other):
    """An erratum only contradicts an entry about the same paper, network, metric and value; a
    variant and a pass of one number both say it is right."""
    a = spec(tmp_path, "a.yaml", PASS if other["body"] is VARIANT else ERRATUM)
    b = spec(tmp_path, "b.yaml", other["body"], name=other.get("name", "tiny"), paper=other.get("paper", PAPER))
    r = cli("check", a, b)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "error" not in r.stderr


def test_a_plain_mismatch_is_a_mismatch_not_a_contradiction(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM.replace("0.2K", "170"))
    b = spec(tmp_path, "b.yaml", "expect:\n  params: 170\n")
    r = cli("check", a, b)
    assert r.exit_code == 1
    assert r.stderr == "check: 0 match, 1 mismatch, 1 errata/variants\n"
    assert "MISMATCH" in r.stdout


def test_json_rows_keep_their_fields(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM)
    r = cli("check", "--format", "json", a)
    assert r.exit_code == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert list(row) == ["spec", "metric", "paper", "archspec", "delta_pct", "source", "status", "note"]
    assert row["status"] == "erratum" and row["note"] == "Table 1 misprints it"


# ------------------------------------------------------------------------------ the page
def test_the_page_lists_every_erratum_and_variant_by_paper(tmp_path):
    a = spec(tmp_path, "a.yaml", ERRATUM.replace("expect:\n", "expect:\n  source: Doe et al. 2020, Table 1\n"))
    b = spec(tmp_path, "b.yaml", VARIANT, name="other",
             paper='paper: {authors: [Alpha], year: 1999, title: "An Older Paper"}\n')
    c = spec(tmp_path, "c.yaml", PASS, name="third")
    page = tmp_path / "errata.md"
    r = cli("check", a, b, c, "--errata-page", str(page))
    assert r.exit_code == 0, r.stderr
    assert r.stderr.endswith(f"wrote {page}\n")
    text = page.read_text()
    assert text.startswith("# What the papers print and what archspec derives\n")
    assert "FLOPs = 2 × MACs" in text and "multiply-accumulates" in text
    assert "1 errata and 1 variants, from 2 papers." in text
    # the older paper first; each a heading, its citation and one row per entry
    older, doe = text.index("## An Older Paper\n\nAlpha 1999\n"), text.index("Doe, Roe 2020, arXiv:2001.00001")
    assert older < doe
    assert (f"| other | params | 0.2K (±50) | 162 | -19.00 | variant | right for the net with a 2-way head |  | "
            f"{line_col(b, 'params').rsplit(':', 1)[0]} |") in text
    assert (f"| tiny | params | 0.2K (±50) | 162 | -19.00 | erratum | Table 1 misprints it | Doe et al. 2020, "
            f"Table 1 | {line_col(a, 'params').rsplit(':', 1)[0]} |") in text
    assert "third" not in text  # a pass is no erratum
    # written again: unchanged; --check-page: up to date, then stale after an edit
    assert cli("check", a, b, c, "--errata-page", str(page)).stderr.endswith(f"unchanged {page}\n")
    r = cli("check", a, b, c, "--errata-page", str(page), "--check-page")
    assert r.exit_code == 0 and r.stderr.endswith(f"{page} is up to date\n")
    page.write_text(text.replace("Table 1 misprints it", "edited by hand"))
    r = cli("check", a, b, c, "--errata-page", str(page), "--check-page")
    assert r.exit_code == 1 and f"stale: {page} differs from what the specs give" in r.stderr
    assert "edited by hand" in page.read_text()  # --check-page writes nothing


def test_check_page_goes_with_errata_page():
    r = cli("check", "specs/lenet5.yaml", "--check-page")
    assert r.exit_code == 2 and "--check-page goes with --errata-page" in r.output + r.stderr


def test_the_committed_page_is_what_the_zoo_gives():
    """docs/errata.md is generated (`make zoo-doc`); this also runs the consistency check on the
    whole zoo, which must pass."""
    r = cli("check", "--format", "json", "--errata-page", "docs/errata.md", "--check-page")
    assert r.exit_code == 0, r.stderr[-2000:]
    assert r.stderr == "docs/errata.md is up to date\n"
    text = (ROOT / "docs" / "errata.md").read_text()
    rows = json.loads(r.stdout)
    flagged = {(x["metric"], x["note"]) for x in rows if x["status"] in ("erratum", "variant")}
    for metric, note in flagged:  # every erratum and variant of the zoo, with its evidence
        assert f"| {metric} |" in text and note.replace("|", "\\|") in text, (metric, note)


def test_the_resnet34_example_of_the_docs(tmp_path, monkeypatch):
    """docs/spec.md §8's example: resnet34_c.yaml calling Table 1's 3.6×10⁹ an erratum (as it did
    before issue #12's fix) while resnet.yaml keeps it as a variant prints exactly the documented error."""
    import shutil
    (tmp_path / "specs" / "blocks").mkdir(parents=True)
    for f in ("resnet.yaml", "resnet34_c.yaml", "blocks/resnet.yaml"):
        shutil.copy(ROOT / "specs" / f, tmp_path / "specs" / f)
    c = tmp_path / "specs" / "resnet34_c.yaml"
    text = c.read_text()
    assert text.count("    variant: ") == 1
    c.write_text(text.replace("    variant: ", "    erratum: "))
    doc = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    expected = re.search(r"```\n(specs/resnet34_c\.yaml:.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    r = cli("check", "specs/resnet.yaml", "specs/resnet34_c.yaml")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == expected
