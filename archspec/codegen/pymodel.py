"""Code generation: a lowered network -> a standalone, readable PyTorch module.

The network is lowered symbolically (see :mod:`archspec.ir.sym`), so each block instance knows its
constructor arguments as expressions (``planes * 4``) and its ``when:`` conditions as Python. The
generator then

1. describes every scope (the network, each block instance, each named group) as a list of
   children — op modules, functional ops, sub-modules — wired by reference;
2. unifies the instances of each block into one class (a child that one instance skipped and another
   has becomes an optional attribute under its condition); instances that still differ get a class
   of their own (``Bottleneck2``);
3. renders classes, the network class and ``build()`` through ``templates/model.py.j2``.

Names: module attributes are the spec's layer names (so torchvision specs give torchvision's
``state_dict`` keys); they are validated as identifiers that are not Python keywords and do not
shadow ``nn.Module`` members. Every other identifier comes from one namespace per function.
Strings from the spec reach the output only through ``repr`` or sanitised comments.
"""

from __future__ import annotations

import builtins
import dataclasses
import textwrap
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from ..analysis import NetStats, analyse, human
from ..errors import SpecError
from ..ir import Graph, lower
from ..ir.lower import IN_FIELDS, MODULE_MEMBERS, in_record
from ..ir.sym import Sym, SymFloat, SymPair, plain
from ..load import Network
from ..ops import REGISTRY, Emit, Helper
from ..spec.expr import ExprError, parse, to_python
from .format import wrap_long_lines
from .init import render_init

__all__ = ["ModelSource", "generate_model", "class_name"]

#: names the generated code itself uses
RESERVED = frozenset({"self", "x", "torch", "nn", "Tensor", "math", "build", "in_channels",
                      "num_classes", "init_weights", "super", "reset_parameters"})

_KNOWN_CASE = {"resnet": "ResNet", "resnext": "ResNeXt", "vgg": "VGG", "alexnet": "AlexNet",
               "lenet": "LeNet", "zfnet": "ZFNet", "googlenet": "GoogLeNet", "densenet": "DenseNet",
               "wrn": "WRN", "vit": "ViT", "nin": "NIN", "se": "SE", "bn": "BN", "cifar": "CIFAR",
               "preact": "PreAct", "inception": "Inception", "plain": "Plain", "wide": "Wide", "bc": "BC"}


def class_name(name: str) -> str:
    """``resnet152`` -> ``ResNet152``; ``vgg16_bn`` -> ``VGG16BN``; ``basic`` -> ``Basic``."""
    out = ""
    for part in re.split(r"[^A-Za-z0-9]+", name):
        if not part:
            continue
        if part[0].isdigit() and out[-1:].isdigit():
            out += "_"  # wide_resnet50_2 -> WideResNet50_2
        m = re.match(r"^([A-Za-z]+)(.*)$", part)
        if m and m.group(1).lower() in _KNOWN_CASE:
            out += _KNOWN_CASE[m.group(1).lower()] + m.group(2)
        elif part[0].isupper():
            out += part
        else:
            out += part[0].upper() + part[1:]
    if not out or out[0].isdigit():
        out = "Net" + out
    return out


def _err(msg: str, node_or_info: Any = None, hint: str | None = None) -> SpecError:
    mark = getattr(node_or_info, "mark", None)
    path = getattr(node_or_info, "spec_path", "") or getattr(node_or_info, "path", "")
    return SpecError(msg, mark=mark, path=path, hint=hint, code="codegen")


def _check_attr_name(name: str, where: Any) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
        raise _err(f"the layer name '{name}' cannot be a module attribute", where,
                   "use letters, digits and _ (not a Python keyword)")
    if name in MODULE_MEMBERS or name.startswith("__"):
        raise _err(f"the layer name '{name}' is an attribute of torch.nn.Module, which PyTorch does not "
                   f"allow as a submodule name", where, "rename the layer")


def _expr(v: Any) -> str:
    """A constructor argument: a symbol's expression or a literal's repr."""
    if isinstance(v, (Sym, SymFloat, SymPair)):
        return v.expr
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_expr(i) for i in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    raise _err(f"cannot write the value {v!r} into generated code")


# ------------------------------------------------------------------------------------ children
@dataclass
class Child:
    local: str                 # attribute name (or a hint for functional ops)
    kind: str                  # 'module' (an attribute), 'param' (a tensor attribute), 'call' (functional) or 'skip'
    ctor: str | None           # constructor expression (kinds 'module' and 'param')
    call: str | None           # forward template with {0}, {1}, ... and {self} for the attribute
    inputs: list[int]          # -1 = the scope's input, else an index into the children
    guard: str | None = None
    ctor_lines: list[str] = field(default_factory=list)  # multi-line constructor (nn.Sequential)
    else_inputs: list[int] | None = None  # what the child stands for when its guard is false
    close: str = ")"           # closes a multi-line constructor
    aux: bool = False          # a training-time output (run in training mode, returned after the main one)
    #: a numbered sequence with optional layers, built by appending (``nn.Sequential`` + ``append``)
    items: list["Child"] | None = None

    def key(self) -> tuple:
        items = tuple(c.key() for c in self.items) if self.items is not None else None
        return (self.local, self.kind, self.ctor, tuple(self.ctor_lines), self.call, tuple(self.inputs),
                self.guard, items)

    def full_ctor(self) -> str:
        """The constructor as one expression (the formatter wraps it when it is long)."""
        if self.ctor_lines:
            return self.ctor + ", ".join(self.ctor_lines) + self.close
        return self.ctor or ""

    def texts(self) -> list[str]:
        """Every piece of Python this child contributes (to find the names it reads)."""
        out = [self.ctor or "", *self.ctor_lines, self.call or "", self.guard or ""]
        for it in self.items or []:
            out += it.texts()
        return out


@dataclass
class Scope:
    path: str
    kind: str                  # network | block | group
    children: list[Child]
    output: int
    params: list[tuple[str, str, str | None]] = field(default_factory=list)  # (name, type, default)
    prelude: list[str] = field(default_factory=list)  # e.g. 'if width is None: ...'
    #: values from outside the scope that its layers read (from: across a group): extra forward inputs
    extern: list[str] = field(default_factory=list)
    numbered: bool = False     # a sequence emitted as a class: children are self["0"], self["1"], ...
    sequential: bool = False   # a sequential: block whose layers chain: an nn.Sequential subclass

    def key(self) -> tuple:
        return (tuple(c.key() for c in self.children), self.output, tuple(self.params), tuple(self.prelude),
                len(self.extern), self.numbered, self.sequential)


