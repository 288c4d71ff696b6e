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


#: torchvision builders too large for `make test` on 2 CPU cores (54-645 M parameters): their
#: numerical parity runs under `-m heavy` (make test-all); their meta-device checks run always
HEAVY = {"vit_l_16", "vit_l_32", "vit_h_14", "regnet_x_16gf", "regnet_x_32gf", "regnet_y_16gf", "regnet_y_32gf",
         "regnet_y_128gf"}


def torchvision_specs() -> list[Path]:
    return sorted((SPECS / "torchvision").glob("*.yaml"))
