"""Shared fixtures. Reference data lives in ../shared/data (not in the repository);
tests that need it skip with a message when it is absent."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """Path of a file in ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (../shared/data is not part of the repository)")
    return path


@pytest.fixture
def shared_data():
    return shared_file
