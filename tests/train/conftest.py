"""Shared fixtures of the trainer tests: a toy dataset on disk (see train_toy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_toy import make_toy_dataset


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return make_toy_dataset(tmp_path / "toy_data")