class Generator:
    def __init__(self, net: Network, graph: Graph) -> None:
        self.net = net
        self.g = graph
        self.instance_class: dict[str, str] = {}
        self.classes: list[tuple[str, Scope, str]] = []  # (class name, scope, doc)
        self.used_names: set[str] = set()
        self.module_classes: dict[str, set[str]] = {}
        self.uses_ordered_dict = False
        self.class_params: dict[str, list] = {}  # class -> its __init__ parameters
        self.scope_extern: dict[str, list[str]] = {}  # class-form group/sequence -> outer values it reads
        self.seq_class: set[str] = set()  # numbered sequences emitted as classes
        self.net_class = ""
        self.dense_class: str | None = None
        #: the ops' helper definitions this file uses, in order of first use: name in the registry ->
        #: (name in this file, definition)
        self.helpers: dict[str, tuple[str, Helper]] = {}
        self.outputs_class = ""  # the NamedTuple of the training-mode outputs, when there are aux: layers
        # the module tree, indexed once: direct children, all nodes and first position per path
        self._children: dict[str, list[tuple[str, Any]]] = {}
        self._under: dict[str, list[str]] = {}
        self._first: dict[str, int] = {}
        seen: set[str] = set()
        for i, n in enumerate(graph.nodes()):
            if n.op == "input":
                continue
            parts = n.id.split(".")
            for k in range(len(parts)):
                prefix = ".".join(parts[:k])
                self._under.setdefault(prefix, []).append(n.id)
                self._first.setdefault(prefix, i)
                if k == len(parts) - 1:
                    self._children.setdefault(prefix, []).append(("node", n))
                else:
                    sub = ".".join(parts[:k + 1])
                    if sub not in seen:
                        seen.add(sub)
                        self._children.setdefault(prefix, []).append(("module", graph.modules[sub]))

    # ---------------------------------------------------------------------------- scopes
    def members(self, path: str) -> list[tuple[str, Any]]:
        """Direct children of module ``path`` in order: ('node', Node) or ('module', ModuleInfo)."""
        return self._children.get(path, [])

    def enclosing_block(self, path: str) -> str | None:
        """The nearest block instance that holds ``path`` (None at the network level)."""
        parts = path.split(".")
        for k in range(len(parts) - 1, 0, -1):
            q = ".".join(parts[:k])
            if q in self.g.modules and self.g.modules[q].kind == "block":
                return q
        return None

    def kind_of(self, path: str) -> str:
        """What instances share one class: a block's name; a group or sequence by its place in its
        block (``B/f``: every instance of block B has one) or in the network."""
        info = self.g.modules[path]
        if info.kind == "block":
            return "block:" + str(info.block)
        blk = self.enclosing_block(path)
        rel = path[len(blk) + 1:] if blk else path
        where = f"{self.g.modules[blk].block}/" if blk else ""
        return f"{info.kind}:{where}{rel}"

    def scope(self, path: str, in_seq: bool = False, numbered: bool = False) -> tuple[list[Child], int, list[str]]:
        """The children of module ``path``, wired by index (-1: the scope's input; -2, -3, ...: the
        outer values it reads, returned as the third item), and its output."""
        info = self.g.modules[path]
        members = self.members(path)
        owner: dict[str, int] = {}
        children: list[Child] = []
        extern: list[str] = []
        # guards are written relative to the scope: a block restarts them, a group inherits its own
        outer = () if info.kind in ("block", "network") else tuple(info.guards)
        for idx, (kind, m) in enumerate(members):
            if kind == "node":
                owner[m.id] = idx
            else:
                for nid in self._under.get(m.path, []):
                    owner[nid] = idx

        def ref(nid: str, who: Any) -> int:
            if nid == info.input:
                return -1
            if nid not in owner:
                if info.kind in ("group", "seq", "dense"):
                    if nid not in extern:
                        extern.append(nid)
                    return -2 - extern.index(nid)
                raise _err(f"'{getattr(who, 'id', getattr(who, 'path', '?'))}' reads '{nid}' from outside "
                           f"its block", who)
            j = owner[nid]
            out_id = members[j][1].id if members[j][0] == "node" else members[j][1].output
            if out_id != nid:
                raise _err(f"'{nid}' is read from outside the module that holds it", who)
            return j

        for kind, m in members:
            if kind == "node":
                children.append(self.node_child(m, [ref(i, m) for i in m.inputs], in_seq, outer, numbered))
            else:
                ins = [ref(m.input, m)] + [ref(e, m) for e in self.scope_extern.get(m.path, [])]
                children.append(self.module_child(m, ins, outer))
            if path == "" and (m.id if kind == "node" else m.path) in self.g.aux:
                children[-1].aux = True
        out = ref(info.output, info) if info.output else -1
        return children, out, extern

    def node_child(self, n: Any, inputs: list[int], in_seq: bool, outer: tuple = (),
                   numbered: bool = False) -> Child:
        opdef = REGISTRY[n.op]
        guard = _join_guards(_relative(n.guards, outer))
        if n.skipped:
            return Child(n.local, "skip", None, None, inputs, guard)
        emit = self.emit(n)
        counts = opdef.count(n.attrs, n.in_shapes, n.shape)
        if emit.owns_attribute or emit.param is not None:
            # an attribute with a forward of its own: a parameter tensor, or a module called another way
            if in_seq or (numbered and n.local.isdigit()):
                raise _err(f"'{n.op}' cannot sit in a numbered sequence: its forward is not module(x)", n,
                           "give the sequence's layers names (a mapping) instead of a list")
            _check_attr_name(n.local, n)
            if emit.param is not None:
                return Child(n.local, "param", emit.param, emit.call, inputs, guard)
            self.module_classes.setdefault(n.op, set()).add(emit.module.split("(")[0])
            return Child(n.local, "module", emit.module, emit.call, inputs, guard)
        functional = emit.call is not None and counts.params == 0 and (emit.module is None or not in_seq)
        if functional and not in_seq and emit.module is not None and n.op not in ("flatten", "identity"):
            functional = False
        if functional:
            return Child(n.local, "call", None, emit.call, inputs, guard)
        if emit.module is None:
            raise _err(f"'{n.op}' has no module form, so it cannot sit in a numbered sequence", n,
                       "give the sequence's layers names (a mapping) instead of a list")
        if not in_seq and not (numbered and n.local.isdigit()):
            _check_attr_name(n.local, n)
        cls = emit.module.split("(")[0]
        self.module_classes.setdefault(n.op, set()).add(cls)
        return Child(n.local, "module", emit.module, None, inputs, guard)

    def module_child(self, info: Any, inputs: list[int], outer: tuple = ()) -> Child:
        local = info.path.rsplit(".", 1)[-1]
        guard = _join_guards(_relative(info.guards, outer))
        if info.kind == "block":
            cls = self.instance_class[info.path]
            return Child(local, "module", self.block_ctor(info, cls), None, inputs, guard)
        if info.kind == "dense":
            return self.dense_child(info, local, inputs, guard)
        if info.kind == "seq" and info.path not in self.seq_class:
            return self.seq_child(info, local, inputs, guard)
        # a named group, or a sequence that is not a chain: a class of its own, taking the values its
        # layers read (the enclosing block's parameters, num_classes)
        cls = self.instance_class[info.path]
        args = ", ".join(p for p, _, _ in self.class_params.get(cls, []))
        return Child(local, "module", f"{cls}({args})", None, inputs, guard)

    def seq_form(self, path: str) -> str:
        """How a numbered sequence is written: 'inline' (``nn.Sequential(a, b)``), 'append' (optional
        layers: ``nn.Sequential()`` then ``append`` under their conditions), or 'class' (its layers
        branch or read other layers: a class whose forward wires them)."""
        if not self._seq_chain_ok(path):
            return "class"
        items, out, extern = self.scope(path, in_seq=True)
        if not _is_chain(items, out, extern):
            return "class"
        if any(it.guard or it.kind == "skip" for it in items):
            return "append"
        return "inline"

    def _seq_chain_ok(self, path: str) -> bool:
        """Can the sequence's layers be modules at all (no parameter tensors, no merges)?"""
        for kind, m in self.members(path):
            if kind == "node" and not m.skipped:
                e = REGISTRY[m.op].emit(m.sym_attrs, m.sym_in, m.shape)
                if e.owns_attribute or e.param is not None or e.module is None:
                    return False
        return True

    def seq_child(self, info: Any, local: str, inputs: list[int], guard: str | None) -> Child:
        """A numbered sequence as an ``nn.Sequential`` expression, or built by appending when some of
        its layers are optional (they take an index only when present, as in the IR)."""
        items, out, _ = self.scope(info.path, in_seq=True)
        if any(it.guard or it.kind == "skip" for it in items):
            return Child(local, "module", None, None, inputs, guard, items=items)
        if any(it.local != str(j) for j, it in enumerate(items)):  # repeat: with names:
            return self.named_seq_child(local, items, inputs, guard)
        lines = _compress([it.full_ctor() for it in items])
        if len(lines) <= 2 and sum(len(s) for s in lines) < 60:
            ctor = "nn.Sequential(" + ", ".join(lines) + ")"
            return Child(local, "module", ctor, None, inputs, guard)
        return Child(local, "module", "nn.Sequential(", None, inputs, guard, lines)

    def dense_child(self, info: Any, local: str, inputs: list[int], guard: str | None) -> Child:
        """A ``dense:`` module: the shared ``Dense`` container (a forward that keeps the list of
        features) holding the layers under their spec names, written as one comprehension when the
        layers' constructors differ only by numbers that grow by a fixed step."""
        by_local = {m.local if kind == "node" else m.path.rsplit(".", 1)[-1]: (kind, m)
                    for kind, m in self.members(info.path)}
        names: list[str] = info.args["layers"]
        ctors: list[str] = []
        outer = tuple(info.guards)
        for lname in names:
            kind, m = by_local[lname]
            c = self.node_child(m, [-1], True, outer) if kind == "node" else self.module_child(m, [-1], outer)
            if c.kind != "module" or c.guard or c.items is not None or len(c.inputs) != 1:
                raise _err(f"the layers of the dense block '{info.path}' must be modules without when: "
                           f"that read only their input", info)
            ctors.append(c.full_ctor())
        cls = self.dense_helper()
        count = _expr(info.args["count"])
        key, layer = _progression(names, names=True), self.dense_loop_ctor(info, by_local)
        if layer is None:
            count, layer = str(len(names)), _progression(ctors)
        if key is not None and layer is not None:
            comp = f"{{{key}: {layer} for i in range({count})}}"
            if len(comp) + len(local) + len(cls) < 76:
                return Child(local, "module", f"{cls}({comp})", None, inputs, guard)
            return Child(local, "module", f"{cls}(", None, inputs, guard, [comp])
        lines = [f"\"{n_}\": {c}" for n_, c in zip(names, ctors)]  # names are identifiers or digits
        return Child(local, "module", f"{cls}({{", None, inputs, guard, lines, close="})")

    def dense_loop_ctor(self, info: Any, by_local: dict[str, tuple[str, Any]]) -> str | None:
        """The one constructor, in ``i``, of every layer of a dense block whose layers are blocks or
        ops that each add the same channels (``DenseLayer(in_channels + i * k)``), or None."""
        sym_in = info.args.get("sym_in")
        if not sym_in:
            return None
        texts = set()
        for lname, cin in zip(info.args["layers"], sym_in):
            kind, m = by_local[lname]
            if kind == "node":
                c = self.node_child(m.model_copy(update={"sym_in": [(cin,) + tuple(m.sym_in[0][1:])]}), [-1], True)
            elif m.kind == "block":
                c = Child(lname, "module", self.block_ctor(m.model_copy(update={"sym_in": cin}),
                                                           self.instance_class[m.path]), None, [-1])
            else:
                return None
            if c.kind != "module" or c.ctor_lines:
                return None
            texts.add(c.ctor)
        return texts.pop() if len(texts) == 1 else None

    def named_seq_child(self, local: str, items: list[Child], inputs: list[int], guard: str | None) -> Child:
        """A repetition whose items ``names:`` named: ``nn.Sequential(OrderedDict(...))``, one
        generator expression when the names and constructors follow the index."""
        self.uses_ordered_dict = True
        names = [it.local for it in items]
        ctors = [it.full_ctor() for it in items]
        key, layer = _progression(names, names=True), _progression(ctors)
        if key is not None and layer is not None and len(items) > 2:
            gen = f"({key}, {layer}) for i in range({len(items)})"
            if len(gen) + len(local) < 56:
                return Child(local, "module", f"nn.Sequential(OrderedDict({gen}))", None, inputs, guard)
            return Child(local, "module", "nn.Sequential(", None, inputs, guard, [f"OrderedDict({gen})"])
        lines = [f"(\"{n}\", {c})" for n, c in zip(names, ctors)]  # identifiers
        return Child(local, "module", "nn.Sequential(OrderedDict([", None, inputs, guard, lines, close="]))")

    def emit(self, n: Any) -> Emit:
        """The op's emission for node ``n``, its helper definitions taken into the file (renamed
        where the file already uses a helper's name)."""
        emit = REGISTRY[n.op].emit(n.sym_attrs, n.sym_in, n.shape)
        for h in emit.helpers:
            name = self.helper(h)
            if name != h.name:
                emit = dataclasses.replace(emit, **{f: _rename(getattr(emit, f), h.name, name) for f in
                                                    ("module", "call", "param") if getattr(emit, f)})
        return emit

    def helper(self, h: Helper) -> str:
        """The name of helper ``h`` in this file, chosen on first use: it yields to the classes the
        spec's blocks and groups are named after (whenever they are named), and to the names
        generated code binds (a block's or the network's parameters) or reads."""
        if h.name not in self.helpers:
            spec = {self.class_base(self.kind_of(p)) for p, m in self.g.modules.items()
                    if p and m.kind in ("block", "group", "seq")}
            bound = {p for blk in self.net.blocks.values() for p, _, _ in blk.params} | set(self.net.env)
            self.helpers[h.name] = (self.fresh_class(h.name, avoid=spec | bound | GENERATED_PARAMS), h)
        elif self.helpers[h.name][1] != h:
            raise ValueError(f"two different helper definitions are named '{h.name}'")
        return self.helpers[h.name][0]

    def dense_helper(self) -> str:
        """The ``Dense`` container class, emitted once per file when a spec uses ``dense:``."""
        if self.dense_class is None:
            self.dense_class = self.fresh_class("Dense")
        return self.dense_class

    def block_ctor(self, info: Any, cls: str) -> str:
        blk = self.net.blocks[info.block]
        args = [_expr(info.sym_in if info.sym_in is not None else 0)]
        positional = True
        for i, (p, typ, default) in enumerate(blk.params):
            v = info.sym_args.get(p)
            if p not in info.given or not _writable(v):
                positional = False  # a layer held in a parameter shapes the class, it is not an argument
                continue
            if default is not _required() and not isinstance(default, str) and plain(v) == default and not isinstance(v, Sym):
                positional = False
                continue
            if typ == "pair" and isinstance(v, list):
                v = tuple(v)  # a kernel [1, 7] reads (1, 7), as in PyTorch code
            if positional and default is _required():
                args.append(_expr(v))  # required parameters read best positionally: Bottleneck(256, 64)
            else:
                positional = False
                args.append(f"{p}={_expr(v)}")
        # what the block reads besides its parameters: num_classes, and its input's size
        record = in_record(self.g.node(info.input).shape)
        for p, _, _ in self.class_params.get(cls, []):
            if p == "num_classes" and not any(p == q for q, _, _ in blk.params):
                args.append("num_classes=num_classes")
            elif p in IN_FIELDS.values() and p != "in_channels":
                field_ = next(f for f, v in IN_FIELDS.items() if v == p)
                args.append(f"{p}={_expr(record[field_])}")
        return f"{cls}({', '.join(args)})"

    # ----------------------------------------------------------------------------- classes
    def build(self) -> None:
        mods = sorted((p for p, m in self.g.modules.items() if p and m.kind in ("block", "group", "seq")),
                      key=lambda p: (-p.count("."), self._order(p)))
        by_kind: dict[str, list[str]] = {}
        for p in mods:
            by_kind.setdefault(self.kind_of(p), []).append(p)
        # an instance renders its children by their class names, so every kind nested in *any*
        # instance of a kind is named before it (an instance that skipped an optional group can be
        # the deepest one of its kind); otherwise deepest first, in spec order
        inner: dict[str, set[str]] = {k: set() for k in by_kind}
        for q in mods:
            parts = q.split(".")
            for k in range(1, len(parts)):
                p = ".".join(parts[:k])
                if p in self.g.modules and self.g.modules[p].kind in ("block", "group", "seq"):
                    inner[self.kind_of(p)].add(self.kind_of(q))
        first = {k: i for i, k in reversed(list(enumerate(self.kind_of(p) for p in mods)))}
        done: set[str] = set()

        def name(kind: str) -> None:
            if kind in done:
                return
            done.add(kind)
            for k in sorted(inner[kind], key=first.__getitem__):
                name(k)
            if kind.startswith("seq:"):
                if "class" not in {self.seq_form(q) for q in by_kind[kind]}:
                    return  # written in place: nn.Sequential(...)
                self.seq_class.update(by_kind[kind])
            self.unify(kind, by_kind[kind])
        for kind in sorted(by_kind, key=first.__getitem__):
            name(kind)
        children, out, _ = self.scope("")
        net_scope = Scope("", "network", children, out,
                          params=[("num_classes", "int", repr(self.net.num_classes))])
        self.network = net_scope

    def _order(self, path: str) -> int:
        return self._first.get(path, 0)

    def unify(self, kind: str, paths: list[str]) -> None:
        scopes: list[Scope] = []
        what, _, where = kind.partition(":")
        sequential = what == "block" and self.net.blocks[where].sequential
        for p in paths:
            info = self.g.modules[p]
            numbered = what == "seq" or sequential
            children, out, extern = self.scope(p, numbered=numbered)
            chain = sequential and _is_chain(children, out, extern)
            if numbered and not chain and any(c.guard or c.kind == "skip" for c in children):
                raise _err(f"a when: on a layer of the numbered list '{p}', whose layers branch or read "
                           f"other layers, cannot be generated", info,
                           "name the list's layers (a mapping) when it has optional layers and branches")
            sc = Scope(p, "block" if what == "block" else "group", children, out, extern=extern,
                       numbered=numbered, sequential=chain)
            if what == "block":
                sc.params, sc.prelude = self.block_signature(info, children)
            else:
                sc.params = self.free_params(p, children)
            scopes.append(sc)
        groups: list[tuple[Scope, list[str]]] = []
        for sc in scopes:
            for j, (merged, members) in enumerate(groups):
                m = _merge(merged, sc)
                if m is not None:
                    groups[j] = (m, members + [sc.path])
                    break
            else:
                groups.append((sc, [sc.path]))
        base = self.class_base(kind)
        for k, (sc, members) in enumerate(groups):
            name = self.fresh_class(base if k == 0 else f"{base}{k + 1}")
            for p in members:
                self.instance_class[p] = name
                self.scope_extern[p] = next(s.extern for s in scopes if s.path == p)
            self.class_params[name] = sc.params
            if what == "group":
                doc = f"The '{where.replace('/', '.')}' group of layers."
            elif what == "seq":
                doc = f"The '{where.replace('/', '.')}' sequence of layers."
            else:
                bdoc = self.net.doc.blocks[where].doc if where in self.net.doc.blocks else None
                doc = _safe_doc(bdoc) if bdoc else f"The '{where}' block of the spec."
                if len(groups) > 1:
                    doc += f" (Variant {k + 1} of {len(groups)}: its instances differ in structure.)"
            self.classes.append((name, sc, doc))

    @staticmethod
    def class_base(kind: str) -> str:
        """The class name the instances of ``kind`` take (``Bottleneck``; variants add 2, 3, ...)."""
        return class_name(kind.partition(":")[2].replace("/", "_").replace(".", "_"))

    def fresh_class(self, base: str, avoid: frozenset[str] | set[str] = frozenset()) -> str:
        name, n = base, 1
        while name in self.used_names or keyword.iskeyword(name) or hasattr(builtins, name) \
                or name in RESERVED or name == self.net_class or name in avoid:
            n += 1
            name = f"{base}{n}"
        self.used_names.add(name)
        return name

    def outer_vars(self, path: str) -> dict[str, str]:
        """The names a group or sequence at ``path`` may read from its surroundings, with their types:
        the enclosing block's input size, parameters and network parameters; num_classes."""
        out: dict[str, str] = {}
        blk = self.enclosing_block(path)
        if blk is not None:
            info = self.g.modules[blk]
            out.update({v: "int" for f, v in IN_FIELDS.items() if f != "shape"})
            out["in_shape"] = "list"
            for p, typ, _ in self.net.blocks[info.block].params:
                out[p] = _type_of(typ, info.sym_args.get(p))
            for k, v in self.net.env.items():
                out.setdefault(k, _type_of(None, v))
        out["num_classes"] = "int"
        return out

    def free_params(self, path: str, children: list[Child]) -> list[tuple[str, str, str | None]]:
        """A group class's parameters: the outer names its layers read, in a fixed order."""
        used = _names_in([t for c in children for t in c.texts()])
        return [(k, t, None) for k, t in self.outer_vars(path).items() if k in used and k != "column"]

    def block_signature(self, info: Any, children: list[Child]) -> tuple[list, list[str]]:
        blk = self.net.blocks[info.block]
        required: list[tuple[str, str, str | None]] = [("in_channels", "int", None)]
        optional: list[tuple[str, str, str | None]] = []
        prelude: list[str] = []
        for p, typ, default in blk.params:
            if p in GENERATED_PARAMS or keyword.iskeyword(p):
                raise _err(f"block parameter '{p}' of '{blk.name}' clashes with a name generated code uses",
                           info, "rename the parameter")
            v = info.sym_args.get(p)
            if not _writable(v):
                continue  # a layer held in a parameter: it shapes the class, it is not an argument
            t = _type_of(typ, v)
            if default is _required():
                required.append((p, t, None))
            elif isinstance(default, str) and _is_expr_default(default):
                optional.append((p, f"{t} | None", "None"))
                try:
                    text = to_python(parse(default[1:] if default.startswith("$") else default),
                                     _ident, lambda o, f: "in_channels")
                except ExprError as e:  # a rule of the language (as in a when:), found where it is written
                    err = _err(f"the default of parameter '{p}' of block '{blk.name}': {e.message}", info, e.hint)
                    err.code = "expression"
                    raise err from None
                prelude.append(f"if {p} is None:")
                prelude.append(f"    {p} = {text}")
            else:
                optional.append((p, t, _expr(_constant_default(default))))
        params = required + optional
        used = _names_in([t for c in children for t in c.texts()] + prelude)
        declared = {p for p, _, _ in params}
        for f, name in IN_FIELDS.items():
            if name in used and name not in declared:
                params.append((name, "list" if f == "shape" else "int", None))
                declared.add(name)
        for k, v in self.net.env.items():
            if k in declared or k in ("column",) or k not in used:
                continue
            if k == "num_classes":
                params.append((k, "int", repr(self.net.num_classes)))
            else:
                params.append((k, _type_of(None, v), _expr(v)))
        # parameters without a default come first (Python's rule); callers pass the rest by keyword
        params = [p for p in params if p[2] is None] + [p for p in params if p[2] is not None]
        return params, prelude

    # ----------------------------------------------------------------------------- render
    def render_scope(self, sc: Scope) -> tuple[list[str], list[str]]:
        """__init__ body and forward body lines of a scope."""
        init: list[str] = list(sc.prelude)
        attrs = {c.local for c in sc.children if c.kind in ("module", "param")}
        flags: dict[str, str] = {}
        for c in sc.children:
            target = _attr(c.local, sc.numbered)
            if c.kind in ("module", "param"):
                if c.items is not None:
                    ctor = _append_lines(target, c.items)
                elif c.ctor_lines:
                    ctor = _assign(f"{target} = ", [c.ctor] + [f"    {l}," for l in c.ctor_lines] + [c.close])
                else:
                    ctor = [f"{target} = {c.ctor}"]
                if c.guard:
                    init.append(f"{target} = None")
                    init.append(f"if {c.guard}:")
                    init += ["    " + l for l in ctor]
                else:
                    init += ctor
            elif c.kind == "call" and c.guard:
                flags[c.local] = _fresh_attr(f"use_{c.local}", attrs)
                init.append(f"self.{flags[c.local]} = {c.guard}")
        fwd = self.forward_lines(sc, flags)
        # functional ops may read constructor arguments (x[:, :, ::stride]): keep them on self
        for p, _, _ in sc.params:
            rx = re.compile(rf"(?<![\w.\"']){re.escape(p)}(?![\w\"'])")
            if any(rx.search(l) for l in fwd):
                name = _fresh_attr(p, attrs)
                init.append(f"self.{name} = {p}")
                fwd = [rx.sub(f"self.{name}", l) for l in fwd]
        return init, fwd

    def forward_lines(self, sc: Scope, flags: dict[str, str] | None = None) -> list[str]:
        flags = flags or {}
        ns = _Namespace()
        ns.take("x")
        ns.take("self")
        for p, _, _ in sc.params:
            ns.take(p)
        for name, _ in self.helpers.values():  # a helper function called in forward
            ns.take(name)
        remaining: dict[int, int] = {}
        for c in sc.children:
            for i in c.inputs + (c.else_inputs or []):
                remaining[i] = remaining.get(i, 0) + 1
        remaining[sc.output] = remaining.get(sc.output, 0) + 1
        aux = [j for j, c in enumerate(sc.children) if c.aux]
        for j in aux:  # returned at the end, in training mode
            remaining[j] = remaining.get(j, 0) + 1
        var: dict[int, str] = {-1: "x"}
        for k, nid in enumerate(sc.extern):
            var[-2 - k] = ns.create(nid.rsplit(".", 1)[-1])
        lines: list[str] = []
        for j, c in enumerate(sc.children):
            ins = [var[i] for i in c.inputs]
            alt = var[c.else_inputs[0]] if c.else_inputs else None
            for i in c.inputs + (c.else_inputs or []):
                remaining[i] -= 1
            dead = [k for k, i in enumerate(c.inputs) if remaining[i] == 0 and i != sc.output
                    and c.inputs.count(i) == 1]
            me = _attr(c.local, sc.numbered)
            if c.aux:
                out = var[j] = ns.create(c.local)
                expr = f"{me}({', '.join(ins)})" if c.kind == "module" else c.call.format(*ins)
                lines.append(f"{out} = {expr} if self.training else None")
                continue
            if dead:
                out = ins[dead[0]]
            else:
                out = ns.create("out" if "out" not in ns.taken else c.local)
            var[j] = out
            if c.kind == "skip":
                if out != ins[0]:
                    lines.append(f"{out} = {ins[0]}")
                continue
            if c.kind in ("module", "param"):
                if c.call is not None:
                    expr = c.call.format(*ins, self=me)
                else:
                    expr = f"{me}({', '.join(ins)})"
                if c.guard:
                    other = alt or ins[0]
                    if out == other:
                        lines.append(f"if {me} is not None:")
                        lines.append(f"    {out} = {expr}")
                    else:
                        lines.append(f"{out} = {expr} if {me} is not None else {other}")
                    continue
            else:
                expr = c.call.format(*ins)
                if c.guard:
                    lines.append(f"{out} = {expr} if self.{flags[c.local]} else {alt or ins[0]}")
                    continue
            lines.append(f"{out} = {expr}")
        if aux:  # training mode: the main output, then the aux outputs from the deepest to the shallowest
            outs = ", ".join([var[sc.output]] + [var[j] for j in reversed(aux)])
            lines.append("if self.training:")
            lines.append(f"    return {self.outputs_class}({outs})")
        lines.append(f"return {var[sc.output]}")
        return lines

    def forward_signature(self, sc: Scope) -> str:
        ns = _Namespace()
        ns.take("x")
        ns.take("self")
        for p, _, _ in sc.params:
            ns.take(p)
        for name, _ in self.helpers.values():
            ns.take(name)
        extra = "".join(f", {ns.create(nid.rsplit('.', 1)[-1])}: Tensor" for nid in sc.extern)
        return f"def forward(self, x: Tensor{extra}) -> Tensor:"


