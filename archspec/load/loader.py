"""From a spec reference (``specs/vgg.yaml:D``) to the networks it names.

Loading reads the YAML (positions kept), follows ``extends:`` and ``include:``, validates the document
with the pydantic models, picks the column(s) and resolves the network parameters. The result is a
:class:`Network` per network: everything lowering needs, still as data.
"""

from __future__ import annotations

import copy
import difflib
import keyword
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from ..errors import Mark, SpecError
from ..spec.expr import ExprError, parse
from ..spec.model import COLUMN_KEYS, SpecDoc
from ..spec.train import TRAIN_MODELS, TrainRecipe
from ..spec.yamlio import LocDict, LocList, load_yaml, mark_at

__all__ = ["Network", "Block", "Cell", "load_networks", "expand_refs", "split_ref", "pydantic_error",
           "allow_paths", "project_root", "check_network_name"]


@dataclass
class Block:
    name: str
    params: list[tuple[str, str | None, Any]]  # (name, type or None, default or _REQUIRED)
    body: Any
    raw: Any
    mark: Mark | None
    sequential: bool = False  # an nn.Sequential: the body's layers are numbered 0, 1, ...


@dataclass
class Cell:
    pattern: str
    regex: re.Pattern
    captures: tuple[str, ...]
    body: Any
    mark: Mark | None


REQUIRED = object()


class _PairType(type):
    def __instancecheck__(cls, v: Any) -> bool:
        def is_int(i: Any) -> bool:
            return isinstance(i, int) and not isinstance(i, bool)
        return is_int(v) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(i) for i in v))


class pair(metaclass=_PairType):
    """The block parameter type ``pair``: an int or ``[a, b]`` (a kernel size, stride or padding
    per axis); generated code takes it as ``int | tuple[int, int]``."""


TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "pair": pair, "any": object}


@dataclass
class Network:
    """One network, ready to lower."""

    name: str
    ref: str
    file: str
    column: str | None
    doc: SpecDoc
    raw: LocDict
    env: dict[str, Any]
    input: tuple[int, ...]
    num_classes: int
    blocks: dict[str, Block]
    cells: list[Cell]
    expect: dict[str, Any]
    expect_marks: dict[str, Mark] = field(default_factory=dict)
    expect_raw: dict[str, Any] = field(default_factory=dict)
    expect_key_marks: dict[str, Mark] = field(default_factory=dict)
    train: TrainRecipe | None = None  # the spec's recipe (file, extends chain, column); None: generic


def split_ref(ref: str) -> tuple[str, str | None]:
    """``specs/vgg.yaml:D`` -> (``specs/vgg.yaml``, ``D``); a column may hold a slash
    (``specs/vit.yaml:ViT-B/16``)."""
    m = re.match(r"^(.*?\.ya?ml):([^\\]+)$", ref)
    if m:
        return m.group(1), m.group(2)
    return ref, None


