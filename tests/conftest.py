"""Shared test setup: local datasets (and MNIST subsets from them), seeds, quiet TensorFlow."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

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
        pytest.skip(
            "no local dataset directory (set PROBAE_DATA_DIR or provide ../shared/datasets)"
        )
    return path


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield


N_TRAIN, N_TEST = 5000, 1000


@pytest.fixture(scope="session")
def mnist(data_dir):
    """Grey-level MNIST vectors in [0, 1]: (x, y, x_test, y_test) subsets."""
    import probae

    (x, y), (xt, yt) = probae.datasets.load_mnist(flatten=True)
    return x[:N_TRAIN], y[:N_TRAIN], xt[:N_TEST], yt[:N_TEST]


@pytest.fixture(scope="session")
def binarized(data_dir):
    """Binarized MNIST (the likelihood benchmark): (x, x_test) subsets."""
    import probae

    x, _, xt = probae.datasets.load_binarized_mnist()
    return x[:N_TRAIN], xt[:N_TEST]