#: parameters the generated classes declare themselves
GENERATED_PARAMS = frozenset({"self", "in_channels", "in_height", "in_width", "in_tokens", "in_rank",
                              "in_shape", "make_divisible", "math"})


def _rename(text: str, old: str, new: str) -> str:
    """``text`` with helper ``old`` renamed ``new`` where it is defined or called (``old(``, not an
    attribute): a block parameter of the same name, an argument, stays as it is."""
    return text if old == new else re.sub(rf"(?<![\w.]){re.escape(old)}(?=\()", new, text)


def _relative(guards: tuple, outer: tuple) -> tuple:
    """The conditions of a layer inside a scope that already holds under ``outer``."""
    guards = tuple(guards)
    return guards[len(outer):] if outer and guards[:len(outer)] == outer else guards


def _is_chain(items: list[Child], out: int, extern: list[str]) -> bool:
    """Do the layers form a chain of modules, each reading the one before (an nn.Sequential)?"""
    return not extern and out == len(items) - 1 and all(
        it.inputs == [j - 1] and it.kind in ("module", "skip") and not it.else_inputs
        for j, it in enumerate(items))


def _sequential_init(sc: Scope) -> tuple[list[str], list[str]]:
    """A sequential: block as an ``nn.Sequential`` subclass: the ``super().__init__(...)`` call with
    its layers (after the prelude), or, with optional layers, ``super().__init__()`` and ``append``."""
    items = sc.children
    head = list(sc.prelude)
    if any(it.guard or it.kind == "skip" for it in items):
        return head + ["super().__init__()"], _append_lines("self", items)[1:]
    lines = [it.full_ctor() for it in items]
    return head + ["super().__init__("] + [f"    {l}," for l in lines] + [")"], []


def _attr(local: str, numbered: bool) -> str:
    """How a class reaches its child: ``self.conv1``; ``self["0"]`` in a numbered class."""
    return f'self["{local}"]' if numbered else f"self.{local}"


def _fresh_attr(base: str, taken: set[str]) -> str:
    """An attribute the generator adds (a flag, a stored argument) yields to the spec's names."""
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _append_lines(target: str, items: list[Child]) -> list[str]:
    """A numbered sequence whose optional layers take an index only when present."""
    lines = [f"{target} = nn.Sequential()"]
    for it in items:
        if it.kind == "skip":
            continue
        add = f"{target}.append({it.full_ctor()})" if it.local.isdigit() else \
            f"{target}.add_module({it.local!r}, {it.full_ctor()})"
        if it.guard:
            lines += [f"if {it.guard}:", f"    {add}"]
        else:
            lines.append(add)
    return lines


_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?!\w)(?!\s*=(?!=))")


def _names_in(texts: list[str]) -> set[str]:
    """The variable names Python code reads (not attributes, keyword-argument names or strings)."""
    out: set[str] = set()
    for t in texts:
        out.update(_NAME.findall(_STRING.sub("''", t)))
    return out


def _writable(v: Any) -> bool:
    """Can ``v`` be a constructor argument (a number, a word, a list of numbers), rather than a
    layer held in a parameter (``inner: [bn, relu]``), which shapes the class instead?"""
    if isinstance(v, (list, tuple)):
        return all(_writable(i) and not isinstance(i, str) for i in v)
    return v is None or isinstance(v, (bool, int, float, str))


