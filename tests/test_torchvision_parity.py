"""The IR's static counts against torchvision itself: params and FlopCounterMode MACs.

Models are built on the meta device (no memory, no compute): FlopCounterMode counts the ops a
forward pass dispatches, which needs shapes only.
"""

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from archspec.analysis import compile_spec

from .conftest import HEAVY, torchvision_specs

SPECS = torchvision_specs()


def _torchvision(name: str, num_classes: int = 1000) -> torch.nn.Module:
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(name, weights=None, num_classes=num_classes).eval()
    except NotImplementedError:
        # RegNet computes its stage widths with tensors (.tolist() of a meta tensor has no data):
        # build it on the CPU, then move it to the meta device for the count
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes).eval().to("meta")


# a builder that cannot be built on the meta device costs a CPU build: the largest run in make test-all
PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.heavy] if p.stem in HEAVY and p.stem.startswith("regnet")
                       else []) for p in SPECS]


@pytest.mark.parametrize("spec", PARAMS)
def test_params_and_macs_equal_torchvision(spec):
    [(net, graph, stats)] = compile_spec(str(spec))
    model = _torchvision(spec.stem)
    # the module holds its training-time outputs' parameters (GoogLeNet's aux1/aux2) ...
    assert stats.params_with_aux == sum(p.numel() for p in model.parameters())
    # ... but eval mode does not run them: MACs are the inference network's
    x = torch.empty((1, *net.input), device="meta")
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    assert counter.get_total_flops() % 2 == 0
    assert stats.macs == counter.get_total_flops() // 2
    assert tuple(out.shape[1:]) == stats.output


def test_zoo_has_every_builder_of_this_issue():
    names = {p.stem for p in SPECS}
    assert {"alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
            "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= names


def test_input_override_matches_torchvision_at_another_size():
    [(net, graph, stats)] = compile_spec("specs/torchvision/resnet50.yaml", (3, 160, 128))
    model = _torchvision("resnet50")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty((1, 3, 160, 128), device="meta"))
    assert stats.macs == counter.get_total_flops() // 2
