"""Safe YAML loading that keeps source positions.

Architecture specs are YAML files written by people, and every error archspec reports must point
at ``file:line:col`` in them. Plain ``yaml.safe_load`` throws positions away, so this module builds
on PyYAML's *composer* (which produces a node tree carrying start marks) and converts that tree
itself into :class:`LocDict` / :class:`LocList` containers. These are real ``dict`` / ``list``
subclasses (pydantic, ``json`` and ordinary code accept them unchanged) that additionally remember

* where the container starts (``mark``),
* where each key and each value is written (``key_marks``, ``value_marks``, ``item_marks``),
* the source text of every scalar before type resolution (``raw``), so that messages can quote a
  number exactly as it was written (``3.8e9``, ``0.50``, ``25_557_032``).

All marks are :class:`archspec.errors.Mark` objects with 1-based line and column.

Safety rules -- a spec is plain data and loading one must never run code or exhaust memory:

* Only the YAML composer is used; no Python object is ever constructed from a tag. Scalars are
  built only for the core tags ``null``, ``bool``, ``int``, ``float`` and ``str`` (timestamps stay
  strings). Any other explicit tag (``!!python/...``, ``!include``, ``!!set``, ``!!binary``, ...)
  is rejected with a :class:`SpecError` (code ``yaml_tag``).
* Mapping keys must be scalars, and a key may appear only once per mapping (``duplicate_key``).
  Keys that YAML 1.1 would read as booleans (``on``, ``off``, ``yes``, ``no``) or null are kept as
  their written text.
* Anchors, aliases and merge keys (``<<: *base``, ``<<: [*a, *b]``) work; every use of an alias is
  an independent copy whose marks point at the anchor's definition. Recursive aliases are
  rejected, and a document that expands to more than :data:`MAX_NODES` nodes ("billion laughs")
  is rejected before anything is built.
* A file holds exactly one document; an empty file (or one holding only comments) loads as
  ``None``.
* Syntax, encoding and file-system problems are all reported as :class:`SpecError` with a mark.
* Only regular files are read, at most :data:`MAX_SPEC_BYTES` (``ARCHSPEC_MAX_SPEC_BYTES``) bytes
  of them (:func:`read_spec_bytes`); a float that is not finite (``.nan``, ``.inf``, ``1e999``) is
  an error (``non_finite``).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from yaml.events import StreamEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from archspec.errors import Mark, SpecError

__all__ = [
    "LocDict",
    "LocList",
    "MAX_DEPTH",
    "MAX_NODES",
    "load_yaml",
    "loads_yaml",
    "max_spec_bytes",
    "read_spec_bytes",
    "mark_at",
    "raw_at",
]

#: Most nodes a document may have after alias expansion.
MAX_NODES = 200_000
#: Deepest nesting of mappings/sequences a document may have.
MAX_DEPTH = 200

_P = "tag:yaml.org,2002:"
_NULL, _BOOL, _INT, _FLOAT, _STR = (_P + t for t in ("null", "bool", "int", "float", "str"))
_TIMESTAMP, _MERGE, _VALUE = _P + "timestamp", _P + "merge", _P + "value"
_MAP, _SEQ = _P + "map", _P + "seq"
# Scalar tags read as plain strings: timestamps, and the odd implicit tags of the SafeLoader
# ('=' resolves to !!value, a lone '<<' outside a key position to !!merge).
_STR_LIKE = {_STR, _TIMESTAMP, _MERGE, _VALUE}
_SCALAR_TAGS = {_NULL, _BOOL, _INT, _FLOAT} | _STR_LIKE
_MERGE_KEY = object()  # stands for a `<<` entry while a mapping is converted


class LocDict(dict):
    """A ``dict`` that remembers where it and its entries are written."""

    mark: Mark | None
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]
    raw: dict[Any, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mark = None
        self.key_marks = {}
        self.value_marks = {}
        self.raw = {}

    def mark_of(self, key: Any) -> Mark | None:
        """The mark of ``key``'s value if known, else of the key, else of the mapping."""
        return self.value_marks.get(key) or self.key_marks.get(key) or self.mark


class LocList(list):
    """A ``list`` that remembers where it and its items are written."""

    mark: Mark | None
    item_marks: list[Mark]
    raw: dict[int, str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.mark = None
        self.item_marks = []
        self.raw = {}

    def mark_of(self, index: int) -> Mark | None:
        """The mark of item ``index`` if known, else of the list."""
        try:
            return self.item_marks[index]
        except (IndexError, TypeError):
            return self.mark


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_P):] if tag.startswith(_P) else tag


class _Converter:
    """Turns one composed node tree into LocDict/LocList/scalars."""

    def __init__(self, loader: yaml.SafeLoader, filename: str) -> None:
        self.loader = loader
        self.filename = filename

    def mark(self, node: Node) -> Mark:
        m = node.start_mark
        return Mark(self.filename, m.line + 1, m.column + 1)

    # -- pre-pass: size, recursion, depth and tags ------------------------------------------------

    def measure(self, root: Node) -> None:
        """Reject recursive aliases, too deep or too large documents and disallowed tags.

        Sizes are memoised per node, so this is linear in the *written* document even when aliases
        would expand it exponentially; nothing is built.
        """
        sizes: dict[int, int] = {}
        active: set[int] = set()

        def size(node: Node, depth: int) -> int:
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in active:
                raise SpecError(
                    "recursive alias",
                    mark=self.mark(node),
                    hint="an anchored block cannot contain an alias to itself",
                    code="yaml_alias",
                )
            self.check_tag(node)
            if isinstance(node, ScalarNode):
                sizes[key] = 1
                return 1
            if depth > MAX_DEPTH:
                raise SpecError(
                    f"document nested too deeply (more than {MAX_DEPTH} levels)",
                    mark=self.mark(node),
                    code="yaml_too_large",
                )
            active.add(key)
            total = 1
            if isinstance(node, MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = list(node.value)
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    raise SpecError(
                        "document too large (alias expansion?)",
                        mark=self.mark(node),
                        hint=f"a spec may hold at most {MAX_NODES} values once aliases are expanded",
                        code="yaml_too_large",
                    )
            active.discard(key)
            sizes[key] = total
            return total

        size(root, 0)

    def check_tag(self, node: Node) -> None:
        tag = node.tag
        if isinstance(node, ScalarNode):
            ok = tag in _SCALAR_TAGS
        elif isinstance(node, MappingNode):
            ok = tag == _MAP
        else:
            ok = tag == _SEQ
        if not ok:
            raise SpecError(
                f"tag '{_short_tag(tag)}' is not allowed",
                mark=self.mark(node),
                hint="specs are plain data: use include: to share blocks between files",
                code="yaml_tag",
            )

    # -- conversion --------------------------------------------------------------------------------

    def convert(self, node: Node, path: tuple = ()) -> Any:
        if isinstance(node, ScalarNode):
            value = self.scalar(node)
            if isinstance(value, float) and not math.isfinite(value):
                text = node.value if len(node.value) <= 24 else node.value[:21] + "..."
                raise SpecError(
                    f"{text} is not a finite number",
                    mark=self.mark(node),
                    path=path,
                    hint="numbers in a spec are finite: .nan, .inf and literals beyond 1.8e308 are errors",
                    code="non_finite",
                )
            return value
        if isinstance(node, SequenceNode):
            return self.sequence(node, path)
        return self.mapping(node, path)

    def scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag in _STR_LIKE:
            return str(node.value)
        loader = self.loader
        try:
            if tag == _NULL:
                return loader.construct_yaml_null(node)
            if tag == _BOOL:
                return loader.construct_yaml_bool(node)
            if tag == _INT:
                return loader.construct_yaml_int(node)
            return loader.construct_yaml_float(node)
        except Exception:  # e.g. `!!int abc`, `!!bool maybe`
            raise SpecError(
                f"cannot read '{node.value}' as {_short_tag(tag)}",
                mark=self.mark(node),
                code="yaml_value",
            ) from None

    def sequence(self, node: SequenceNode, path: tuple = ()) -> LocList:
        out = LocList()
        out.mark = self.mark(node)
        for i, item in enumerate(node.value):
            out.append(self.convert(item, path + (i,)))
            out.item_marks.append(self.mark(item))
            if isinstance(item, ScalarNode):
                out.raw[i] = item.value
        return out

    def key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise SpecError(
                "mapping keys must be plain names",
                mark=self.mark(node),
                hint="a key cannot be a list or a mapping",
                code="yaml_key",
            )
        value = self.scalar(node)
        if isinstance(value, bool) or value is None:
            # YAML 1.1 reads on/off/yes/no/null as bool/None; as keys they are names.
            if node.value == "":
                raise SpecError("empty mapping key", mark=self.mark(node), code="yaml_key")
            return node.value
        return value

    def mapping(self, node: MappingNode, path: tuple = ()) -> LocDict:
        out = LocDict()
        out.mark = self.mark(node)
        explicit: dict[Any, Node] = {}  # key -> key node, for duplicate detection
        merge_node: Node | None = None
        pairs: list[tuple[Any, Node, Node]] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                key: Any = "<<"
                if merge_node is not None:
                    self.duplicate(key, merge_node, key_node)
                merge_node = key_node
                pairs.append((_MERGE_KEY, key_node, value_node))
                continue
            key = self.key(key_node)
            if key in explicit:
                self.duplicate(key, explicit[key], key_node)
            explicit[key] = key_node
            pairs.append((key, key_node, value_node))

        for key, key_node, value_node in pairs:
            if key is _MERGE_KEY:
                for source in self.merge_sources(value_node, path):
                    for k, v in source.items():
                        if k in explicit or k in out:
                            continue  # explicit keys and earlier merge sources win
                        out[k] = v
                        out.key_marks[k] = source.key_marks[k]
                        out.value_marks[k] = source.value_marks[k]
                        if k in source.raw:
                            out.raw[k] = source.raw[k]
                continue
            out[key] = self.convert(value_node, path + (key,))
            out.key_marks[key] = self.mark(key_node)
            out.value_marks[key] = self.mark(value_node)
            if isinstance(value_node, ScalarNode):
                out.raw[key] = value_node.value
        return out

    def merge_sources(self, node: Node, path: tuple = ()) -> list[LocDict]:
        if isinstance(node, MappingNode):
            return [self.mapping(node, path)]
        if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            return [self.mapping(n, path) for n in node.value]
        raise SpecError(
            "merge key '<<' needs a mapping or a list of mappings",
            mark=self.mark(node),
            hint="write `<<: *anchor` or `<<: [*a, *b]`",
            code="yaml_merge",
        )

    def duplicate(self, key: Any, first: Node, second: Node) -> None:
        first_mark = self.mark(first)
        raise SpecError(
            f"duplicate key '{key}'",
            mark=self.mark(second),
            hint=f"first defined at line {first_mark.line}",
            code="duplicate_key",
        )


def _offset_to_mark(text: str, offset: int, filename: str) -> Mark:
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return Mark(filename, line, col)


def _syntax_error(err: yaml.YAMLError, text: str, filename: str) -> SpecError:
    if isinstance(err, yaml.reader.ReaderError):
        mark = _offset_to_mark(text, err.position, filename)
        char = err.character if isinstance(err.character, int) else ord(err.character)
        return SpecError(
            f"invalid YAML: control character {char:#04x} is not allowed",
            mark=mark,
            hint="remove control characters from the file",
            code="yaml_syntax",
        )
    if isinstance(err, yaml.MarkedYAMLError):
        pm = err.problem_mark or err.context_mark
        mark = Mark(filename, pm.line + 1, pm.column + 1) if pm else Mark(filename, 1, 1)
        problem = err.problem or err.context or "malformed document"
        hint = None
        if "'\\t'" in problem:
            problem = "found a tab character where YAML expects indentation or a value"
            hint = "indent YAML with spaces, not tabs"
        elif err.context:
            hint = err.context
            cm = err.context_mark
            if cm is not None and (pm is None or (cm.line, cm.column) != (pm.line, pm.column)):
                hint += f" that starts at line {cm.line + 1}, column {cm.column + 1}"
        return SpecError(f"invalid YAML: {problem}", mark=mark, hint=hint, code="yaml_syntax")
    return SpecError(f"invalid YAML: {err}", mark=Mark(filename, 1, 1), code="yaml_syntax")


# libyaml's parser (PyYAML's C extension), when PyYAML was built with it, with PyYAML's own Python
# composer, resolver and constructor on top: the events are the same as the pure-Python parser's,
# about ten times faster. The composer stays in Python so that deep nesting is still a RecursionError,
# never a C stack overflow. Anything the fast path does not accept (a syntax error, an unknown
# alias, a control character, ...) is parsed again by the pure-Python loader, so every error and its
# mark are exactly those of PyYAML; tests/test_yamlio_fast.py checks that both paths agree.
try:
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.cyaml import CParser
    from yaml.resolver import Resolver

    class _FastLoader(CParser, Composer, SafeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

        # CParser has its own C composer under these names; the Python one is used instead
        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
except (ImportError, AttributeError):  # PyYAML without libyaml: the pure-Python loader only
    _FastLoader = None  # type: ignore[assignment,misc]

#: what the fast path leaves to the reference, where PyYAML and libyaml part ways (found by fuzzing
#: the zoo's specs, tests/test_yamlio_fast.py): a character PyYAML's reader rejects; a tab (libyaml
#: takes some where PyYAML wants indentation or a value); a '?' (libyaml takes it inside a flow
#: plain scalar); a byte-order mark inside the text (libyaml counts it in the columns after it); a
#: tag (they end a tag at different characters): a '!' that is not the '!=' of an expression, or
#: one where a node starts; an empty value in a flow collection (marked at different columns).
#: No spec in the zoo has any of them.
_REFERENCE_ONLY = re.compile(yaml.reader.Reader.NON_PRINTABLE.pattern
                             + r"|[\t?\ufeff]|!(?!=)|(?:^|[\[{,:\-])[ ]*!|[:,][ ]*[,}\]]", re.MULTILINE)


def _compose(loader: Any, filename: str) -> Node | None:
    """The one document of the stream ``loader`` reads (``None`` if empty)."""
    loader.get_event()  # StreamStartEvent
    root: Node | None = None
    if not loader.check_event(StreamEndEvent):
        root = loader.compose_document()
    if not loader.check_event(StreamEndEvent):
        event = loader.get_event()
        m = event.start_mark
        raise SpecError(
            "a spec file holds one YAML document",
            mark=Mark(filename, m.line + 1, m.column + 1),
            hint="remove the '---' separator or split the file",
            code="yaml_multi_document",
        )
    return root


def _compose_fast(text: str, filename: str) -> tuple[Any, Node | None] | None:
    """``(loader, root)`` from the fast path, or ``None`` when the text must go the reference way."""
    if _FastLoader is None or _REFERENCE_ONLY.search(text):
        return None
    try:
        loader = _FastLoader(text)
    except Exception:
        return None
    try:
        return loader, _compose(loader, filename)
    except Exception:  # an error of any kind: the reference path reports it, with PyYAML's words
        loader.dispose()
        return None


def loads_yaml(text: str, *, filename: str = "<string>", fast: bool = True) -> Any:
    """Parse one YAML document from ``text``; marks name ``filename``.

    ``fast=False`` parses with PyYAML's pure-Python loader only (the reference the fast path is
    tested against); the result is the same either way."""
    if text.startswith("\ufeff"):
        text = text[1:]
    done = _compose_fast(text, filename) if fast else None
    if done is not None:
        loader, root = done
        try:
            return _convert(loader, root, filename)
        finally:
            loader.dispose()
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as err:  # the reader rejects control characters up front
        raise _syntax_error(err, text, filename) from None
    try:
        try:
            root = _compose(loader, filename)
        except yaml.YAMLError as err:
            raise _syntax_error(err, text, filename) from None
        except RecursionError:
            raise SpecError(
                "document nested too deeply",
                mark=Mark(filename, 1, 1),
                code="yaml_too_large",
            ) from None
        return _convert(loader, root, filename)
    finally:
        loader.dispose()


def _convert(loader: Any, root: Node | None, filename: str) -> Any:
    if root is None:
        return None
    conv = _Converter(loader, filename)
    conv.measure(root)
    return conv.convert(root)


#: Largest spec file archspec reads, in bytes; the environment variable ``ARCHSPEC_MAX_SPEC_BYTES``
#: overrides it.
MAX_SPEC_BYTES = 4 * 1024 * 1024


def max_spec_bytes() -> int:
    """The size cap on spec files: ``ARCHSPEC_MAX_SPEC_BYTES`` if set, else :data:`MAX_SPEC_BYTES`."""
    text = os.environ.get("ARCHSPEC_MAX_SPEC_BYTES", "").strip()
    if not text:
        return MAX_SPEC_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise SpecError(
            f"ARCHSPEC_MAX_SPEC_BYTES must be a positive number of bytes, got {text[:20]!r}",
            code="usage",
        )
    return value


def read_spec_bytes(path: str | os.PathLike, name: str | None = None) -> bytes:
    """The bytes of the spec file at ``path``; every failure is a :class:`SpecError` at ``name:1:1``.

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a socket is refused
    before it is opened, and the file is opened non-blocking and checked again), and at most
    :func:`max_spec_bytes` + 1 bytes of it. The file name must be UTF-8. No message quotes the
    file's content.
    """
    name = name if name is not None else os.fspath(path)
    mark = Mark(name, 1, 1)
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("the file name is not valid UTF-8", mark=mark,
                        hint="rename the spec file", code="encoding") from None
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SpecError("no such file", mark=mark, hint=f"looked for {os.path.abspath(path)}",
                        code="missing_file") from None
    except OSError as err:
        raise SpecError(f"cannot read file: {err.strerror or err}", mark=mark,
                        code="unreadable_file") from None
    not_regular = SpecError("not a regular file (a FIFO, device or socket is never read)", mark=mark,
                            hint="give the path of a .yaml file", code="not_a_file")
    if stat.S_ISDIR(st.st_mode):
        raise SpecError("is a directory", mark=mark, hint="give the path of a .yaml file", code="not_a_file")
    if not stat.S_ISREG(st.st_mode):
        raise not_regular
    cap = max_spec_bytes()
    too_large = SpecError(f"file too large: more than {cap} bytes", mark=mark,
                          hint="the limit is set by ARCHSPEC_MAX_SPEC_BYTES (default 4 MiB)",
                          code="too_large")
    if st.st_size > cap:
        raise too_large
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise SpecError(f"cannot read file: {err.strerror or err}", mark=mark,
                        code="unreadable_file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since os.stat
            raise not_regular
        chunks: list[bytes] = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        raise SpecError(f"cannot read file: {err.strerror or err}", mark=mark,
                        code="unreadable_file") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:
        raise too_large
    return data


def load_yaml(
    path: str | os.PathLike,
    *,
    text: str | None = None,
    display_name: str | None = None,
) -> Any:
    """Load the YAML file at ``path`` (or ``text`` if given, naming it ``path``).

    Returns :class:`LocDict` / :class:`LocList` / scalars, or ``None`` for an empty document.
    ``display_name`` (default ``str(path)``) is the file name the marks carry.
    """
    name = display_name if display_name is not None else str(path)
    if text is None:
        data = read_spec_bytes(path, name)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            start = err.start
            good = data[:start].decode("utf-8-sig", errors="replace")
            raise SpecError(
                "file is not valid UTF-8",
                mark=_offset_to_mark(good, len(good), name),
                hint="save the spec as UTF-8",
                code="encoding",
            ) from None
    key = (name, text)
    doc = _LOADED.get(key, _MISSING)
    if doc is _MISSING:
        doc = loads_yaml(text, filename=name)
        if len(text) <= _LOADED_MAX_CHARS:
            if len(_LOADED) >= _LOADED_MAX:
                _LOADED.clear()
            _LOADED[key] = doc
    return _copy(doc)  # the caller's own containers: the cached document is never handed out


#: documents already loaded, by (file name, text): a block library that many specs include is read
#: (the file, every time: it may have changed) but parsed once per process; bounded
_LOADED: dict[tuple[str, str], Any] = {}
_LOADED_MAX = 256
_LOADED_MAX_CHARS = 1 << 20
_MISSING = object()


def _copy(v: Any) -> Any:
    """A copy of a loaded document: new containers with their own mark tables; the scalars and
    (frozen) marks are shared."""
    t = type(v)
    if t is LocDict:
        out = LocDict.__new__(LocDict)
        dict.update(out, {k: _copy(x) for k, x in v.items()})
        out.mark, out.key_marks, out.value_marks, out.raw = v.mark, dict(v.key_marks), dict(v.value_marks), dict(v.raw)
        return out
    if t is LocList:
        out = LocList.__new__(LocList)
        list.extend(out, [_copy(x) for x in v])
        out.mark, out.item_marks, out.raw = v.mark, list(v.item_marks), dict(v.raw)
        return out
    return v


def _walk(root: Any, path: Sequence[str | int]) -> tuple[Mark | None, Any, Any, bool]:
    """Follow ``path``; returns (deepest mark, container of last step, last key, reached end)."""
    mark = getattr(root, "mark", None) if isinstance(root, (LocDict, LocList)) else None
    node = root
    parent: Any = None
    last: Any = None
    for part in path:
        if isinstance(node, Mapping):
            if part not in node:
                return mark, None, None, False
        elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
            if not isinstance(part, int) or not -len(node) <= part < len(node):
                return mark, None, None, False
        else:
            return mark, None, None, False
        if isinstance(node, (LocDict, LocList)):
            mark = node.mark_of(part) or mark
        parent, last = node, part
        node = node[part]
    return mark, parent, last, True


def mark_at(root: Any, path: Sequence[str | int]) -> Mark | None:
    """The mark of the element at ``path`` below ``root``.

    If the path leaves the document early, the mark of the deepest element reached is returned;
    ``None`` if nothing on the way carries marks.
    """
    return _walk(root, path)[0]


def raw_at(root: Any, path: Sequence[str | int]) -> str | None:
    """The scalar's source text at ``path`` (before type resolution), if known."""
    if not path:
        return None
    _, parent, last, reached = _walk(root, path)
    if not reached or not isinstance(parent, (LocDict, LocList)):
        return None
    if isinstance(parent, LocList) and isinstance(last, int) and last < 0:
        last += len(parent)
    return parent.raw.get(last)