def _join_guards(guards: tuple[str, ...]) -> str | None:
    if len(guards) <= 1:
        return guards[0] if guards else None
    return " and ".join(f"({g})" if " or " in g else g for g in guards)


def _assign(prefix: str, ctor: list[str]) -> list[str]:
    if len(ctor) == 1:
        return [prefix + ctor[0]]
    indent = " " * (len(prefix) - len(prefix.lstrip()))
    return [prefix + ctor[0]] + [indent + l for l in ctor[1:]]


def _compress(ctors: list[str]) -> list[str]:
    """Runs of identical constructors become ``*(Block(...) for _ in range(n))``."""
    out: list[str] = []
    i = 0
    while i < len(ctors):
        j = i
        while j + 1 < len(ctors) and ctors[j + 1] == ctors[i]:
            j += 1
        n = j - i + 1
        if n >= 3 and not ctors[i].startswith("nn.ReLU"):
            out.append(f"*({ctors[i]} for _ in range({n}))")
        else:
            out += [ctors[i]] * n
        i = j + 1
    return out


_NUM = re.compile(r"(?<![\w.])-?\d+(?![\w.])")  # integer literals, with their sign; not 1e-05 or x1


def _progression(texts: list[str], names: bool = False) -> str | None:
    """One expression in ``i`` for ``texts[i]``, when the texts differ only in numbers that grow by
    a fixed step: ``['DenseLayer(64)', 'DenseLayer(96)']`` -> ``'DenseLayer(64 + i * 32)'``. With
    ``names``, the texts are strings and the result a string expression (``f"layer{i + 1}"``)."""
    def term(vals: list[int]) -> str | None:
        step = vals[1] - vals[0] if len(vals) > 1 else 0
        if any(v != vals[0] + k * step for k, v in enumerate(vals)):
            return None
        if step == 0:
            return str(vals[0])
        t = "i" if step == 1 else f"i * {step}"
        if vals[0] == 0:
            return t
        return f"{t} + {vals[0]}" if names else f"{vals[0]} + {t}"  # layer{i + 1}; Layer(64 + i * 32)

    if names:
        parts = [re.fullmatch(r"(.*?)(\d*)", t).groups() for t in texts]  # type: ignore[union-attr]
        if len({p for p, _ in parts}) != 1 or any(not d or (d != "0" and d.startswith("0")) for _, d in parts):
            return None
        t = term([int(d) for _, d in parts])
        if t is None:
            return None
        prefix = parts[0][0]
        if not prefix:
            return "str(i)" if t == "i" else f"str({t})"
        return f'f"{prefix}{{{t}}}"' if "{" not in prefix and "\"" not in prefix else None
    skeletons = {tuple(_NUM.split(t)) for t in texts}
    if len(skeletons) != 1:
        return None
    (skeleton,) = skeletons
    columns = list(zip(*[[int(v) for v in _NUM.findall(t)] for t in texts]))
    out = [skeleton[0]]
    for k, vals in enumerate(columns):
        t = term(list(vals))
        if t is None:
            return None
        before, after = skeleton[k].rstrip()[-1:], skeleton[k + 1].lstrip()[:1]
        if not re.fullmatch(r"-?\d+|i", t) and not (before in ("", "(", "[", "{", ",", "=", ":")
                                                     and after in ("", ")", "]", "}", ",")):
            t = f"({t})"  # a sum next to an operator: 'a - 5' -> 'a - (5 + i)'
        out += [t, skeleton[k + 1]]
    return "".join(out)


