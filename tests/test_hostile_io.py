"""Hostile specs and faults on the file system (issue #16, issue #10 items 13-14): what archspec reads,
what it writes, and that every failure is one error line, exit 1, never a traceback.

Not provoked here: permission errors (the suite runs as root, who can write into a read-only
folder and read a 0000 file); they go through the same `cannot write/read: <strerror>` paths.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli.main import app
from archspec.load.loader import project_root

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
HEAD = "name: t\ninput: [3, 8, 8]\n"
HINT_ROOT = ("  hint: include: and extends: stay inside the project root (docs/security.md); "
             "widen it with --allow-path DIR")
HINT_NAME = "  hint: a network name becomes <name>.py and a class name: letters, digits and _, not starting with a digit"


def cli(*args, env=None):
    r = runner.invoke(app, [str(a) for a in args], env=env)
    assert "Traceback" not in r.output
    return r.exit_code, r.stdout, r.stderr


def errors(*args, env=None) -> list[str]:
    code, out, err = cli(*args, env=env)
    assert code == 1, out + err
    return err.rstrip("\n").split("\n")


# ------------------------------------------------------------------------------ reads: confinement
@pytest.fixture
def proj(tmp_path) -> Path:
    """tmp/proj (a project: it holds .git) with a secret file beside it, outside the project."""
    p = tmp_path / "proj"
    (p / ".git").mkdir(parents=True)
    (tmp_path / "secret.yaml").write_text("root: $6$SECRET-HASH$\nname: x\n")
    return p


def test_include_outside_the_project_root_is_refused_and_never_read(proj):
    spec = proj / "net.yaml"
    spec.write_text(HEAD + "include: [../secret.yaml]\nnetwork: [relu]\n")
    assert errors("validate", spec) == [
        f"{spec}:3:11: error: include[0]: '../secret.yaml' is outside the project root {proj}", HINT_ROOT]


def test_include_of_etc_shadow_does_not_echo_it(proj):
    spec = proj / "net.yaml"
    spec.write_text(HEAD + "include: [../../../../../../../../../../etc/shadow]\nnetwork: [relu]\n")
    code, out, err = cli("validate", spec)
    assert code == 1
    assert err.splitlines()[0] == (f"{spec}:3:11: error: include[0]: '../../../../../../../../../../etc/shadow' "
                                   f"is outside the project root {proj}")
    assert "root:" not in err and "_apt" not in err and len(err.splitlines()) == 2


def test_extends_outside_the_root_and_absolute_paths_are_refused(proj, tmp_path):
    spec = proj / "child.yaml"
    spec.write_text(f"extends: {tmp_path / 'secret.yaml'}\nname: c\n")
    assert errors("stats", spec) == [
        f"{spec}:1:10: error: extends: '{tmp_path / 'secret.yaml'}' is outside the project root {proj}", HINT_ROOT]
    # the check comes before the file is looked at: a missing file outside says the same
    spec.write_text("extends: ../nothing_here.yaml\nname: c\n")
    assert errors("check", spec)[0] == (
        f"{spec}:1:10: error: extends: '../nothing_here.yaml' is outside the project root {proj}")


def test_a_symlink_is_resolved_before_the_check(proj, tmp_path):
    (proj / "lib.yaml").symlink_to(tmp_path / "secret.yaml")
    spec = proj / "net.yaml"
    spec.write_text(HEAD + "include: [lib.yaml]\nnetwork: [relu]\n")
    lines = errors("validate", spec)
    assert lines == [f"{spec}:3:11: error: include[0]: 'lib.yaml' is outside the project root {proj}", HINT_ROOT]
    assert "SECRET" not in "\n".join(lines)


def test_allow_path_widens_the_root_on_every_command(proj, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "blocks.yaml").write_text("name: lib\nblocks:\n  b:\n    body: [relu]\n")
    spec = proj / "net.yaml"
    spec.write_text(HEAD + "include: [../lib/blocks.yaml]\nnetwork: [b]\n")
    assert errors("validate", spec)[0].endswith(f"'../lib/blocks.yaml' is outside the project root {proj}")
    code, out, err = cli("validate", spec, "--allow-path", lib)
    assert (code, out) == (0, f"{spec}: ok — t, 1 nodes, 3×8×8 -> 3×8×8\n")
    code, out, _ = cli("stats", spec, "--allow-path", lib, "--format", "csv")
    assert (code, out.splitlines()[1]) == (0, f"t,{spec},3×8×8,3×8×8,0,0,384")
    assert cli("check", spec, "--allow-path", lib)[0] == 0
    assert cli("diff", spec, spec, "--allow-path", lib)[0] == 0
    code, out, _ = cli("build", spec, "--allow-path", lib, "-o", tmp_path / "out")
    assert code == 0 and (tmp_path / "out" / "t.py").is_file()
    # the option does not outlive the command
    assert errors("validate", spec)[0].endswith("is outside the project root " + str(proj))
    code, _, err = cli("validate", spec, "--allow-path", tmp_path / "nope")
    assert code == 2 and "--allow-path takes a folder" in err


def test_project_root_rule(tmp_path):
    proj = tmp_path / "p"
    (proj / "specs" / "torchvision").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("")
    assert project_root(str(proj / "specs" / "torchvision" / "x.yaml")) == str(proj)
    os.remove(proj / "pyproject.toml")
    assert project_root(str(proj / "specs" / "torchvision" / "x.yaml")) == str(proj)  # holds specs/
    lone = tmp_path / "lone" / "deep"
    lone.mkdir(parents=True)
    assert project_root(str(lone / "x.yaml")) == str(lone)  # no marker up to '/': the spec's folder
    # the zoo: torchvision specs extend ../blocks/*.yaml inside the repository
    assert project_root("specs/torchvision/resnet50.yaml") == str(ROOT)


def test_include_names_yaml_files_only(proj):
    (proj / "notes.txt").write_text("a: 1\n")
    spec = proj / "net.yaml"
    spec.write_text(HEAD + "include: [notes.txt]\nnetwork: [relu]\n")
    assert errors("validate", spec) == [
        f"{spec}:3:11: error: include[0]: 'notes.txt' is not a .yaml file",
        "  hint: include: names spec files (.yaml or .yml)"]


# ------------------------------------------------------------------------------ reads: what is read
def _run_cli(args: list[str], cwd: Path, timeout: float = 60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archspec", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_a_fifo_is_never_opened(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    r = _run_cli(["validate", "spec.yaml"], tmp_path)  # would hang in open() if it were read
    assert (r.returncode, r.stderr) == (1, "spec.yaml:1:1: error: not a regular file (a FIFO, device or socket "
                                           "is never read)\n  hint: give the path of a .yaml file\n")
    os.mkfifo(tmp_path / "lib.yaml")
    (tmp_path / "net.yaml").write_text(HEAD + "include: [lib.yaml]\nnetwork: [relu]\n")
    r = _run_cli(["validate", "net.yaml"], tmp_path)
    assert (r.returncode, r.stderr.splitlines()[0]) == (
        1, f"{tmp_path / 'lib.yaml'}:1:1: error: not a regular file (a FIFO, device or socket is never read)")


def test_dev_zero_is_not_read():
    assert errors("validate", "/dev/zero") == [
        "/dev/zero:1:1: error: not a regular file (a FIFO, device or socket is never read)",
        "  hint: give the path of a .yaml file"]


def test_size_cap_and_its_environment_variable(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(HEAD + "network: [relu]\n" + "# padding\n" * 100)
    assert errors("validate", spec, env={"ARCHSPEC_MAX_SPEC_BYTES": "100"}) == [
        f"{spec}:1:1: error: file too large: more than 100 bytes",
        "  hint: the limit is set by ARCHSPEC_MAX_SPEC_BYTES (default 4 MiB)"]
    assert cli("validate", spec, env={"ARCHSPEC_MAX_SPEC_BYTES": "4096"})[0] == 0
    assert errors("validate", spec, env={"ARCHSPEC_MAX_SPEC_BYTES": "lots"}) == [
        "<spec>:1:1: error: ARCHSPEC_MAX_SPEC_BYTES must be a positive number of bytes, got 'lots'"]
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(4 * 1024 * 1024 + 1)  # sparse: one byte over the default cap
    assert errors("validate", huge)[0] == f"{huge}:1:1: error: file too large: more than 4194304 bytes"


def test_non_utf8_file_name_is_one_clean_line(tmp_path):
    name = os.fsdecode(b"bad\xff.yaml")
    (tmp_path / name).write_text(HEAD + "network: [relu]\n")
    r = _run_cli(["validate", name], tmp_path)
    assert (r.returncode, r.stderr) == (1, "bad\\xff.yaml:1:1: error: the file name is not valid UTF-8\n"
                                           "  hint: rename the spec file\n")


def test_non_utf8_content_is_not_quoted(tmp_path):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"name: t\ninput: [3, 8, 8]\nnetwork: [relu]  # caf\xe9 SECRET\n")
    lines = errors("validate", spec)
    assert lines == [f"{spec}:3:23: error: file is not valid UTF-8", "  hint: save the spec as UTF-8"]


def test_an_empty_folder_of_specs_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    (empty / "blocks").mkdir(parents=True)
    (empty / "blocks" / "lib.yaml").write_text("name: lib\n")  # block libraries are skipped
    for cmd in ("stats", "check", "validate"):
        assert errors(cmd, empty) == [f"{empty}:1:1: error: no specs in {empty}",
                                      "  hint: a folder stands for the .yaml files below it (blocks/ folders skipped)"]
    assert errors("build", empty, "-o", tmp_path / "out")[0] == f"{empty}:1:1: error: no specs in {empty}"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ network names
TABLE = HEAD + "params: {w: 4}\nnetwork: [{conv: {out: w, kernel: 1}}]\ncolumns:\n"


@pytest.mark.parametrize("name, why", [
    ("../../../x", "is not an identifier"),
    ("/abs/path/victim", "is not an identifier"),
    ("my-net", "is not an identifier"),
    ("class", "is a Python keyword"),
    ("x" * 101, "is longer than 100 characters"),
])
def test_a_column_name_must_be_an_identifier(tmp_path, name, why):
    spec = tmp_path / "table.yaml"
    spec.write_text(TABLE + f'  A: {{name: "{name}", w: 2}}\n  B: {{w: 3}}\n')
    shown = name if len(name) <= 40 else name[:37] + "..."
    expected = [f"{spec}:6:13: error: columns.A.name: network name '{shown}' {why}", HINT_NAME]
    assert errors("validate", spec) == expected
    assert errors("build", spec, "-o", tmp_path / "out") == expected
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x.py").exists()


def test_a_file_name_must_be_an_identifier(tmp_path):
    spec = tmp_path / "n.yaml"
    spec.write_text('name: "../evil"\ninput: [3, 8, 8]\nnetwork: [relu]\n')
    assert errors("validate", spec) == [
        f"{spec}:1:7: error: name: network name '../evil' is not an identifier", HINT_NAME]


def test_extends_column_name_writes_name_py(tmp_path):
    """issue #10 item 13: a file that extends a table, sets column: and name: is built to <name>.py."""
    (tmp_path / "table.yaml").write_text(TABLE + "  A: {w: 2}\n  B: {w: 3}\n")
    (tmp_path / "child.yaml").write_text("extends: table.yaml\ncolumn: B\nname: mynet\n")
    code, out, err = cli("build", tmp_path / "child.yaml", "-o", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["archspec_train.py", "mynet.py", "train_mynet.py"]
    assert out.splitlines()[0].startswith(f"wrote {tmp_path / 'out' / 'mynet.py'}  (Mynet: ")


# ------------------------------------------------------------------------------ writes
def _spec(tmp_path: Path, name: str = "foo", file: str | None = None) -> Path:
    spec = tmp_path / (file or f"{name}.yaml")
    spec.write_text(f"name: {name}\ninput: [3, 8, 8]\nnetwork: [relu]\n")
    return spec


def test_o_is_a_file_or_below_a_file(tmp_path):
    spec = _spec(tmp_path)
    (tmp_path / "afile").write_text("keep\n")
    assert errors("build", spec, "-o", tmp_path / "afile") == [
        f"{tmp_path / 'afile'}:1:1: error: -o is not a folder", "  hint: give the folder to write into"]
    assert errors("build", spec, "-o", tmp_path / "afile" / "sub") == [
        f"{tmp_path / 'afile'}:1:1: error: is not a folder", "  hint: -o and the folders below it must be folders"]
    assert (tmp_path / "afile").read_text() == "keep\n"


def test_a_folder_or_fifo_at_the_target_is_an_error_and_nothing_is_written(tmp_path):
    a, b = _spec(tmp_path, "aaa"), _spec(tmp_path, "bbb")
    out = tmp_path / "out"
    (out / "bbb.py").mkdir(parents=True)
    assert errors("build", a, b, "-o", out) == [
        f"{out / 'bbb.py'}:1:1: error: the output file's path is a folder", "  hint: remove it or choose another -o"]
    assert sorted(p.name for p in out.iterdir()) == ["bbb.py"]  # aaa.py was not written either
    os.rmdir(out / "bbb.py")
    os.mkfifo(out / "bbb.py")
    assert errors("build", a, b, "-o", out)[0] == (
        f"{out / 'bbb.py'}:1:1: error: the output file's path is not a regular file (a FIFO, device or socket)")
    assert sorted(p.name for p in out.iterdir()) == ["bbb.py"]


def test_a_non_utf8_file_at_the_target_is_not_overwritten(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "foo.py").write_bytes(b"\xff\xfe binary")
    assert errors("build", spec, "-o", out) == [
        f"{out / 'foo.py'}:1:1: error: exists and is not a UTF-8 text file; archspec does not overwrite it",
        "  hint: remove it or choose another -o"]
    assert (out / "foo.py").read_bytes() == b"\xff\xfe binary" and sorted(p.name for p in out.iterdir()) == ["foo.py"]
    code, stdout, _ = cli("build", "--check", spec, "-o", out)
    assert code == 1 and f"stale: {out / 'foo.py'}" in stdout.splitlines()


def test_a_symlinked_folder_below_o_cannot_lead_outside(tmp_path):
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    spec = _spec(specs / "sub", "foo")
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (out / "sub").symlink_to(victim)
    lines = errors("build", spec, "-o", out)
    assert lines[0] == (f"{spec}:1:1: error: {out / 'sub' / 'foo.py'} resolves to {victim / 'foo.py'}, "
                        f"outside the output folder {out}")
    assert list(victim.iterdir()) == []


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim.txt").write_text("keep\n")
    (out / "foo.py").symlink_to(tmp_path / "victim.txt")
    assert cli("build", spec, "-o", out)[0] == 0
    assert not (out / "foo.py").is_symlink() and (tmp_path / "victim.txt").read_text() == "keep\n"


def test_outputs_that_collide_name_both_specs(tmp_path):
    foo, train_foo = _spec(tmp_path, "foo"), _spec(tmp_path, "train_foo")
    assert errors("build", foo, train_foo, "-o", tmp_path / "out") == [
        f"{train_foo}:1:1: error: {train_foo} and {foo} would both write {tmp_path / 'out' / 'train_foo.py'}",
        "  hint: the module of train_foo and the training script of foo; rename one of the networks"]
    assert not (tmp_path / "out").exists()
    # two files naming one network
    other = _spec(tmp_path, "foo", file="other.yaml")
    assert errors("build", foo, other, "-o", tmp_path / "out")[0] == (
        f"{other}:1:1: error: {other} and {foo} would both write {tmp_path / 'out' / 'foo.py'}")


def test_a_network_cannot_take_the_runtimes_name(tmp_path):
    """archspec_train.py is the training runtime (at the top of the output folder): no network is named so."""
    spec = _spec(tmp_path, "archspec_train")
    assert errors("build", spec, "-o", tmp_path / "out") == [
        f"{spec}:1:1: error: a network cannot be named 'archspec_train': archspec_train.py is the training "
        "runtime that build writes beside the training scripts", "  hint: rename the network"]
    assert not (tmp_path / "out").exists()
    # a network may be called train_archspec_train
    spec = _spec(tmp_path, "train_archspec_train")
    assert cli("build", spec, "-o", tmp_path / "out")[0] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "archspec_train.py", "train_archspec_train.py", "train_train_archspec_train.py"]


