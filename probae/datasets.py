"""Dataset loaders: local copies first, then a download as Keras does.

Every loader looks for its file, in this order, in

1. the ``data_dir`` argument,
2. the directory named by the ``PROBAE_DATA_DIR`` environment variable,
3. Keras' download cache (``~/.keras/datasets``), downloading it there if absent.

Images are returned as float32 arrays in [0, 1] of shape ``(n, 28, 28, 1)`` (height,
width, channels), or ``(n, 784)`` with ``flatten=True``; labels as int64 arrays.
If a file can be neither found nor downloaded, :class:`DatasetNotFoundError` says so in one
line and names the fix.
"""

import gzip
import os
import zipfile

import numpy as np

from probae._validation import check_fraction, check_seed

__all__ = [
    "DatasetNotFoundError",
    "load_mnist",
    "load_binarized_mnist",
    "load_fashion_mnist",
    "load_digits",
    "resolve_data_dir",
    "DATASETS",
    "load_dataset",
]

ENV_VAR = "PROBAE_DATA_DIR"

_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
_FASHION_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_BINARIZED_BASE = (
    "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_"
)


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither in a local directory nor downloadable."""


def resolve_data_dir(data_dir=None):
    """Returns the local data directory to search: the argument, else ``$PROBAE_DATA_DIR``.

    Args:
        data_dir: a directory path or None.

    Returns:
        The directory as a string, or None when neither is set.

    Raises:
        ValueError: ``data_dir`` (or the environment variable) is not an existing directory.
    """
    source = "data_dir"
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
        source = ENV_VAR
    if data_dir is None:
        return None
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise ValueError(f"{source} must be an existing directory. Received: {source}={data_dir!r}")
    return data_dir


def _find_local(data_dir, filename):
    data_dir = resolve_data_dir(data_dir)
    if data_dir is None:
        return None
    path = os.path.join(data_dir, filename)
    return path if os.path.exists(path) else None


def _download(filename, origin, what):
    import keras

    try:
        return keras.utils.get_file(filename, origin=origin)
    except Exception as err:  # network errors come in many types
        cause = " ".join(str(err).split())[:200] or type(err).__name__
        raise DatasetNotFoundError(
            f"{what} was not found locally and could not be downloaded ({type(err).__name__}: "
            f"{cause}). Put {filename!r} in a directory and pass data_dir=... or set {ENV_VAR}."
        ) from None


def _load_npz(path, keys):
    """The arrays ``keys`` of the ``.npz`` file at ``path``; a damaged file, a missing key or
    NaN / inf values raise a ``ValueError`` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise ValueError(
                    f"{path} lacks the array(s) {missing} (it holds {sorted(f.files)}); replace it "
                    "with the original file"
                )
            arrays = [f[k] for k in keys]
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged or not a "
            ".npz file: delete it or replace it with the original"
        ) from None
    for key, a in zip(keys, arrays):
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{path}: the array {key} is not numeric (dtype {a.dtype})")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"{path}: the array {key} holds NaN or infinite values")
    return arrays


def _images(x, flatten):
    x = np.asarray(x, dtype=np.float32)
    if x.max(initial=0.0) > 1.0:
        x = x / 255.0
    n = x.shape[0]
    return x.reshape(n, -1) if flatten else x.reshape(n, 28, 28, 1)


def load_mnist(data_dir=None, flatten=False):
    """Loads MNIST: 60,000 training and 10,000 test digits.

    Args:
        data_dir: directory holding ``mnist.npz`` (Keras' layout); see the module doc.
        flatten: return images as vectors of 784 instead of 28 x 28 x 1.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float32 images in [0, 1] of shape
        ``(n, 28, 28, 1)`` (or ``(n, 784)``) and int64 labels 0..9.

    Raises:
        DatasetNotFoundError: the file is neither local nor downloadable.
    """
    path = _find_local(data_dir, "mnist.npz") or _download("mnist.npz", _MNIST_URL, "MNIST")
    x_train, y_train, x_test, y_test = _load_npz(path, ["x_train", "y_train", "x_test", "y_test"])
    return (
        (_images(x_train, flatten), y_train.astype(np.int64)),
        (_images(x_test, flatten), y_test.astype(np.int64)),
    )


