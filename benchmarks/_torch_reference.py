"""Reference side of ``benchmarks/stats_vs_torch.py``: count torchvision networks with torch.

Usage::

    python benchmarks/_torch_reference.py NAME:C,H,W [NAME:C,H,W ...]

For each argument it builds ``torchvision.models.get_model(NAME, weights=None)`` on the
CPU (random initialisation, so the weights are really allocated), puts it in eval mode,
counts the parameters with ``sum(p.numel())`` and the FLOPs of one forward pass on one
random ``1 x C x H x W`` image with ``torch.utils.flop_counter.FlopCounterMode``.
It prints one JSON object on stdout::

    {"torch": "...", "torchvision": "...",
     "networks": [{"name": ..., "input": [C, H, W], "params": ..., "flops": ..., "macs": ...}]}

``macs`` is ``flops // 2``: FlopCounterMode counts a multiply-accumulate as 2 FLOPs.
Everything (importing torch included) is part of what the caller times.
"""

from __future__ import annotations

import json
import sys


def _parse(arg: str) -> tuple[str, tuple[int, ...]]:
    name, _, size = arg.partition(":")
    if not name or not size:
        raise SystemExit(f"expected NAME:C,H,W, got {arg!r}")
    return name, tuple(int(v) for v in size.split(","))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    jobs = [_parse(a) for a in argv]

    import torch
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    networks = []
    for name, size in jobs:
        model = torchvision.models.get_model(name, weights=None)
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        x = torch.randn(1, *size)
        counter = FlopCounterMode(display=False)
        # with autograd on: under no_grad, eval-mode nn.MultiheadAttention (ViT) takes its fused
        # fast path, whose attention matmuls FlopCounterMode does not see
        with counter:
            model(x)
        flops = counter.get_total_flops()
        networks.append(
            {"name": name, "input": list(size), "params": int(params), "flops": int(flops), "macs": int(flops) // 2}
        )
        del model, x

    json.dump(
        {"torch": torch.__version__, "torchvision": torchvision.__version__, "networks": networks},
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