def test_stale_temp_files_are_reported_and_cleaned(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out)[0] == 0
    tmp = out / ".foo.py.k3j_x9ab.tmp"  # what tempfile.mkstemp leaves when a build is killed
    tmp.write_text("half a fi")
    code, stdout, stderr = cli("build", "--check", spec, "-o", out)
    assert (code, stdout) == (1, f"stale: {tmp}  (left by an interrupted build)\n")
    assert stderr == ("0 of 3 generated files differ from specs/ + templates/, 1 temporary files left by an "
                      "interrupted build; run `archspec build --all`\n")
    code, stdout, _ = cli("build", spec, "-o", out)
    assert code == 0 and stdout.splitlines()[0] == f"removed {tmp}  (left by an interrupted build)"
    assert not tmp.exists() and sorted(p.name for p in out.iterdir()) == ["archspec_train.py", "foo.py", "train_foo.py"]
    assert cli("build", "--check", spec, "-o", out)[0] == 0


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_generated_files_get_the_umask_mode(tmp_path, umask, mode):
    spec = _spec(tmp_path)
    old = os.umask(umask)
    try:
        assert cli("build", spec, "-o", tmp_path / "out")[0] == 0
    finally:
        os.umask(old)
    for p in ("foo.py", "train_foo.py", "archspec_train.py"):
        assert stat.S_IMODE((tmp_path / "out" / p).stat().st_mode) == mode


