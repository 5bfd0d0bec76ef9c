"""Shared test setup: local datasets, seeds, quiet TensorFlow."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"

# Tests, CI and offline users read the datasets from ../shared/datasets (beside the repo).
if "PROBAE_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["PROBAE_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def data_dir():
    """The local dataset directory; tests that need real data skip when it is absent."""
    path = os.environ.get("PROBAE_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("no local dataset directory (set PROBAE_DATA_DIR or provide ../shared/datasets)")
    return path


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield
