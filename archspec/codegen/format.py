"""Line-length formatting of generated Python, the way a person (or black) would wrap it.

The templates write one statement per line; a long constructor call or docstring then runs past
the line limit. ``wrap_long_lines`` rewrites only the lines longer than ``limit``:

* a one-line docstring becomes a wrapped multi-line docstring;
* a statement ending in a call, ``self.conv2 = nn.Conv2d(width, width, ..., bias=False)``, gets its
  arguments on an indented line of their own, or one per line with a trailing comma when they
  still do not fit (black's "magic trailing comma" style);
* an assignment of a conditional expression, ``x = a if cond else b``, is parenthesised and split
  before ``if`` and ``else``.

It works on tokens (``tokenize``), never on the spec's text, and only regroups what is already
there; the result is parsed again by the writer. Lines it cannot wrap are left as they are.
Deterministic: the same input always gives the same output.
"""

from __future__ import annotations

import io
import textwrap
import tokenize

__all__ = ["wrap_long_lines", "LIMIT"]

LIMIT = 100
_OPEN, _CLOSE = "([{", ")]}"


def wrap_long_lines(source: str, limit: int = LIMIT) -> str:
    lines = source.split("\n")
    if all(len(line) <= limit for line in lines):
        return source  # nothing to wrap (most files): no need to tokenize
    prose = _lines_in_multiline_strings(source)
    out: list[str] = []
    for no, line in enumerate(lines, 1):
        out.extend([line] if no in prose else _wrap_all([line], limit, depth=3))
    result = "\n".join(out)
    # wrapping only regroups tokens; should a rule ever break code that parsed, keep it as it was
    if result != source and not _parses(result) and _parses(source):
        return source
    return result


def _parses(text: str) -> bool:
    try:
        compile(textwrap.dedent(text), "<wrapped>", "exec", dont_inherit=True)
    except SyntaxError:
        return False
    return True


