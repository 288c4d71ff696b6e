"""EfficientNet's stochastic depth: every generated block drops its residual branch with
torchvision's probability, stochastic_depth_prob · (index of the block over all stages) / blocks."""

import pytest
import torch
import torchvision

from .conftest import ROOT
from .test_codegen import GENERATED, load_module

NAMES = [f"efficientnet_b{b}" for b in range(8)]


@pytest.mark.parametrize("name", NAMES)
def test_stochastic_depth_probabilities_equal_torchvision(name):
    with torch.device("meta"):
        ref = torchvision.models.get_model(name, weights=None)
        ours = load_module(GENERATED / "torchvision" / f"{name}.py").build(init_weights=False)
    theirs = {n: m for n, m in ref.named_modules() if isinstance(m, torchvision.ops.StochasticDepth)}
    mine = {n: m for n, m in ours.named_modules() if type(m).__name__ == "StochasticDepth"}
    # torchvision gives every MBConv a StochasticDepth but calls it only on the residual ones; the
    # spec has the layer exactly where it is called
    residual = {f"{n}.stochastic_depth" for n, m in ref.named_modules()
                if isinstance(m, torchvision.models.efficientnet.MBConv) and m.use_res_connect}
    assert set(mine) == residual and residual <= set(theirs)
    assert len(theirs) == sum(len(stage) for stage in ref.features[1:-1])
    for n, m in mine.items():
        assert (m.p, m.mode) == (theirs[n].p, theirs[n].mode), n   # exactly the same float
    # the last block's probability approaches stochastic_depth_prob = 0.2 from below
    last = max(theirs.values(), key=lambda m: m.p)
    assert 0.18 < last.p < 0.2


def test_the_base_table_is_table_1():
    """The shared base writes Table 1 (B0) and its running block counts once."""
    text = (ROOT / "specs" / "blocks" / "torchvision_efficientnet.yaml").read_text()
    assert "- [6, 5, 2, 112,  192,   4]" in text
    net = load_module(GENERATED / "torchvision" / "efficientnet_b0.py").build(init_weights=False)
    assert [len(s) for s in net.features[1:-1]] == [1, 2, 2, 3, 3, 4, 1]
