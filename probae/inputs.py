"""Input adaptation: what a model accepts as data, validated before any TensorFlow call.

Every function takes the model and the user's input and returns what the model's maths
needs, or raises a ``ValueError`` / ``TypeError`` naming the argument. A model method
validates once through here; other modules (evaluation, anomaly scores, the command
line) call ``model.check_inputs`` or ``batches``, never the model's internals.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from probae._validation import as_float_array, check_positive_int

__all__ = [
    "check_x",
    "check_condition",
    "check_arrays",
    "check_sample_weight",
    "one_hot_labels",
    "check_loop_options",
    "is_array_like",
    "keras_inputs",
    "unpack",
    "batches",
    "split_element",
]

LOOP_OPTIONS = (
    "batch_size",
    "epochs",
    "steps_per_epoch",
    "validation_batch_size",
    "validation_steps",
    "steps",
)


def check_x(model, x, name="x"):
    """x as a float32 array of the model's event shape (building the model from it).

    NaN marks a missing entry, accepted only by a model whose encoder and decoder both
    declare ``allows_missing = True`` (they marginalise missing entries).
    """
    arr = as_float_array(x, name, event_shape=model.event_shape, allow_nan=allows_missing(model))
    if not model.built:
        model.build((None, *arr.shape[1:]))
    model.decoder.check_support(arr, name)
    return arr


def allows_missing(model):
    """Whether the model's encoder and decoder both handle NaN as a missing entry."""
    return bool(getattr(model.encoder, "allows_missing", False)) and bool(
        getattr(model.decoder, "allows_missing", False)
    )


def check_condition(model, condition, n, name="condition"):
    """The condition of n examples as an array, or None for an unconditional model."""
    if model.condition_shape is None:
        if condition is not None:
            raise ValueError(
                f"{name} must be None: this model has no condition (condition_shape=None)."
            )
        return None
    if condition is None:
        raise ValueError(
            f"{name} is required: this model was built with condition_shape="
            f"{model.condition_shape}. Received: {name}=None"
        )
    c = one_hot_labels(model, condition, n, name)
    if c is None:
        c = as_float_array(condition, name, event_shape=model.condition_shape)
    if len(c) != n:
        raise ValueError(f"{name} must have one row per example ({n}). Received: {len(c)} rows")
    return c


def one_hot_labels(model, condition, n, name="condition"):
    """Integer class labels as one-hot rows when the condition is one-hot (shape (K,)):
    an int (for all n examples) or n ints in 0..K-1. None when ``condition`` is not labels."""
    shape = model.condition_shape
    if shape is None or len(shape) != 1:
        return None
    labels = np.asarray(condition)
    if labels.dtype.kind not in "iu" or labels.ndim > 1 or (labels.ndim == 1 and shape == (1,)):
        return None
    k = shape[0]
    if labels.ndim == 0:
        labels = np.full(n, int(labels))
    if np.any(labels < 0) or np.any(labels >= k):
        raise ValueError(
            f"{name} as integer class labels must lie in 0..{k - 1} (the model's condition is "
            f"one-hot of size {k}). Received: labels in [{labels.min()}, {labels.max()}]"
        )
    return np.eye(k, dtype=np.float32)[labels]


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """One finite, non-negative weight per example (or None)."""
    if sample_weight is None:
        return None
    w = as_float_array(np.asarray(sample_weight)[:, None] if np.ndim(sample_weight) == 1 else sample_weight,
                       name, event_shape=(1,))[:, 0]
    if len(w) != n:
        raise ValueError(f"{name} must have one weight per example ({n}). Received: {len(w)} weights")
    if np.any(w < 0):
        raise ValueError(f"{name} must be >= 0. Received: a minimum of {float(w.min()):g}")
    return w


def check_arrays(model, x, y, name="x", sample_weight=None):
    """Validates NumPy-like training data; returns ``(x, y, sample_weight)`` for Keras.

    ``y`` is the condition of a conditional model (``fit(x, condition)``, or
    ``fit((x, condition), y)`` with a target); for an unconditional model it is the
    target the model learns to reconstruct from x (``fit(noisy, clean)``), of the same
    shape as x. With sample weights and no y, y is x (Keras drops the weights otherwise).
    """
    target = None
    if model.condition_shape is not None:
        if isinstance(x, (tuple, list)) and len(x) == 2:
            x, condition = x
            target = y
        else:
            condition = None if y is None else y
        x = check_x(model, x, name)
        condition = check_condition(model, condition, len(x))
    else:
        x = check_x(model, x, name)
        target = y
    if target is not None:
        target = check_x(model, target, "y")
        if len(target) != len(x):
            raise ValueError(
                f"y must have one row per example of {name} ({len(x)}): it is the target the "
                f"model reconstructs from {name}. Received: {len(target)} rows"
            )
    sample_weight = check_sample_weight(sample_weight, len(x))
    if model.condition_shape is not None:
        data_x = (x, condition) if target is not None else x
        data_y = target if target is not None else condition
    else:
        data_x = x
        data_y = x if target is None and sample_weight is not None else target
    return data_x, data_y, sample_weight