def _lines_in_multiline_strings(source: str) -> set[int]:
    """Line numbers inside a string that spans several lines (docstrings): prose, not code."""
    inside: set[int] = set()
    try:
        for t in tokenize.generate_tokens(io.StringIO(source).readline):
            if t.type == tokenize.STRING and t.end[0] > t.start[0]:
                inside.update(range(t.start[0], t.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return set(range(1, source.count("\n") + 2))  # not Python: leave every line alone
    return inside


def _wrap_all(lines: list[str], limit: int, depth: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        wrapped = _wrap(line, limit) if len(line) > limit and depth else None
        out.extend(_wrap_all(wrapped, limit, depth - 1) if wrapped else [line])
    return out


def _wrap(line: str, limit: int) -> list[str] | None:
    indent = line[: len(line) - len(line.lstrip(" "))]
    body = line[len(indent):]
    if body.startswith('"""') and body.endswith('"""') and len(body) > 6 and '"""' not in body[3:-3]:
        return _wrap_docstring(indent, body[3:-3], limit)
    toks = _tokens(body)
    if toks is None:
        return None
    return (_wrap_call(indent, body, toks, limit) or _wrap_conditional(indent, body, toks, limit)
            or _wrap_longest_group(indent, body, toks, limit))


def _tokens(body: str) -> list[tokenize.TokenInfo] | None:
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(body + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return [t for t in toks if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER,
                                              tokenize.INDENT, tokenize.DEDENT)]


def _wrap_docstring(indent: str, text: str, limit: int) -> list[str]:
    lines = textwrap.wrap(text, width=limit - len(indent), initial_indent='"""',
                          break_long_words=False, break_on_hyphens=False)
    lines[-1] += '"""'
    if len(indent) + len(lines[-1]) > limit:
        lines[-1] = lines[-1][:-3]
        lines.append('"""')
    return [indent + ln for ln in lines]


def _wrap_call(indent: str, body: str, toks: list[tokenize.TokenInfo], limit: int) -> list[str] | None:
    """``head(args)`` where the bracket that closes the line opens at the outermost level."""
    if not toks or toks[-1].string not in _CLOSE:
        return None
    depth, open_at = 0, None
    for i, t in enumerate(toks):
        if t.type == tokenize.OP and t.string in _OPEN:
            if depth == 0:
                open_at = i
            depth += 1
        elif t.type == tokenize.OP and t.string in _CLOSE:
            depth -= 1
            if depth == 0 and i != len(toks) - 1:
                open_at = None  # a bracket closed before the end: keep looking for the last one
    if open_at is None or open_at == 0:
        return None
    return _split_group(indent, body, toks[open_at].end[1], toks[-1].start[1], limit)


def _wrap_longest_group(indent: str, body: str, toks: list[tokenize.TokenInfo], limit: int) -> list[str] | None:
    """Any other statement (``def f(...) -> T:``, ``for x in (...):``, ``if a < (...):``): split the
    outermost bracket pair with the most inside it, the rest of the line staying around it."""
    depth, start, best = 0, None, None
    for t in toks:
        if t.type == tokenize.OP and t.string in _OPEN:
            if depth == 0:
                start = t
            depth += 1
        elif t.type == tokenize.OP and t.string in _CLOSE:
            depth -= 1
            if depth == 0 and start is not None:
                size = t.start[1] - start.end[1]
                if best is None or size > best[0]:
                    best = (size, start.end[1], t.start[1])
    if best is None or best[0] == 0:
        return None
    return _split_group(indent, body, best[1], best[2], limit)


def _split_group(indent: str, body: str, a: int, b: int, limit: int) -> list[str] | None:
    """``body[:a]`` / the bracket's contents ``body[a:b]`` / ``body[b:]``: the contents on one
    indented line, or one item a line with a trailing comma when they do not fit."""
    head, inner, tail = body[:a], body[a:b], body[b:]
    args = _split_top_level(inner)
    if not args:
        return None
    inner_indent = indent + "    "
    joined = ", ".join(args)
    if len(inner_indent) + len(joined) <= limit:
        return [indent + head, inner_indent + joined, indent + tail]
    return [indent + head] + [inner_indent + arg + "," for arg in args] + [indent + tail]


def _split_top_level(text: str) -> list[str]:
    """Split ``a, f(b, c), d`` at the commas outside brackets, strings and lambda parameters."""
    toks = _tokens(text)
    if toks is None:
        return []
    parts, depth, last, in_lambda = [], 0, 0, False
    for t in toks:
        if t.type == tokenize.OP and t.string in _OPEN:
            depth += 1
        elif t.type == tokenize.OP and t.string in _CLOSE:
            depth -= 1
        elif depth == 0 and t.type == tokenize.NAME and t.string == "lambda":
            in_lambda = True
        elif depth == 0 and in_lambda and t.type == tokenize.OP and t.string == ":":
            in_lambda = False
        elif t.type == tokenize.OP and t.string == "," and depth == 0 and not in_lambda:
            parts.append(text[last:t.start[1]].strip())
            last = t.end[1]
    rest = text[last:].strip()
    if rest:
        parts.append(rest)
    return parts


def _wrap_conditional(indent: str, body: str, toks: list[tokenize.TokenInfo], limit: int) -> list[str] | None:
    """``target = a if cond else b`` -> ``target = (`` / ``a`` / ``if cond`` / ``else b`` / ``)``."""
    depth, eq, cuts = 0, None, []
    for t in toks:
        if t.type == tokenize.OP and t.string in _OPEN:
            depth += 1
        elif t.type == tokenize.OP and t.string in _CLOSE:
            depth -= 1
        elif depth == 0 and t.type == tokenize.OP and t.string == "=" and eq is None:
            eq = t
        elif depth == 0 and eq is not None and t.type == tokenize.NAME and t.string in ("if", "else"):
            cuts.append(t.start[1])
    if eq is None or len(cuts) != 2 or body[cuts[0]:cuts[0] + 2] != "if":
        return None
    target = body[:eq.end[1]]
    a, cond, other = body[eq.end[1]:cuts[0]], body[cuts[0]:cuts[1]], body[cuts[1]:]
    inner = indent + "    "
    return [indent + target + " (", inner + a.strip(), inner + cond.strip(), inner + other.strip(),
            indent + ")"]
