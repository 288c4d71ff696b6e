"""Lowering: a :class:`~archspec.load.Network` (layer expressions) -> a :class:`Graph`.

Lowering walks the spec top-down, expanding blocks, repeats, cells and branches, and infers every
node's shape as it goes (expressions may read the incoming shape as ``in.c``, ``in.h``, ``in.w``).

Naming, which the code generator turns into module attributes (and so into ``state_dict`` keys):

* a key names what it holds: ``conv1: {conv: ...}`` is the node ``conv1``; ``layer1: {...}`` a module;
* a list held by a key is numbered like ``nn.Sequential``: ``features: [...]`` -> ``features.0``, ...;
  so is a ``repeat``: ``layer2: {basic: ..., repeat: 4}`` -> ``layer2.0`` ... ``layer2.3``, unless it
  carries ``names:``, a pattern over ``i``: ``names: "encoder_layer_{i}"`` -> ``layers.encoder_layer_0``;
* a list no key holds (a body, a branch) names its items after their op (``conv``, ``relu_1``) unless
  they carry ``name:``;
* merges (``add``, ``concat``, ``mul``) do not open a scope: their branches' names land beside them,
  which is how torchvision names ``conv1`` ... ``downsample`` inside one block.
"""

from __future__ import annotations

import difflib
import keyword
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .._gc import paused_gc
from ..errors import Mark, SpecError, format_path
from ..limits import limits
from ..load.loader import REQUIRED, TYPES, Block, Network, pydantic_error
from ..ops import REGISTRY, OpError, Shape, channel_axis, get_op, is_channels_last, like
from ..spec.expr import ExprError, parse, to_python
from ..spec.yamlio import LocDict, LocList
from .graph import AuxOutput, Graph, ModuleInfo, Node, make_node
from .graph import _shape as _shape_field
from .sym import Sym, SymFloat, SymPair, has_sym, plain

__all__ = ["lower", "META_KEYS", "MERGES"]

#: keys of a call that are not the op: how it is named, repeated, wired and checked
META_KEYS = ("name", "names", "repeat", "first", "when", "else", "from", "expect", "splice")
#: ops that take branches as well as references
MERGES = ("add", "concat", "mul")
#: combinators that are not ops: they take a layer body and repeat: and lower to ordinary nodes
#: (``dense``: DenseNet's connectivity, see :meth:`Lowerer.dense`)
COMBINATORS: tuple[str, ...] = ("dense",)
MAX_DEPTH = 200
#: names other libraries give ops that archspec spells differently (a hint, never a guess)
OTHER_NAMES = {"swish": "silu", "hswish": "hardswish", "hard_swish": "hardswish", "hsigmoid": "hardsigmoid",
               "hard_sigmoid": "hardsigmoid", "batchnorm": "bn", "batch_norm": "bn", "batchnorm2d": "bn",
               "conv2d": "conv", "dense": "linear", "fc": "linear", "maxpool2d": "maxpool",
               "avgpool2d": "avgpool", "layer_norm": "layernorm", "ln": "layernorm", "cat": "concat",
               "relu_6": "relu6", "globalavgpool": "global_avgpool", "drop_path": "stochastic_depth",
               "window_attention": "shifted_window_attention"}
#: well-known layers that archspec writes as a block of its ops: where to find one
AS_BLOCKS = {"patch_merging": "Swin's patch merging is a block of ops: space_to_depth, layernorm, linear "
                              "(PatchMerging in specs/blocks/torchvision_swin.yaml)"}
