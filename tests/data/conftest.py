"""Session fixtures of the data tests (helpers live in data_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_fixtures import LENGTHS, make_episode, write_dataset


@pytest.fixture(scope="session")
def episodes() -> list[dict[str, np.ndarray]]:
    return [make_episode(length, seed) for seed, length in enumerate(LENGTHS)]


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory: pytest.TempPathFactory, episodes: list[dict[str, np.ndarray]]) -> Path:
    """Written with tiny file limits so data and video roll over several files."""
    root = tmp_path_factory.mktemp("ds") / "robot"
    return write_dataset(root, episodes, data_files_size_in_mb=0.02, video_files_size_in_mb=0.002)
