"""Decoders for tabular data: heavy-tailed continuous columns and mixed column types.

Real anomaly data is tabular and mixed: continuous measurements, binary flags and
categorical codes side by side. ``StudentTDecoder`` is a heavy-tailed alternative to the
Gaussian decoder (``GaussianDecoder(scale="per_feature")``) for continuous columns, and
``MixedDecoder`` gives every column its own likelihood (Gaussian, Student-t, Bernoulli or
Categorical) in one decoder whose ``log_prob`` sums over the columns: one number per
example, while ``distribution.log_prob`` (the ``Independent``'s inner distribution) gives
one number per column, the per-feature contributions used by anomaly scores.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae._validation import check_positive_float
from probae.decoders import Decoder, _LocationScaleDecoder

tfd = tfp.distributions

__all__ = ["StudentTDecoder", "MixedDecoder", "Columnwise", "COLUMN_TYPES"]

CONTINUOUS_TYPES = ("gaussian", "student_t")
COLUMN_TYPES = CONTINUOUS_TYPES + ("bernoulli", "categorical K (an int >= 2)")


def _check_df(df):
    return check_positive_float(df, "df")


@keras.saving.register_keras_serializable(package="probae")
class StudentTDecoder(_LocationScaleDecoder):
    """p(x|z) = prod_i StudentT(x_i; df, mu_i(z), sigma_i): heavy-tailed continuous data.

    With few degrees of freedom a single wild value costs only log-many nats, so a few
    contaminating outliers in the training data pull the fit less than under a Gaussian.
    As df grows it tends to ``GaussianDecoder``.

    Args:
        event_shape: shape of one example.
        network: the decoder's network (None: the default).
        df: degrees of freedom, a positive number (default 5).
        scale: a positive float, "shared", "per_feature" (default) or "per_example".
        min_scale: floor added to every learned or predicted scale.
        **kwargs: see ``Decoder``.
    """

    def __init__(self, event_shape=None, network=None, df=5.0, **kwargs):
        self.df = _check_df(df)
        super().__init__(event_shape=event_shape, network=network, **kwargs)

    def distribution(self, params):
        return tfd.StudentT(df=self.df, loc=params[..., 0], scale=self._scale(params))

    def get_config(self):
        config = super().get_config()
        config["df"] = self.df
        return config


class Columnwise(tfd.Distribution):
    """Independent columns with different families: batch shape ``[..., d]``, scalar events.

    Column j follows the component whose ``columns`` contain j; ``log_prob(x)`` (x of
    shape ``[..., d]``) returns the ``[..., d]`` per-column log-probabilities in the
    original column order, so ``tfd.Independent(Columnwise(...), 1)`` sums them into one
    number per example (what ``tfd.Blockwise`` does for contiguous blocks, here for any
    interleaving of column types).

    Args:
        components: distributions with batch shape ``[..., n_i]`` and scalar events; a
            ``tfd.Categorical`` component receives the columns' integer codes.
        columns: for each component, the (sorted) column indices it models.
        num_columns: d.
    """

    def __init__(self, components, columns, num_columns, name="Columnwise"):
        parameters = dict(locals())
        self._components = list(components)
        self._columns = [np.asarray(c, dtype=np.int32) for c in columns]
        self._num_columns = int(num_columns)
        order = np.concatenate(self._columns)
        if sorted(order.tolist()) != list(range(self._num_columns)):
            raise ValueError(
                "columns must partition range(num_columns). Received: columns="
                f"{[c.tolist() for c in self._columns]}, num_columns={num_columns}"
            )
        self._inverse = np.argsort(order).astype(np.int32)
        super().__init__(
            dtype=tf.float32,
            reparameterization_type=tfd.NOT_REPARAMETERIZED,
            validate_args=False,
            allow_nan_stats=True,
            parameters=parameters,
            name=name,
        )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @property
    def components(self):
        return self._components

    @property
    def columns(self):
        return self._columns

    def _leading_shape(self):
        return self._components[0].batch_shape[:-1]

    def _batch_shape(self):
        return self._leading_shape().concatenate([self._num_columns])

    def _batch_shape_tensor(self):
        shape = tf.shape(self._component_output(0, "mean"))
        return tf.concat([shape[:-1], [self._num_columns]], 0)

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], dtype=tf.int32)

    def _component_output(self, i, what):
        comp = self._components[i]
        if isinstance(comp, tfd.Categorical):  # a code has no mean: its most probable code
            return tf.cast(comp.mode(), tf.float32)
        return tf.cast(getattr(comp, what)(), tf.float32)

    def _join(self, parts):
        return tf.gather(tf.concat(parts, axis=-1), self._inverse, axis=-1)

    def _log_prob(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        parts = []
        for comp, cols in zip(self._components, self._columns):
            xc = tf.gather(x, cols, axis=-1)
            if isinstance(comp, tfd.Categorical):
                xc = tf.cast(tf.round(xc), comp.dtype)
            parts.append(tf.cast(comp.log_prob(xc), tf.float32))
        return self._join(parts)

    def _mean(self):
        return self._join([self._component_output(i, "mean") for i in range(len(self._components))])

    def _mode(self):
        return self._join([self._component_output(i, "mode") for i in range(len(self._components))])

    def _sample_n(self, n, seed=None):
        seeds = tfp.random.split_seed(seed, n=len(self._components))
        parts = [tf.cast(c.sample(n, seed=s), tf.float32) for c, s in zip(self._components, seeds)]
        return self._join(parts)


def _check_column_types(column_types):
    if isinstance(column_types, str) or not hasattr(column_types, "__len__") or not len(column_types):
        raise ValueError(
            "column_types must be a non-empty list with one entry per column: 'gaussian', "
            "'student_t', 'bernoulli' or an int K >= 2 (a categorical column holding codes "
            f"0..K-1). Received: column_types={column_types!r}"
        )
    out = []
    for j, t in enumerate(column_types):
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            if t < 2:
                raise ValueError(
                    f"column_types[{j}] must be 'gaussian', 'student_t', 'bernoulli' or an "
                    f"int K >= 2 (categorical). Received: {t!r}"
                )
            out.append(int(t))
        elif t in CONTINUOUS_TYPES + ("bernoulli",):
            out.append(str(t))
        else:
            raise ValueError(
                f"column_types[{j}] must be 'gaussian', 'student_t', 'bernoulli' or an int "
                f"K >= 2 (categorical). Received: {t!r}"
            )
    return out


@keras.saving.register_keras_serializable(package="probae")
class MixedDecoder(Decoder):
    """One likelihood per column: p(x|z) = prod_j p_j(x_j | z), for mixed tabular data.

    Column types: "gaussian" and "student_t" (location from the network, a learned
    per-column scale, ``df`` degrees of freedom), "bernoulli" (x_j in {0, 1}, a logit
    from the network) and an int K >= 2 (a categorical column holding integer codes
    0..K-1, K logits from the network). ``log_prob`` is one number per example (the sum
    over columns); ``likelihood.distribution.log_prob(x)`` the per-column terms. The mean
    of a categorical column is reported as its most probable code.

    Args:
        column_types: a list with one type per column (its length is the number of
            features).
        network: the decoder's network (None: the default MLP).
        df: degrees of freedom of the Student-t columns.
        min_scale: floor on the continuous columns' scales.
        **kwargs: see ``Decoder``.
    """

    def __init__(self, column_types, network=None, df=5.0, min_scale=1e-3, event_shape=None, **kwargs):
        self.column_types = _check_column_types(column_types)
        d = len(self.column_types)
        if event_shape is not None and tuple(event_shape) != (d,):
            raise ValueError(
                f"event_shape must be ({d},), one entry per column type. "
                f"Received: event_shape={event_shape!r}"
            )
        self.df = _check_df(df)
        self.min_scale = check_positive_float(min_scale, "min_scale")
        super().__init__(event_shape=(d,), network=network, **kwargs)
        groups = {}
        for j, t in enumerate(self.column_types):
            groups.setdefault(t, []).append(j)
        self._groups = list(groups.items())

    @property
    def num_params(self):
        return max([1] + [t for t in self.column_types if isinstance(t, int)])

    def _build_extra(self):
        self.raw_scale = self.add_weight(
            name="raw_scale",
            shape=(len(self.column_types),),
            initializer=keras.initializers.Constant(math.log(math.expm1(1.0 - self.min_scale))),
            dtype="float32",
        )

    def distribution(self, params):
        scale = tf.nn.softplus(tf.convert_to_tensor(self.raw_scale)) + self.min_scale
        components, columns = [], []
        for t, cols in self._groups:
            p = tf.gather(params, cols, axis=-2)  # [batch, n_cols, num_params]
            if t == "gaussian":
                comp = tfd.Normal(p[..., 0], tf.gather(scale, cols))
            elif t == "student_t":
                comp = tfd.StudentT(self.df, p[..., 0], tf.gather(scale, cols))
            elif t == "bernoulli":
                comp = tfd.Bernoulli(logits=p[..., 0], dtype=tf.float32)
            else:
                comp = tfd.Categorical(logits=p[..., :t])
            components.append(comp)
            columns.append(cols)
        return Columnwise(components, columns, len(self.column_types))

    def check_support(self, x, name="x"):
        for j, t in enumerate(self.column_types):
            if t in CONTINUOUS_TYPES:
                continue
            col = x[..., j]
            k = 2 if t == "bernoulli" else t
            if np.any(col < 0) or np.any(col > k - 1) or np.any(col != np.round(col)):
                what = "0 or 1 (bernoulli)" if t == "bernoulli" else f"an integer code in 0..{k - 1}"
                raise ValueError(
                    f"{name}[:, {j}] must hold {what}. Received: values in "
                    f"[{float(np.min(col)):g}, {float(np.max(col)):g}]"
                )

    def get_config(self):
        config = super().get_config()
        config.pop("event_shape", None)
        config.update(column_types=list(self.column_types), df=self.df, min_scale=self.min_scale)
        return config