def check_loop_options(kwargs, *required):
    """Validates fit/evaluate's batch_size, epochs and steps keyword arguments in place."""
    for name in LOOP_OPTIONS:
        if name in kwargs:
            allow_none = name not in required
            kwargs[name] = check_positive_int(kwargs[name], name, allow_none=allow_none)


def is_array_like(x):
    """Arrays, tensors and lists (or a tuple of them), as opposed to datasets."""
    return isinstance(x, (np.ndarray, list, tf.Tensor)) or (
        isinstance(x, tuple) and all(isinstance(v, (np.ndarray, list, tf.Tensor)) for v in x)
    )


def _build_from_dataset(model, x):
    if model.built:
        return
    if isinstance(x, keras.utils.PyDataset):
        # A PyDataset can be indexed: build from the shape of its first batch.
        first = x[0]
        while isinstance(first, (tuple, list)):
            first = first[0]
        model.build((None, *np.shape(first)[1:]))
        return
    if not isinstance(x, tf.data.Dataset):
        return
    spec = x.element_spec
    while isinstance(spec, (tuple, list)):
        spec = spec[0]
    model.build((None, *spec.shape[1:]))


def keras_inputs(model, x, y, sample_weight=None):
    """fit/evaluate's ``(x, y, sample_weight)``: arrays validated (see ``check_arrays``),
    or the model built from a dataset's element spec."""
    if is_array_like(x):
        return check_arrays(model, x, y, sample_weight=sample_weight)
    _build_from_dataset(model, x)
    if inspect.isgenerator(x):
        # Keras wants generators to yield tuples; a bare batch of x is the usual thing
        # for an unconditional model, so wrap it as (x,).
        x = (b if isinstance(b, tuple) else (b,) for b in x)
    return x, y, sample_weight


def validation_inputs(model, validation_data):
    """fit's ``validation_data`` with arrays validated like x."""
    if isinstance(validation_data, tuple) and is_array_like(validation_data[0]):
        vx, vy, vw = check_arrays(
            model,
            validation_data[0],
            validation_data[1] if len(validation_data) > 1 else None,
            "validation_data",
            sample_weight=validation_data[2] if len(validation_data) > 2 else None,
        )
        return tuple(v for v in (vx, vy, vw) if v is not None)
    if is_array_like(validation_data):
        return (check_x(model, validation_data, "validation_data"),)
    return validation_data


def unpack(model, data):
    """A training or test step's batch -> (x, condition, target, sample_weight), in the
    graph. The target is what the likelihood scores: y when given (paired data), else x.
    Integer class labels of a one-hot condition become one-hot rows."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    condition, target = None, y
    if model.condition_shape is not None:
        if isinstance(x, (tuple, list)) and len(x) == 2:
            x, condition = x
        else:
            condition, target = y, None
        if condition is None:
            raise ValueError(
                "condition is required: this model was built with condition_shape="
                f"{model.condition_shape}. Use fit(x, condition) or fit((x, condition))."
            )
        condition = tf.convert_to_tensor(condition)
        if len(model.condition_shape) == 1 and condition.shape.rank == 1 and condition.dtype.is_integer:
            condition = tf.one_hot(tf.cast(condition, tf.int32), model.condition_shape[0])
    x = tf.cast(x, "float32")
    target = x if target is None else tf.cast(target, "float32")
    return x, condition, target, sample_weight


def split_element(model, element, name="x"):
    """A dataset element -> (x, condition)."""
    if isinstance(element, dict):
        raise TypeError(
            f"{name} as a tf.data.Dataset must yield x, (x,) or (x, condition) batches, not "
            f"dicts. Received: an element with keys {sorted(element)}"
        )
    if isinstance(element, (tuple, list)):
        if model.condition_shape is not None and len(element) >= 2:
            return element[0], element[1]
        return element[0], None
    return element, None


def batches(model, x, condition=None, batch_size=256, name="x"):
    """Validated ``(x, condition)`` NumPy batches from arrays or a ``tf.data.Dataset``.

    Arrays are validated once and sliced into batches of ``batch_size``; a dataset is
    read batch by batch (its own batching), each batch validated as it streams.

    Returns:
        ``(iterator, total)``: the batches and the number of examples (None for a
        dataset).
    """
    if isinstance(x, tf.data.Dataset):
        if condition is not None:
            raise ValueError(
                f"condition must be None when {name} is a tf.data.Dataset: yield "
                "(x, condition) batches instead."
            )

        def stream():
            for element in x:
                xb, cb = split_element(model, element, name)
                xb = check_x(model, xb, name)
                yield xb, check_condition(model, cb, len(xb))

        return stream(), None
    x = check_x(model, x, name)
    c = check_condition(model, condition, len(x))
    batch_size = check_positive_int(batch_size, "batch_size")

    def sliced():
        for start in range(0, len(x), batch_size):
            s = slice(start, start + batch_size)
            yield x[s], None if c is None else c[s]

    return sliced(), len(x)
