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
#: EfficientNet-B5-B7: 30-66 M parameters, 39-55 blocks, minutes of CPU each): their
#: numerical parity runs under `-m heavy` (make test-all); their meta-device checks run always
HEAVY = {"vit_l_16", "vit_l_32", "vit_h_14", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}


def torchvision_specs() -> list[Path]:
    return sorted((SPECS / "torchvision").glob("*.yaml"))
