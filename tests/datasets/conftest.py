import pytest


@pytest.fixture
def root(tmp_path):
    """DATASET.ROOT of a test: a folder that does not exist yet."""
    return tmp_path / "data"