def _merge(a: Scope, b: Scope) -> Scope | None:
    """One class for two instances, if they agree up to calls one of them skipped."""
    if a.output != b.output or a.params != b.params or a.prelude != b.prelude or \
            len(a.extern) != len(b.extern) or a.numbered != b.numbered:
        return None
    if a.sequential != b.sequential:
        return None
    merge = _merge_items if a.sequential else _merge_children
    merged = merge(a.children, b.children)
    if merged is None:
        return None
    return Scope(a.path, a.kind, merged, a.output, a.params, a.prelude, a.extern, a.numbered, a.sequential)


def _merge_items(xs: list[Child], ys: list[Child]) -> list[Child] | None:
    """The layers of two instances of a sequence built by appending: an index is taken only by a
    layer that is present, so the indices themselves are not compared (only that they are indices)."""
    def anon(cs: list[Child]) -> list[Child]:
        return [dataclasses.replace(c, local="#") if c.local.isdigit() or c.kind == "skip" else c for c in cs]

    merged = _merge_children(anon(xs), anon(ys))
    if merged is None:
        return None
    return [dataclasses.replace(c, local="0") if c.local == "#" else c for c in merged]


def _merge_children(xs: list[Child], ys: list[Child]) -> list[Child] | None:
    """Children of two instances, merged: a layer one instance has and the other skipped (under the
    same condition) is kept, optional; anything else must agree exactly."""
    if len(xs) != len(ys):
        return None
    merged: list[Child] = []
    for x, y in zip(xs, ys):
        if x.key() == y.key():
            merged.append(x)
        elif x.guard and x.guard == y.guard and x.local == y.local and \
                {x.kind, y.kind} & {"skip"} and len({x.kind, y.kind}) == 2:
            present, skipped = (x, y) if y.kind == "skip" else (y, x)
            if present.else_inputs is not None and present.else_inputs != skipped.inputs:
                return None
            merged.append(dataclasses.replace(
                present, else_inputs=None if skipped.inputs == present.inputs else skipped.inputs))
        elif x.items is not None and y.items is not None and \
                dataclasses.replace(x, items=[]).key() == dataclasses.replace(y, items=[]).key():
            items = _merge_items(x.items, y.items)  # a sequence with optional layers
            if items is None:
                return None
            merged.append(dataclasses.replace(x, items=items))
        else:
            return None
    return merged


