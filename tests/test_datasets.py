"""Loaders read local copies first, validate their directory, and fail in one clear line."""

import numpy as np
import pytest

from probae import datasets


def test_load_mnist_from_local_dir(data_dir):
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(data_dir)
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() == 1.0
    assert y_train.shape == (60000,) and set(np.unique(y_test)) == set(range(10))
    (flat, _), _ = datasets.load_mnist(data_dir, flatten=True)
    assert flat.shape == (60000, 784)


def test_load_binarized_mnist(data_dir):
    train, valid, test = datasets.load_binarized_mnist(data_dir)
    assert (
        train.shape == (50000, 784) and valid.shape == (10000, 784) and test.shape == (10000, 784)
    )
    assert set(np.unique(test)) == {0.0, 1.0} and test.dtype == np.float32


def test_load_fashion_mnist_partial_split_is_seeded(data_dir):
    (xa, ya), (xt, yt) = datasets.load_fashion_mnist(data_dir)
    (xb, yb), _ = datasets.load_fashion_mnist(data_dir)
    assert xa.shape[1:] == (28, 28, 1) and len(xa) + len(xt) == 57230
    assert abs(len(xt) / 57230 - 1 / 7) < 1e-3
    np.testing.assert_array_equal(ya, yb)
    assert 0.0 <= xa.min() and xa.max() <= 1.0


def test_environment_variable_is_used(data_dir, monkeypatch):
    monkeypatch.setenv("PROBAE_DATA_DIR", data_dir)
    train, _, _ = datasets.load_binarized_mnist()
    assert train.shape == (50000, 784)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="data_dir must be an existing directory"):
        datasets.load_mnist(tmp_path / "nope")


def test_no_local_copy_and_no_download_is_one_clear_line(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(datasets.DatasetNotFoundError, match="PROBAE_DATA_DIR") as info:
        datasets.load_mnist(tmp_path)
    assert "\n" not in str(info.value)


def test_digits_are_bundled():
    (x, y), (xt, yt) = datasets.load_digits()
    assert x.shape[1:] == (8, 8, 1) and len(x) + len(xt) == 1797
    assert 0.0 <= x.min() and x.max() == 1.0


def test_offline_message_keeps_the_cause(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(datasets.DatasetNotFoundError, match="name resolution"):
        datasets.load_mnist(tmp_path)


def test_corrupt_local_file_is_named(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=r"mnist.npz.*cannot be read"):
        datasets.load_mnist(tmp_path)
    x = np.zeros((4, 28, 28), np.float32)
    x[1, 2, 3] = np.nan
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.zeros(4), x_test=x, y_test=np.zeros(4))
    with pytest.raises(ValueError, match=r"mnist.npz.*NaN or infinite"):
        datasets.load_mnist(tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=x)
    with pytest.raises(ValueError, match=r"mnist.npz.*y_train"):
        datasets.load_mnist(tmp_path)


def test_short_fashion_idx_file_is_named(tmp_path):
    """IDX files that decompress but hold fewer images than labels name the file."""
    import gzip

    names = [
        "train-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ]
    labels = np.zeros(3, np.uint8)
    for name in names:
        with gzip.open(tmp_path / name, "wb") as f:
            if "labels" in name:
                f.write(b"\0" * 8 + labels.tobytes())
            else:
                f.write(
                    b"\0" * 16 + np.zeros(2 * 28 * 28, np.uint8).tobytes()
                )  # 2 images, 3 labels
    with pytest.raises(
        ValueError, match=r"images-idx3-ubyte.gz holds 1568 pixel values, not 3 images"
    ):
        datasets.load_fashion_mnist(tmp_path)
