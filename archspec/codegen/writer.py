"""Rendering and writing generated files: deterministic, atomic, checkable, confined.

A network gets its module ``<name>.py`` and its training script ``train_<name>.py``; the output
folder, when it holds training scripts, also gets ``archspec_train.py`` at its top, the training
runtime the scripts call into (rendered once per build from templates/train.py.j2; a script in a
subfolder loads it by its relative path, ``../archspec_train.py``).

A build renders everything in memory first; only when every file rendered does it write them:
first every changed file into a temporary file beside its target (``.NAME.XXXX.tmp``), and only
when all of those are written are they moved into place with ``os.replace`` — so a failing build
leaves the output folder as it was, and a reader never sees half a file. Files whose bytes did not
change are not rewritten. Generated files get the mode the umask gives (``0o666 & ~umask``).

Output paths are made of sanitised parts only: the network's name (an identifier, checked by the
loader; not ``archspec_train``, the runtime's name) and the folders of the spec below ``specs/``;
every target must resolve inside ``-o``.
Two outputs with one path (``foo.yaml``'s ``train_foo.py`` and ``train_foo.yaml``'s module) are
an error. Temporary files a killed build left behind are stale: ``build --check`` lists them and
the next build removes them.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..errors import Mark, SpecError
from ..load import load_networks, split_ref
from .format import wrap_long_lines
from .pymodel import ModelSource, generate_model
from .train import RUNTIME_FILE, runtime_context, train_context

__all__ = ["Output", "render_specs", "write_outputs", "stale_outputs", "template_env", "output_path",
           "stale_temp_files", "clean_temp_files"]


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
    source: ModelSource | None  # None for the runtime
    kind: str = "model"  # or "train": the training script of the same network; or "runtime"


def output_path(spec_file: str, out_dir: Path, name: str, many: bool) -> Path:
    """``specs/torchvision/resnet50.yaml`` (name ``resnet50``) -> ``OUT/torchvision/resnet50.py``: the
    network's name in the spec's folder below specs/; a table's columns go to
    ``OUT/<table file stem>/<network>.py`` (``specs/vgg.yaml`` -> ``OUT/vgg/vgg_a.py``).

    ``name`` is a checked identifier (:func:`archspec.load.loader.check_network_name`); a folder
    part that is empty, ``.``/``..``, hidden or not printable is an error, and so is a result
    outside ``out_dir`` once symlinks are resolved."""
    p = Path(os.path.normpath(spec_file))  # specs/../../x.yaml -> ../x.yaml: no '..' after specs/
    parts = p.parts
    rel: tuple[str, ...] = ()
    if "specs" in parts:
        i = len(parts) - 1 - list(reversed(parts)).index("specs")
        rel = parts[i + 1:-1]
    if many:  # a table: one file per column, in a folder named after the table
        rel += (p.stem,)
    for part in rel:
        if part in ("", ".", "..") or part.startswith(".") or not part.isprintable() or os.sep in part:
            shown = part.encode("unicode_escape").decode("ascii")
            raise SpecError(f"cannot name an output folder '{shown}' after this spec's path",
                            mark=Mark(spec_file, 1, 1), code="output_path",
                            hint="rename the spec file or its folder (no leading '.', no control characters)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):  # the loader checked it; never trust it here
        raise SpecError(f"network name '{name[:40]}' cannot name an output file", mark=Mark(spec_file, 1, 1),
                        code="output_path")
    if f"{name}.py" == RUNTIME_FILE:
        raise SpecError(f"a network cannot be named '{name}': {RUNTIME_FILE} is the training runtime that "
                        "build writes beside the training scripts", mark=Mark(spec_file, 1, 1),
                        code="output_path", hint="rename the network")
    target = out_dir.joinpath(*rel, f"{name}.py")
    _confined(target.parent, out_dir, spec_file, target)
    return target


def _confined(folder: Path, out_dir: Path, spec_file: str | None = None, target: Path | None = None) -> None:
    """``folder`` must resolve (symlinks followed) inside ``out_dir``. Only folders are resolved: a
    symlink at a target file is replaced by the file, never written through."""
    real_out = os.path.realpath(out_dir)
    real = os.path.realpath(folder)
    target = target if target is not None else folder
    if target is not folder:
        real = os.path.join(real, target.name)
    if not (real == real_out or real.startswith(real_out.rstrip(os.sep) + os.sep)):
        raise SpecError(f"{target} resolves to {real}, outside the output folder {out_dir}",
                        mark=Mark(spec_file or str(target), 1, 1), code="output_path",
                        hint="a symlink below -o points elsewhere; remove it or choose another -o")


def render_specs(refs: list[str], out_dir: Path) -> list[Output]:
    """The module and training script of every network of ``refs``, in order. Many spec files (the
    zoo: ``build --all``, ``--check``) are rendered by forked workers, one file each, on the machine's
    cores; the result is the same list (the workers' outputs are joined in the order of ``refs``)."""
    per_ref: list[list[tuple[Output, str, str]]] | None = None
    jobs = min(os.cpu_count() or 1, 4)
    if len(refs) >= 8 and jobs > 1 and "fork" in _mp_methods():
        per_ref = _render_forked(refs, out_dir, jobs)
    if per_ref is None:  # one process (also how an error is raised: the first, in order)
        per_ref = [_render_ref(ref, out_dir) for ref in refs]
    outputs: list[Output] = []
    seen: dict[str, tuple[str, str]] = {}
    for items in per_ref:
        for o, ref, file in items:
            what = (f"the training script of {o.source.name}" if o.kind == "train"
                    else f"the module of {o.source.name}")
            key = os.path.normcase(os.path.abspath(o.path))
            if key in seen and seen[key][0] != ref:
                other_ref, other_what = seen[key]
                raise SpecError(f"{ref} and {other_ref} would both write {o.path}",
                                mark=Mark(file, 1, 1),
                                code="output_clash", hint=f"{what} and {other_what}; rename one of the networks")
            seen[key] = (ref, what)
            outputs.append(o)
    return outputs + _runtimes(outputs, seen, out_dir)


def _runtimes(outputs: list[Output], seen: dict[str, tuple[str, str]], out_dir: Path) -> list[Output]:
    """``archspec_train.py`` at the top of the output folder, once, when any training script was
    written (each script loads it by its path relative to the script's own folder)."""
    folders = [out_dir] if any(o.kind == "train" for o in outputs) else []
    if not folders:
        return []
    try:
        text = template_env().get_template("train.py.j2").render(**runtime_context())
    except jinja2.TemplateError as e:
        raise SpecError(f"template train.py.j2 failed: {e}", code="template") from None
    text = wrap_long_lines(text)
    try:
        compile(text, f"<generated {RUNTIME_FILE}>", "exec")  # parse only: never executed here
    except SyntaxError as e:
        raise SpecError(f"generated code for {RUNTIME_FILE} does not parse: {e.msg} (line {e.lineno})",
                        code="codegen") from None
    runtimes = []
    for folder in folders:
        path = folder / RUNTIME_FILE
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:  # output_path rejects the name; never overwrite a network's file with it
            ref, what = seen[key]
            raise SpecError(f"{ref}: {what} would be written at {path}, the training runtime's path",
                            code="output_clash", hint="rename the network")
        runtimes.append(Output(path, text, None, kind="runtime"))
    return runtimes


def _mp_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def _render_forked(refs: list[str], out_dir: Path, jobs: int) -> list[list[tuple[Output, str, str]]] | None:
    """``_render_ref`` of every ref in forked workers; None if any failed (the caller renders again
    in one process, which raises the first error in order)."""
    import multiprocessing

    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_render_ref_quiet, [(ref, out_dir) for ref in refs], chunksize=1)
    except Exception:  # noqa: BLE001 - a worker that could not even report: render in one process
        return None
    if any(r is None for r in results):
        return None
    return results