# ------------------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("network, col, path, text", [
    ("[{lrn: {size: 5, alpha: .nan}}]", 34, "network[0].lrn.alpha", ".nan"),
    ("[{bn: {eps: .inf}}]", 22, "network[0].bn.eps", ".inf"),
    ("[{leaky_relu: {negative_slope: -.inf}}]", 41, "network[0].leaky_relu.negative_slope", "-.inf"),
    ("[{dropout: {p: .NaN}}]", 25, "network[0].dropout.p", ".NaN"),
    ("[flatten, {layernorm: {eps: 1.0e+999}}]", 38, "network[1].layernorm.eps", "1.0e+999"),
    ("[{relu: {}, aux: {loss_weight: .inf}}]", 41, "network[0].aux.loss_weight", ".inf"),
])
def test_non_finite_numbers_are_errors_where_written(tmp_path, network, col, path, text):
    spec = tmp_path / "nan.yaml"
    spec.write_text(HEAD + f"network: {network}\n")
    assert errors("validate", spec) == [
        f"{spec}:3:{col}: error: {path}: {text} is not a finite number",
        "  hint: numbers in a spec are finite: .nan, .inf and literals beyond 1.8e308 are errors"]


def test_non_finite_init_values_and_expressions(tmp_path):
    spec = tmp_path / "init.yaml"
    spec.write_text(HEAD + "network: [{conv: {out: 4, kernel: 3}}]\ninit:\n  conv: {weight: {normal: {std: .inf}}}\n")
    assert errors("validate", spec)[0] == f"{spec}:5:33: error: init.conv.weight.normal.std: .inf is not a finite number"
    spec.write_text(HEAD + "network: [{conv: {out: 4, kernel: 3}}]\ninit:\n  conv: {bias: 1" + "0" * 400 + "}\n")
    assert errors("validate", spec) == [
        f"{spec}:5:16: error: init.conv.bias: the constant must be a finite number, got 100000000000000000000000"]
    spec.write_text(HEAD + "network: [{leaky_relu: {negative_slope: 'float(\"nan\")'}}]\n")
    assert errors("validate", spec) == [
        f"{spec}:3:41: error: network[0].leaky_relu.negative_slope: in 'float(\"nan\")': result is not a finite number"]


