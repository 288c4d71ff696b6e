"""A non-editable install builds code with the templates shipped inside the package.

The development checkout is installed in editable mode, so the rest of the suite never notices
when templates/ is left out of the wheel (pyproject maps it to ``archspec.templates``). Here a
wheel is built, installed into a private folder with ``pip install --target``, and run from a
folder outside the repository; the generated LeNet-5 must match the checked-in one byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the child: archspec must come from the installed copy (and find its templates there),
# then `python -m archspec build ...` runs in the same process (runpy, as -m does).
CHILD = r"""
import runpy, sys
from pathlib import Path
site, spec, out = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
import archspec
here = Path(archspec.__file__).resolve()
assert here.is_relative_to(site), f"archspec imported from {here}, not from {site}"
from archspec.codegen.writer import _templates_dir
tdir = Path(_templates_dir()).resolve()
assert tdir == site / "archspec" / "templates", f"templates found at {tdir}"
from archspec.cli.main import app   # the Typer app that `python -m archspec` runs
assert Path(sys.modules["archspec.cli.main"].__file__).resolve().is_relative_to(site)
sys.argv = ["archspec", "build", spec, "-o", out]
runpy.run_module("archspec", run_name="__main__", alter_sys=True)
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def test_wheel_install_builds_with_packaged_templates(tmp_path: Path) -> None:
    # Build from a clean copy of the sources: an in-tree build would write build/ and *.egg-info
    # into the checkout (and could pick up stale files from an earlier build/ there).
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "generated",
        ".whl", ".gl"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
          "-q", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("archspec-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "archspec/templates/model.py.j2" in names, sorted(names)

    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir", "-q",
          "--target", str(site), str(wheel)])
    assert (site / "archspec" / "templates" / "model.py.j2").is_file()

    # Run outside the repository. The spec is copied to <tmp>/run/specs/ and named relatively,
    # so the generated header reads "specs/lenet5.yaml" exactly as in generated/lenet5.py.
    work = tmp_path / "run"
    (work / "specs").mkdir(parents=True)
    shutil.copy2(ROOT / "specs" / "lenet5.yaml", work / "specs" / "lenet5.yaml")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    proc = _run([sys.executable, "-c", CHILD, str(site), "specs/lenet5.yaml", str(out)], cwd=work, env=env)

    built = out / "lenet5.py"
    assert built.is_file(), f"no {built}; stdout:\n{proc.stdout}"
    assert built.read_bytes() == (ROOT / "generated" / "lenet5.py").read_bytes()
    for name in ("train_lenet5.py", "archspec_train.py"):  # the training script and its runtime
        assert (out / name).read_bytes() == (ROOT / "generated" / name).read_bytes(), name