def expand_refs(args: Iterable[str]) -> list[str]:
    """Files stay, directories become their ``*.yaml`` files (recursively, sorted naturally);
    ``specs/blocks`` (block libraries) is skipped. A folder without specs is an error."""
    out: list[str] = []
    for a in args:
        path, _ = split_ref(a)
        if os.path.isdir(path):
            found = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d != "blocks" and not d.startswith("."))
                found += [os.path.join(root, f) for f in files if f.endswith((".yaml", ".yml"))]
            if not found:
                raise SpecError(f"no specs in {path}", mark=Mark(path, 1, 1), code="no_specs",
                                hint="a folder stands for the .yaml files below it (blocks/ folders skipped)")
            out += sorted(found, key=_natural_key)
        else:
            out.append(a)
    return out


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def pydantic_error(err: ValidationError, root: Any, base_path: tuple = (), fields: Iterable[str] = ()) -> SpecError:
    """The first pydantic error as a :class:`SpecError` at its YAML position."""
    def walk(e: dict) -> tuple[tuple, list]:
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(("function-", "tagged-union"))))
        # pydantic names union members in loc ('int', 'tuple[int, int]'): skip what is not data.
        data_loc: list = []
        node = root
        for part in loc:
            if isinstance(node, dict) and part in node:
                data_loc.append(part)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                data_loc.append(part)
                node = node[part]
            elif e["type"] == "extra_forbidden" and part == loc[-1]:
                data_loc.append(part)
            elif isinstance(part, str) and not isinstance(node, dict):
                continue
            else:
                break
        return loc, data_loc

    errors = err.errors()
    # an unknown key explains a missing one ('kernal' for 'kernel'); else the deepest error wins
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    e = extra[0] if extra else max(errors, key=lambda e: len(walk(e)[1]))
    loc, data_loc = walk(e)
    if callable(fields):
        fields = fields(tuple(data_loc[:-1]))
    mark = mark_at(root, data_loc) if root is not None else None
    if e["type"] == "extra_forbidden":
        key = data_loc[-1] if data_loc else "?"
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"did you mean '{close[0]}'?" if close else (
            f"known keys: {', '.join(sorted(fields))}" if fields else None)
        parent = base_path + tuple(data_loc[:-1])
        return SpecError(f"unknown key '{key}'", mark=_key_mark(root, data_loc) or mark,
                         path=parent, hint=hint, code="unknown_key")
    if e["type"] == "missing":
        return SpecError(f"missing required key '{loc[-1]}'", mark=mark,
                         path=base_path + tuple(data_loc), code="missing_key")
    msg = e["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    inp = e.get("input")
    if not isinstance(inp, (dict, list)):
        msg += f", got {inp!r}"
    return SpecError(msg, mark=mark, path=base_path + tuple(data_loc), code=e["type"])


def _key_mark(root: Any, path: list) -> Mark | None:
    node = root
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(node, LocDict) and path and path[-1] in node.key_marks:
        return node.key_marks[path[-1]]
    return None


# ---------------------------------------------------------------------------------- documents
MERGED_BY_KEY = ("params", "blocks", "cells", "columns", "train")


def _merge(base: LocDict, child: LocDict, deep: tuple[str, ...] = MERGED_BY_KEY) -> LocDict:
    """``child`` over ``base``: mappings in ``deep`` merge by key, other keys replace. A column
    merges by key too, so a file can change one parameter of a table's column."""
    out = copy.copy(base)
    out.key_marks = dict(base.key_marks)
    out.value_marks = dict(base.value_marks)
    out.raw = dict(base.raw)
    for k, v in child.items():
        if k in deep and isinstance(out.get(k), LocDict) and isinstance(v, LocDict):
            v = _merge(out[k], v, tuple(v) if k == "columns" else ())
        out[k] = v
        out.key_marks[k] = child.key_marks.get(k, child.mark)
        out.value_marks[k] = child.value_marks.get(k, child.mark)
        if k in child.raw:
            out.raw[k] = child.raw[k]
        else:
            out.raw.pop(k, None)
    out.mark = child.mark
    return out


def _read(path: str) -> LocDict:
    data = _read_raw(path)
    incs = data.get("include")
    if isinstance(incs, LocList):
        # include: paths are relative to the file that names them, also when another file extends it
        fixed = LocList(os.path.abspath(os.path.join(os.path.dirname(path), i)) if isinstance(i, str) else i
                        for i in incs)
        fixed.mark, fixed.item_marks = incs.mark, incs.item_marks
        fixed.raw = {i: v for i, v in enumerate(incs) if isinstance(v, str)}  # as written, for messages
        dict.__setitem__(data, "include", fixed)
    return data


def _read_raw(path: str) -> LocDict:
    data = load_yaml(path)
    if data is None:
        raise SpecError("the spec is empty", mark=Mark(path, 1, 1), code="empty",
                        hint="a spec needs at least name: and network:")
    if not isinstance(data, LocDict):
        raise SpecError("a spec is a mapping of keys (name:, input:, network:, ...)",
                        mark=getattr(data, "mark", Mark(path, 1, 1)), code="not_a_mapping")
    return data


# ------------------------------------------------------------------------------- confinement
_ALLOWED: list[str] = []  # folders besides the project root that include:/extends: may read


def allow_paths(dirs: Iterable[str]) -> None:
    """Let ``include:``/``extends:`` also read below ``dirs`` (the CLI's ``--allow-path``)."""
    _ALLOWED[:] = [os.path.realpath(d) for d in dirs]


def project_root(spec_file: str) -> str:
    """The folder ``include:``/``extends:`` of ``spec_file`` may not leave: the nearest folder at or
    above the spec's own that holds a ``.git``, a ``pyproject.toml`` or a ``specs/`` folder (the
    file system's root never counts); if there is none, the spec's own folder. Symlinks are
    resolved first."""
    start = os.path.realpath(os.path.dirname(os.path.abspath(spec_file)))
    cur = start
    while True:
        parent = os.path.dirname(cur)
        if parent == cur:
            return start
        if (os.path.lexists(os.path.join(cur, ".git")) or os.path.isfile(os.path.join(cur, "pyproject.toml"))
                or os.path.isdir(os.path.join(cur, "specs"))):
            return cur
        cur = parent


def _inside(real: str, roots: Iterable[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _relative(doc: LocDict, key: str, value: Any, path: str, idx: int | None = None,
              roots: tuple[str, ...] = ()) -> str:
    mark = doc.mark_of(key) if idx is None else doc[key].mark_of(idx)
    if not isinstance(value, str):
        raise SpecError(f"{key} takes a file path, got {value!r}", mark=mark, path=(key,), code="type")
    where = (key,) if idx is None else (key, idx)
    written = doc[key].raw.get(idx, value) if idx is not None and isinstance(doc[key], LocList) else value
    if "\0" in value:
        raise SpecError(f"{key} takes a file path, got a NUL character", mark=mark, path=where, code="type")
    target = os.path.normpath(os.path.join(os.path.dirname(path), value))
    if roots and not _inside(os.path.realpath(target), roots):
        # checked before the file is even looked at: nothing about it (not even whether it exists) is said
        raise SpecError(f"'{written}' is outside the project root {roots[0]}", mark=mark, path=where,
                        code="outside_root",
                        hint="include: and extends: stay inside the project root (docs/security.md); "
                             "widen it with --allow-path DIR")
    if not target.endswith((".yaml", ".yml")):
        raise SpecError(f"'{written}' is not a .yaml file", mark=mark, path=where, code="not_yaml",
                        hint=f"{key}: names spec files (.yaml or .yml)")
    if not os.path.lexists(target):
        raise SpecError(f"no such file '{written}' (looked for {target})", mark=mark,
                        path=where, code="missing_file",
                        hint="paths are relative to the file that names them")
    return target  # not a regular file, too large, ...: read_spec_bytes says so


def _resolve(path: str, stack: tuple[str, ...] = (), roots: tuple[str, ...] = ()) -> tuple[LocDict, list[LocDict]]:
    """The document at ``path`` with its ``extends`` chain merged in.

    Returns the merged document and the ``expect`` mappings of files that select a column (they
    override the column's own expectations, so they are applied after it)."""
    real = os.path.realpath(path)
    if real in stack:
        raise SpecError("extends forms a cycle: " + " -> ".join(os.path.basename(s) for s in stack + (real,)),
                        mark=Mark(path, 1, 1), path=("extends",), code="cycle")
    doc = _read(path)
    overlays: list[LocDict] = []
    if "extends" in doc:
        base, overlays = _resolve(_relative(doc, "extends", doc["extends"], path, roots=roots), stack + (real,),
                                  roots)
        child = doc
        if "column" in child and isinstance(child.get("expect"), LocDict):
            overlays = overlays + [child["expect"]]
            child = copy.copy(child)
            del child["expect"]
        base_fields = copy.copy(base)
        for k in ("extends",):
            base_fields.pop(k, None)
        doc = _merge(base_fields, child)
    return doc, overlays


def _includes(doc: LocDict, path: str, stack: tuple[str, ...] = (), roots: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Blocks and cells from ``include:`` files (recursively), by name, with their origin."""
    blocks: dict[str, tuple[Any, LocDict, str]] = {}
    cells: dict[str, tuple[Any, LocDict, str]] = {}
    incs = doc.get("include") or []
    if not isinstance(incs, list):
        raise SpecError("include takes a list of files", mark=doc.mark_of("include"), path=("include",))
    for i, inc in enumerate(incs):
        target = _relative(doc, "include", inc, path, i, roots)
        real = os.path.realpath(target)
        if real in stack:
            continue
        sub = _read(target)
        unknown = set(sub) - {"blocks", "cells", "include", "name", "title", "notes", "paper"}
        if unknown:
            k = sorted(unknown)[0]
            raise SpecError(f"an included file holds blocks: and cells: only, not '{k}'",
                            mark=sub.key_marks.get(k, sub.mark), path=(k,), code="include")
        sb, sc = _includes(sub, target, stack + (real,), roots)
        for table, key in ((sb, "blocks"), (sc, "cells")):
            if isinstance(sub.get(key), LocDict):
                for name in sub[key]:
                    table[name] = (sub[key][name], sub[key], target)
        for table, acc in ((sb, blocks), (sc, cells)):
            for name, val in table.items():
                if name in acc and acc[name][2] != val[2]:
                    raise SpecError(f"'{name}' is defined in both {acc[name][2]} and {val[2]}",
                                    mark=val[1].mark_of(name), code="duplicate_name")
                acc[name] = val
    return blocks, cells


def _load_doc(path: str) -> tuple[SpecDoc, LocDict, list[LocDict], dict, dict]:
    roots = (project_root(path), *_ALLOWED)
    raw, overlays = _resolve(path, roots=roots)
    inc_blocks, inc_cells = _includes(raw, path, roots=roots)
    try:
        doc = SpecDoc.model_validate(dict(raw))
    except ValidationError as err:
        from ..spec.model import BlockDef, Paper

        def fields(parent: tuple) -> Iterable[str]:
            if parent[:1] == ("paper",):
                return Paper.model_fields
            if parent[:1] == ("train",):
                return TRAIN_MODELS.get(tuple(parent[1:]), TrainRecipe).model_fields
            if parent[:1] == ("blocks",) and len(parent) == 2:
                return BlockDef.model_fields
            return SpecDoc.model_fields if not parent else ()
        raise pydantic_error(err, raw, fields=fields) from None
    for name, (val, holder, origin) in inc_blocks.items():
        if name in doc.blocks:
            continue  # the file's own definition wins over a library's
        from ..spec.model import BlockDef
        try:
            doc.blocks[name] = BlockDef.model_validate(dict(val) if isinstance(val, dict) else val)
        except ValidationError as err:
            raise pydantic_error(err, val, ("blocks", name), BlockDef.model_fields) from None
        raw_blocks = raw.get("blocks") if isinstance(raw.get("blocks"), LocDict) else None
        if raw_blocks is None:
            raw_blocks = LocDict()
            raw_blocks.mark = holder.mark
            raw_blocks.key_marks, raw_blocks.value_marks, raw_blocks.raw = {}, {}, {}
            raw = copy.copy(raw)
            raw["blocks"] = raw_blocks
        raw_blocks = copy.copy(raw_blocks)
        raw_blocks.key_marks = {**raw_blocks.key_marks, name: holder.key_marks.get(name, holder.mark)}
        raw_blocks.value_marks = {**raw_blocks.value_marks, name: holder.mark_of(name)}
        dict.__setitem__(raw_blocks, name, val)
        raw = copy.copy(raw)
        dict.__setitem__(raw, "blocks", raw_blocks)
    for name, (val, holder, origin) in inc_cells.items():
        doc.cells.setdefault(name, val)
    return doc, raw, overlays, inc_blocks, inc_cells


# ------------------------------------------------------------------------------------ parameters
def _block_table(doc: SpecDoc, raw: LocDict) -> dict[str, Block]:
    out: dict[str, Block] = {}
    raw_blocks = raw.get("blocks") or {}
    for name, b in doc.blocks.items():
        rb = raw_blocks.get(name)
        mark = raw_blocks.mark_of(name) if isinstance(raw_blocks, LocDict) and name in raw_blocks else None
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise SpecError(f"block name '{name}' is not an identifier", mark=mark, path=("blocks", name),
                            hint="use letters, digits and _, starting with a letter")
        params: list[tuple[str, str | None, Any]] = []
        if isinstance(b.params, list):
            params = [(p, "int", REQUIRED) for p in b.params]
        else:
            for p, spec in b.params.items():
                if isinstance(spec, str) and spec in TYPES:
                    params.append((p, spec, REQUIRED))
                else:
                    params.append((p, None, spec))
        for p, _, _ in params:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", str(p)):
                raise SpecError(f"parameter name '{p}' is not an identifier",
                                mark=mark_at(raw, ("blocks", name, "params")), path=("blocks", name, "params"))
        if b.sequential and not isinstance(b.body, list):
            raise SpecError(f"block '{name}' is sequential: its body must be a list of layers, numbered 0, 1, ...",
                            mark=mark_at(raw, ("blocks", name, "body")) or mark, path=("blocks", name, "body"),
                            code="bad_block", hint="write body: [layer, layer, ...] or drop sequential: true")
        out[name] = Block(name, params, b.body, rb, mark, b.sequential)
    return out


def _cell_table(doc: SpecDoc, raw: LocDict, extra_marks: dict) -> list[Cell]:
    out = []
    raw_cells = raw.get("cells") or {}
    for pattern, body in doc.cells.items():
        mark = raw_cells.mark_of(pattern) if isinstance(raw_cells, LocDict) and pattern in raw_cells else extra_marks.get(pattern)
        pattern = str(pattern)
        caps = tuple(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", pattern))
        parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", pattern)
        for j, between in enumerate(parts[1:-1]):
            # Each capture is \d+. With a non-digit between two captures, where one ends is fixed by
            # the word (the first non-digit after it), so matching takes linear time; with only digits
            # (or nothing) between them a run of digits splits in many ways, and a word that does not
            # match makes the regex engine try them all: exponential in the number of captures.
            if not re.search(r"\D", between):
                key_mark = raw_cells.key_marks.get(pattern, mark) if isinstance(raw_cells, LocDict) else mark
                raise SpecError(f"the captures {{{caps[j]}}} and {{{caps[j + 1]}}} have no separator, so a "
                                f"number could be split between them in many ways",
                                mark=key_mark, path=("cells", pattern), code="bad_pattern",
                                hint="put a character that is not a digit between captures: 'conv{k}-{out}'")
        rx = "".join(
            f"(?P<{part[1:-1]}>\\d+)" if re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", part) else re.escape(part)
            for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", pattern) if part)
        try:
            regex = re.compile(f"^{rx}$")
        except re.error as e:  # duplicate capture names
            raise SpecError(f"bad cell pattern '{pattern}': {e}", mark=mark, path=("cells", pattern)) from None
        out.append(Cell(pattern, regex, caps, body, mark))
    return out


def resolve_params(values: dict[str, Any], base_env: dict[str, Any], marks: dict[str, Mark | None],
                   path: tuple) -> dict[str, Any]:
    """Evaluate parameter values that are expressions over other parameters (in any order)."""
    env = dict(base_env)
    pending: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, str) and v.startswith("$"):
            pending[k] = v[1:]
        elif isinstance(v, str) and _is_expression(v):
            pending[k] = v
        elif isinstance(v, str) and _ARITH.search(v):
            try:
                parse(v)
            except ExprError as e:
                raise SpecError(f"bad expression '{v}': {e.message}", mark=marks.get(k), path=path + (k,),
                                hint=e.hint, code="expression") from None
            env[k] = v
        else:
            env[k] = v
    names_all = set(env) | set(pending)
    # one pass in the order written (a parameter whose names are all known is evaluated; one that
    # names something unknown is a plain word or an error), then the rest in dependency order
    # (Kahn's algorithm): each expression is parsed once and each reference followed once, so a
    # chain of n parameters that refer to each other resolves in O(n), in any order.
    waiting: dict[str, Any] = {}
    for k, text in pending.items():
        try:
            expr = parse(text)
        except ExprError as e:
            raise SpecError(f"bad expression '{text}': {e.message}", mark=marks.get(k), path=path + (k,),
                            hint=e.hint, code="expression") from None
        names = expr.names()
        if names <= env.keys():
            _evaluate(k, text, expr, env, marks, path)
        elif not names <= names_all:
            if not _strict(values.get(k)) and not _ARITH.search(text):
                env[k] = values[k]  # a plain word such as 'conv3-64', not an expression
                continue
            missing = sorted(names - names_all)[0]
            close = difflib.get_close_matches(missing, sorted(names_all), n=1)
            raise SpecError(f"unknown name '{missing}' in '{text}'", mark=marks.get(k), path=path + (k,),
                            hint=f"did you mean '{close[0]}'?" if close else None, code="expression")
        else:
            waiting[k] = (text, expr, names)
    blocked: dict[str, int] = {}
    users: dict[str, list[str]] = {}
    ready: list[str] = []
    for k, (text, expr, names) in waiting.items():
        deps = [n for n in names if n in waiting and n not in env]
        blocked[k] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(k)
        if not deps:
            ready.append(k)
    ready.reverse()
    while ready:
        k = ready.pop()
        text, expr, _ = waiting.pop(k)
        _evaluate(k, text, expr, env, marks, path)
        for u in reversed(users.get(k, ())):
            blocked[u] -= 1
            if blocked[u] == 0:
                ready.append(u)
    if waiting:
        cyc = ", ".join(sorted(waiting))
        raise SpecError(f"parameters refer to each other in a cycle: {cyc}",
                        mark=marks.get(sorted(waiting)[0]), path=path, code="cycle")
    return env


_ARITH = re.compile(r"[*/+()\[\]<>=%]")


def _evaluate(k: str, text: str, expr: Any, env: dict[str, Any], marks: dict[str, Mark | None],
              path: tuple) -> None:
    try:
        env[k] = expr.evaluate(env)
    except ExprError as e:
        raise SpecError(f"in '{text}': {e.message}", mark=marks.get(k), path=path + (k,),
                        hint=e.hint, code="expression") from None


def _strict(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("$")


def _is_expression(text: str) -> bool:
    """A string value is an expression if it parses and is not a bare word (those are literals)."""
    try:
        expr = parse(text)
    except ExprError:
        return False
    return not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text.strip())


# ------------------------------------------------------------------------------------ networks
def load_networks(ref: str) -> list[Network]:
    """The networks ``ref`` names: ``file.yaml`` (all of its columns) or ``file.yaml:COLUMN``."""
    path, want = split_ref(ref)
    doc, raw, overlays, _, inc_cells = _load_doc(path)
    blocks = _block_table(doc, raw)
    cells = _cell_table(doc, raw, {})
    if doc.network is None:
        raise SpecError("missing required key 'network'", mark=raw.mark, code="missing_key",
                        hint="network: lists the layers")
    if doc.input is None:
        raise SpecError("missing required key 'input'", mark=raw.mark, code="missing_key",
                        hint="input: [C, H, W], e.g. [3, 224, 224]")
    raw_cols = raw.get("columns") or LocDict()
    if doc.column is not None:
        if want is not None and want != doc.column:
            raise SpecError(f"{path} is column '{doc.column}' of its table; it has no column '{want}'",
                            mark=raw.mark_of("column"), path=("column",), code="unknown_column")
        want = doc.column
    if doc.columns:
        if want is not None and want not in doc.columns:
            close = difflib.get_close_matches(want, list(doc.columns), n=1)
            raise SpecError(f"no column '{want}'", mark=raw.mark_of("columns"), path=("columns",),
                            code="unknown_column",
                            hint=f"did you mean '{close[0]}'? columns: {', '.join(doc.columns)}" if close
                            else f"columns: {', '.join(doc.columns)}")
        chosen = [want] if want is not None else list(doc.columns)
    else:
        if want is not None:
            raise SpecError(f"{path} has no columns, so '{ref}' selects nothing", mark=raw.mark,
                            code="unknown_column", hint=f"use {path}")
        chosen = [None]
    nets = []
    for col in chosen:
        nets.append(_network(path, doc, raw, raw_cols, col, blocks, cells, overlays,
                             single=doc.column is not None or not doc.columns))
    return nets


def _network(path: str, doc: SpecDoc, raw: LocDict, raw_cols: LocDict, col: str | None,
             blocks: dict[str, Block], cells: list[Cell], overlays: list[LocDict], single: bool) -> Network:
    colvals: dict[str, Any] = {}
    colraw = None
    if col is not None:
        colraw = raw_cols[col]
        colvals = dict(colraw)
    name = colvals.get("name") if isinstance(colvals.get("name"), str) else None
    name_mark, name_path = (colraw.mark_of("name"), ("columns", col, "name")) if name is not None else (None, ())
    if doc.column is not None and "name" in raw:
        name = doc.name  # a file that selects a column names its network
        name_mark, name_path = raw.mark_of("name"), ("name",)
    if name is None:
        if single:
            name = doc.name
            name_mark, name_path = raw.mark_of("name"), ("name",)
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(col)) and str(col).startswith(doc.name):
            name = str(col)  # resnet.yaml:resnet50 -> resnet50
            name_mark, name_path = raw_cols.key_marks.get(col, raw_cols.mark), ("columns", col)
        else:
            name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{doc.name}_{col}").strip("_").lower()  # vgg_a_lrn
            name_mark, name_path = raw.mark_of("name"), ("name",)
    check_network_name(name, name_mark, name_path)
    for key in ("input", "num_classes"):
        if key in colvals:
            _check_column_value(colraw, col, key, colvals[key])
    input_shape = tuple(colvals.get("input") or doc.input)
    num_classes = int(colvals.get("num_classes") or doc.num_classes)
    params = {k: v for k, v in colvals.items() if k not in COLUMN_KEYS}
    unknown = [k for k in params if k not in doc.params] if doc.params else []
    defaults = dict(doc.params)
    base_env = {"num_classes": num_classes, "column": col or ""}
    marks: dict[str, Mark | None] = {}
    raw_params = raw.get("params")
    for k in defaults:
        marks[k] = raw_params.mark_of(k) if isinstance(raw_params, LocDict) else None
    key_marks: dict[str, Mark | None] = {}
    for k in params:
        marks[k] = colraw.mark_of(k) if isinstance(colraw, LocDict) else None
        key_marks[k] = colraw.key_marks.get(k) if isinstance(colraw, LocDict) else None
    if unknown and doc.params:
        k = unknown[0]
        close = difflib.get_close_matches(k, list(doc.params), n=1)
        raise SpecError(f"column '{col}' sets '{k}', which is not a parameter", mark=key_marks.get(k) or marks.get(k),
                        path=("columns", col, k), code="unknown_param",
                        hint=f"did you mean '{close[0]}'?" if close else
                        f"declare it under params: (known: {', '.join(doc.params)})")
    env = resolve_params({**defaults, **params}, base_env, marks,
                         ("columns", col) if col is not None else ("params",))
    # expectations: file level, then the column's, then files that select this column
    expect: dict[str, Any] = {}
    expect_marks: dict[str, Mark] = {}
    expect_raw: dict[str, Any] = {}
    expect_key_marks: dict[str, Mark] = {}
    layers: dict[str, Any] = {}
    sources = [raw.get("expect")]
    if isinstance(colraw, LocDict):
        sources.append(colraw.get("expect"))
    sources += overlays
    for src in sources:
        if not isinstance(src, LocDict):
            continue
        for k, v in src.items():
            if k == "layers" and isinstance(v, dict):
                layers.update({lk: (lv, v) for lk, lv in v.items()})
                continue
            expect[k] = v
            expect_marks[k] = src.mark_of(k)
            expect_key_marks[k] = src.key_marks.get(k, src.mark_of(k))
            expect_raw[k] = src.raw.get(k)
    if layers:
        expect["layers"] = layers
    ref = f"{path}:{col}" if col is not None and not single else path
    train = doc.train
    if isinstance(colraw, LocDict) and colraw.get("train") is not None:
        train = _column_train(raw.get("train"), colraw, col)
    return Network(train=train, name=name, ref=ref, file=path, column=col, doc=doc, raw=raw, env=env,
                   input=input_shape, num_classes=num_classes, blocks=blocks, cells=cells,
                   expect=expect, expect_marks=expect_marks, expect_raw=expect_raw,
                   expect_key_marks=expect_key_marks)


#: The most characters a network name may have (it names files: <name>.py, train_<name>.py).
MAX_NAME = 100


def check_network_name(name: str, mark: Mark | None, path: tuple) -> None:
    """A network's name becomes ``<name>.py``, ``train_<name>.py`` and a class name: it must be a Python
    identifier (not a keyword) of at most :data:`MAX_NAME` characters, so no name can point outside the
    output folder (``../x``, ``/abs/path``) or fail to import."""
    if (isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not keyword.iskeyword(name)
            and len(name) <= MAX_NAME):
        return
    text = str(name)
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not shown.isprintable():
        shown = shown.encode("unicode_escape").decode("ascii")
    why = f"is longer than {MAX_NAME} characters" if len(text) > MAX_NAME and re.fullmatch(
        r"[A-Za-z_][A-Za-z0-9_]*", text) else ("is a Python keyword" if keyword.iskeyword(text)
                                               else "is not an identifier")
    raise SpecError(f"network name '{shown}' {why}", mark=mark, path=path, code="bad_name",
                    hint="a network name becomes <name>.py and a class name: letters, digits and _, "
                         "not starting with a digit")


def _check_column_value(colraw: Any, col: str, key: str, value: Any) -> None:
    """A column's input: and num_classes: follow the file-level rules (spec.model.SpecDoc)."""
    from ..spec.model import check_input_shape
    mark = colraw.mark_of(key) if isinstance(colraw, LocDict) else None
    path = ("columns", col, key)

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    if key == "num_classes":
        if not is_int(value) or value < 1:
            raise SpecError(f"num_classes is a positive integer, got {value!r}", mark=mark, path=path, code="type")
        return
    if not isinstance(value, list) or not all(is_int(d) for d in value):
        raise SpecError(f"input is a list of sizes such as [3, 224, 224], got {value!r}", mark=mark, path=path,
                        code="type")
    try:
        check_input_shape(value)
    except ValueError as e:
        raise SpecError(str(e), mark=mark, path=path, code="value_error") from None


def _column_train(base: Any, colraw: LocDict, col: str) -> TrainRecipe:
    """A column's ``train:`` over the file's: keys replace keys (one level, like ``extends``)."""
    ctrain = colraw.get("train")
    if not isinstance(ctrain, LocDict):
        raise SpecError("train takes a mapping", mark=colraw.mark_of("train"), path=("columns", col, "train"),
                        code="dict_type")
    merged = _merge(base, ctrain, ()) if isinstance(base, LocDict) else ctrain
    try:
        return TrainRecipe.model_validate(dict(merged))
    except ValidationError as err:
        raise pydantic_error(err, merged, ("columns", col, "train"),
                             lambda parent: TRAIN_MODELS.get(tuple(parent), TrainRecipe).model_fields) from None
