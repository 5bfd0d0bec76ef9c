"""Input validation shared by every public entry point.

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument,
states what was expected and shows what was received, so that users never see a deep
TensorFlow traceback for a mistake in their input.
"""

import numbers

import numpy as np
import tensorflow as tf


def _describe(value):
    if isinstance(value, (np.ndarray, tf.Tensor)):
        return f"array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def check_positive_int(value, name, allow_none=False):
    """Returns ``value`` as an int, or raises if it is not a positive integer."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={_describe(value)}")
    return int(value)


# Sizes refused up front, before TensorFlow tries to allocate them: a layer width or a
# code size above MAX_UNITS, an array above MAX_ELEMENTS float32 values (4 GiB).
MAX_UNITS = 2**20
MAX_ELEMENTS = 2**30


def check_size(value, name, maximum=MAX_UNITS):
    """Returns ``value`` as an int, or raises if it is not an integer in [1, maximum]."""
    value = check_positive_int(value, name)
    if value > maximum:
        raise ValueError(
            f"{name} must be at most {maximum} (larger sizes would exhaust memory). "
            f"Received: {name}={value}"
        )
    return value


def check_array_size(n, event_shape, name="n"):
    """Raises if ``n`` examples of ``event_shape`` would exceed ``MAX_ELEMENTS`` values."""
    size = int(n) * int(np.prod(event_shape, dtype=np.int64))
    if size > MAX_ELEMENTS:
        raise ValueError(
            f"{name}={n} examples of shape {tuple(event_shape)} would need {size * 4 / 2**30:.0f} "
            f"GiB of float32; at most {MAX_ELEMENTS} values are made at once. Ask for "
            f"{name} <= {MAX_ELEMENTS // max(size // int(n), 1)} per call."
        )


def check_non_negative_float(value, name):
    """Returns ``value`` as a float, or raises if it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={_describe(value)}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def check_positive_float(value, name):
    """Returns ``value`` as a float, or raises if it is not a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={_describe(value)}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def check_fraction(value, name):
    """Returns ``value`` as a float, or raises if it is not a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={_describe(value)}")
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"{name} must be a number strictly between 0 and 1. Received: {name}={value!r}"
        )
    return float(value)


def check_shape(value, name):
    """Returns ``value`` as a tuple of positive ints (an event shape)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        shape = tuple(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a tuple of positive integers. Received: {name}={_describe(value)}"
        ) from None
    if not shape or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"{name} must be a non-empty tuple of positive integers. Received: {name}={value!r}"
        )
    return tuple(int(s) for s in shape)


def check_seed(seed, name="seed"):
    """Returns ``seed`` as an int or None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"{name} must be None or a non-negative integer. Received: {name}={_describe(seed)}"
        )
    return int(seed)


def as_float_array(x, name, event_shape=None, allow_empty=False, allow_nan=False):
    """Converts ``x`` to a float32 NumPy array of shape ``[batch, *event_shape]``.

    Args:
        x: array-like or tensor; a batch of examples.
        name: the argument's name, used in error messages.
        event_shape: expected shape of one example, or None to accept any rank >= 2
            (a batch of vectors or larger).
        allow_empty: accept a batch of zero examples.
        allow_nan: accept NaN (missing entries, for models that marginalise them);
            infinities are still refused.

    Returns:
        A float32 ``np.ndarray``.

    Raises:
        TypeError: non-numeric input (strings, objects, booleans are accepted as 0/1).
        ValueError: wrong rank or shape, an empty batch, NaN or inf.
    """
    if isinstance(x, tf.data.Dataset):
        raise TypeError(
            f"{name} must be an array or tensor here, not a tf.data.Dataset. Received: {name}={x!r}"
        )
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # a scipy.sparse matrix
        raise TypeError(
            f"{name} must be a dense array: probae's networks take dense tensors. Received: "
            f"{name} as a scipy.sparse {type(x).__name__} of shape {x.shape}; pass "
            f"{name}.toarray() (or a tf.data.Dataset of dense batches for large data)."
        )
    if hasattr(x, "dtypes") and hasattr(x, "columns"):  # a pandas DataFrame
        bad = [str(c) for c, t in x.dtypes.items() if t.kind not in "biuf"]
        if bad:
            raise TypeError(
                f"{name} must hold numeric columns only. Received: a DataFrame whose columns "
                f"{bad[:5]} are not numeric (strings or categories); probae.AnomalyDetector "
                "and probae.tables encode such columns for you."
            )
        x = x.to_numpy(dtype=np.float64, na_value=np.nan)
    elif hasattr(x, "to_numpy") and hasattr(x, "dtype") and not isinstance(x, np.ndarray):
        x = x.to_numpy()  # a pandas Series
    if isinstance(x, (tf.Tensor, tf.Variable)):
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array. Could not convert it: {err}") from None
    if arr.dtype == object or arr.dtype.kind in "USVOMm":
        raise TypeError(
            f"{name} must be a numeric array (float or int). Received: {name} with dtype "
            f"{arr.dtype}"
        )
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real-valued. Received: {name} with dtype {arr.dtype}")
    if event_shape is not None:
        event_shape = tuple(event_shape)
        expected_rank = len(event_shape) + 1
        if arr.ndim == len(event_shape) and tuple(arr.shape) == event_shape:
            raise ValueError(
                f"{name} must be a batch of shape (batch, {', '.join(map(str, event_shape))})"
                f". Received: a single example of shape {arr.shape}; add a batch axis "
                f"(for example {name}[None])."
            )
        if arr.ndim != expected_rank or tuple(arr.shape[1:]) != event_shape:
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(map(str, event_shape))}) to match "
                f"the model. Received: {name} with shape {arr.shape}"
            )
    elif arr.ndim < 2:
        raise ValueError(
            f"{name} must be a batch of examples with rank >= 2 (batch, features...). "
            f"Received: {name} with shape {arr.shape}"
        )
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(
            f"{name} must hold at least one example. Received: an empty batch of shape {arr.shape}"
        )
    if (
        arr.size
        and arr.dtype.kind == "f"
        and not np.all(np.isfinite(arr) | (allow_nan & np.isnan(arr)))
    ):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(
            f"{name} must contain only finite values. Received: {name} with {bad} NaN or "
            f"infinite value(s)"
        )
    if arr.dtype != np.float32:
        with np.errstate(over="ignore"):
            arr = arr.astype(np.float32)
        if arr.size and not np.all(np.isfinite(arr) | (allow_nan & np.isnan(arr))):
            raise ValueError(
                f"{name} must fit in float32 (|values| < 3.4e38). Received: {name} with values "
                "that overflow float32; rescale it."
            )
    return arr
