"""Rendering and writing generated files: deterministic, atomic, checkable.

A build renders everything in memory first; only when every file rendered does it write them,
each through a temporary file in the same folder and ``os.replace`` — so a failing build leaves
the output folder as it was, and a reader never sees half a file. Files whose bytes did not change
are not rewritten.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..errors import Mark, SpecError
from ..load import load_networks, split_ref
from .format import wrap_long_lines
from .pymodel import ModelSource, generate_model
from .train import train_context

__all__ = ["Output", "render_specs", "write_outputs", "stale_outputs", "template_env", "output_path"]


def _templates_dir() -> Path:
    """templates/ of the source tree; the installed package carries a copy (archspec/templates)."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "templates", here.parent / "templates"):
        if (cand / "model.py.j2").is_file():
            return cand
    raise SpecError("archspec's templates are missing from this installation", code="install")


@functools.lru_cache(maxsize=None)
def template_env() -> jinja2.Environment:
    """One environment per process: templates are compiled once, not once per build."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)


@dataclass
class Output:
    path: Path
    text: str
    source: ModelSource
    kind: str = "model"  # or "train": the training script of the same network


def output_path(spec_file: str, out_dir: Path, name: str, many: bool) -> Path:
    """``specs/torchvision/resnet50.yaml`` -> ``OUT/torchvision/resnet50.py`` (the layout of specs/);
    a table's columns go to ``OUT/<table>/<network>.py`` (``specs/vgg.yaml`` -> ``OUT/vgg/vgg_a.py``)."""
    p = Path(spec_file)
    parts = p.parts
    rel_dir = Path()
    if "specs" in parts:
        i = len(parts) - 1 - list(reversed(parts)).index("specs")
        rel_dir = Path(*parts[i + 1:-1]) if len(parts) - 1 > i + 1 else Path()
    if many:  # a table: one file per column, in a folder named after the table
        return out_dir / rel_dir / p.stem / f"{name}.py"
    return out_dir / rel_dir / f"{p.stem}.py"


def render_specs(refs: list[str], out_dir: Path) -> list[Output]:
    env = template_env()

    def render(template: str, **ctx) -> str:
        try:
            return env.get_template(template).render(**ctx)
        except jinja2.TemplateError as e:
            raise SpecError(f"template {template} failed: {e}", code="template") from None

    outputs: list[Output] = []
    seen: dict[Path, str] = {}
    for ref in refs:
        path, _ = split_ref(ref)
        nets = load_networks(ref)
        many = len(nets) > 1
        for net in nets:
            display = Path(net.file).as_posix()
            if net.column is not None and many:
                display += f":{net.column}"
            src = generate_model(net, display, render)
            target = output_path(net.file, out_dir, net.name, many)
            if target in seen and seen[target] != net.ref:
                raise SpecError(f"{net.ref} and {seen[target]} would both write {target}",
                                mark=Mark(net.file, 1, 1), code="output_clash")
            seen[target] = net.ref
            outputs.append(Output(target, _check_python(src.text, net), src))
            # the training script beside the module: train_<module>.py imports <module>.py
            script = target.with_name(f"train_{target.name}")
            text = wrap_long_lines(render("train.py.j2", **train_context(net, target.name, src.class_name, display)))
            outputs.append(Output(script, _check_python(text, net), src, kind="train"))
    return outputs


def _check_python(text: str, net) -> str:
    try:
        compile(text, f"<generated {net.name}>", "exec")  # parse only: never executed here
    except SyntaxError as e:
        raise SpecError(f"generated code for {net.name} does not parse: {e.msg} (line {e.lineno})",
                        mark=Mark(net.file, 1, 1), code="codegen") from None
    return text


def stale_outputs(outputs: list[Output]) -> list[Path]:
    stale = []
    for o in outputs:
        try:
            if o.path.read_text(encoding="utf-8") != o.text:
                stale.append(o.path)
        except FileNotFoundError:
            stale.append(o.path)
    return stale


def write_outputs(outputs: list[Output]) -> list[Path]:
    """Write every output atomically; returns the files that changed."""
    changed = []
    for o in outputs:
        try:
            if o.path.read_text(encoding="utf-8") == o.text:
                continue
        except FileNotFoundError:
            pass
        o.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{o.path.name}.", suffix=".tmp", dir=o.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(o.text)
            os.replace(tmp, o.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        changed.append(o.path)
    return changed