def load_binarized_mnist(data_dir=None, flatten=True):
    """Loads the fixed binarization of MNIST (Larochelle and Murray 2011).

    This is the standard data set for likelihood benchmarks: 50,000 training, 10,000
    validation and 10,000 test images whose pixels are 0 or 1.

    Args:
        data_dir: directory holding ``binarized_mnist.npz`` (keys train, valid, test).
        flatten: return vectors of 784 (default) instead of 28 x 28 x 1 images.

    Returns:
        ``x_train, x_valid, x_test``: float32 arrays with values in {0, 1}.

    Raises:
        DatasetNotFoundError: the file is neither local nor downloadable.
    """
    path = _find_local(data_dir, "binarized_mnist.npz")
    if path is not None:
        splits = _load_npz(path, ["train", "valid", "test"])
    else:
        splits = []
        for split in ("train", "valid", "test"):
            amat = _download(
                f"binarized_mnist_{split}.amat",
                f"{_BINARIZED_BASE}{split}.amat",
                "Binarized MNIST",
            )
            splits.append(np.loadtxt(amat, dtype=np.uint8))
    return tuple(_images(s, flatten) for s in splits)


def _read_idx(path, offset):
    try:
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged: delete "
            "it or replace it with the original"
        ) from None


def load_fashion_mnist(data_dir=None, flatten=False, test_fraction=1 / 7, seed=0):
    """Loads Fashion-MNIST.

    Downloaded, it is the official split of 60,000 training and 10,000 test images. A local
    ``fashion_partial.npz`` (pooled images, as in ``../shared/datasets``; classes 2 and 6
    are mostly absent and labelled -1) has no official split: it is split here with a
    fixed ``seed``, ``test_fraction`` of it going to the test part.

    Args:
        data_dir: directory holding ``fashion_partial.npz`` or the four official
            ``*-idx*-ubyte.gz`` files.
        flatten: return vectors of 784 instead of 28 x 28 x 1 images.
        test_fraction: share of a pooled local file used as the test part.
        seed: seed of that split.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float32 images in [0, 1], int64 labels.

    Raises:
        DatasetNotFoundError: no file is local and the download fails.
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    seed = check_seed(seed)
    pooled = _find_local(data_dir, "fashion_partial.npz")
    if pooled is not None:
        x, y = _load_npz(pooled, ["x", "y"])
        y = y.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = int(round(len(x) * test_fraction))
        test, train = order[:n_test], order[n_test:]
        return (_images(x[train], flatten), y[train]), (_images(x[test], flatten), y[test])
    paths = []
    for name in _FASHION_FILES:
        local = _find_local(data_dir, name)
        paths.append(
            local or _download(f"fashion-mnist-{name}", _FASHION_BASE + name, "Fashion-MNIST")
        )
    y_train = _read_idx(paths[0], 8).astype(np.int64)
    x_train = _idx_images(paths[1], len(y_train))
    y_test = _read_idx(paths[2], 8).astype(np.int64)
    x_test = _idx_images(paths[3], len(y_test))
    return (_images(x_train, flatten), y_train), (_images(x_test, flatten), y_test)


def _idx_images(path, n):
    """The 28 x 28 images of an IDX file, one per label, or an error naming the file."""
    pixels = _read_idx(path, 16)
    if pixels.size != n * 28 * 28:
        raise ValueError(
            f"{path} holds {pixels.size} pixel values, not {n} images of 28 x 28 (one per "
            "label): the file is truncated or does not match its label file; delete it or "
            "replace it with the original"
        )
    return pixels.reshape(n, 28, 28)


def load_digits(flatten=False, test_fraction=0.2, seed=0):
    """Loads scikit-learn's bundled 8 x 8 digits (1,797 images; no download needed).

    A small embedded default for examples and offline use.

    Args:
        flatten: return vectors of 64 instead of 8 x 8 x 1 images.
        test_fraction: share of the images in the test part.
        seed: seed of the split.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float32 images in [0, 1], int64 labels.
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    seed = check_seed(seed)
    from sklearn.datasets import load_digits as _sk_digits

    data = _sk_digits()
    x = (data.images / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    shape = (-1, 64) if flatten else (-1, 8, 8, 1)
    return (x[train].reshape(shape), y[train]), (x[test].reshape(shape), y[test])


DATASETS = ("mnist", "binarized_mnist", "fashion_mnist", "digits")


def load_dataset(name, data_dir=None, flatten=False):
    """Loads a dataset by name with one return layout (used by the examples and the CLI).

    Args:
        name: one of ``DATASETS``.
        data_dir: local directory searched first (see the module doc); unused for digits.
        flatten: return vectors instead of H x W x 1 images.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``; the labels are None for binarized_mnist
        (its validation split is dropped).

    Raises:
        ValueError: unknown name.
        DatasetNotFoundError: the file is neither local nor downloadable.
    """
    if name == "mnist":
        return load_mnist(data_dir, flatten=flatten)
    if name == "fashion_mnist":
        return load_fashion_mnist(data_dir, flatten=flatten)
    if name == "digits":
        return load_digits(flatten=flatten)
    if name == "binarized_mnist":
        x_train, _, x_test = load_binarized_mnist(data_dir, flatten=flatten)
        return (x_train, None), (x_test, None)
    raise ValueError(f"name must be one of {DATASETS}. Received: name={name!r}")
