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


def torchvision_specs() -> list[Path]:
    return sorted((SPECS / "torchvision").glob("*.yaml"))