def _render_ref_quiet(args: tuple[str, Path]) -> list[tuple[Output, str, str]] | None:
    try:
        items = _render_ref(*args)
    except Exception:  # noqa: BLE001 - reported by the one-process rendering that follows
        return None
    for o, _, _ in items:  # what the parent needs: the text and the stats, not the lowered graph
        o.source.graph = None
    return items


def _render_ref(ref: str, out_dir: Path) -> list[tuple[Output, str, str]]:
    """The outputs of one spec file (or FILE:COLUMN), each with the network's ref and file."""
    env = template_env()

    def render(template: str, **ctx) -> str:
        try:
            return env.get_template(template).render(**ctx)
        except jinja2.TemplateError as e:
            raise SpecError(f"template {template} failed: {e}", code="template") from None

    items: list[tuple[Output, str, str]] = []
    nets = load_networks(ref)
    many = len(nets) > 1
    for net in nets:
        display = Path(net.file).as_posix()
        if net.column is not None and many:
            display += f":{net.column}"
        src = generate_model(net, display, render)
        target = output_path(net.file, out_dir, net.name, many)
        # the training script beside the module: train_<module>.py imports <module>.py
        script = target.with_name(f"train_{target.name}")
        runtime = Path(os.path.relpath(out_dir / RUNTIME_FILE, script.parent)).as_posix()
        text = wrap_long_lines(render("train_script.py.j2", **train_context(net, target.name, src.class_name, display,
                                                                     src.graph, runtime)))
        items.append((Output(target, _check_python(src.text, net), src), net.ref, net.file))
        items.append((Output(script, _check_python(text, net), src, kind="train"), net.ref, net.file))
    return items


