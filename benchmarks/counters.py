"""Run the counters on torchvision's resnet50() and print what each one reports (docs/counting.md).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/counters.py [builder]

Each tool is called as its README shows, at batch 1 on a 3×224×224 input, in eval mode; next to it,
what ``archspec stats --convention`` computes statically for specs/torchvision/<builder>.yaml. The
last lines split ResNet-50's input/output elements by op (archspec's per-layer shapes), which is
what the extra terms of docs/counting.md are made of.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections import Counter

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from archspec.analysis import compile_spec
from archspec.analysis.conventions import CONVENTIONS, tally
from archspec.ops import numel


def main(name: str = "resnet50") -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    model = getattr(torchvision.models, name)().eval()
    x = torch.randn(1, 3, 224, 224)
    got: dict[str, object] = {}
    from fvcore.nn import FlopCountAnalysis
    f = FlopCountAnalysis(model, (x,)).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    got["fvcore"] = f.total()
    got["fvcore by operator"] = dict(f.by_operator())
    from ptflops import get_model_complexity_info
    with contextlib.redirect_stdout(io.StringIO()):
        got["ptflops"] = get_model_complexity_info(model, (3, 224, 224), as_strings=False,
                                                   print_per_layer_stat=False)[0]
        got["ptflops string"] = get_model_complexity_info(model, (3, 224, 224), print_per_layer_stat=False)[0]
        got["ptflops count_functional=False"] = get_model_complexity_info(
            model, (3, 224, 224), as_strings=False, print_per_layer_stat=False,
            backend_specific_config={"count_functional": False})[0]
    from thop import profile
    with contextlib.redirect_stdout(io.StringIO()):
        got["thop"] = int(profile(model, inputs=(x,), verbose=False)[0])
    with FlopCounterMode(display=False) as c:  # autograd on: what a training step's forward costs
        model(x)
    got["FlopCounterMode"] = c.get_total_flops()
    weights = torchvision.models.get_model_weights(name)
    got["torchvision meta _ops"] = list(weights)[0].meta["_ops"]
    for k, v in got.items():
        print(f"{k:32} {v:,}" if isinstance(v, int) else f"{k:32} {v}")

    [(net, graph, st)] = compile_spec(f"specs/torchvision/{name}.yaml")
    print()
    for conv in CONVENTIONS:
        v = tally(graph, st, conv).total
        print(f"archspec stats --convention {conv:12} {v:,}" if isinstance(v, int) else
              f"archspec stats --convention {conv:12} {v}")
    ins, outs = Counter(), Counter()
    for node in graph.nodes():
        if node.op != "input":
            ins[node.op] += numel(node.in_shapes[0])
            outs[node.op] += numel(node.shape)
    print()
    for op in ins:
        print(f"{op:16} input elements {ins[op]:>13,}   output elements {outs[op]:>13,}")


if __name__ == "__main__":
    main(*sys.argv[1:])