def test_op_attributes_refuse_non_finite_values_at_the_root():
    """Every op's attribute model shares one base that refuses nan/inf (not op by op)."""
    from pydantic import ValidationError

    from archspec.ops import REGISTRY
    with pytest.raises(ValidationError, match="finite number"):
        REGISTRY["lrn"].attrs.model_validate({"alpha": float("nan")})
    with pytest.raises(ValidationError, match="finite number"):  # YAML reads 1.0e999 (no sign) as a string
        REGISTRY["layernorm"].attrs.model_validate({"eps": "1.0e999"})
    assert all(op.attrs.model_config.get("allow_inf_nan") is False for op in REGISTRY.values())


def test_a_failure_partway_leaves_nothing_half_done(tmp_path):
    """aaa's two files are staged as temporary files, then sub/ turns out to be a file: the temporary
    files and the folders the build made are removed; nothing was moved into place."""
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    a, b = _spec(specs, "aaa"), _spec(specs / "sub", "bbb")
    out = tmp_path / "out"
    (out / "new").mkdir(parents=True)
    (out / "sub").write_text("a file where a folder must go\n")
    assert errors("build", a, b, "-o", out) == [
        f"{out / 'sub'}:1:1: error: is not a folder", "  hint: -o and the folders below it must be folders"]
    assert sorted(p.name for p in out.iterdir()) == ["new", "sub"]