#: well-known ops that archspec does not have: no "did you mean" (relu for elu would be another network)
NOT_OPS = frozenset("""elu selu celu prelu rrelu mish softplus softsign glu logsigmoid hardtanh tanhshrink
softshrink hardshrink threshold shuffle chunk split groupnorm group_norm instancenorm
instance_norm localnorm upsample interpolate pixel_shuffle""".split())
#: what ``in.FIELD`` is called in generated code: the block's constructor takes what its conditions read
IN_FIELDS = {"c": "in_channels", "d": "in_channels", "h": "in_height", "w": "in_width", "n": "in_tokens",
             "rank": "in_rank", "shape": "in_shape"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: a key of an nn.Sequential built from an OrderedDict (repeat: with names:): add_module takes any
#: string without a dot; archspec takes letters, digits, _ and - (torchvision RegNet's 'block1-0')
_KEY = re.compile(r"^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$")
#: attributes of torch.nn.Module: PyTorch refuses them as submodule names (``add_module`` raises
#: "attribute already exists"), so no layer may be called that
MODULE_MEMBERS = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule
half ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters
parameters register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory smart_apply
state_dict to to_empty train training type xpu zero_grad
""".split())


def in_record(shape: tuple) -> dict[str, Any]:
    """What ``in`` holds in a block body for an input of ``shape``: ``c``, ``h``, ``w`` of a map;
    ``n`` (tokens) and ``d`` (= ``c``) of a T×D sequence; ``c`` (= ``d``) of a vector; ``shape``, ``rank``."""
    rec: dict[str, Any] = {"shape": list(shape), "rank": len(shape)}
    if is_channels_last(shape):  # H×W×C (or windows G×P×C): the channels are last
        rec.update(c=shape[-1], d=shape[-1])
        if len(shape) == 3:
            rec.update(h=shape[0], w=shape[1])
    elif len(shape) == 3:
        rec.update(c=shape[0], h=shape[1], w=shape[2])
    elif len(shape) == 2:
        rec.update(n=shape[0], d=shape[1], c=shape[1])
    elif len(shape) == 1:
        rec.update(c=shape[0], d=shape[0])
    return rec


def _list_valued(opdef: Any) -> bool:
    """Is the op's only positional attribute a list (``permute``'s dims)? Then ``{op: [...]}``
    gives that list, not one argument per item."""
    if len(opdef.positional) != 1:
        return False
    field = opdef.attrs.model_fields.get(opdef.positional[0])
    return field is not None and typing.get_origin(field.annotation) is list


def _channel_axis(shape: tuple) -> int:
    """The axis ``in.c`` reads: channels of a C×H×W map or a vector, the width D of T×D tokens, the
    last axis of a channels-last map."""
    return channel_axis(shape)


@dataclass
class Frame:
    """A naming scope: the network, a block instance, a sequence or a named group."""

    path: str
    kind: str
    input: str
    parent: "Frame | None" = None
    barrier: bool = False  # a block: references do not see outside it
    names: dict[str, str] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)
    counter: int = 0
    hint_next: dict[str, int] = field(default_factory=dict)  # hint -> the next suffix to try
    numbered: bool = False  # a sequential: block: its layers are numbered like a sequence's

    def child_path(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local

    def claim(self, hint: str, explicit: bool, mark: Mark | None, spec_path: tuple) -> str:
        """The local name for a new child: the explicit name, the next index of a sequence, or an
        fx-style ``hint``, ``hint_1``, ... elsewhere."""
        if explicit:
            numbered = (self.kind in ("dense", "seq") or self.numbered) and hint.isdigit()  # names: "{i}"
            keyed = self.kind in ("dense", "seq") and not self.numbered and _KEY.match(hint)  # 'block1-0'
            if not numbered and not keyed and (not _IDENT.match(hint) or keyword.iskeyword(hint)):
                raise SpecError(f"the layer name '{_printable(hint)}' is not an identifier", mark=mark,
                                path=spec_path, code="bad_name",
                                hint="layer names become module attributes: letters, digits and _, "
                                     "not starting with a digit, not a Python keyword")
            if hint in MODULE_MEMBERS or hint.startswith("__"):
                raise SpecError(f"the layer name '{hint}' is an attribute of torch.nn.Module, which PyTorch "
                                f"does not allow as a submodule name", mark=mark, path=spec_path,
                                code="bad_name", hint=f"rename the layer (e.g. '{hint}_')")
            if hint in self.taken:
                raise SpecError(f"the name '{hint}' is used twice in the same scope", mark=mark,
                                path=spec_path, code="duplicate_name",
                                hint="names must be unique within a block or group")
            self.taken.add(hint)
            return hint
        if self.kind == "seq" or self.numbered:
            while str(self.counter) in self.taken:
                self.counter += 1
            name = str(self.counter)
            self.counter += 1
            self.taken.add(name)
            return name
        # the smallest free suffix only grows (names are never released), so each hint resumes where
        # it stopped: n unnamed relus cost O(n), not O(n²)
        n = self.hint_next.get(hint, 0)
        name = hint if n == 0 else f"{hint}_{n}"
        while name in self.taken:
            n += 1
            name = f"{hint}_{n}"
        self.hint_next[hint] = n
        self.taken.add(name)
        return name

    def lookup(self, ref: str) -> str | None:
        fr: Frame | None = self
        while fr is not None:
            if ref in fr.names:
                return fr.names[ref]
            if ref == "input":
                return fr.input
            if fr.barrier:
                return None
            fr = fr.parent
        return None

    def is_pending(self, ref: str) -> bool:
        fr: Frame | None = self
        while fr is not None:
            if ref in fr.pending:
                return True
            if fr.barrier:
                return False
            fr = fr.parent
        return False

    def visible(self) -> list[str]:
        out: set[str] = {"input"}
        fr: Frame | None = self
        while fr is not None:
            out |= set(fr.names)
            if fr.barrier:
                break
            fr = fr.parent
        return sorted(out)


class Lowerer:
    """Walks the spec. With ``symbolic=True`` (for code generation) a block's integer parameters
    and input channels are bound as :class:`Sym` values, ``when:`` conditions inside blocks are kept
    as guards, and a call whose condition is false leaves a skipped identity node behind, so every
    instance of a block has the same structure."""

    def __init__(self, net: Network, symbolic: bool = False) -> None:
        self.net = net
        self.symbolic = symbolic
        self.graph = Graph(net.name, net.input)
        self.globals = dict(net.env)
        self.depth = 0
        self.deepest = 0  # the deepest self.depth so far (reset by Lowerer.body to measure one body)
        self.active_cells: set[str] = set()
        self.sym_shapes: dict[str, tuple] = {}
        self.guards: list[str] = []
        self.block_depth = 0
        self.limits = limits()
        self.edges = 0  # inputs over all nodes so far
        self.empty_repetitions = 0  # repeat: iterations that lowered to no node (a false when:)
        self.bodies: dict[tuple, _Body] = {}  # lowered block bodies, to replay (Lowerer.body)
        self.recordings: list[_Body] = []  # the bodies being lowered now, outermost first
        if symbolic and isinstance(self.globals.get("num_classes"), int):
            self.globals["num_classes"] = Sym(self.globals["num_classes"], "num_classes")

    def sym_globals(self) -> dict[str, Any]:
        out = {}
        for k, v in self.globals.items():
            if isinstance(v, int) and not isinstance(v, (bool, Sym)):
                out[k] = Sym(v, k)
            elif isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                out[k] = [Sym(i, f"{k}[{j}]") for j, i in enumerate(v)]
            else:
                out[k] = v
        return out

    def guard_text(self, text: str, env: dict, mark: Mark | None, path: tuple) -> str:
        def name(n: str) -> str:
            if n == "i":
                raise self.err("a when: inside a block cannot depend on the repetition index i in generated "
                               "code", mark, path, code="codegen")
            return n

        def field(obj: str, f: str) -> str:
            if obj == "in" and f in IN_FIELDS:
                return IN_FIELDS[f]  # the block's constructor takes what its conditions read
            raise self.err(f"'{obj}.{f}' is not a field of the block's input", mark, path,
                           f"in has {', '.join(sorted(IN_FIELDS))}", code="expression")
        try:
            return to_python(parse(text), name, field)
        except ExprError as e:
            raise self.err(e.message, mark, path, e.hint, "expression") from None

    def when(self, cond_value: Any, fr: Frame, env: dict, mark: Mark | None, path: tuple) -> tuple[bool, str | None]:
        """Evaluate a when: condition; in symbolic mode inside a block, also its Python text."""
        text = cond_value[1:] if isinstance(cond_value, str) and cond_value.startswith("$") else cond_value
        ok = bool(self.value(_strict_text(cond_value), env, mark, path + ("when",)))
        if self.symbolic and self.block_depth and isinstance(text, str):
            return ok, self.guard_text(text, env, mark, path + ("when",))
        return ok, None  # a literal true/false, or a condition outside blocks: decided here

    def otherwise(self, expr: dict, x: str, fr: Frame, mark: Mark | None, path: tuple) -> str:
        """What a layer whose when: is false stands for: its else: reference, or its input."""
        if "else" not in expr:
            return x
        return self.refs(expr["else"], fr, _mark_of(expr, "else", mark), path + ("else",))[0]

    def skip(self, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple, name: str | None,
             hint: str, guard: str) -> str:
        """The identity a false when: leaves behind in symbolic mode."""
        self.guards.append(guard)
        try:
            out = self.emit_node("identity", {}, [x], fr, env, mark, path, name, mark, hint=hint, skipped=True)
        finally:
            self.guards.pop()
        return out

    # ------------------------------------------------------------------------------ helpers
    def err(self, msg: str, mark: Mark | None, path: tuple, hint: str | None = None,
            code: str = "spec_error") -> SpecError:
        return SpecError(msg, mark=mark, path=path, hint=hint, code=code)

    def budget(self, nodes: int, edges: int, mark: Mark | None, path: tuple, what: str) -> None:
        """Refuse, before lowering anything, a repetition that would take the graph past the limits
        (archspec.limits): one that lowers to at least ``nodes`` nodes and ``edges`` inputs."""
        lim = self.limits
        for rec in self.recordings:  # what a replay of the block being recorded must leave room for
            rec.need_nodes = max(rec.need_nodes, len(self.graph) - rec.nodes0 + nodes)
            rec.need_edges = max(rec.need_edges, self.edges - rec.edges0 + edges)
        if nodes > lim.max_nodes - len(self.graph):
            raise self.err(f"{what} gives at least {nodes:,} more nodes, {len(self.graph) + nodes:,} in all; "
                           f"a network may have at most {lim.max_nodes:,}", mark, path,
                           "raise the limit with --max-nodes N", "limit")
        if edges > lim.max_edges - self.edges:
            raise self.err(f"{what} gives at least {edges:,} more edges (inputs of layers), {self.edges + edges:,} "
                           f"in all; a network may have at most {lim.max_edges:,}", mark, path,
                           "raise the limit with --max-edges N", "limit")

    def shape(self, nid: str) -> Shape:
        return self.graph.node(nid).shape

    def in_record(self, nid: str) -> dict[str, Any]:
        return in_record(self.shape(nid))

    def value(self, v: Any, env: dict, mark: Mark | None, path: tuple) -> Any:
        """Evaluate an attribute or argument value: strings are expressions, except bare words that
        name nothing (``same``, ``max``), which stay strings."""
        if isinstance(v, str):
            text = v[1:] if v.startswith("$") else v
            strict = v.startswith("$")
            if not strict and _IDENT.match(text.strip()) and text.strip() not in env:
                return v
            try:
                expr = parse(text)
            except ExprError as e:
                if not strict and not re.search(r"[*/+()\[\]<>=%]", text):
                    return v  # e.g. 'conv3-64': a word, not arithmetic
                raise self.err(f"bad expression '{text}': {e.message}", mark, path, e.hint, "expression") from None
            try:
                return expr.evaluate(env)
            except ExprError as e:
                raise self.err(f"in '{text}': {e.message}", mark, path, e.hint, "expression") from None
        if isinstance(v, list):
            return [self.value(x, env, _mark_of(v, i, mark), path + (i,)) for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {k: self.value(x, env, _mark_of(v, k, mark), path + (k,)) for k, x in v.items()}
        return v

    # ------------------------------------------------------------------------------- entry
    def run(self) -> Graph:
        g = self.graph
        inp = Node(id="input", op="input", attrs=REGISTRY["input"].attrs(shape=self.net.input),
                   shape=tuple(self.net.input), local="input", mark=self.net.raw.mark_of("input"),
                   spec_path="input")
        g.add(inp)
        self.sym_shapes["input"] = tuple(self.net.input)
        root = Frame(path="", kind="network", input="input", barrier=True)
        g.modules[""] = ModuleInfo(path="", kind="network", input="input")
        raw = self.net.raw
        out = self.layer(self.net.doc.network, "input", root, dict(self.globals),
                         raw.mark_of("network"), ("network",), None)
        if out == "input":
            raise self.err("the network has no layers", raw.mark_of("network"), ("network",), code="empty")
        g.output = out
        g.modules[""].output = out
        for node in g.nodes():
            if node.id in g.training_only:
                continue
            for src in node.inputs:
                if src in g.training_only:
                    aux = next(a for a in g.aux.values() if src in a.nodes)
                    raise self.err(f"'{node.id}' reads '{src}' of the auxiliary output '{aux.name}', which is "
                                   f"dropped at inference", node.mark, (node.spec_path,),
                                   "an aux: layer is a side branch: the main network cannot take input from it",
                                   "aux_ref")
        g.lint()
        return g

    # ----------------------------------------------------------------------- layer expressions
    def layer(self, expr: Any, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
              name: str | None) -> str:
        self.depth += 1
        if self.depth > self.deepest:
            self.deepest = self.depth
        try:
            if self.depth > MAX_DEPTH:
                raise self.err("layers nest too deeply (a block or cell that uses itself?)", mark, path,
                               code="recursion")
            return self._layer(expr, x, fr, env, mark, path, name)
        finally:
            self.depth -= 1

    def _layer(self, expr: Any, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
               name: str | None) -> str:
        if expr is None:
            raise self.err("empty layer", mark, path, "write an op (relu), a call ({conv: {...}}) or a list",
                           "empty")
        if isinstance(expr, bool) or isinstance(expr, float):
            raise self.err(f"expected a layer, got {expr!r}", mark, path, code="type")
        if isinstance(expr, (str, int)):
            return self.word(str(expr), x, fr, env, mark, path, name)
        if isinstance(expr, list):
            return self.sequence(expr, x, fr, env, mark, path, name)
        if isinstance(expr, dict) and isinstance(expr.get("aux"), dict) and not self.layerish(expr["aux"]):
            # aux: {loss_weight: ...} next to a call (a layer *named* aux stays a layer)
            return self.aux(expr, x, fr, env, mark, path, name)
        if isinstance(expr, dict):
            heads = [k for k in expr if k not in META_KEYS]
            if len(heads) == 1 and self.is_callable(str(heads[0])) and not self.named_list(expr, str(heads[0])):
                return self.call(expr, str(heads[0]), x, fr, env, mark, path, name)
            metas = [k for k in expr if k in META_KEYS]
            if len(heads) == 1 and expr[heads[0]] in ({}, None) and set(metas) <= {"when", "else", "name"} \
                    and self.is_cell(str(heads[0])):
                return self.cell_call(expr, str(heads[0]), x, fr, env, mark, path, name)
            if len(heads) == 1 and not self.layerish(expr[heads[0]]):
                # {cnov: {out: 16}} or {maxpoool: 2}: a call of something that does not exist
                self.unknown(str(heads[0]), _key_mark(expr, heads[0], mark), path)
            if len(heads) > 1 and not metas and not any(self.layerish(v) for v in expr.values()):
                raise self.err(f"expected a layer, got the attributes {', '.join(map(str, heads))}", mark, path,
                               "a call names its op: {conv: {out: 64, kernel: 3}}", "not_a_layer")
            if metas and len(heads) != 1:
                what = f"'{heads[0]}' and '{heads[1]}'" if len(heads) > 1 else "no op"
                raise self.err(f"a call names exactly one op or block, found {what}",
                               _key_mark(expr, metas[0], mark), path, "write a list for a sequence of layers",
                               "bad_call")
            if metas and set(metas) <= {"when", "else", "expect"}:
                # a named layer with a condition or expectations: {downsample: [...], when: ...}
                head = heads[0]
                guard = None
                if "when" in expr:
                    ok, guard = self.when(expr["when"], fr, env, _mark_of(expr, "when", mark), path)
                    if not ok:
                        y = self.otherwise(expr, x, fr, mark, path)
                        if guard is not None:
                            return self.skip(y, fr, env, mark, path, str(head), str(head), guard)
                        fr.names[str(head)] = y
                        return y
                if guard is not None:
                    self.guards.append(guard)
                try:
                    out = self.layer(expr[head], x, fr, env, _mark_of(expr, head, mark), path + (head,), str(head))
                finally:
                    if guard is not None:
                        self.guards.pop()
                if "expect" in expr:
                    self.graph.layer_expects[fr.child_path(str(head))] = (expr["expect"], expr)
                return out
            if metas:  # one head that is not callable, with call keys: an unknown op
                self.unknown(str(heads[0]), _key_mark(expr, heads[0], mark), path)
            return self.group(expr, x, fr, env, mark, path, name)
        raise self.err(f"expected a layer, got {type(expr).__name__}", mark, path, code="type")

    def aux(self, expr: dict, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
            name: str | None) -> str:
        """A training-time output: ``aux1: {InceptionAux: ..., aux: {loss_weight: 0.3}}``. The layer
        reads its input like any other, but the network goes on from that same input: the layer is a
        side branch whose output the generated module returns in training mode only."""
        amark = _key_mark(expr, "aux", mark)
        if name is None or fr.kind != "network" or self.block_depth:
            raise self.err("aux: marks a named layer of network: (not one inside a block, group or list)",
                           amark, path + ("aux",),
                           "write it at the top level of network:, e.g. aux1: {InceptionAux: ..., aux: "
                           "{loss_weight: 0.3}}", "bad_aux")
        spec = expr["aux"]
        vmark = _mark_of(expr, "aux", mark)
        if not isinstance(spec, dict):
            raise self.err(f"aux: takes a mapping such as {{loss_weight: 0.3}}, got {spec!r}", vmark,
                           path + ("aux",), code="bad_aux")
        for k in spec:
            if k != "loss_weight":
                close = difflib.get_close_matches(str(k), ["loss_weight"], n=1)
                raise self.err(f"aux: has no key '{k}'", _key_mark(spec, k, vmark), path + ("aux", k),
                               "did you mean 'loss_weight'?" if close else "aux: takes loss_weight",
                               "unknown_key")
        if "loss_weight" not in spec:
            raise self.err("aux: needs loss_weight (the weight of this output's loss in training)", vmark,
                           path + ("aux",), "e.g. aux: {loss_weight: 0.3}", "bad_aux")
        wmark = _mark_of(spec, "loss_weight", vmark)
        weight = self.value(spec["loss_weight"], env, wmark, path + ("aux", "loss_weight"))
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise self.err(f"loss_weight is a number >= 0, got {weight!r}", wmark,
                           path + ("aux", "loss_weight"), code="bad_aux")
        rest = LocDict({k: v for k, v in expr.items() if k != "aux"})
        if isinstance(expr, LocDict):
            rest.mark, rest.raw = expr.mark, {k: v for k, v in expr.raw.items() if k != "aux"}
            rest.key_marks = {k: v for k, v in expr.key_marks.items() if k != "aux"}
            rest.value_marks = {k: v for k, v in expr.value_marks.items() if k != "aux"}
        start = len(self.graph)
        out = self.layer(rest, x, fr, env, mark, path, name)
        nodes = list(self.graph._order[start:])
        if out == x or not nodes:
            return x  # a when: that was false: no output
        tap = self.graph.node(nodes[0]).inputs[0]  # x, or what from: names
        self.graph.aux[name] = AuxOutput(name=name, output=out, tap=tap, loss_weight=float(weight), nodes=nodes)
        self.graph.training_only.update(nodes)
        return x

    def layerish(self, v: Any) -> bool:
        """Could ``v`` be a layer (rather than an op's attributes)?"""
        if isinstance(v, bool) or v is None or isinstance(v, float):
            return False
        if isinstance(v, (str, int)):
            w = str(v)
            return w.startswith("$") or self.is_callable(w) or any(c.regex.match(w) for c in self.net.cells)
        if isinstance(v, list):
            return not v or any(self.layerish(i) for i in v)
        if isinstance(v, dict):
            return any(self.is_callable(str(k)) or k in META_KEYS for k in v) or any(self.layerish(i) for i in v.values())
        return False

    def is_cell(self, word: str) -> bool:
        return any(c.regex.match(word) for c in self.net.cells)

    def cell_call(self, expr: dict, word: str, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
                  name: str | None) -> str:
        """``{bottleneck-t6-c24-n2-s2: {}, when: ...}``: a table row (a cell) with a condition or a name."""
        if "name" in expr:
            nm = expr["name"]
            if not isinstance(nm, str) or not _IDENT.match(nm):
                raise self.err(f"name must be an identifier, got {nm!r}", _mark_of(expr, "name", mark),
                               path + ("name",), "use letters, digits and _", "bad_name")
            name = nm
        if "else" in expr and "when" not in expr:
            raise self.err("else: only goes with when:", _key_mark(expr, "else", mark), path, code="bad_call")
        guard = None
        if "when" in expr:
            ok, guard = self.when(expr["when"], fr, env, _mark_of(expr, "when", mark), path)
            if not ok:
                y = self.otherwise(expr, x, fr, mark, path)
                if guard is not None:
                    return self.skip(y, fr, env, mark, path, name, _hint(word), guard)
                if name is not None:
                    fr.names[name] = y
                return y
        if guard is not None:
            self.guards.append(guard)
        try:
            return self.word(word, x, fr, env, _key_mark(expr, word, mark), path + (word,), name)
        finally:
            if guard is not None:
                self.guards.pop()

    def named_list(self, expr: dict, head: str) -> bool:
        """``conv: [{...}, bn]``: a list of layers held by a key that is also an op's name
        (torchvision's ``conv`` of MobileNetV2). An op's positional arguments are numbers, words and
        pairs, never mappings, so a list holding a mapping is the named sequence."""
        v = expr[head]
        return (head in REGISTRY and head not in MERGES and head not in self.net.blocks
                and isinstance(v, list) and any(isinstance(i, dict) for i in v))

    def is_callable(self, head: str) -> bool:
        return (head.startswith("$") or head in self.net.blocks or head in MERGES
                or head in COMBINATORS or (head in REGISTRY and not REGISTRY[head].internal))

    def word(self, word: str, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
             name: str | None) -> str:
        if word.startswith("$"):
            val = self.value(word, env, mark, path)
            return self.layer(val, x, fr, env, mark, path, name)
        for cell in self.net.cells:
            if cell.pattern in self.active_cells:
                continue
            m = cell.regex.match(word)
            if m:
                cenv = {**env, **{k: int(v) for k, v in m.groupdict().items()}}
                self.active_cells.add(cell.pattern)
                try:
                    return self.layer(cell.body, x, fr, cenv, cell.mark, ("cells", cell.pattern), name)
                finally:
                    self.active_cells.discard(cell.pattern)
        if word in MERGES:
            raise self.err(f"'{word}' needs branches or inputs", mark, path,
                           f"write {{{word}: [branch, branch]}} or {{{word}: {{}}, from: [a, b]}}", "bad_call")
        if word in COMBINATORS:
            raise self.err(f"'{word}' needs a layer and repeat:", mark, path,
                           f"write {{{word}: LAYER, repeat: n}}", "bad_call")
        if self.is_callable(word) and word not in COMBINATORS:
            return self.call({word: None}, word, x, fr, env, mark, path, name)
        self.unknown(word, mark, path)
        raise AssertionError("unreachable")

    def unknown(self, word: str, mark: Mark | None, path: tuple) -> None:
        vocab = sorted(set(self.net.blocks) | {c.pattern for c in self.net.cells}
                       | {n for n, o in REGISTRY.items() if not o.internal} | set(MERGES) | set(COMBINATORS))
        if word.lower() in OTHER_NAMES:
            raise self.err(f"unknown op or block '{word}'", mark, path,
                           f"archspec calls it '{OTHER_NAMES[word.lower()]}'", "unknown_op")
        if word.lower() in AS_BLOCKS:
            raise self.err(f"unknown op or block '{word}'", mark, path, AS_BLOCKS[word.lower()], "unknown_op")
        if word.lower() in NOT_OPS:  # a real op archspec lacks: a close spelling would compute something else
            raise self.err(f"unknown op or block '{word}'", mark, path,
                           "archspec has no such op (see `archspec ops`); define it from ops in blocks:, or "
                           "leave it out — no other op computes the same", "unknown_op")
        close = difflib.get_close_matches(word, vocab, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else \
            "see `archspec ops` for the ops; blocks: and cells: define more"
        raise self.err(f"unknown op or block '{word}'", mark, path, hint, "unknown_op")

    def sequence(self, items: list, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
                 name: str | None) -> str:
        target = fr
        if name is not None:
            local = fr.claim(name, True, mark, path)
            target = Frame(path=fr.child_path(local), kind="seq", input=x, parent=fr)
            self.graph.modules[target.path] = ModuleInfo(path=target.path, kind="seq", input=x, mark=mark,
                                                         guards=tuple(self.guards))
        out = x
        for i, item in enumerate(items):
            out = self.layer(item, out, target, env, _mark_of(items, i, mark), path + (i,), None)
        if name is not None:
            self.graph.modules[target.path].output = out
            fr.names[name] = out
            self.graph.named[target.path] = out
        return out

    def group(self, mapping: dict, x: str, fr: Frame, env: dict, mark: Mark | None, path: tuple,
              name: str | None) -> str:
        target = fr
        if name is not None:
            local = fr.claim(name, True, mark, path)
            target = Frame(path=fr.child_path(local), kind="group", input=x, parent=fr)
            self.graph.modules[target.path] = ModuleInfo(path=target.path, kind="group", input=x, mark=mark,
                                                         guards=tuple(self.guards))
        keys = [str(k) for k in mapping]
        target.pending |= set(keys)
        out = x
        for k in mapping:
            target.pending.discard(str(k))
            out = self.layer(mapping[k], out, target, env, _mark_of(mapping, k, mark), path + (k,), str(k))
        if name is not None:
            self.graph.modules[target.path].output = out
            fr.names[name] = out
            self.graph.named[target.path] = out
        return out

    # --------------------------------------------------------------------------------- calls
    def call(self, expr: dict, head: str, x: str, fr: Frame, env: dict, mark: Mark | None,
             path: tuple, name: str | None) -> str:
        cmark = _key_mark(expr, head, mark)
        if "name" in expr:
            nm = expr["name"]
            if not isinstance(nm, str) or not _IDENT.match(nm):
                raise self.err(f"name must be an identifier, got {nm!r}", _mark_of(expr, "name", mark),
                               path + ("name",), "use letters, digits and _", "bad_name")
            name = nm
        guard = None
        if "else" in expr and "when" not in expr:
            raise self.err("else: only goes with when:", _key_mark(expr, "else", mark), path, code="bad_call")
        if "when" in expr:
            ok, guard = self.when(expr["when"], fr, env, _mark_of(expr, "when", mark), path)
            if not ok:
                y = self.otherwise(expr, x, fr, mark, path)
                if guard is not None:
                    return self.skip(y, fr, env, mark, path, name, _hint(head.lstrip("$")), guard)
                if name is not None:
                    fr.names[name] = y
                return y
        if guard is not None:
            self.guards.append(guard)
            try:
                return self._call(expr, head, x, fr, env, mark, path, name, cmark)
            finally:
                self.guards.pop()
        return self._call(expr, head, x, fr, env, mark, path, name, cmark)

    def _call(self, expr: dict, head: str, x: str, fr: Frame, env: dict, mark: Mark | None,
              path: tuple, name: str | None, cmark: Mark | None) -> str:
        if "first" in expr and "repeat" not in expr:
            raise self.err("first: only goes with repeat:", _key_mark(expr, "first", mark), path, code="bad_call")
        if "names" in expr and "repeat" not in expr:
            raise self.err("names: goes with repeat: (it names each repetition)",
                           _key_mark(expr, "names", mark), path, code="bad_call")
        if "splice" in expr:
            smark = _key_mark(expr, "splice", mark)
            if "repeat" not in expr or head in COMBINATORS:
                raise self.err("splice: goes with repeat: (the repetitions take the enclosing list's next "
                               "indices)", smark, path, code="bad_call")
            if expr["splice"] is not True and expr["splice"] is not False:
                raise self.err(f"splice: takes true or false, got {expr['splice']!r}", _mark_of(expr, "splice", mark),
                               path + ("splice",), code="type")
            if expr["splice"] and not (fr.kind == "seq" or fr.numbered) or name is not None and expr["splice"]:
                raise self.err("splice: true puts the repetitions into the numbered list that holds the call, "
                               "and this call is not an item of one", smark, path, code="bad_call",
                               hint="write it as an item of a list held by a key (features: [..., {B: ..., "
                                    "repeat: n, splice: true}]), without a name")
        if head in COMBINATORS and "repeat" in expr:
            return self.dense(expr, head, x, fr, env, mark, path, name)
        if "repeat" in expr:
            return self.repeat(expr, head, x, fr, env, mark, path, name)
        inputs = [x]
        if "from" in expr:
            inputs = self.refs(expr["from"], fr, _mark_of(expr, "from", mark), path + ("from",))
        if head.startswith("$"):
            target = self.value(head, env, cmark, path)
            if not isinstance(target, str) or target.startswith("$") or not self.is_callable(target):
                raise self.err(f"'{head}' names {target!r}, which is not an op or block", cmark, path,
                               code="unknown_op")
            head_name, args = target, expr[head]
        else:
            head_name, args = head, expr[head]
        apath = path + (head,)
        amark = _mark_of(expr, head, mark)
        if head_name in MERGES and isinstance(args, (list, dict)) and args != {}:
            out = self.merge(head_name, args, inputs, fr, env, amark, apath, name, cmark)
        elif head_name in COMBINATORS:
            raise self.err(f"'{head_name}' takes a body and repeat:", cmark, path,
                           f"write {{{head_name}: LAYER, repeat: n}}", "bad_call")
        elif head_name in self.net.blocks:
            out = self.block(self.net.blocks[head_name], args, inputs, fr, env, amark, apath, name, cmark)
        else:
            out = self.op(head_name, args, inputs, fr, env, amark, apath, name, cmark)
        if "expect" in expr:
            self.graph.layer_expects[_last_path(self.graph, out, fr, name)] = (expr["expect"], expr)
        return out

    def repeat(self, expr: dict, head: str, x: str, fr: Frame, env: dict, mark: Mark | None,
               path: tuple, name: str | None) -> str:
        rmark = _mark_of(expr, "repeat", mark)
        n = self.value(_strict_text(expr["repeat"]), env, rmark, path + ("repeat",))
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise self.err(f"repeat must be a positive integer, got {n!r}", rmark, path + ("repeat",),
                           code="bad_repeat")
        self.budget(n, 0, rmark, path + ("repeat",), f"repeat: {n}")  # each repetition is >= 1 node
        if "from" in expr:  # the first repetition reads it; the others read the one before them
            fmark = _mark_of(expr, "from", mark)
            ins = self.refs(expr["from"], fr, fmark, path + ("from",))
            if len(ins) != 1:
                raise self.err(f"a repeated call takes one input; from: names {len(ins)}", fmark,
                               path + ("from",), code="bad_call")
            x = ins[0]
        splice = expr.get("splice") is True
        if splice:  # the repetitions are items of the enclosing numbered list (torchvision's features)
            seq, local = fr, None
        else:
            hint = name if name is not None else _hint(head)
            local = fr.claim(hint, name is not None, mark, path)
            seq = Frame(path=fr.child_path(local), kind="seq", input=x, parent=fr)
            self.graph.modules[seq.path] = ModuleInfo(path=seq.path, kind="seq", input=x, mark=mark,
                                                      guards=tuple(self.guards))
        # when:/else: and from: were settled for the whole repetition (call() and above)
        base = {k: v for k, v in expr.items()
                if k not in ("repeat", "first", "name", "names", "expect", "when", "else", "from", "splice")}
        names = self.repeat_names(expr, n, env, mark, path) if "names" in expr else [None] * n
        first = expr.get("first")
        if first is not None and not isinstance(first, dict):
            raise self.err("first: takes the arguments that differ in the first repetition",
                           _mark_of(expr, "first", mark), path + ("first",), code="bad_call")
        out = x
        for i in range(n):
            call = dict(base)
            if i == 0 and first:
                args = call[head]
                if args is None:
                    args = {}
                if not isinstance(args, dict):
                    raise self.err("first: needs the arguments written as a mapping",
                                   _mark_of(expr, "first", mark), path + ("first",), code="bad_call")
                merged = LocDict(args) if not isinstance(args, LocDict) else _copy_locdict(args)
                for k, v in first.items():
                    dict.__setitem__(merged, k, v)
                    if isinstance(first, LocDict):
                        merged.value_marks[k] = first.mark_of(k)
                call[head] = merged
            before = len(self.graph)
            out = self.layer(_as_locdict(call, expr), out, seq, {**env, "i": i}, mark, path, names[i])
            if len(self.graph) == before:  # nothing lowered: bound these too, as if each were a node
                self.empty_repetitions += 1
                if self.empty_repetitions + len(self.graph) > self.limits.max_nodes:
                    raise self.err(f"repetitions that lower to nothing (a false when:) count as nodes: "
                                   f"{self.empty_repetitions:,} and {len(self.graph):,} nodes are more than the "
                                   f"{self.limits.max_nodes:,} a network may have", rmark, path + ("repeat",),
                                   "raise the limit with --max-nodes N", "limit")
        if splice:
            if "expect" in expr:
                raise self.err("expect: needs a module to total, and splice: true makes none",
                               _key_mark(expr, "expect", mark), path, code="bad_call",
                               hint="put expect: on the list that holds the call")
            return out
        self.graph.modules[seq.path].output = out
        fr.names[local] = out
        self.graph.named[seq.path] = out
        if "expect" in expr:
            self.graph.layer_expects[seq.path] = (expr["expect"], expr)
        return out

    def dense(self, expr: dict, head: str, x: str, fr: Frame, env: dict, mark: Mark | None,
              path: tuple, name: str | None) -> str:
        """``{dense: LAYER, repeat: n, names: PATTERN}``: dense connectivity (Huang et al. 2017).

        Layer ``j`` reads the concatenation of the block's input and the outputs of layers
        ``0 .. j-1``; the block's output is the concatenation of its input and every layer's output.
        It lowers to ordinary nodes: ``n + 1`` ``concat`` nodes (``cat``, ``cat_1``, ...) and the
        ``n`` layers, named by ``names:`` (an f-string-like pattern over the index ``i``; default
        ``{i}``), all inside one module of kind ``dense``."""
        if "first" in expr:
            raise self.err("first: does not go with dense: (every layer is the same expression; "
                           "use i in its arguments)", _key_mark(expr, "first", mark), path, code="bad_call")
        if "from" in expr:
            raise self.err("from: does not go with dense: (it reads the layer before it)",
                           _key_mark(expr, "from", mark), path, code="bad_call")
        rmark = _mark_of(expr, "repeat", mark)
        n = self.value(_strict_text(expr["repeat"]), env, rmark, path + ("repeat",))
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise self.err(f"repeat must be a positive integer, got {n!r}", rmark, path + ("repeat",),
                           code="bad_repeat")
        # n layers and n + 1 concatenations; concatenation j reads j + 1 outputs, the last n + 1
        self.budget(2 * n + 1, (n + 1) * (n + 2) // 2 + n, rmark, path + ("repeat",),
                    f"dense: with repeat: {n}")
        names = self.repeat_names(expr, n, env, mark, path)
        local = fr.claim(name if name is not None else head, name is not None, mark, path)
        dfr = Frame(path=fr.child_path(local), kind="dense", input=x, parent=fr)
        info = ModuleInfo(path=dfr.path, kind="dense", input=x, mark=mark, guards=tuple(self.guards))
        self.graph.modules[dfr.path] = info
        body, bmark, bpath = expr[head], _mark_of(expr, head, mark), path + (head,)
        feats = [x]
        layers: list[str] = []
        for i, lname in enumerate(names):
            ienv = {**env, "i": i}
            cat = self.emit_node("concat", {}, list(feats), dfr, ienv, mark, bpath, None, mark)
            y = self.layer(body, cat, dfr, ienv, bmark, bpath, lname)
            xs, ys = self.shape(x), self.shape(y)
            if len(ys) != len(xs) or ys[1:] != xs[1:]:
                raise self.err(f"layer {i} of the dense block turns {list(self.shape(cat))} into {list(ys)}; "
                               f"dense layers must keep the size {list(xs[1:])} to be concatenated",
                               bmark, bpath, "downsample between dense blocks (a transition), not inside",
                               "shape_mismatch")
            feats.append(y)
            layers.append(lname)
        out = self.emit_node("concat", {}, feats, dfr, env, mark, bpath, None, mark)
        info.output = out
        info.args = {"layers": layers, "count": n}
        if self.symbolic:
            self.dense_symbols(info, x, feats[1:], out, n)
        fr.names[local] = out
        self.graph.named[dfr.path] = out
        if "expect" in expr:
            self.graph.layer_expects[dfr.path] = (expr["expect"], expr)
        return out

    def dense_symbols(self, info: ModuleInfo, x: str, outs: list[str], out: str, n: int) -> None:
        """For code generation: when every layer adds the same channels ``g``, layer ``i`` reads
        ``C + i * g`` channels (kept as ``info.args['sym_in']`` for a loop over ``i``) and the block
        gives ``C + n * g``, so instances of a block that differ only in ``n`` share one class."""
        gs = [self.sym_shapes.get(y, self.shape(y))[0] for y in outs]
        if any(str(v) != str(gs[0]) or int(v) != int(gs[0]) for v in gs):
            return
        xc = self.input_sym_shape(x)[0]
        total = xc + n * gs[0]
        if int(total) != self.shape(out)[0]:
            return
        info.args["sym_in"] = [xc + Sym(j, "i") * gs[0] for j in range(n)]
        self.sym_shapes[out] = (total,) + tuple(self.sym_shapes[out][1:])

    def repeat_names(self, expr: dict, n: int, env: dict, mark: Mark | None, path: tuple) -> list[str]:
        """The names ``names:`` gives the ``n`` repetitions of a call (default ``{i}``: 0, 1, ...)."""
        pattern = expr.get("names", "{i}")
        nmark, npath = _mark_of(expr, "names", mark), path + ("names",)
        if not isinstance(pattern, str):
            raise self.err(f"names: takes a pattern such as 'layer{{i + 1}}', got {pattern!r}", nmark, npath,
                           code="bad_name")
        out: list[str] = []
        seen: dict[str, int] = {}
        for i in range(n):
            lname = self.pattern_name(pattern, {**env, "i": i}, nmark, npath)
            if not _KEY.match(lname) or len(lname) > 128:
                raise self.err(f"names: gives '{_printable(lname)}' for i = {i}, which cannot name a module",
                               nmark, npath, "the repetitions' names are module keys: letters, digits, _ and "
                               "- ('denselayer{i + 1}', torchvision RegNet's 'block1-{i}'), or the index "
                               "alone ('{i}')", "bad_name")
            if lname in seen:
                raise self.err(f"names: gives '{lname}' twice (i = {seen[lname]} and i = {i})",
                               nmark, npath, "use i in the pattern: 'layer{i + 1}'", "duplicate_name")
            seen[lname] = i
            out.append(lname)
        return out

    def pattern_name(self, pattern: str, env: dict, mark: Mark | None, path: tuple) -> str:
        """``'denselayer{i + 1}'`` with ``i = 0`` -> ``'denselayer1'``: each ``{...}`` is an
        expression (ints and strings only)."""
        out, pos = [], 0
        for m in re.finditer(r"\{([^{}]*)\}", pattern):
            out.append(pattern[pos:m.start()])
            v = self.value("$" + m.group(1), env, mark, path)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise self.err(f"names: '{{{m.group(1)}}}' gives {v!r}; a name part must be an int or a string",
                               mark, path, code="bad_name")
            out.append(str(v))
            pos = m.end()
        out.append(pattern[pos:])
        text = "".join(out)
        if "{" in text or "}" in text:
            raise self.err(f"names: unbalanced braces in '{_printable(pattern)}'", mark, path, code="bad_name",
                           hint="write each index expression in one pair of braces: 'layer{i + 1}'")
        return text

    def refs(self, spec: Any, fr: Frame, mark: Mark | None, path: tuple) -> list[str]:
        items = spec if isinstance(spec, list) else [spec]
        out = []
        for i, ref in enumerate(items):
            m = _mark_of(spec, i, mark) if isinstance(spec, list) else mark
            if not isinstance(ref, str):
                raise self.err(f"from: takes layer names, got {ref!r}", m, path, code="bad_ref")
            nid = fr.lookup(ref)
            if nid is None:
                if fr.is_pending(ref):
                    raise self.err(f"cycle: this layer takes input from '{ref}', which comes after it",
                                   m, path, "a network is a DAG: take inputs only from layers above",
                                   "cycle")
                close = difflib.get_close_matches(ref, fr.visible(), n=1)
                raise self.err(f"undefined reference '{ref}'", m, path,
                               f"did you mean '{close[0]}'?" if close else
                               f"visible here: {', '.join(fr.visible()[:10])}", "undefined_ref")
            out.append(nid)
        return out

    def merge(self, op: str, branches: Any, inputs: list[str], fr: Frame, env: dict, mark: Mark | None,
              path: tuple, name: str | None, cmark: Mark | None) -> str:
        (x,) = inputs[:1] if len(inputs) == 1 else (None,)
        if x is None:
            raise self.err(f"{op} with branches takes one input; from: names {len(inputs)}", cmark, path,
                           code="bad_call")
        outs: list[str] = []
        if isinstance(branches, dict):
            for k, b in branches.items():
                outs.append(self.layer(b, x, fr, env, _mark_of(branches, k, mark), path + (k,), str(k)))
        else:
            for j, b in enumerate(branches):
                bm = _mark_of(branches, j, mark)
                outs.append(x if b == [] else self.layer(b, x, fr, env, bm, path + (j,), None))
        if len(outs) < REGISTRY[op].inputs[0]:
            raise self.err(f"{op} needs at least {REGISTRY[op].inputs[0]} branches, got {len(outs)}",
                           mark, path, code="arity")
        return self.emit_node(op, {}, outs, fr, env, mark, path, name, cmark)

    # --------------------------------------------------------------------------------- blocks
    def block(self, blk: Block, args: Any, inputs: list[str], fr: Frame, env: dict, mark: Mark | None,
              path: tuple, name: str | None, cmark: Mark | None) -> str:
        if len(inputs) != 1:
            raise self.err(f"block '{blk.name}' takes one input; from: names {len(inputs)}", cmark, path,
                           code="arity")
        bound, given = self.bind(blk, args, env, mark, path)
        local = fr.claim(name if name is not None else _hint(blk.name), name is not None, cmark, path)
        bfr = Frame(path=fr.child_path(local), kind="block", input=inputs[0], parent=fr, barrier=True,
                    numbered=blk.sequential)
        info = ModuleInfo(path=bfr.path, kind="block", block=blk.name, args=plain(dict(bound)),
                          input=inputs[0], mark=cmark, guards=tuple(self.guards), given=given)
        self.graph.modules[bfr.path] = info
        record = self.in_record(inputs[0])
        if self.symbolic:
            info.sym_args = dict(bound)
            outer = self.input_sym_shape(inputs[0])
            axis = _channel_axis(outer)
            info.sym_in = outer[axis] if outer else None
            inner = {}
            types = {p: t for p, t, _ in blk.params}
            for k, v in bound.items():
                if types.get(k) == "pair" and isinstance(v, (list, tuple)):
                    inner[k] = SymPair(v, k)
                elif isinstance(v, int) and not isinstance(v, bool):
                    inner[k] = Sym(int(v), k)
                elif isinstance(v, float):
                    inner[k] = SymFloat(v, k)
                elif isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
                    inner[k] = [Sym(int(i), f"{k}[{j}]") for j, i in enumerate(v)]
                else:
                    inner[k] = v
            if "c" in record:
                record["c"] = Sym(int(record["c"]), "in_channels")
                if "d" in record:
                    record["d"] = record["c"]
            benv = {**self.sym_globals(), **inner, "in": record}
            saved_guards, self.guards = self.guards, []
            own = list(plain(self.sym_shapes[inputs[0]]))
            own[axis] = Sym(int(record.get("c", 0)), "in_channels")
            self.sym_shapes["@" + bfr.path] = like(self.sym_shapes[inputs[0]], own)
        else:
            benv = {**self.globals, **bound, "in": record}
        body_mark = blk.raw.mark_of("body") if isinstance(blk.raw, LocDict) else blk.mark
        self.block_depth += 1
        self.block_inputs = getattr(self, "block_inputs", [])
        self.block_inputs.append((inputs[0], bfr.path))
        try:
            out = self.body(blk, bound, inputs[0], bfr, benv, body_mark)
            if out == inputs[0]:
                out = self.emit_node("identity", {}, [out], bfr, benv, body_mark, ("blocks", blk.name, "body"),
                                     None, cmark)
        finally:
            self.block_depth -= 1
            self.block_inputs.pop()
            if self.symbolic:
                self.guards = saved_guards
        if self.symbolic:
            self.sym_shapes[out] = self.export_shape(self.sym_shapes[out], bound, info.sym_in)
        self.graph.modules[bfr.path].output = out
        fr.names[local] = out
        self.graph.named[bfr.path] = out
        return out

    def body(self, blk: Block, bound: dict[str, Any], x: str, bfr: Frame, benv: dict, body_mark: Mark | None) -> str:
        """Lower the body of one instance of ``blk`` (frame ``bfr``, input ``x``); return its output.

        What a body lowers to depends only on the block, its arguments, its input's shape (and
        layout), the cells being expanded and how deep the call is (globals are the network's), so a
        second instance that agrees on all of them is the first one's nodes, modules and names
        again under its own path: they are copied, not lowered again (a ResNet's identical
        bottlenecks, a ViT's encoder layers). Copies are made when lowering for stats and checks
        only (code generation lowers everything) and only where the limits leave room for every
        check the lowering would make; anything the replay cannot reproduce is lowered as before."""
        path = ("blocks", blk.name, "body")
        key = None if self.symbolic else _body_key(blk, bound, self.shape(x), self)
        done = self.bodies.get(key) if key is not None else None
        if done is not None and done.captured(self) and done.fits(self):
            return done.replay(self, bfr.path, x)
        graph = self.graph
        rec = _Body(len(graph), self.edges, self.empty_repetitions, len(graph.modules), len(graph.named),
                    len(graph.layer_expects), len(graph.aux), len(graph.training_only))
        self.recordings.append(rec)
        deepest, self.deepest = self.deepest, self.depth
        try:
            out = self.layer(blk.body, x, bfr, benv, body_mark, path, None)
        finally:
            self.recordings.pop()
            rec.deepest = self.deepest
            self.deepest = max(deepest, self.deepest)
        # a body that went deep is lowered every time: near Python's recursion limit, how deep the
        # stack already is could decide whether lowering it again succeeds
        if key is not None and done is None and out != x and rec.deepest <= _REPLAY_DEPTH:
            rec.finish(self, bfr.path, x, out)
            rec.keep = bound  # what the key names by identity stays alive as long as the record
            self.bodies[key] = rec
        return out

    def bind(self, blk: Block, args: Any, env: dict, mark: Mark | None, path: tuple) -> tuple[dict[str, Any], list[str]]:
        names = [p for p, _, _ in blk.params]
        given: dict[str, tuple[Any, Mark | None]] = {}
        if args is None:
            pass
        elif isinstance(args, dict):
            for k, v in args.items():
                if k not in names:
                    close = difflib.get_close_matches(str(k), names, n=1)
                    raise self.err(f"block '{blk.name}' has no parameter '{k}'", _key_mark(args, k, mark),
                                   path, f"did you mean '{close[0]}'?" if close else
                                   f"its parameters: {', '.join(names) or '(none)'}", "unknown_param")
                given[k] = (v, _mark_of(args, k, mark))
        elif isinstance(args, list):
            if len(args) > len(names):
                raise self.err(f"block '{blk.name}' takes {len(names)} arguments "
                               f"({', '.join(names)}), got {len(args)}", mark, path, code="arity")
            for i, v in enumerate(args):
                given[names[i]] = (v, _mark_of(args, i, mark))
        else:
            if not names:
                raise self.err(f"block '{blk.name}' takes no arguments", mark, path, code="arity")
            given[names[0]] = (args, mark)
        bound: dict[str, Any] = {}
        for p, typ, default in blk.params:
            if p in given:
                v, m = given[p]
                v = self.value(v, env, m, path + (p,))
            elif default is REQUIRED:
                raise self.err(f"block '{blk.name}' needs '{p}'", mark, path,
                               f"pass it: {{{blk.name}: {{{p}: ...}}}}", "missing_param")
            else:
                v = self.value(default, {**self.globals, **bound}, blk.mark, ("blocks", blk.name, "params", p))
            if typ:
                want = TYPES[typ]
            elif default is REQUIRED or default is None or isinstance(default, str):
                want = None  # an expression default such as 'planes * 4' is checked where it is used
            else:
                want = list if isinstance(default, list) else type(default)
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if want not in (None, object) and not (isinstance(v, want) and not (want is int and isinstance(v, bool))):
                m = given[p][1] if p in given else blk.mark
                article = "an" if want.__name__[0] in "aeiou" else "a"
                raise self.err(f"parameter '{p}' of block '{blk.name}' is {article} {want.__name__}, got {v!r}",
                               m, path + (p,), code="type")
            bound[p] = v
        return bound, [p for p, _, _ in blk.params if p in given]

    # ------------------------------------------------------------------------------------ ops
    def op(self, opname: str, args: Any, inputs: list[str], fr: Frame, env: dict, mark: Mark | None,
           path: tuple, name: str | None, cmark: Mark | None) -> str:
        opdef = get_op(opname)
        if args is None or args == {}:
            attrs: dict[str, Any] = {}
        elif isinstance(args, dict):
            attrs = dict(args)
        elif isinstance(args, list) and _list_valued(opdef):
            attrs = {opdef.positional[0]: args}  # {permute: [0, 2, 3, 1]}: the list is the one value
            args = _scalar_as_dict(attrs, mark)
        elif isinstance(args, list):
            if len(args) > len(opdef.positional):
                raise self.err(f"'{opname}' takes at most {len(opdef.positional)} positional arguments "
                               f"({', '.join(opdef.positional) or 'none'}), got {len(args)}", mark, path,
                               f"write them by name: {{{opname}: {{...}}}}", "arity")
            attrs = {opdef.positional[i]: v for i, v in enumerate(args)}
            args = LocDict(attrs) if not isinstance(args, LocList) else _list_as_dict(args, opdef.positional)
        else:
            if not opdef.positional:
                raise self.err(f"'{opname}' takes no arguments, got {args!r}", mark, path, code="arity")
            attrs = {opdef.positional[0]: args}
            args = _scalar_as_dict(attrs, mark)
        return self.emit_node(opname, attrs, inputs, fr, env, mark, path, name, cmark, args)

    def input_sym_shape(self, nid: str) -> tuple:
        """The symbolic shape of ``nid`` as seen from the block being lowered: the block's own input
        has ``in_channels`` channels; values from outside the block are plain numbers."""
        if self.block_depth and nid == self.block_inputs[-1][0]:
            return self.sym_shapes["@" + self.block_inputs[-1][1]]
        return self.sym_shapes.get(nid, self.shape(nid))

    def export_shape(self, shape: tuple, bound: dict, sym_in: Any) -> tuple:
        """A block's output shape in its caller's terms: a channel count that is one of the block's
        parameters (or its input channels) becomes the caller's expression for it."""
        out = list(plain(shape))
        axis = _channel_axis(shape) if shape else 0
        if shape and isinstance(shape[axis], Sym):
            if shape[axis].expr in bound and isinstance(bound[shape[axis].expr], int):
                out[axis] = bound[shape[axis].expr]
            elif shape[axis].expr == "in_channels" and sym_in is not None:
                out[axis] = sym_in
        return like(shape, out)

    def emit_node(self, opname: str, attrs: dict, inputs: list[str], fr: Frame, env: dict,
                  mark: Mark | None, path: tuple, name: str | None, cmark: Mark | None,
                  raw_args: Any = None, hint: str | None = None, skipped: bool = False) -> str:
        opdef = REGISTRY[opname]
        lim = self.limits
        if len(self.graph) >= lim.max_nodes:
            raise self.err(f"the network has more than {lim.max_nodes:,} nodes", cmark or mark, path,
                           "raise the limit with --max-nodes N", "limit")
        self.edges += len(inputs)
        if self.edges > lim.max_edges:
            raise self.err(f"the network has more than {lim.max_edges:,} edges (inputs of its layers)",
                           cmark or mark, path, "raise the limit with --max-edges N", "limit")
        values = {k: self.value(v, env, _mark_of(raw_args, k, mark), path + (k,)) for k, v in attrs.items()}
        try:
            typed = _typed_attrs(opdef, values)
        except ValidationError as err:
            e = pydantic_error(err, raw_args if isinstance(raw_args, dict) else values, path,
                               opdef.attrs.model_fields)
            if e.mark is None:
                e.mark = mark
            if e.code == "unknown_key":
                e.message = f"'{opname}' has no attribute '{e.message.split(chr(39))[1]}'"
            raise e from None
        in_shapes = [self.shape(i) for i in inputs]
        sym_typed, sym_in = typed, in_shapes
        if self.symbolic:
            sym_in = [self.input_sym_shape(i) for i in inputs]
            upd = {k: v for k, v in values.items() if has_sym(v)}
            if upd:
                sym_typed = typed.model_copy(update=upd)
        try:
            opdef.check_arity(len(inputs))
            sym_shape = opdef.infer(sym_typed, sym_in)
            sym_shape = like(sym_shape, sym_shape)
            shape = plain(sym_shape)
        except OpError as e:
            m = _mark_of(raw_args, e.attr, cmark) if e.attr and isinstance(raw_args, dict) and e.attr in raw_args else cmark
            raise self.err(e.message, m or mark, path + ((e.attr,) if e.attr and isinstance(raw_args, dict) and e.attr in raw_args else ()),
                           e.hint, e.code) from None
        local = fr.claim(name if name is not None else _hint(hint or opname), name is not None, cmark, path)
        # every field already has its type: Node(...) would validate them to the same values
        node = make_node(fr.child_path(local), opname, typed, list(inputs), [_shape_field(s) for s in in_shapes],
                         _shape_field(shape), fr.path, local, cmark or mark, _fmt(path))
        if self.symbolic:
            node.sym_attrs, node.sym_in = sym_typed, sym_in
            node.guards, node.skipped = tuple(self.guards), skipped
            self.sym_shapes[node.id] = sym_shape
        self.graph.add(node)
        fr.names[local] = node.id
        if name is not None:
            self.graph.named[node.id] = node.id
        return node.id


# ------------------------------------------------------------------------------------ utilities
def _printable(text: str) -> str:
    text = text if len(text) <= 40 else text[:37] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _hint(name: str) -> str:
    return {"concat": "cat", "global_avgpool": "avgpool", "adaptive_avgpool": "avgpool"}.get(name, name)


#: formatted key paths, for paths of plain str and int parts only (no two such paths are equal
#: unless they format the same); bounded, and dropped when full
_FMT_CACHE: dict[tuple, str] = {}
_CACHE_MAX = 16384


def _fmt(path: tuple) -> str:
    text = _FMT_CACHE.get(path)
    if text is not None:
        return text
    text = format_path(path)
    if all(type(p) is str or type(p) is int for p in path):
        if len(_FMT_CACHE) >= _CACHE_MAX:
            _FMT_CACHE.clear()
        _FMT_CACHE[path] = text
    return text


def _frozen(v: Any) -> Any:
    """A hashable stand-in for an attribute value that equals another's only if the two are the same
    value of the same type (``1``, ``1.0``, ``True`` and ``-0.0``, ``0.0`` differ); ``None`` if ``v``
    is not plain data (a symbolic number, a mapping)."""
    return _key_part(v, containers=False)


#: validated attributes by (op, values): lowering validates the same few attributes over and over
#: (every 3x3 conv of a ResNet); Attrs are frozen, so nodes can share one instance
_ATTRS_CACHE: dict[tuple, Any] = {}


def _typed_attrs(opdef: Any, values: dict[str, Any]) -> Any:
    """``opdef.attrs.model_validate(values)``, memoised for plain values."""
    key: Any = (opdef.name, opdef.attrs)
    for k, v in values.items():
        f = _frozen(v)
        if f is None:
            return opdef.attrs.model_validate(values)
        key += (k, f)
    typed = _ATTRS_CACHE.get(key)
    if typed is None:
        typed = opdef.attrs.model_validate(values)
        if len(_ATTRS_CACHE) >= _CACHE_MAX:
            _ATTRS_CACHE.clear()
        _ATTRS_CACHE[key] = typed
    return typed


def _mark_of(container: Any, key: Any, default: Mark | None) -> Mark | None:
    if isinstance(container, (LocDict, LocList)):
        try:
            return container.mark_of(key)
        except (KeyError, IndexError, TypeError):
            return default
    return default


def _key_mark(container: Any, key: Any, default: Mark | None) -> Mark | None:
    if isinstance(container, LocDict):
        return container.key_marks.get(key, default)
    return default


def _strict_text(v: Any) -> Any:
    return ("$" + v) if isinstance(v, str) and not v.startswith("$") else v


def _copy_locdict(d: LocDict) -> LocDict:
    out = LocDict(d)
    out.mark = d.mark
    out.key_marks = dict(d.key_marks)
    out.value_marks = dict(d.value_marks)
    out.raw = dict(d.raw)
    return out


def _as_locdict(call: dict, like: Any) -> Any:
    if isinstance(like, LocDict):
        out = LocDict(call)
        out.mark = like.mark
        out.key_marks = dict(like.key_marks)
        out.value_marks = dict(like.value_marks)
        out.raw = dict(like.raw)
        return out
    return call


def _list_as_dict(args: LocList, names: tuple[str, ...]) -> LocDict:
    out = LocDict({names[i]: v for i, v in enumerate(args)})
    out.mark = args.mark
    out.key_marks = {names[i]: args.item_marks[i] for i in range(len(args))}
    out.value_marks = dict(out.key_marks)
    out.raw = {names[i]: r for i, r in args.raw.items()} if isinstance(args.raw, dict) else {}
    return out


def _scalar_as_dict(attrs: dict, mark: Mark | None) -> LocDict:
    out = LocDict(attrs)
    out.mark = mark
    out.key_marks = {k: mark for k in attrs}
    out.value_marks = dict(out.key_marks)
    out.raw = {}
    return out


def _last_path(g: Graph, out: str, fr: Frame, name: str | None) -> str:
    if name is not None:
        return fr.child_path(name)
    return out


def _key_part(v: Any, containers: bool = True) -> Any:
    """A hashable stand-in for a block argument that equals another's only if lowering cannot tell
    the two apart: plain data by value and type (``1``, ``1.0``, ``True`` differ); a mapping or list
    from the spec, which carries source marks, by identity; ``None`` if ``v`` is something else.
    ``containers=False``: plain values, lists and tuples only (a mapping is ``None``)."""
    t = type(v)
    if t is int or t is str or t is bool or v is None:
        return (t, v)
    if t is float:
        return (t, repr(v))
    if t is list or t is tuple:
        items = tuple(_key_part(x, containers) for x in v)
        return None if None in items else (t, items)
    if not containers:
        return None
    if t is dict:
        items = tuple((_key_part(k), _key_part(x)) for k, x in v.items())
        return None if any(a is None or b is None for a, b in items) else (t, items)
    if t is LocDict or t is LocList:
        return (t, id(v))
    return None


def _body_key(blk: Block, bound: dict[str, Any], shape: Shape, lw: Lowerer) -> tuple | None:
    """What the lowering of one instance of ``blk``'s body depends on (Lowerer.body)."""
    args = _key_part(bound)
    if args is None:
        return None
    return (blk.name, id(blk), args, type(shape), tuple(shape), frozenset(lw.active_cells), lw.depth,
            lw.block_depth)


#: the deepest nesting (Lowerer.depth) a replayed body may reach: far below both MAX_DEPTH and the
#: depth at which Python's recursion limit could stop a lowering
_REPLAY_DEPTH = 40


class _Body:
    """One lowering of a block's body, recorded relative to the block's path so that it can be
    replayed for another instance: its nodes, modules, named layers and layer expectations, and
    what it added to the counters the limits read."""

    def __init__(self, nodes0: int, edges0: int, empty0: int, modules0: int, named0: int, expects0: int,
                 aux0: int, training0: int) -> None:
        self.nodes0, self.edges0, self.empty0 = nodes0, edges0, empty0
        self.modules0, self.named0, self.expects0, self.aux0, self.training0 = (modules0, named0, expects0,
                                                                               aux0, training0)
        self.need_nodes = 0  # the most nodes a budget check asked room for, counted from nodes0
        self.need_edges = 0
        self.keep: Any = None

    def finish(self, lw: Lowerer, base: str, x: str, out: str) -> None:
        """The body has been lowered: note where its additions end (they are read at the first replay)."""
        g = lw.graph
        self.base, self.x, self.out_id = base, x, out
        self.nodes1 = len(g)
        self.tails = (_tail(g.modules, len(g.modules) - self.modules0), _tail(g.named, len(g.named) - self.named0),
                      _tail(g.layer_expects, len(g.layer_expects) - self.expects0))
        self.ok = None if len(g.aux) == self.aux0 and len(g.training_only) == self.training0 else False
        self.d_nodes = len(g) - self.nodes0
        self.d_edges = lw.edges - self.edges0
        self.d_empty = lw.empty_repetitions - self.empty0

    def captured(self, lw: Lowerer) -> bool:
        """Is the recording one that can be replayed? (Made relative to its block at the first ask.)"""
        if self.ok is None:
            self.ok = self.capture(lw)
            del self.tails
        return self.ok

    def capture(self, lw: Lowerer) -> bool:
        """Keep what the body added, relative to its block's path; False if it is not all below it."""
        g = lw.graph
        base, x, out = self.base, self.x, self.out_id
        prefix = base + "."
        n = len(prefix)

        def rel(v: str) -> str | None:  # '' stands for x, '.tail' for base + '.tail'
            if v == x:
                return ""
            return v[n - 1:] if v.startswith(prefix) else None

        nodes = []
        for nid in g._order[self.nodes0:self.nodes1]:
            node = g.node(nid)
            rid, ins = rel(nid), [rel(i) for i in node.inputs]
            scope = "" if node.scope == base else rel(node.scope)
            if not rid or scope is None or None in ins or node.scope == x:
                return False
            nodes.append((rid, node.op, node.attrs, ins, node.in_shapes, node.shape, scope, node.local, node.mark,
                          node.spec_path))
        modules, named, expects = self.tails
        for table in (modules, named, expects):
            if any(not rel(k) for k, _ in table):
                return False
        if any(rel(v) is None for _, v in named) or rel(out) is None:
            return False
        if any(rel(m.input) is None or (m.output and rel(m.output) is None) for _, m in modules):
            return False
        self.nodes = nodes
        self.modules = [(rel(k), m, rel(m.input), rel(m.output) if m.output else None) for k, m in modules]
        self.named = [(rel(k), rel(v)) for k, v in named]
        self.expects = [(rel(k), v) for k, v in expects]
        self.out = rel(out)
        return True

    def fits(self, lw: Lowerer) -> bool:
        """Would lowering the body again pass every limit check it makes? (If not, it is lowered, and
        fails where it fails.)"""
        lim, nodes = lw.limits, len(lw.graph)
        return (nodes + max(self.d_nodes, self.need_nodes) <= lim.max_nodes
                and lw.edges + max(self.d_edges, self.need_edges) <= lim.max_edges
                and nodes + self.d_nodes + lw.empty_repetitions + self.d_empty <= lim.max_nodes)

    def replay(self, lw: Lowerer, base: str, x: str) -> str:
        """Add the recorded body again as the body of block instance ``base`` whose input is ``x``."""
        g = lw.graph

        def full(r: str) -> str:
            return base + r if r else x

        for rid, op, attrs, ins, in_shapes, shape, scope, local, mark, spec_path in self.nodes:
            g.add(make_node(base + rid, op, attrs, [base + i if i else x for i in ins], list(in_shapes), shape,
                            base + scope, local, mark, spec_path))
        for r, m, r_in, r_out in self.modules:
            copy = m.model_copy()  # its own __dict__ and fields-set: then the paths are this instance's
            d = copy.__dict__
            d["path"], d["input"] = base + r, full(r_in)
            if r_out is not None:
                d["output"] = full(r_out)
            d["args"], d["given"], d["sym_args"] = dict(m.args), list(m.given), dict(m.sym_args)
            g.modules[base + r] = copy
        for r, v in self.named:
            g.named[base + r] = full(v)
        for r, v in self.expects:
            g.layer_expects[base + r] = v
        lw.edges += self.d_edges
        lw.empty_repetitions += self.d_empty
        return full(self.out)


def _tail(d: dict, k: int) -> list[tuple[Any, Any]]:
    """The last ``k`` items of ``d``, in order."""
    if k <= 0:
        return []
    out = []
    for item in reversed(d.items()):
        out.append(item)
        if len(out) == k:
            break
    return out[::-1]


def lower(net: Network, symbolic: bool = False) -> Graph:
    """Lower one network to its graph (shapes inferred); ``symbolic`` for code generation.

    The cyclic garbage collector is paused meanwhile (see archspec._gc)."""
    with paused_gc():
        return Lowerer(net, symbolic).run()
