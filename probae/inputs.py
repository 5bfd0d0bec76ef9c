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
    "array_batches",
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
    w = as_float_array(
        np.asarray(sample_weight)[:, None] if np.ndim(sample_weight) == 1 else sample_weight,
        name,
        event_shape=(1,),
    )[:, 0]
    if len(w) != n:
        raise ValueError(
            f"{name} must have one weight per example ({n}). Received: {len(w)} weights"
        )
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


def _is_table_or_sparse(x):
    return (hasattr(x, "dtypes") and hasattr(x, "columns")) or (
        hasattr(x, "toarray") and hasattr(x, "nnz")
    )


def is_array_like(x):
    """Arrays, tensors, lists, DataFrames and sparse matrices (or a tuple of them), as
    opposed to datasets and generators: validated as arrays."""

    def one(v):
        return isinstance(v, (np.ndarray, list, tf.Tensor)) or _is_table_or_sparse(v)

    return one(x) or (isinstance(x, tuple) and all(one(v) for v in x))


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


def keras_inputs(model, x, y, sample_weight=None, name="x"):
    """fit/evaluate's ``(x, y, sample_weight)``: arrays validated (see ``check_arrays``);
    a ``tf.data.Dataset`` checked against the model from its element spec and then batch
    by batch as it streams (``check_dataset``)."""
    if x is None:
        raise ValueError(f"{name} is required: pass the training data. Received: {name}=None")
    if is_array_like(x):
        return check_arrays(model, x, y, sample_weight=sample_weight)
    _build_from_dataset(model, x)
    if isinstance(x, tf.data.Dataset):
        x = check_dataset(model, x, name)
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
        if (
            len(model.condition_shape) == 1
            and condition.shape.rank == 1
            and condition.dtype.is_integer
        ):
            condition = tf.one_hot(tf.cast(condition, tf.int32), model.condition_shape[0])
    x = tf.cast(x, "float32")
    target = x if target is None else tf.cast(target, "float32")
    return x, condition, target, sample_weight


STREAM_ERROR = "probae:"  # marks the streamed checks' errors, turned into ValueError by fit


def _element_parts(model, element):
    """A dataset element's (x, targets to check, condition) as Keras will unpack it."""
    if not isinstance(element, (tuple, list)):
        return element, [], None
    x, y = element[0], element[1] if len(element) > 1 else None
    if model.condition_shape is not None:
        if isinstance(x, (tuple, list)) and len(x) == 2:
            return x[0], [] if y is None else [y], x[1]
        return x, [], y
    return x, [] if y is None else [y], None


def check_dataset(model, dataset, name="x"):
    """A dataset's elements checked against the model: shapes and dtypes from the element
    spec at once, then every batch as it streams (finite values, the decoder's support),
    failing with a message naming the argument.

    The per-batch check is a few reductions over each batch inside the input pipeline
    (its cost is in BENCHMARKS.md, "Validation of streamed data").
    """
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise TypeError(
            f"{name} as a tf.data.Dataset must yield x, (x, y) or (x, y, sample_weight) "
            f"batches, not dicts. Received: an element with keys {sorted(spec)}"
        )
    x_spec, y_specs, _ = _element_parts(model, spec)
    event = tuple(model.event_shape)
    for what, part in [(name, x_spec)] + [("y", s) for s in y_specs]:
        if not isinstance(part, tf.TensorSpec):
            raise TypeError(
                f"{what} (from the tf.data.Dataset) must be a tensor of shape (batch, "
                f"{', '.join(map(str, event))}). Received: {part!r}"
            )
        if not (part.dtype.is_floating or part.dtype.is_integer or part.dtype.is_bool):
            raise TypeError(
                f"{what} (from the tf.data.Dataset) must be numeric. Received: dtype {part.dtype.name}"
            )
        shape = tuple(part.shape)
        if len(shape) != len(event) + 1 or any(
            d is not None and d != e for d, e in zip(shape[1:], event)
        ):
            raise ValueError(
                f"{what} (from the tf.data.Dataset) must have shape (batch, "
                f"{', '.join(map(str, event))}) to match the model. Received: batches of shape "
                f"{shape}"
                + (" (labels? an unconditional model reconstructs y from x)" if what == "y" else "")
            )
    support = getattr(model.decoder, "support", None)
    missing_ok = allows_missing(model)

    def check(*element):
        x, ys, _ = _element_parts(model, element if len(element) > 1 else element[0])
        for what, t in [(name, x)] + [("y", y) for y in ys]:
            t = tf.cast(t, tf.float32)
            finite = (
                tf.math.is_finite(t) | tf.math.is_nan(t) if missing_ok else tf.math.is_finite(t)
            )
            tf.debugging.Assert(
                tf.reduce_all(finite),
                [
                    f"{STREAM_ERROR} {what} must contain only finite values: a batch streamed from "
                    "the tf.data.Dataset holds NaN or infinite values."
                ],
            )
            if support is not None:
                low, high = support
                inside = (t >= low) & (t <= high) | tf.math.is_nan(t)
                tf.debugging.Assert(
                    tf.reduce_all(inside),
                    [
                        f"{STREAM_ERROR} {what} must lie in [{low:g}, {high:g}] for a "
                        f"{type(model.decoder).__name__}: a batch streamed from the tf.data.Dataset "
                        "has values outside"
                        + (" (0-255 images? divide by 255)." if high <= 1 else ".")
                    ],
                )
        return element if len(element) > 1 else element[0]

    return dataset.map(check)


def stream_error(err):
    """A streamed check's failure (a TensorFlow InvalidArgumentError) as its message."""
    message = getattr(err, "message", str(err))
    if STREAM_ERROR not in message:
        return None
    text = message.split(STREAM_ERROR, 1)[1]
    return text.split("\n")[0].strip().rstrip("]").strip()


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
    return array_batches(x, c, batch_size), len(x)


def array_batches(x, condition, batch_size):
    """``(x, condition)`` slices of arrays already validated (``check_x``), in order."""
    batch_size = check_positive_int(batch_size, "batch_size")
    for start in range(0, len(x), batch_size):
        s = slice(start, start + batch_size)
        yield x[s], None if condition is None else condition[s]
