"""Random specs drawn from the language's grammar, for the compiler contract (tests/test_property.py
and benchmarks/fuzz.py).

A generator walks the grammar of docs/spec.md and writes a spec that is *meant* to be valid: it
tracks the shape flowing through the layers (channels and spatial size, or a vector) so that most
draws validate. Every construct the language documents appears: blocks with every parameter type,
``repeat:``/``first:``/``names:`` at every nesting level, named groups inside blocks inside lists,
``when:``/``else:`` on block parameters and on ``in.c``/``in.h``, ``from:`` across groups, merges
(add/concat/mul) whose branches differ in depth, ``dense:``, ``aux:``, cells, and tables of
columns with a file that ``extends:`` one of them.

The generator draws through a :class:`Chooser`, so the same grammar serves hypothesis (which
shrinks a failing spec) and a plain ``random.Random`` (fast, for 10,000-spec runs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

__all__ = ["Chooser", "RandomChooser", "SpecGen", "mutate"]


class Chooser:
    """Where the random choices come from."""

    def int(self, lo: int, hi: int) -> int:  # inclusive
        raise NotImplementedError

    def choice(self, items: list) -> Any:
        return items[self.int(0, len(items) - 1)]

    def coin(self, p_true: float = 0.5) -> bool:
        return self.int(0, 999) < int(p_true * 1000)


class RandomChooser(Chooser):
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)


@dataclass
class Shape:
    """What flows between layers: a map (c, h) with h == w, or a vector (c)."""

    c: int
    h: int = 0  # 0: a vector

    @property
    def map(self) -> bool:
        return self.h > 0


ACTS = ["relu", "tanh", "sigmoid", "gelu", {"leaky_relu": 0.1}, "identity", {"dropout": 0.25}]
PARAM_TYPES = ["int", "float", "bool", "str", "list", "pair", "any"]
#: the network parameter ``widths`` every spec declares, by a comprehension: [2, 4, 6, 8]
WIDTHS = [2, 4, 6, 8]


@dataclass
class BlockDef:
    name: str
    params: dict[str, Any]          # spec text of params: (type names or defaults)
    body: Any
    sequential: bool = False        # sequential: true (an nn.Sequential numbered 0, 1, ...)
    # how a call is written: values per parameter
    make_args: Callable[[Chooser, Shape], tuple[dict, Shape]] = field(repr=False, default=None)  # type: ignore[assignment]


class SpecGen:
    """One random spec (a dict, dumped as YAML). ``depth`` bounds nesting."""

    def __init__(self, ch: Chooser, max_layers: int = 7) -> None:
        self.ch = ch
        self.max_layers = max_layers
        self.blocks: dict[str, BlockDef] = {}
        self.cells: dict[str, Any] = {}
        self.counter = 0
        self.nodes = 0

    # ------------------------------------------------------------------ helpers
    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}{self.counter}"

    def width(self) -> int:
        return self.ch.choice([2, 3, 4, 6, 8])

    # ------------------------------------------------------------------ simple layers
    def act(self) -> Any:
        return self.ch.choice(ACTS)

    def conv(self, s: Shape, out: Any = None, stride_ok: bool = True) -> tuple[Any, Shape]:
        out_v = out if out is not None else self.width()
        k = self.ch.choice([1, 3])
        stride = 2 if stride_ok and s.h >= 4 and self.ch.coin(0.2) else 1
        args: dict[str, Any] = {"out": out_v, "kernel": k}
        if k == 3:
            args["padding"] = self.ch.choice([1, "same"]) if stride == 1 else 1
        if stride != 1:
            args["stride"] = stride
        if self.ch.coin(0.3):
            args["bias"] = False
        if isinstance(out_v, int) and s.c % 2 == 0 and out_v % 2 == 0 and self.ch.coin(0.15):
            args["groups"] = 2
        if out_v in WIDTHS and self.ch.coin(0.1):  # a width from the params' list comprehension
            args["out"] = f"widths[{WIDTHS.index(out_v)}]"
        form = self.ch.int(0, 3)
        if form == 0 and "groups" not in args and "bias" not in args and stride == 1 and k == 1:
            layer: Any = {"conv": [out_v, k]}      # positional
        else:
            layer = {"conv": args}
        h = (s.h + stride - 1) // stride if stride != 1 else s.h
        return layer, Shape(out_v if isinstance(out_v, int) else s.c, h)

    def simple(self, s: Shape) -> tuple[Any, Shape]:
        """One op that keeps a map a map."""
        k = self.ch.int(0, 9)
        if not s.map:
            if k < 5:
                n = self.width()
                return {"linear": n}, Shape(n)
            return self.act(), s
        if k <= 3:
            return self.conv(s)
        if k == 4:
            return "bn", s
        if k == 5 and s.h >= 4:
            pool = self.ch.choice(["maxpool", "avgpool"])
            return {pool: {"kernel": 2}}, Shape(s.c, s.h // 2)
        if k == 6 and s.h >= 3:
            return {"maxpool": {"kernel": 3, "stride": 1, "padding": 1}}, s
        return self.act(), s

    # ------------------------------------------------------------------ composite layers
    def seq(self, s: Shape, depth: int, n: int | None = None) -> tuple[list, Shape]:
        items = []
        for _ in range(n if n is not None else self.ch.int(1, 3)):
            item, s = self.layer(s, depth)
            items.append(item)
        return items, s

    def layer(self, s: Shape, depth: int) -> tuple[Any, Shape]:
        """Any layer; composite ones while depth allows."""
        self.nodes += 1
        if depth <= 0 or self.nodes > 60 or not s.map:
            return self.simple(s)
        k = self.ch.int(0, 14)
        if k == 14:
            k = 13
        if k <= 4:
            return self.simple(s)
        if k == 5:
            return self.seq(s, depth - 1)                      # a list inside a list
        if k == 6:
            return self.merge(s, depth - 1)
        if k == 7 and self.blocks:
            return self.call_block(s)
        if k == 8:
            return self.repeated(s, depth - 1)
        if k == 9:
            return self.group(s, depth - 1)
        if k == 10:
            return self.dense(s, depth - 1)
        if k == 11 and self.cells:
            return self.cell(s)
        if k == 13:         # a list held by a key (an op's name, too), a spliced repeat inside it
            first, s = self.simple(s)
            rep, s = self.repeated(s, depth - 1)
            if "names" not in rep and "name" not in rep:
                rep["splice"] = True
            return {self.ch.choice(["conv", "bn", self.fresh("stack")]): [first, rep]}, s
        if k == 12:
            item, s2 = self.layer(s, depth - 1)
            if s2.c != s.c or s2.h != s.h:  # skipping it would change the shape: a condition that holds
                when = self.ch.choice([True, "num_classes > 0"])
            else:
                when = self.ch.choice([True, False, "num_classes > 5", "num_classes < 5"])
            return self._when_wrap(item, when), s2
        return self.simple(s)

    def _when_wrap(self, item: Any, when: Any) -> Any:
        if isinstance(item, dict) and len(item) == 1 and not isinstance(next(iter(item.values())), (dict, list)) \
                and next(iter(item)) not in ("add", "concat", "mul", "dense"):
            return {**item, "when": when}
        if isinstance(item, dict) and any(k in item for k in ("repeat", "when", "name", "from", "names")):
            return item
        if isinstance(item, dict) and len(item) == 1:
            return {**item, "when": when}
        return item

    def merge(self, s: Shape, depth: int) -> tuple[Any, Shape]:
        kind = self.ch.choice(["add", "concat", "mul"])
        nb = self.ch.int(2, 3) if kind != "mul" else 2
        named = self.ch.coin(0.3)
        branches: list = []
        if kind == "add":
            out = s
            for j in range(nb):
                if j == nb - 1 and self.ch.coin(0.5):
                    branches.append([])
                    continue
                items, t = self.keep_shape(s, depth)
                branches.append(items)
        elif kind == "concat":
            total = 0
            for j in range(nb):
                if self.ch.coin(0.25):
                    branches.append([])
                    total += s.c
                    continue
                items, t = self.keep_size(s, depth)
                branches.append(items)
                total += t.c
            out = Shape(total, s.h)
        else:  # squeeze-and-excitation gate
            gate = ["global_avgpool", {"conv": {"out": max(1, s.c // 2), "kernel": 1}}, "relu",
                    {"conv": {"out": s.c, "kernel": 1}}, "sigmoid"]
            branches = [[], gate] if self.ch.coin() else [self.keep_shape(s, depth)[0], gate]
            out = s
        if named:
            names = [self.fresh("br") for _ in branches]
            return {kind: {n: (b if b != [] else "identity") for n, b in zip(names, branches)}}, out
        return {kind: branches}, out

    def keep_shape(self, s: Shape, depth: int) -> tuple[list, Shape]:
        """Layers that end in the shape they start with."""
        items = []
        for _ in range(self.ch.int(1, 3)):
            k = self.ch.int(0, 4)
            if k == 0:
                items.append({"conv": {"out": s.c, "kernel": 3, "padding": 1}})
            elif k == 1:
                items.append("bn")
            elif k == 2 and depth > 0 and self.blocks:
                items.append(self.call_block(s, keep=True)[0])
            else:
                items.append(self.act())
        return items, s

    def keep_size(self, s: Shape, depth: int) -> tuple[list, Shape]:
        items = []
        t = s
        for _ in range(self.ch.int(1, 3)):
            if self.ch.coin(0.6):
                out = self.width()
                items.append({"conv": {"out": out, "kernel": self.ch.choice([1, 3]), "padding": "same"}})
                t = Shape(out, s.h)
            else:
                items.append(self.act())
        return items, t

    def repeated(self, s: Shape, depth: int) -> tuple[Any, Shape]:
        n = self.ch.int(1, 3)
        form = self.ch.int(0, 3)
        if form == 0 and self.blocks:
            call, t = self.call_block(s, keep=True)
            call = dict(call)
        else:
            out = s.c if self.ch.coin(0.5) else self.width()
            call = {"conv": {"out": out, "kernel": 3, "padding": 1}}
            t = Shape(out, s.h)
            if out != s.c:
                call["first"] = {"out": out}
        call["repeat"] = n if self.ch.coin(0.7) else "num_classes // num_classes + " + str(n - 1)
        if self.ch.coin(0.3):
            call["names"] = self.ch.choice(["unit{i}", "layer{i + 1}", "{i}"])
        if "first" not in call and self.ch.coin(0.2) and isinstance(call.get("conv"), dict):
            call["first"] = {"kernel": 1, "padding": 0}
        return call, t

    def group(self, s: Shape, depth: int) -> tuple[Any, Shape]:
        out: dict[str, Any] = {}
        names: list[tuple[str, Shape]] = []
        t = s
        for _ in range(self.ch.int(1, 3)):
            nm = self.fresh("g")
            if names and self.ch.coin(0.3):  # from: an earlier layer of this group
                src, ss = self.ch.choice(names)
                item, t = self.conv(ss, stride_ok=False)
                item = {**item, "from": src}
            else:
                item, t = self.layer(t, depth)
            out[nm] = item
            names.append((nm, t))
        return out, t

    def dense(self, s: Shape, depth: int) -> tuple[Any, Shape]:
        k = self.ch.choice([2, 4])
        n = self.ch.int(1, 3)
        if self.blocks and self.ch.coin(0.4):
            body = self.dense_block(k)
        elif self.ch.coin(0.5):
            body = ["bn", "relu", {"conv": {"out": k, "kernel": 3, "padding": 1}}]
        else:
            body = {"conv": {"out": k, "kernel": 1}}
        call: dict[str, Any] = {"dense": body, "repeat": n}
        if self.ch.coin(0.4):
            call["names"] = "layer{i + 1}"
        return call, Shape(s.c + n * k, s.h)

    def dense_block(self, k: int) -> str:
        name = "dl_" + str(k)
        if name not in self.blocks:
            self.blocks[name] = BlockDef(name, {"g": k}, [ "bn", "relu", {"conv": {"out": "g", "kernel": 1}}])
        return name

    def cell(self, s: Shape) -> tuple[Any, Shape]:
        out = self.width()
        k = self.ch.choice([1, 3])
        return f"c{k}-{out}", Shape(out, s.h)

    # ------------------------------------------------------------------ blocks
    def make_blocks(self) -> None:
        for _ in range(self.ch.int(0, 3)):
            self.make_block()

    def make_block(self) -> None:
        """A block whose output has ``out`` channels and the input's size divided by ``stride``."""
        name = self.fresh("Blk")
        params: dict[str, Any] = {"out": "int", "stride": 1}
        extra = self.ch.choice(PARAM_TYPES)
        body: list = []
        pname = f"p_{extra}"
        if extra == "bool":
            params[pname] = self.ch.choice(["bool", True, False])
        elif extra == "float":
            params[pname] = self.ch.choice(["float", 0.5])
        elif extra == "str":
            params[pname] = self.ch.choice(["str", "relu", "tanh"])
        elif extra == "list":
            params[pname] = self.ch.choice(["list", [2, 4]])
        elif extra == "pair":
            params[pname] = self.ch.choice(["pair", 3, [1, 3]])
        elif extra == "any":
            params[pname] = "any"
        else:
            params[pname] = self.ch.choice(["int", 2, "out * 2"])
        style = self.ch.int(0, 7)
        main: list = [{"conv": {"out": "out", "kernel": 3, "stride": "stride", "padding": 1}}]
        if extra == "bool":
            main.append({"bn": {}, "when": pname})
        elif extra == "float":
            main.append({"dropout": f"${pname} / 2"})
        elif extra == "str":
            main.append({"relu": {}, "when": f"{pname} == 'relu'", })
            main.append({"tanh": {}, "when": f"{pname} != 'relu'"})
        elif extra == "list":
            main.append({"conv": {"out": f"{pname}[0] * out // {pname}[0]", "kernel": 1}})
        elif extra == "pair":
            main.append({"conv": {"out": "out", "kernel": pname, "padding": "same"}})
        elif extra == "any":
            main.append(f"${pname}")
        else:
            main.append({"conv": {"out": "out", "kernel": 1, "groups": 1}})
        main.append(self.ch.choice(["relu", "bn", {"leaky_relu": 0.2}]))
        if style == 0:      # a residual block with a conditional shortcut
            body = [{"add": [main, {"conv": {"out": "out", "kernel": 1, "stride": "stride"},
                                    "when": "stride != 1 or in.c != out", "else": "input"}]}, "relu"]
        elif style == 1:    # named layers, torchvision style, with a named group inside
            body = {"inner": {f"a{i}": m for i, m in enumerate(main)}, "tail": "relu"}
        elif style == 2:    # a numbered list held by a key, with a when: on a parameter inside
            body = {"seq": main, "post": {"bn": {}, "when": "in.h > 2"}}
        elif style == 3:    # from: and else: by name
            body = [{"pre": ["bn", "relu"]}, {"res": main},
                    {"down": {"conv": {"out": "out", "kernel": 1, "stride": "stride"}, "from": "pre",
                              "when": "stride != 1 or in.c != out", "else": "input"}},
                    {"add": {}, "from": ["res", "down"]}]
        elif style == 4:    # repeat inside a block, over a parameter, with first: and names:
            rep: dict[str, Any] = {"conv": {"out": "out", "kernel": 1}, "repeat": "stride + 1"}
            if self.ch.coin():
                rep["first"] = {"kernel": 3, "padding": 1}
            if self.ch.coin():
                rep["names"] = "unit{i}"
            body = [*main, {"units": rep} if self.ch.coin() else rep]
        elif style == 5:    # dense inside a block, conditional, followed by a projection
            body = [*main, {"dense": {"g": {"c": {"conv": {"out": 2, "kernel": 1}}, "a": "relu"}},
                            "repeat": "stride + 1", "when": "out > 2"},
                    {"conv": {"out": "out", "kernel": 1}}]
        elif style == 6:    # a mul gate and a conditional named list with else:
            body = [*main, {"gate": {"mul": [[], ["global_avgpool", {"conv": {"out": "out", "kernel": 1}},
                                                   "sigmoid"]]}},
                    {"post": ["bn", "relu"], "when": "in.c > 2"}]
        else:               # sequential: true, torchvision's Conv2dNormActivation; max() in a width
            body = [*main, {"conv": {"out": "max(1, out // 2) * 2 // 2 + out - max(1, out // 2)",
                                     "kernel": 1}}, {"relu": {}, "when": "in.c > 3"}]
            self.blocks[name] = BlockDef(name, params, body, sequential=True)
            return
        self.blocks[name] = BlockDef(name, params, body)

    def call_block(self, s: Shape, keep: bool = False) -> tuple[Any, Shape]:
        name = self.ch.choice(sorted(n for n in self.blocks if not n.startswith("dl_")) or [None])
        if name is None:
            return self.simple(s)
        blk = self.blocks[name]
        out = s.c if keep else self.width()
        stride = 1 if keep or s.h < 4 or not self.ch.coin(0.3) else 2
        args: dict[str, Any] = {"out": out}
        if stride != 1:
            args["stride"] = stride
        for p, t in blk.params.items():
            if p in ("out", "stride"):
                continue
            if t == "int":
                args[p] = 2
            elif t == "bool":
                args[p] = self.ch.coin()
            elif t == "float":
                args[p] = 0.25
            elif t == "str":
                args[p] = self.ch.choice(["relu", "tanh"])
            elif t == "list":
                args[p] = [2, 4]
            elif t == "pair":
                args[p] = self.ch.choice([3, [3, 1]])
            elif t == "any":
                args[p] = self.ch.choice(["relu", ["bn", "relu"], {"conv": {"out": out, "kernel": 1}}])
            elif self.ch.coin(0.3) and not isinstance(t, str):
                args[p] = t
        if self.ch.coin(0.2) and len(args) == 1:
            return {name: out}, Shape(out, (s.h + stride - 1) // stride)
        return {name: args}, Shape(out, (s.h + stride - 1) // stride)

    # ------------------------------------------------------------------ documents
    def network(self, s: Shape) -> dict[str, Any]:
        net: dict[str, Any] = {}
        names: list[tuple[str, Shape]] = []
        for _ in range(self.ch.int(1, self.max_layers)):
            nm = self.fresh("l")
            if names and self.ch.coin(0.15):      # from: an earlier top-level layer
                src, ss = self.ch.choice(names)
                item, s = self.conv(ss, stride_ok=False)
                item = {**item, "from": src}
            elif names and self.ch.coin(0.1):     # a group whose layer reads an earlier top-level layer
                src, ss = self.ch.choice(names)
                item, s = self.conv(ss, stride_ok=False)
                item = {"x": {**item, "from": src}, "y": self.act()}
            else:
                item, s = self.layer(s, 3)
            net[nm] = item
            names.append((nm, s))
            if s.map and self.ch.coin(0.1) and len(net) > 1:   # an auxiliary head on a tap
                net[self.fresh("aux")] = {"aux_head": [], "aux": {"loss_weight": 0.3}}
        head: list = []
        if s.map:
            head += [self.ch.choice(["global_avgpool", {"adaptive_avgpool": {"output": 1}}]), "flatten"]
        head.append({"linear": "num_classes"})
        net["head"] = head
        return net

    def spec(self) -> dict[str, Any]:
        c, h = self.ch.choice([1, 3]), self.ch.choice([8, 12, 16])
        nc = self.ch.choice([3, 10])
        if self.ch.coin(0.3):
            self.cells["c{k}-{out}"] = [{"conv": {"out": "out", "kernel": "k", "padding": "same"}}, "relu"]
        self.make_blocks()
        net = self.network(Shape(c, h))
        doc: dict[str, Any] = {"name": "fuzz", "input": [c, h, h], "num_classes": nc,
                               "params": {"widths": "[2 * j for j in range(1, 5)]"}}
        uses_aux = any(isinstance(v, dict) and "aux" in v for v in net.values())
        blocks = {b.name: {"params": b.params, "body": b.body, **({"sequential": True} if b.sequential else {})}
                  for b in self.blocks.values()}
        if uses_aux:
            blocks["aux_head"] = {"body": ["global_avgpool", "flatten", {"linear": "num_classes"}]}
        if blocks:
            doc["blocks"] = blocks
        if self.cells:
            doc["cells"] = self.cells
        doc["network"] = net
        return doc


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def table_specs(ch: Chooser) -> dict[str, str]:
    """A table (columns over a width parameter) and a file that extends one column with a name."""
    widths = [ch.choice([2, 4]), ch.choice([4, 8])]
    table = {
        "name": "tbl",
        "input": [3, 8, 8],
        "num_classes": 4,
        "params": {"width": 4, "deep": False},
        "columns": {"tbl_a": {"width": widths[0]}, "tbl_b": {"width": widths[1], "deep": True}},
        "network": {
            "stem": {"conv": {"out": "width", "kernel": 3, "padding": 1}},
            "more": {"conv": {"out": "width * 2", "kernel": 1}, "when": "deep"},
            "pool": "global_avgpool", "flat": "flatten", "fc": {"linear": "num_classes"},
        },
    }
    child = {"extends": "tbl.yaml", "column": ch.choice(["tbl_a", "tbl_b"]), "name": "tbl_child"}
    return {"tbl.yaml": dump(table), "tbl_child.yaml": dump(child)}


def mutate(text: str, ch: Chooser) -> str:
    """A small random edit that usually breaks the spec: a number, a key, a bracket."""
    lines = text.splitlines()
    if not lines:
        return "{"
    i = ch.int(0, len(lines) - 1)
    line = lines[i]
    k = ch.int(0, 6)
    if k == 0:
        lines[i] = line.replace(":", ": -1 #", 1) if ":" in line else line + " -1"
    elif k == 1:
        lines[i] = line + "x"
    elif k == 2:
        lines[i] = line.replace("conv", "cnov", 1) if "conv" in line else line.replace(" ", "  ", 1) + " ]"
    elif k == 3:
        lines[i] = line.replace("1", "0") if "1" in line else line + ": {"
    elif k == 4:
        del lines[i]
    elif k == 5:
        lines.insert(i, line)
    else:
        lines[i] = line.replace("out", "out2", 1) if "out" in line else line + " [1, 2"
    return "\n".join(lines) + "\n"
