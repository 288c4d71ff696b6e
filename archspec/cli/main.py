"""The ``archspec`` command line: parse arguments, call the pipeline, print.

Exit codes: 0 OK, 1 a spec error or a failed check, 2 usage, 3 an internal error (a bug: one line;
ARCHSPEC_DEBUG=1 shows the traceback). A spec error prints one line
``file:line:col: error: key.path: message`` (and maybe a hint line) on stderr — never a traceback.
torch is never imported here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from enum import Enum
from typing import Any, Callable, Optional

import typer

from .._gc import paused_gc
from ..errors import SpecError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="archspec: declarative architecture specs -> graph IR -> stats, checks, PyTorch.")

DEFAULT_ZOO = "specs"


class Convention(str, Enum):
    """--convention: whose count the totals column shows (archspec.analysis.conventions)."""

    macs = "macs"
    flops = "flops"
    torchvision = "torchvision"
    fvcore = "fvcore"
    ptflops = "ptflops"
    thop = "thop"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16_mixed = "bf16-mixed"


class Optimizer(str, Enum):
    sgd = "sgd"
    sgd_momentum = "sgd-momentum"
    adam = "adam"
    adamw = "adamw"
    rmsprop = "rmsprop"
    none = "none"


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


def _console():
    from rich.console import Console
    width = None if sys.stdout.isatty() else 200
    return Console(width=width, highlight=False, soft_wrap=False)


def _fail(err: SpecError) -> None:
    print(err.format(), file=sys.stderr)
    raise typer.Exit(1)


#: exit status of an internal error (a bug): 1 is a spec error, 2 a usage error
INTERNAL_ERROR = 3


def _guard(fn: Callable[[], Any]) -> Any:
    """Run one command's pipeline work: spec errors become one line and exit 1; the cyclic garbage
    collector is paused, which keeps build time linear in the size of the network (archspec._gc)."""
    try:
        with paused_gc():
            return fn()
    except SpecError as err:
        _fail(err)
    except RecursionError:
        print("<spec>:1:1: error: the spec nests too deeply", file=sys.stderr)
        raise typer.Exit(1)
    except (typer.Exit, typer.BadParameter, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug in archspec, not in the spec: still one line, never a traceback
        if os.environ.get("ARCHSPEC_DEBUG"):
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(f"archspec: internal error: {text}", file=sys.stderr)
        print("  hint: this is a bug in archspec; ARCHSPEC_DEBUG=1 shows the traceback — please report it "
              "with the spec", file=sys.stderr)
        raise typer.Exit(INTERNAL_ERROR)


ALLOW_PATH = typer.Option(None, "--allow-path", metavar="DIR",
                          help="also let include:/extends: read below DIR (repeatable; docs/security.md)")


def _allow(dirs: Optional[list[str]]) -> None:
    """--allow-path: folders besides the project root that include:/extends: may read."""
    from ..load.loader import allow_paths
    allow_paths([])  # one command's option never outlives it
    for d in dirs or []:
        if not os.path.isdir(d):
            raise typer.BadParameter(f"--allow-path takes a folder, got {d!r}")
    allow_paths(dirs or [])


#: --max-nodes / --max-edges, on every command that lowers a spec (archspec.limits)
_MAX_NODES = typer.Option(None, "--max-nodes", min=1, metavar="N",
                          help="refuse a network of more than N nodes (default 100,000)")
_MAX_EDGES = typer.Option(None, "--max-edges", min=1, metavar="N",
                          help="refuse a network whose layers have more than N inputs in all (default 1,000,000)")


def _limits(max_nodes: Optional[int], max_edges: Optional[int]) -> None:
    """Set the limits for this command: the flags, or the defaults (never the last command's)."""
    from ..limits import DEFAULT_MAX_EDGES, DEFAULT_MAX_NODES, configure
    configure(max_nodes or DEFAULT_MAX_NODES, max_edges or DEFAULT_MAX_EDGES)


def _refs(specs: Optional[list[str]]) -> list[str]:
    from ..load import expand_refs, split_ref
    if not specs:
        if not os.path.isdir(DEFAULT_ZOO):
            raise SpecError(f"no spec given and no '{DEFAULT_ZOO}/' folder here", code="usage",
                            hint="run from the repository root or name spec files")
        specs = [DEFAULT_ZOO]
    refs = expand_refs(specs)
    for r in refs:
        path, _ = split_ref(r)
        if not os.path.exists(path):
            from ..errors import Mark
            raise SpecError("no such file", mark=Mark(path, 1, 1), code="missing_file",
                            hint="give a spec file, FILE:COLUMN or a folder of specs")
    return refs


def _parse_input(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    parts = text.replace("x", ",").replace("×", ",").split(",")
    try:
        dims = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        raise typer.BadParameter(f"--input takes C,H,W such as 3,224,224; got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise typer.BadParameter(f"--input takes positive sizes, got {text!r}")
    from ..spec.model import MAX_INPUT_SIZE
    if any(d > MAX_INPUT_SIZE for d in dims):
        raise typer.BadParameter(f"--input takes sizes up to {MAX_INPUT_SIZE:,}, got {text!r}")
    return dims


def _compile_all(specs: Optional[list[str]], input_override=None):
    from ..analysis import compile_spec
    out = []
    for ref in _refs(specs):
        out += compile_spec(ref, input_override)
    return out


def _shape(s) -> str:
    return "×".join(str(d) for d in s)


# ------------------------------------------------------------------------------------ stats
@app.command()
def stats(
    specs: Optional[list[str]] = typer.Argument(None, help="spec files, FILE:COLUMN, or folders (default: specs/)"),
    per_layer: bool = typer.Option(False, "--per-layer", help="one row per layer"),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, markdown, csv or json"),
    input: Optional[str] = typer.Option(None, "--input", help="override the input size: C,H,W"),
    convention: Convention = typer.Option(
        Convention.macs, "--convention",
        help="the totals column: macs, flops (2×MACs, FlopCounterMode), torchvision (the weights' _ops, "
             "GMACs), fvcore, ptflops or thop (what that tool prints; docs/counting.md)"),
    train: bool = typer.Option(False, "--train", help="the cost of one training step: FLOPs of forward and "
                               "backward, saved activations, memory (docs/training-cost.md)"),
    batch: int = typer.Option(1, "--batch", min=1, max=1 << 24, help="--train: the batch size"),
    precision: Precision = typer.Option(Precision.fp32, "--precision",
                                        help="--train: fp32, or bf16-mixed (bf16 autocast around forward and loss)"),
    optimizer: Optional[Optimizer] = typer.Option(
        None, "--optimizer", help="--train: sgd, sgd-momentum, adam, adamw, rmsprop or none "
                                  "(default: the spec's train: recipe)"),
    memory: Optional[str] = typer.Option(None, "--memory", metavar="SIZE",
                                         help="--train: also the largest batch whose estimated peak fits "
                                              "in SIZE (80GiB, 40GB, 24000MiB)"),
    cuda_context: str = typer.Option("1GiB", "--cuda-context", metavar="SIZE",
                                     help="--memory: what the CUDA context and libraries take besides "
                                          "the tensors"),
    allow_path: Optional[list[str]] = ALLOW_PATH,
    max_nodes: Optional[int] = _MAX_NODES, max_edges: Optional[int] = _MAX_EDGES,
) -> None:
    """Shapes, parameters, MACs and activations — statically, without torch.

    MACs are multiply-accumulates of conv, linear and attention for one image (ResNet's "FLOPs");
    --convention shows another counter's number instead (docs/counting.md). With --train: FLOPs (as
    torch's FlopCounterMode counts them), saved activations and the peak memory of one eager
    training step at --batch, --precision and --optimizer; per layer for one network (or with
    --per-layer), and the totals."""
    _allow(allow_path)
    _limits(max_nodes, max_edges)
    override = _parse_input(input)
    budget = None
    if memory is not None or cuda_context != "1GiB":
        from ..analysis.train import parse_bytes
        try:
            budget = parse_bytes(memory) if memory is not None else None
            context = parse_bytes(cuda_context)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        if budget is not None:
            budget -= context
    if not train and (memory is not None or optimizer is not None or batch != 1 or precision is not Precision.fp32):
        raise typer.BadParameter("--batch, --precision, --optimizer and --memory go with --train")
    if train and convention is not Convention.macs:
        raise typer.BadParameter("--convention names the totals of the inference counts; --train counts "
                                 "FLOPs as FlopCounterMode does (flops_fwd, flops_bwd)")
    results = _guard(lambda: _compile_all(specs, override))
    if train:
        _guard(lambda: _train_stats(results, per_layer, fmt, batch, precision.value,
                                    optimizer.value if optimizer else None, budget, memory, cuda_context))
        return
    from ..analysis import human
    from ..analysis.conventions import CONVENTIONS, format_value, tally
    cv = CONVENTIONS[convention.value]
    tallies = _guard(lambda: [tally(g, st, cv.name) for _, g, st in results])
    for (_, _, st), t in zip(results, tallies):  # one line per op that the convention cannot count
        for op in dict.fromkeys(o for _, o, _ in t.not_modelled):
            layers = [n for n, o, _ in t.not_modelled if o == op]
            why = next(r for _, o, r in t.not_modelled if o == op)
            print(f"{st.ref}: {cv.name} is n/a: {len(layers)} layer(s) of op '{op}' ({layers[0]}"
                  f"{', …' if len(layers) > 1 else ''}) not modelled: {why}", file=sys.stderr)
    if fmt is Format.json:
        out = []
        for (net, g, st), tl in zip(results, tallies):
            obj: dict[str, Any] = {"name": st.name, "ref": st.ref, "input": list(st.input),
                                   "output": list(st.output), "params": st.params, "weights": st.weights,
                                   "macs": st.macs, cv.key: tl.total, "activations": st.activations,
                                   "neurons": st.neurons, "receptive_field": list(st.rf)}
            if tl.not_modelled:
                obj[f"{cv.key}_not_modelled"] = [{"layer": n, "op": o, "reason": r} for n, o, r in tl.not_modelled]
            if st.aux:  # training-time outputs: the totals above leave them out
                obj.update(params_with_aux=st.params_with_aux, weights_with_aux=st.weights_with_aux,
                           macs_with_aux=st.macs_with_aux, activations_with_aux=st.activations_with_aux,
                           **({f"{cv.key}_with_aux": tl.total_with_aux} if cv.key != "macs" else {}),
                           aux=[{"name": a.name, "output": list(a.output), "loss_weight": a.loss_weight,
                                 "params": a.params, "macs": a.macs, "activations": a.activations}
                                for a in st.aux])
            if per_layer:
                obj["layers"] = [
                    {"name": ls.name, "op": ls.op, "output": list(ls.output), "params": ls.params,
                     "weights": ls.weights, "macs": ls.macs, cv.key: tl.layers[ls.name],
                     "activations": ls.activations,
                     "receptive_field": list(ls.rf), "jump": list(ls.jump), **({"aux": ls.aux} if ls.aux else {})}
                    for ls in st.layers if ls.op != "input"]
            out.append(obj)
        print(json.dumps(out, indent=2))
        return
    exact = fmt is Format.csv
    num = (lambda n: str(n)) if exact else human

    def ops(v) -> str:  # a cell of the totals column, under the convention
        return format_value(cv.name, v, exact, human)

    if per_layer:
        header = ["network", "#", "layer", "op", "output", "params", "weights", cv.column, "activations", "RF"]
        rows = []
        for (net, g, st), tl in zip(results, tallies):
            for i, ls in enumerate(l for l in st.layers if l.op != "input"):
                rf = str(ls.rf[0]) if ls.rf[0] == ls.rf[1] else f"{ls.rf[0]}×{ls.rf[1]}"
                rows.append([st.name, str(i), ls.name, ls.op + (f" [{ls.aux}]" if ls.aux else ""),
                             _shape(ls.output), num(ls.params), num(ls.weights), ops(tl.layers[ls.name]),
                             num(ls.activations), rf])
            rows.append([st.name, "", "total" + (" (inference)" if st.aux else ""), "", _shape(st.output),
                         num(st.params), num(st.weights), ops(tl.total), num(st.activations), ""])
            if st.aux:
                rows.append([st.name, "", "total with aux", "", _aux_outputs(st), num(st.params_with_aux),
                             num(st.weights_with_aux), ops(tl.total_with_aux), num(st.activations_with_aux), ""])
    else:
        header = ["network", "spec", "input", "output", "params", cv.column, "activations"]
        rows = []
        for (net, g, st), tl in zip(results, tallies):
            rows.append([st.name, st.ref, _shape(st.input), _shape(st.output), num(st.params), ops(tl.total),
                         num(st.activations)])
            if st.aux:  # training-time outputs: one more row, the network with them
                rows.append([f"{st.name} +aux", st.ref, _shape(st.input), _aux_outputs(st),
                             num(st.params_with_aux), ops(tl.total_with_aux), num(st.activations_with_aux)])
    title = ("MACs = multiply-accumulates per image (the ResNet paper's FLOPs)" if cv.name == "macs"
             else f"{cv.column} = {cv.doc} (docs/counting.md)")
    _emit_table(header, rows, fmt, title=title)


#: the totals columns of the other conventions (right-aligned like MACs)
_CONVENTION_COLUMNS = ("FLOPs", "_ops (GMACs)", "fvcore FLOPs", "ptflops MACs", "thop MACs")


def _bytes(n: int) -> str:
    """1536 -> '1.50 KiB'; sizes in binary units, as GPU memory is quoted."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _train_stats(results: list, per_layer: bool, fmt: "Format", batch: int, precision: str,
                 optimizer: Optional[str], budget: Optional[int], memory: Optional[str], context: str) -> None:
    """stats --train: one training step of each network (archspec.analysis.train)."""
    from ..analysis import human
    from ..analysis.train import max_batch, network_train
    rows = []
    for net, g, st in results:
        tr = network_train(g, st, net.train, batch=batch, precision=precision, optimizer=optimizer)
        fits = None
        if budget is not None:
            fits = max_batch(lambda b: network_train(g, st, net.train, batch=b, precision=precision,
                                                     optimizer=optimizer), budget)
        rows.append((net, st, tr, fits))
    if fmt is Format.json:
        out = []
        for net, st, tr, fits in rows:
            obj: dict[str, Any] = {"name": st.name, "ref": st.ref, "input": list(st.input),
                                   "output": list(st.output), "params": st.params_with_aux, "macs": st.macs}
            t = tr.as_dict(per_layer)
            if fits is not None:
                t.update(memory=memory, cuda_context=context, max_batch=fits)
            obj["train"] = t
            out.append(obj)
        print(json.dumps(out, indent=2))
        return
    exact = fmt is Format.csv
    num = (lambda n: str(n)) if exact else human
    size = (lambda n: str(n)) if exact else _bytes
    layers = per_layer or (len(rows) == 1 and fmt is not Format.csv)
    if layers:
        header = ["network", "#", "layer", "op", "FLOPs fwd", "FLOPs bwd", "saved"]
        table = []
        for net, st, tr, fits in rows:
            for i, r in enumerate(tr.layers):
                table.append([st.name, str(i), r.name, r.op + (f" [{r.aux}]" if r.aux else ""),
                              num(r.flops_fwd), num(r.flops_bwd), size(r.saved_bytes)])
            table.append([st.name, "", "total", "", num(tr.flops_fwd), num(tr.flops_bwd), size(tr.saved_bytes)])
        _emit_table(header, table, fmt, title=f"one training step per layer: batch {batch}, {precision}")
    header = ["network", "batch", "precision", "optimizer", "FLOPs fwd", "FLOPs bwd", "saved", "params",
              "grads", "optimizer state", "peak"] + (["max batch"] if budget is not None else [])
    table = [[st.name, str(tr.batch), tr.precision, tr.optimizer, num(tr.flops_fwd), num(tr.flops_bwd),
              size(tr.saved_bytes), size(tr.params_bytes), size(tr.grad_bytes), size(tr.optimizer_bytes),
              size(tr.peak_bytes)] + ([str(fits)] if budget is not None else [])
             for net, st, tr, fits in rows]
    title = "one training step (peak: the estimate of torch.cuda.max_memory_allocated, docs/training-cost.md)"
    if budget is not None:
        title += f"; max batch: peak within {memory} less a CUDA context of {context}"
    _emit_table(header, table, fmt, title=title)


def _aux_outputs(st: Any) -> str:
    """The output cell of a network's with-aux row: its training-time outputs and loss weights."""
    return ", ".join(f"{a.name} {_shape(a.output)} ×{a.loss_weight:g}" for a in st.aux)


def _emit_table(header: list[str], rows: list[list[str]], fmt: Format, title: str = "") -> None:
    if fmt is Format.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        sys.stdout.write(buf.getvalue())
    elif fmt is Format.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i < 4 else "--:" for i, _ in enumerate(header)) + "|")
        for r in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    else:
        from rich.table import Table
        t = Table(title=title or None, title_justify="left", header_style="bold")
        for i, h in enumerate(header):
            t.add_column(h, justify="right" if h in ("params", "weights", "MACs", "activations", "#", "RF", "Δ%",
                                                     "FLOPs fwd", "FLOPs bwd", "saved", "grads",
                                                     "optimizer state", "peak", "batch", "max batch")
                         or h in _CONVENTION_COLUMNS else "left")
        for r in rows:
            t.add_row(*r)
        _console().print(t)


# ------------------------------------------------------------------------------------ check
@app.command()
def check(
    specs: Optional[list[str]] = typer.Argument(None, help="spec files, FILE:COLUMN, or folders (default: specs/)"),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, markdown, csv or json"),
    errata_page: Optional[str] = typer.Option(
        None, "--errata-page", metavar="FILE",
        help="also write FILE: every erratum and variant of the specs checked, grouped by paper (docs/errata.md)"),
    check_page: bool = typer.Option(
        False, "--check-page", help="with --errata-page: write nothing; exit 1 if FILE is not what the specs give"),
    allow_path: Optional[list[str]] = ALLOW_PATH,
    max_nodes: Optional[int] = _MAX_NODES, max_edges: Optional[int] = _MAX_EDGES,
) -> None:
    """Compare every expect: entry with the analysis; exit 1 on any mismatch.

    Errata and variants (printed numbers that no reading of the architecture gives, kept as
    printed with the derived count and the reason) are listed apart from passes and failures.
    Two entries about the same printed number (same paper, network, metric, value) must agree on
    whether the paper is wrong: a contradiction is an error naming both places."""
    from ..check import check_network
    from ..check.errata import check_consistency
    if check_page and not errata_page:
        raise typer.BadParameter("--check-page goes with --errata-page FILE")
    _allow(allow_path)
    _limits(max_nodes, max_edges)

    def run():
        rows = []
        for net, g, st in _compile_all(specs):
            rows += check_network(net, g, st)
        check_consistency(rows)
        return rows

    rows = _guard(run)
    if fmt is Format.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        main_rows = [r for r in rows if r.status in ("pass", "fail")]
        flagged = [r for r in rows if r.status in ("erratum", "variant")]
        table = [[r.spec, r.metric, r.paper, r.archspec,
                  "" if r.delta_pct is None else f"{r.delta_pct:+.2f}", r.source,
                  "ok" if r.status == "pass" else ("MISMATCH: " + r.note if r.note else "MISMATCH")]
                 for r in main_rows]
        _emit_table(["spec", "metric", "paper", "archspec", "Δ%", "source", "result"], table, fmt,
                    title="Paper numbers vs archspec")
        if flagged:
            ftable = [[r.spec, r.metric, r.paper, r.archspec,
                       "" if r.delta_pct is None else f"{r.delta_pct:+.2f}", r.status, r.note] for r in flagged]
            _emit_table(["spec", "metric", "printed", "archspec", "Δ%", "kind", "why"], ftable, fmt,
                        title="Known errata and variants (kept as printed; derived count verified)")
    n_fail = sum(r.status == "fail" for r in rows)
    n_pass = sum(r.status == "pass" for r in rows)
    n_flag = sum(r.status in ("erratum", "variant") for r in rows)
    if fmt is not Format.json:
        print(f"check: {n_pass} match, {n_fail} mismatch, {n_flag} errata/variants", file=sys.stderr)
    stale_page = errata_page is not None and _errata_page(rows, errata_page, check_page)
    if n_fail or stale_page:
        raise typer.Exit(1)


def _errata_page(rows: list, path: str, check_only: bool) -> bool:
    """Write (or with ``check_only`` compare) the errata page; True when it is stale."""
    from ..check.errata import PAGE_COMMAND, errata_page
    text = errata_page(rows)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            old: Optional[str] = f.read()
    except (FileNotFoundError, UnicodeDecodeError):
        old = None
    except OSError as e:
        raise typer.BadParameter(f"--errata-page: cannot read {path!r}: {e.strerror}") from None
    if check_only:
        if old != text:
            command = PAGE_COMMAND.replace("docs/errata.md", path)
            print(f"stale: {path} differs from what the specs give; run `{command}`", file=sys.stderr)
            return True
        print(f"{path} is up to date", file=sys.stderr)
        return False
    if old == text:
        print(f"unchanged {path}", file=sys.stderr)
        return False
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise typer.BadParameter(f"--errata-page: cannot write {path!r}: {e.strerror}") from None
    print(f"wrote {path}", file=sys.stderr)
    return False


# ------------------------------------------------------------------------------------ build
@app.command()
def build(
    specs: Optional[list[str]] = typer.Argument(None, help="spec files, FILE:COLUMN, or folders"),
    out: str = typer.Option("generated", "-o", "--out", help="output folder (mirrors specs/)"),
    all_: bool = typer.Option(False, "--all", help="build the whole zoo (specs/)"),
    check_only: bool = typer.Option(False, "--check", help="render in memory and list files that differ"),
    allow_path: Optional[list[str]] = ALLOW_PATH,
    max_nodes: Optional[int] = _MAX_NODES, max_edges: Optional[int] = _MAX_EDGES,
) -> None:
    """Emit standalone PyTorch modules (torch only) from specs, through templates/."""
    from pathlib import Path

    from ..codegen import render_specs, stale_outputs, write_outputs
    from ..codegen.writer import clean_temp_files, stale_temp_files
    _limits(max_nodes, max_edges)
    if not specs and not all_ and not check_only:
        raise typer.BadParameter("name spec files, or use --all for the zoo")
    _allow(allow_path)
    refs = _guard(lambda: _refs(specs if specs else None))
    outputs = _guard(lambda: render_specs(refs, Path(out)))
    if check_only:
        stale = stale_outputs(outputs)
        for p in stale:
            print(f"stale: {p}")
        temps = stale_temp_files(outputs)
        for p in temps:
            print(f"stale: {p}  (left by an interrupted build)")
        if stale or temps:
            print(f"{len(stale)} of {len(outputs)} generated files differ from specs/ + templates/"
                  + (f", {len(temps)} temporary files left by an interrupted build" if temps else "")
                  + "; run `archspec build --all`", file=sys.stderr)
            raise typer.Exit(1)
        print(f"{len(outputs)} generated files are up to date")
        return
    for p in _guard(lambda: clean_temp_files(outputs)):
        print(f"removed {p}  (left by an interrupted build)")
    changed = _guard(lambda: write_outputs(outputs, Path(out)))
    from ..analysis import human
    for o in outputs:
        mark = "wrote" if o.path in changed else "unchanged"
        if o.source is None:
            print(f"{mark} {o.path}  (the training runtime of the scripts in {o.path.parent} and its subfolders)")
            continue
        st = o.source.stats
        if o.kind == "train":
            print(f"{mark} {o.path}  (training script for {o.source.class_name})")
            continue
        print(f"{mark} {o.path}  ({o.source.class_name}: {human(st.params)} params, {human(st.macs)} MACs, "
              f"output {_shape(st.output)})")


# ------------------------------------------------------------------------------------- diff
@app.command()
def diff(
    a: str = typer.Argument(..., help="a spec or FILE:COLUMN naming one network"),
    b: str = typer.Argument(..., help="the network to compare it with"),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, markdown, csv or json"),
    allow_path: Optional[list[str]] = ALLOW_PATH,
    max_nodes: Optional[int] = _MAX_NODES, max_edges: Optional[int] = _MAX_EDGES,
) -> None:
    """What changed from A to B: layers added, removed or changed, and the param/MAC deltas."""
    from ..analysis import human
    from ..analysis.diff import diff_networks
    _allow(allow_path)
    _limits(max_nodes, max_edges)

    def one(ref: str):
        nets = _compile_all([ref])
        if len(nets) != 1:
            raise SpecError(f"{ref} holds {len(nets)} networks; name one as FILE:COLUMN", code="usage",
                            hint="columns: " + ", ".join(n.column or n.name for n, _, _ in nets))
        return nets[0]

    (na, ga, sa), (nb, gb, sb) = _guard(lambda: (one(a), one(b)))
    d = diff_networks(ga, sa, gb, sb)
    if fmt is Format.json:
        print(json.dumps(d.as_dict(), indent=2))
        return
    sign = {"added": "+", "removed": "-", "changed": "~"}

    def attrs(c) -> str:
        return "; ".join(f"{k} {_val(v[0])} → {_val(v[1])}" for k, v in c.attrs.items())

    rows = [[sign[c.kind], c.a or "", c.b or "", c.op, attrs(c),
             f"{_shape(c.output[0]) if c.output[0] else ''} → {_shape(c.output[1]) if c.output[1] else ''}".strip(" →"),
             f"{c.params[1] - c.params[0]:+,}"] for c in d.changes]
    _emit_table(["", f"layer in {sa.name}", f"layer in {sb.name}", "op", "attributes", "output", "Δ params"],
                rows, fmt, title=f"{sa.ref} → {sb.ref}")
    tot = [["params", f"{sa.params:,}", f"{sb.params:,}", f"{sb.params - sa.params:+,}"],
           ["MACs", f"{sa.macs:,}", f"{sb.macs:,}", f"{sb.macs - sa.macs:+,}"],
           ["activations", f"{sa.activations:,}", f"{sb.activations:,}", f"{sb.activations - sa.activations:+,}"],
           ["output", _shape(sa.output), _shape(sb.output), ""]]
    _emit_table(["", sa.name, sb.name, "Δ"], tot, fmt, title=f"{len(d.changes)} layer changes "
                f"({sum(c.kind == 'added' for c in d.changes)} added, {sum(c.kind == 'removed' for c in d.changes)} "
                f"removed, {sum(c.kind == 'changed' for c in d.changes)} changed)")


def _val(v) -> str:
    if isinstance(v, (tuple, list)):
        return "×".join(str(x) for x in v) if len(set(v)) > 1 else str(v[0])
    return str(v)


# --------------------------------------------------------------------------------- validate
@app.command()
def validate(specs: list[str] = typer.Argument(..., help="spec files or FILE:COLUMN"),
             allow_path: Optional[list[str]] = ALLOW_PATH,
             max_nodes: Optional[int] = _MAX_NODES, max_edges: Optional[int] = _MAX_EDGES) -> None:
    """Parse, shape-check and render in memory (nothing is written)."""
    _allow(allow_path)
    _limits(max_nodes, max_edges)
    results = _guard(lambda: _compile_all(specs))

    def render():  # what build would reject (init:, code-generation limits), without writing
        from pathlib import Path

        from ..codegen import render_specs
        render_specs(_refs(specs), Path("generated"))
    _guard(render)
    for net, g, st in results:
        print(f"{st.ref}: ok — {st.name}, {len(g) - 1} nodes, {_shape(st.input)} -> {_shape(st.output)}")


# ----------------------------------------------------------------------------------- schema
@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (for editors)."""
    from ..spec.schema import spec_schema
    print(json.dumps(spec_schema(), indent=2, sort_keys=False))


@app.command()
def ops() -> None:
    """List the ops of the registry with their attributes."""
    from ..ops import REGISTRY, op_names
    for name in op_names():
        op = REGISTRY[name]
        fields = []
        for f, info in op.attrs.model_fields.items():
            fields.append(f if info.is_required() else f"{f}={info.default!r}")
        print(f"{name}({', '.join(fields)})")
        print(f"    {op.doc}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