class _Namespace:
    """fx-style: legal, not a keyword or builtin, deduplicated ``name_1``."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def take(self, name: str) -> None:
        self.taken.add(name)

    def create(self, hint: str) -> str:
        base = re.sub(r"\W", "_", hint) or "v"
        if base[0].isdigit():
            base = "_" + base
        if keyword.iskeyword(base) or hasattr(builtins, base) or base in RESERVED:
            base += "_"
        name, n = base, 0
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name


def _required():
    from ..load.loader import REQUIRED
    return REQUIRED


def _is_expr_default(text: str) -> bool:
    """A parameter default that is an expression (``planes * 4``, ``$a``), not a word (``relu``:
    in params:, a bare identifier is always a word)."""
    if not text.startswith("$") and re.fullmatch(r"[A-Za-z_]\w*", text.strip()):
        return False
    try:
        e = parse(text[1:] if text.startswith("$") else text)
    except Exception:
        return False
    return bool(e.names())


def _constant_default(default: Any) -> Any:
    """A default written as an expression without names (``len([1, 2]) * 4``) is its value; a word
    (``relu``) or anything else stays as it is."""
    if not isinstance(default, str) or re.fullmatch(r"[A-Za-z_]\w*", default.strip()):
        return default
    try:
        e = parse(default)
        return e.evaluate({}) if not e.names() else default
    except Exception:  # noqa: BLE001 - not an expression: a word
        return default


def _ident(n: str) -> str:
    if n == "in":
        return "in_channels"
    return n


def _type_of(typ: str | None, v: Any) -> str:
    if typ in ("int", "float", "bool", "str"):
        return typ
    if typ == "pair":
        return "int | tuple[int, int]"
    if typ == "list":
        return "list"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "object"


def _safe_doc(text: str) -> str:
    """Spec prose for a docstring: no quotes that could close it, no backslashes."""
    text = " ".join(str(text).split())
    return text.replace("\\", "/").replace('"""', "'''").replace('"', "'")


