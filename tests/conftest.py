import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    """Tests run from the repository root, as the CLI does."""
    monkeypatch.chdir(ROOT)


#: torchvision builders too large for `make test` on 2 CPU cores (ViT-L/H: 300-630 M parameters;
#: RegNet-8GF and up: 39-645 M; EfficientNet-B1/B2/B4-B7 and V2-S/M/L: 10-65 s each at 240-600 px,
#: B0 and B3 keep the family in make test; ConvNeXt-S/B/L: 10-13 s each, T keeps the family; MaxViT-T:
#: 20 s, its block library runs in make test at a small size in tests/test_maxvit.py; Swin-S/B and
#: SwinV2-T/S/B: 15-30 s each, swin_t keeps the family and tests/test_swin.py the V2 ops): their
#: numerical parity runs under `-m heavy` (make test-all); their meta-device checks run always
#: (RegNets that cannot be built on the meta device excepted: tests/test_torchvision_parity.py)
HEAVY = {"vit_l_16", "vit_l_32", "vit_h_14", "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf", "regnet_y_8gf",
         "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf", "efficientnet_b1", "efficientnet_b2",
         "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_s",
         "efficientnet_v2_m", "efficientnet_v2_l", "convnext_small", "convnext_base", "convnext_large",
         "maxvit_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"}


def torchvision_specs() -> list[Path]:
    return sorted((SPECS / "torchvision").glob("*.yaml"))