def _check_python(text: str, net) -> str:
    try:
        compile(text, f"<generated {net.name}>", "exec")  # parse only: never executed here
    except SyntaxError as e:
        raise SpecError(f"generated code for {net.name} does not parse: {e.msg} (line {e.lineno})",
                        mark=Mark(net.file, 1, 1), code="codegen") from None
    return text


def _out_error(path: Path, message: str, hint: str | None = None) -> SpecError:
    return SpecError(message, mark=Mark(str(path), 1, 1), code="output", hint=hint)


def _current(path: Path, want: bytes) -> bool:
    """Whether ``path`` already holds ``want``. A missing file or a symlink (replaced, never written
    through) does not; a folder, a FIFO or device, or a file that is not UTF-8 text at the target
    is an error (archspec overwrites only its own kind of file). Nothing of the file is quoted."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise _out_error(path, f"cannot read: {err.strerror or err}") from None
    if stat.S_ISLNK(st.st_mode):
        return False
    if stat.S_ISDIR(st.st_mode):
        raise _out_error(path, "the output file's path is a folder", "remove it or choose another -o")
    if not stat.S_ISREG(st.st_mode):
        raise _out_error(path, "the output file's path is not a regular file (a FIFO, device or socket)",
                         "remove it or choose another -o")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise _out_error(path, f"cannot read: {err.strerror or err}") from None
    if data == want:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise _out_error(path, "exists and is not a UTF-8 text file; archspec does not overwrite it",
                         "remove it or choose another -o") from None
    return False


def stale_outputs(outputs: list[Output]) -> list[Path]:
    """Outputs whose file is missing or differs (or cannot be a generated file at all)."""
    stale = []
    for o in outputs:
        try:
            if not _current(o.path, o.text.encode("utf-8")):
                stale.append(o.path)
        except SpecError:
            stale.append(o.path)
    return stale


_TEMP = re.compile(r"^\..+\.py\.[A-Za-z0-9_]+\.tmp$")  # tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")


def stale_temp_files(outputs: list[Output]) -> list[Path]:
    """``.NAME.XXXX.tmp`` files that a killed build left in the output folders."""
    found: list[Path] = []
    for d in sorted({o.path.parent for o in outputs}):
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            p = d / n
            if _TEMP.match(n) and not os.path.isdir(p):
                found.append(p)
    return found


def clean_temp_files(outputs: list[Output]) -> list[Path]:
    """Remove :func:`stale_temp_files`; returns what was removed."""
    removed = []
    for p in stale_temp_files(outputs):
        try:
            os.unlink(p)
            removed.append(p)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _out_error(p, f"cannot remove a stale temporary file: {err.strerror or err}") from None
    return removed


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _make_dirs(d: Path, out_dir: Path | None, created: list[Path]) -> None:
    missing = []
    cur = d
    while not os.path.isdir(cur):
        if os.path.lexists(cur):  # a file (or a dangling link) where a folder must go
            raise _out_error(cur, "is not a folder", "-o and the folders below it must be folders")
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for m in reversed(missing):
        try:
            os.mkdir(m)
        except FileExistsError:
            continue
        except OSError as err:
            raise _out_error(m, f"cannot create the folder: {err.strerror or err}") from None
        created.append(m)
    if out_dir is not None:
        _confined(d, out_dir)


def write_outputs(outputs: list[Output], out_dir: Path | None = None) -> list[Path]:
    """Write every changed output, all or nothing; returns the files that changed.

    Every changed file is first written to a temporary file beside its target; only when all of
    them are written are they moved into place. On a failure before that, the temporary files (and
    folders this call created) are removed and the output folder is as it was."""
    if out_dir is not None and os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise _out_error(out_dir, "-o is not a folder", "give the folder to write into")
    plan = [(o, o.text.encode("utf-8")) for o in outputs]
    plan = [(o, data) for o, data in plan if not _current(o.path, data)]
    mode = _file_mode()
    created: list[Path] = []
    temps: list[tuple[str, Path]] = []
    try:
        for o, data in plan:
            _make_dirs(o.path.parent, out_dir, created)
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{o.path.name}.", suffix=".tmp", dir=o.path.parent)
            except OSError as err:
                raise _out_error(o.path.parent, f"cannot write into the folder: {err.strerror or err}") from None
            temps.append((tmp, o.path))
            try:
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), mode)  # mkstemp makes 0600; a generated file is an ordinary file
                    f.write(data)
            except OSError as err:
                raise _out_error(o.path, f"cannot write: {err.strerror or err}") from None
    except BaseException:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        raise
    changed: list[Path] = []
    for i, (tmp, target) in enumerate(temps):
        try:
            os.replace(tmp, target)
        except OSError as err:
            for rest, _ in temps[i:]:
                try:
                    os.unlink(rest)
                except OSError:
                    pass
            wrote = ", ".join(str(p) for p in changed) or "nothing"
            raise _out_error(target, f"cannot write: {err.strerror or err}; written before it: {wrote}") from None
        changed.append(target)
    return changed
