"""EfficientNet's and EfficientNetV2's stochastic depth: every generated block drops its residual branch with
torchvision's probability, stochastic_depth_prob · (index of the block over all stages) / blocks."""

import pytest
import torch
import torchvision

from .conftest import ROOT
from .test_codegen import GENERATED, load_module

NAMES = [f"efficientnet_b{b}" for b in range(8)] + [f"efficientnet_v2_{v}" for v in "sml"]


@pytest.mark.parametrize("name", NAMES)
def test_stochastic_depth_probabilities_equal_torchvision(name):
    with torch.device("meta"):
        ref = torchvision.models.get_model(name, weights=None)
        ours = load_module(GENERATED / "torchvision" / f"{name}.py").build(init_weights=False)
    theirs = {n: m for n, m in ref.named_modules() if isinstance(m, torchvision.ops.StochasticDepth)}
    mine = {n: m for n, m in ours.named_modules() if type(m).__name__ == "StochasticDepth"}
    # torchvision gives every MBConv (and FusedMBConv) a StochasticDepth but calls it only on the residual ones; the
    # spec has the layer exactly where it is called
    blocks = (torchvision.models.efficientnet.MBConv, torchvision.models.efficientnet.FusedMBConv)
    residual = {f"{n}.stochastic_depth" for n, m in ref.named_modules()
                if isinstance(m, blocks) and m.use_res_connect}
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


def test_the_v2_base_table_is_table_4():
    """The V2 base writes Table 4 (V2-S); V2-M and V2-L have seven stages, V2-S six."""
    text = (ROOT / "specs" / "blocks" / "torchvision_efficientnet_v2.yaml").read_text()
    assert "- [MBConv,      6, 3, 2, 160,  256, 15]" in text
    with torch.device("meta"):
        for name, depths in [("efficientnet_v2_s", [2, 4, 4, 6, 9, 15]),
                             ("efficientnet_v2_m", [3, 5, 5, 7, 14, 18, 5]),
                             ("efficientnet_v2_l", [4, 7, 7, 10, 19, 25, 7])]:
            net = load_module(GENERATED / "torchvision" / f"{name}.py").build(init_weights=False)
            assert [len(s) for s in net.features[1:-1]] == depths, name
            assert [type(s[0]).__name__ for s in net.features[1:-1]][2:4] == ["FusedMBConv", "MBConv"]