@dataclass
class ModelSource:
    name: str
    class_name: str
    text: str
    stats: NetStats
    graph: Any = None  # the plain (numeric) lowering, reused by the training script's size bounds


def generate_model(net: Network, spec_display: str, render) -> ModelSource:
    """The Python source of the module for ``net``; ``render(template, **ctx)`` renders Jinja2."""
    graph = lower(net, symbolic=True)
    plain_graph = lower(net)
    stats = analyse(plain_graph, net.ref)
    gen = Generator(net, graph)
    gen.net_class = class_name(net.name)
    gen.used_names.add(gen.net_class)
    aux = list(graph.aux.values())
    if aux:
        for a in aux:
            if a.name == "logits" or a.name.startswith("_") or a.name in ("count", "index"):
                raise _err(f"an aux: layer cannot be called '{a.name}': it names a field of the training-mode "
                           f"outputs (a NamedTuple whose first field is 'logits')",
                           graph.modules.get(a.name) or graph.node(a.output), "rename the layer")
        gen.outputs_class = gen.fresh_class(f"{gen.net_class}Outputs")
    gen.build()
    classes = []
    if gen.dense_class is not None:
        classes.append(_dense_class(gen.dense_class))
    for name, sc, doc in gen.classes:
        if sc.sequential:
            head, init = _sequential_init(sc)
            classes.append({"name": name, "doc": doc, "signature": _signature(sc.params), "super": head,
                            "init": init, "forward": None, "base": "nn.Sequential"})
            continue
        init, fwd = gen.render_scope(sc)
        classes.append({"name": name, "doc": doc, "signature": _signature(sc.params), "init": init,
                        "forward": fwd, "base": "nn.ModuleDict" if sc.numbered else "nn.Module",
                        "forward_signature": gen.forward_signature(sc)})
    init, fwd = gen.render_scope(gen.network)
    with_tensors = {n.id for n in graph.nodes() if n.op != "input"  # modules with weights (init: layers:)
                    and REGISTRY[n.op].count(n.attrs, n.in_shapes, n.shape).params
                    and REGISTRY[n.op].emit(n.sym_attrs, n.sym_in, n.shape).param is None}
    init_lines = render_init(net, gen.module_classes, with_tensors)
    paper = net.doc.paper
    doc_lines = textwrap.wrap(f"Generated by archspec from {spec_display} — edit the spec, not this file.", 100)
    if paper:
        doc_lines += textwrap.wrap("Paper: " + _safe_doc(paper.cite())
                                   + (f" ({_safe_doc(paper.table)})" if paper.table else ""), 100)
    if net.doc.notes:
        doc_lines += [""] + textwrap.wrap(_safe_doc(net.doc.notes), 96)
    families = list(dict.fromkeys(REGISTRY[l.op].family for l in stats.layers if l.macs))
    counted = "conv/linear" if set(families) <= {"conv", "linear"} else "/".join(families)  # attention
    doc_lines += [""] + textwrap.wrap(
        f"Static analysis (MACs = multiply-accumulates of {counted} per image; params = learnable):", 100)
    doc_lines += [""]
    doc_lines += [f"    {k:<12} {v}" for k, v in _stats_rows(stats)]
    text = render(
        "model.py.j2",
        doc_lines=doc_lines,
        spec=spec_display,
        name=net.name,
        title=_safe_doc(net.doc.title or net.name),
        module_title="\n".join(textwrap.wrap(_safe_doc(net.doc.title or net.name), 97)),
        cite=_safe_doc(paper.cite()) if paper else "",
        table=_safe_doc(paper.table) if paper and paper.table else "",
        notes=_safe_doc(net.doc.notes) if net.doc.notes else "",
        stats=stats,
        stats_rows=_stats_rows(stats),
        classes=classes,
        net_class=gen.net_class,
        net_init=init,
        net_forward=fwd,
        init_lines=init_lines,
        num_classes=net.num_classes,
        uses_math=any("math." in l for c in classes for l in c["init"] + (c.get("super") or []) + (c["forward"] or [])),
        uses_make_divisible=any("make_divisible(" in l for c in classes
                                for l in c["init"] + (c.get("super") or []) + (c["forward"] or [])),
        uses_ordered_dict=gen.uses_ordered_dict,
        helpers=[_rename(h.source, h.name, name) for name, h in gen.helpers.values()],
        block_names=[name for name, _ in gen.helpers.values()] + [c["name"] for c in classes],
        outputs_class=gen.outputs_class,
        aux=[{"name": a.name, "loss_weight": a.loss_weight} for a in aux],
        aux_order=[a.name for a in reversed(aux)],
        aux_weights="{" + ", ".join(f"{a.name!r}: {a.loss_weight!r}" for a in aux).replace("'", '"') + "}",
    )
    return ModelSource(net.name, gen.net_class, wrap_long_lines(text), stats, plain_graph)


def _dense_class(name: str) -> dict[str, Any]:
    """The container of a ``dense:`` block: its layers are its children, in order."""
    return {
        "name": name,
        "doc": "Layer j reads torch.cat of the input and layers 0..j-1; returns torch.cat of all.",
        "signature": ["    def __init__(self, layers: dict[str, nn.Module]) -> None:"],
        "init": ["for name, layer in layers.items():", "    self.add_module(name, layer)"],
        "forward": ["features = [x]", "for layer in self.children():",
                    "    features.append(layer(torch.cat(features, 1)))", "return torch.cat(features, 1)"],
        "base": "nn.Module",
        "forward_signature": "def forward(self, x: Tensor) -> Tensor:",
    }


def _signature(params: list[tuple[str, str, str | None]]) -> list[str]:
    """``def __init__(self, ...)`` as lines, wrapped one parameter a line when it is long."""
    parts = [f"{p}: {t}" + (f" = {d}" if d is not None else "") for p, t, d in params]
    one = "    def __init__(self" + "".join(", " + x for x in parts) + ") -> None:"
    if len(one) <= 99:
        return [one]
    return ["    def __init__(", "        self,"] + [f"        {x}," for x in parts] + ["    ) -> None:"]


def _stats_rows(st: NetStats) -> list[tuple[str, str]]:
    return [
        ("input", " x ".join(map(str, st.input))),
        ("output", " x ".join(map(str, st.output))),
        ("params", f"{st.params:,} ({human(st.params)})"),
        ("MACs", f"{st.macs:,} ({human(st.macs)}; multiply-accumulates per image)"),
        ("activations", f"{st.activations:,} elements per image"),
    ]
