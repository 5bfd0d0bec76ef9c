"""Decoders: Keras layers mapping z (and an optional condition) to a distribution p(x|z).

Images and vectors: ``BernoulliDecoder``, ``ContinuousBernoulliDecoder``,
``GaussianDecoder``, ``LaplaceDecoder``; 8-bit images (integers 0..255):
``BetaBinomialDecoder``. Tables: ``StudentTDecoder`` (heavy-tailed
continuous columns) and ``MixedDecoder`` (one likelihood per column: Gaussian,
Student-t, Bernoulli or categorical; ``likelihood.distribution.log_prob`` gives the
per-column terms used by anomaly scores).

Every decoder returns ``tfd.Independent(..., reinterpreted_batch_ndims=len(event_shape))``
so that ``log_prob(x)`` is one number per example, for vectors and H x W x C images alike,
and its output shape equals the data's shape exactly.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae import networks, posteriors
from probae._base import NetworkLayer, output_width
from probae._validation import check_positive_float, check_shape
from probae.distributions import BetaBinomial, Columnwise, LogitBernoulli

tfd = tfp.distributions

__all__ = [
    "Decoder",
    "BernoulliDecoder",
    "ContinuousBernoulliDecoder",
    "GaussianDecoder",
    "LaplaceDecoder",
    "BetaBinomialDecoder",
    "StudentTDecoder",
    "MixedDecoder",
    "LocationScaleDecoder",
    "COLUMN_TYPES",
]


class Decoder(NetworkLayer):
    """Base class: a network from z to features, then a float32 head to parameters.

    The head is a Dense layer when the network's output is a vector, and a 3 x 3
    convolution on the (centre-cropped) feature map when it is an image, so the parameters
    have shape ``[batch, *event_shape]`` exactly. Subclasses set ``params_per_element`` and
    implement ``distribution(params)`` (params of shape ``[batch, *event_shape, k]``).

    A user's network is used as it is when its output already holds the parameters:
    ``prod(event_shape) * num_params`` values per example (the data's shape, for one
    parameter per element). A decoder whose parameters are logits (Bernoulli, continuous
    Bernoulli) recognises a network ending in a sigmoid and reads its output as
    probabilities (the logits are taken from Keras' sigmoid when it records them, else
    from the probabilities clipped to [1e-7, 1 - 1e-7], as Keras' binary cross-entropy
    does). Otherwise see ``head`` (``probae._base``): a head is added with a warning, or
    ``head=False`` raises.

    Calling a decoder on a distribution over the code (``decoder(encoder(x))``) decodes
    its point estimate (``probae.posteriors.point_estimate``: the mean of a Gaussian).
    A structured code (a dict of named ``[batch, d]`` latents, as in a hierarchical VAE's
    p(x|z1, z2)) is read as the concatenation of its latents in sorted name order.

    Args:
        event_shape: shape of one example x. None lets the model set it from the data.
        network, architecture, hidden_units, activation, filters, condition_shape, head:
            see ``NetworkLayer``; the default is an MLP for vectors and a transposed CNN
            for images.
    """

    params_per_element = 1
    default_hidden_units = (128, 256)
    # Whether the parameters are logits that a sigmoid output gives as probabilities.
    reads_probabilities = False
    # (low, high) bounds of the data, checked on batches streamed from a tf.data.Dataset;
    # None: unbounded (``check_support`` checks arrays, including any other constraint).
    support: tuple[float, float] | None = None

    @property
    def discrete_support(self):
        """``(low, high)``: the integers, both inclusive, that a discrete likelihood puts
        all its mass on (one per data element); None for a continuous likelihood.
        ``probae.compress`` codes data losslessly only under a discrete likelihood."""
        return None

    def __init__(self, event_shape=None, network=None, **kwargs):
        super().__init__(network=network, **kwargs)
        self.event_shape = None if event_shape is None else check_shape(event_shape, "event_shape")
        self._from_probabilities = False

    def set_event_shape(self, event_shape):
        """Sets the data's shape (done by the model at build time)."""
        event_shape = check_shape(event_shape, "event_shape")
        if self.event_shape is not None and self.event_shape != event_shape:
            raise ValueError(
                f"The decoder was made for examples of shape {self.event_shape}, but the data "
                f"has examples of shape {event_shape}."
            )
        self.event_shape = event_shape

    @property
    def num_params(self):
        return self.params_per_element

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, tfd.Distribution):
            inputs = posteriors.point_estimate(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        if self.event_shape is None:
            raise ValueError(
                "The decoder's event_shape is unknown: pass event_shape=... or use it inside "
                "a ProbabilisticAutoencoder, which sets it from the data."
            )
        if isinstance(input_shape, dict):  # a structured code: its leaves, concatenated
            latent_dim = sum(int(input_shape[name][-1]) for name in sorted(input_shape))
        else:
            latent_dim = int(input_shape[-1])
        arch = networks.resolve_architecture(self.architecture, self.event_shape)
        if self.network is None:
            if arch == "conv":
                self.network = networks.conv_decoder(
                    self.event_shape,
                    tuple(reversed(self.filters)),
                    self.hidden_units[-1:],
                    self.activation,
                    name="network",
                )
            else:
                self.network = networks.mlp(self.hidden_units, self.activation, name="network")
        feat = self.network(tf.zeros((1, latent_dim + self.condition_dim)))
        k = self.num_params
        size = int(np.prod(self.event_shape)) * k
        fits = (
            self._user_network
            and not self.condition_dim
            and not isinstance(feat, (list, tuple))
            and output_width(feat) == size
        )
        expected = f"{size} values per example (examples of shape {self.event_shape}" + (
            f", {k} parameters each)" if k > 1 else ")"
        )
        if not self._use_head(fits, expected, f"{output_width(feat)} values per example"):
            self.head = None
            self._crop = None
            self._from_probabilities = self.reads_probabilities and _ends_in_sigmoid(
                self.network, feat
            )
            self._build_extra()
            return
        if len(feat.shape) == 4 and len(self.event_shape) == 3:
            height, width, channels = self.event_shape
            if feat.shape[1] < height or feat.shape[2] < width:
                raise ValueError(
                    f"The decoder network outputs feature maps of size {tuple(feat.shape[1:3])}"
                    f", smaller than the images ({height}, {width})."
                )
            self._crop = ((feat.shape[1] - height) // 2, (feat.shape[2] - width) // 2)
            self.head = keras.layers.Conv2D(
                channels * k, 3, padding="same", dtype="float32", name="head"
            )
            self.head.build((None, height, width, feat.shape[-1]))
        else:
            self._crop = None
            self.head = keras.layers.Dense(
                int(np.prod(self.event_shape)) * k, dtype="float32", name="head"
            )
            self.head.build((None, int(np.prod(feat.shape[1:]))))
        self._build_extra()

    def _build_extra(self):
        """Hook for subclasses that own extra variables (learned scales)."""

    def call(self, inputs, condition=None):
        condition = self._check_condition(condition)
        if isinstance(inputs, dict):  # a structured code {name: [batch, d]}: p(x|z1, z2, ...)
            inputs = tf.concat([inputs[name] for name in sorted(inputs)], -1)
        if condition is not None:
            inputs = tf.concat([inputs, tf.cast(condition, inputs.dtype)], -1)
        features = self.network(inputs)
        if self.head is None:
            params = _logits(features) if self._from_probabilities else tf.cast(features, "float32")
        elif self._crop is not None:
            top, left = self._crop
            height, width = self.event_shape[0], self.event_shape[1]
            params = self.head(features[:, top : top + height, left : left + width, :])
        else:
            params = self.head(tf.reshape(features, [tf.shape(features)[0], -1]))
        params = tf.reshape(params, [-1, *self.event_shape, self.num_params])
        return tfd.Independent(
            self.distribution(params), reinterpreted_batch_ndims=len(self.event_shape)
        )

    def distribution(self, params):
        raise NotImplementedError

    def check_support(self, x, name="x"):
        """Raises ValueError if ``x`` (a NumPy array) is outside the distribution's support."""

    def get_config(self):
        config = super().get_config()
        config["event_shape"] = None if self.event_shape is None else list(self.event_shape)
        return config


_PROBABILITY_EPSILON = 1e-7  # Keras' backend epsilon, which its cross-entropy clips by


def _ends_in_sigmoid(network, output):
    """Whether a network's output comes from a final sigmoid."""
    if getattr(output, "_keras_logits", None) is not None:  # recorded by Keras' sigmoid
        return True
    layers = getattr(network, "layers", None)
    last = layers[-1] if layers else network
    return getattr(last, "activation", None) is keras.activations.sigmoid


def _logits(probabilities):
    """The logits behind sigmoid outputs: Keras' recorded pre-activation when present,
    else log(p) - log(1 - p) of p clipped to [1e-7, 1 - 1e-7]."""
    logits = getattr(probabilities, "_keras_logits", None)
    if logits is not None:
        return tf.cast(logits, "float32")
    p = tf.clip_by_value(
        tf.cast(probabilities, "float32"), _PROBABILITY_EPSILON, 1 - _PROBABILITY_EPSILON
    )
    return tf.math.log(p) - tf.math.log1p(-p)


def _check_unit_interval(x, name, what):
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < 0.0 or hi > 1.0:
        hint = ""
        if 2.0 <= hi <= 255.0 and lo >= 0.0 and np.all(x == np.round(x)):
            hint = f" It looks like 0-255 image data: scale it with {name} / 255.0."
        raise ValueError(
            f"{name} must lie in [0, 1] for a {what} decoder. Received: {name} with values "
            f"in [{lo:g}, {hi:g}].{hint}"
        )


@keras.saving.register_keras_serializable(package="probae")
class BernoulliDecoder(Decoder):
    """p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i(z))), parameterised by logits.

    A user's network ending in a sigmoid (the classic Keras autoencoder's decoder) is
    read as probabilities: ``-log_prob`` is then Keras' ``binary_crossentropy`` summed
    over the features.

    ``log_prob`` equals minus the binary cross-entropy summed over features; it also
    accepts grey levels in [0, 1] (the usual cross-entropy on non-binary pixels, which is
    not a normalised likelihood: use binary data or ``ContinuousBernoulliDecoder`` when
    the likelihood's value matters).
    """

    reads_probabilities = True
    support = (0.0, 1.0)

    @property
    def discrete_support(self):
        """``(0, 1)``: binary data (see ``Decoder.discrete_support``)."""
        return (0, 1)

    def distribution(self, params):
        return LogitBernoulli(logits=params[..., 0], dtype=tf.float32)

    def check_support(self, x, name="x"):
        _check_unit_interval(x, name, "Bernoulli")


@keras.saving.register_keras_serializable(package="probae")
class ContinuousBernoulliDecoder(Decoder):
    """p(x|z) = prod_i ContinuousBernoulli(x_i; logit_i(z)) for x in [0, 1].

    The properly normalised counterpart of the Bernoulli likelihood on grey levels.

    References: Loaiza-Ganem and Cunningham 2019, The continuous Bernoulli: fixing a
    pervasive error in variational autoencoders.
    """

    reads_probabilities = True
    support = (0.0, 1.0)

    def distribution(self, params):
        return tfd.ContinuousBernoulli(logits=params[..., 0])

    def check_support(self, x, name="x"):
        _check_unit_interval(x, name, "continuous Bernoulli")


def _check_8bit(x, name):
    lo, hi = float(np.min(x)), float(np.max(x))
    integral = bool(np.all(x == np.round(x)))
    if lo < 0.0 or hi > 255.0 or not integral:
        hint = ""
        if lo >= 0.0 and hi <= 1.0 and not integral:
            hint = (
                " It looks like images scaled to [0, 1]: pass the 0..255 integers (the uint8 "
                "array, or np.round(x * 255))."
            )
        raise ValueError(
            f"{name} must hold integers in 0..255 (8-bit pixels) for a beta-binomial decoder. "
            f"Received: {name} with values in [{lo:g}, {hi:g}]"
            + ("" if integral else ", not all integers")
            + f".{hint}"
        )


@keras.saving.register_keras_serializable(package="probae")
class BetaBinomialDecoder(Decoder):
    """p(x|z) = prod_i BetaBinomial(x_i; n=255, a_i(z), b_i(z)) for 8-bit pixels 0..255.

    Each pixel is a count out of 255 whose success probability has a Beta(a_i, b_i)
    distribution: a_i = softplus(u_i) + ``min_concentration`` and b_i likewise from a
    second output v_i of the network. a_i, b_i < 1 put the mass at 0 and 255 (the black
    background and white strokes of MNIST), large ones make a binomial around
    255 a_i / (a_i + b_i), which is the mean (``predict`` and ``reconstruct`` return it).
    ``log_prob`` is the log probability mass, so ``evaluate_likelihood``'s bits per
    dimension are -log2 p(x) / D with no dequantisation term, and the pmf over 0..255 is
    what a lossless entropy coder needs (``discrete_support`` is ``(0, 255)``).

    The data must be integers in 0..255 (a uint8 array, or floats holding integers);
    arrays are checked for both, batches streamed from a ``tf.data.Dataset`` for the range
    only. The encoder sees the same 0..255 values: for probae's default networks that
    trains as it is, but a user's encoder network may want a
    ``keras.layers.Rescaling(1 / 255)`` first.

    Args:
        event_shape: shape of one example.
        network: the decoder's network (None: the default).
        min_concentration: floor added to both concentrations (a positive float).
        **kwargs: see ``Decoder``.

    References: Townsend, Bird and Barber 2019, Practical lossless compression with
    latent variables using bits back coding (BB-ANS, whose 8-bit MNIST model uses this
    likelihood).
    """

    params_per_element = 2
    support = (0.0, 255.0)
    total_count = 255

    def __init__(self, event_shape=None, network=None, min_concentration=1e-3, **kwargs):
        self.min_concentration = check_positive_float(min_concentration, "min_concentration")
        super().__init__(event_shape=event_shape, network=network, **kwargs)

    @property
    def discrete_support(self):
        """The integers the data takes, inclusive: ``(0, 255)``."""
        return (0, self.total_count)

    def distribution(self, params):
        a = tf.nn.softplus(params[..., 0]) + self.min_concentration
        b = tf.nn.softplus(params[..., 1]) + self.min_concentration
        return BetaBinomial(total_count=float(self.total_count), concentration1=a, concentration0=b)

    def check_support(self, x, name="x"):
        _check_8bit(x, name)

    def get_config(self):
        config = super().get_config()
        config["min_concentration"] = self.min_concentration
        return config


SCALE_OPTIONS = ("shared", "per_feature", "per_example")


class LocationScaleDecoder(Decoder):
    """Base class: a location-scale family whose scale is fixed, learned or predicted.

    Args:
        scale: a positive float (fixed scale; 1.0 with a Gaussian gives half the squared
            error plus a constant), "shared" (one learned scale), "per_feature" (a learned
            scale per feature, the default) or "per_example" (predicted by the network).
        min_scale: floor added to every learned or predicted scale.
        **kwargs: see ``Decoder``.
    """

    family = None

    def __init__(
        self, event_shape=None, network=None, scale="per_feature", min_scale=1e-3, **kwargs
    ):
        if isinstance(scale, str):
            if scale not in SCALE_OPTIONS:
                raise ValueError(
                    f"scale must be a positive number or one of {SCALE_OPTIONS}. "
                    f"Received: scale={scale!r}"
                )
        else:
            scale = check_positive_float(scale, "scale")
        self.scale = scale
        self.min_scale = check_positive_float(min_scale, "min_scale")
        super().__init__(event_shape=event_shape, network=network, **kwargs)

    @property
    def num_params(self):
        return 2 if self.scale == "per_example" else 1

    def _build_extra(self):
        if self.scale in ("shared", "per_feature"):
            shape = () if self.scale == "shared" else self.event_shape
            # autocast=False: under a mixed-precision policy the scale stays float32 like
            # the head's parameters (an autocast read inside call would give float16).
            self.raw_scale = self.add_weight(
                name="raw_scale",
                autocast=False,
                shape=shape,
                initializer=keras.initializers.Constant(
                    math.log(math.expm1(max(1.0 - self.min_scale, 0.1)))
                ),
                dtype="float32",
            )

    def _scale(self, params):
        if self.scale == "per_example":
            return tf.nn.softplus(params[..., 1]) + self.min_scale
        if isinstance(self.scale, float):
            return tf.fill(tf.shape(params[..., 0]), self.scale)
        raw = tf.convert_to_tensor(self.raw_scale)
        return tf.broadcast_to(tf.nn.softplus(raw) + self.min_scale, tf.shape(params[..., 0]))

    def distribution(self, params):
        return self.family(loc=params[..., 0], scale=self._scale(params))

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="probae")
class GaussianDecoder(LocationScaleDecoder):
    __doc__ = (
        "p(x|z) = prod_i N(x_i; mu_i(z), sigma_i^2).\n\n"
        "With ``scale=1.0`` the negative log-likelihood is half the squared error plus\n"
        "d/2 log(2 pi): the mean-squared-error autoencoder is this decoder with a fixed\n"
        "scale. A learned scale makes the likelihood a real density of the data.\n"
        + (LocationScaleDecoder.__doc__ or "").split("\n", 2)[2]
    )
    family = tfd.Normal


@keras.saving.register_keras_serializable(package="probae")
class LaplaceDecoder(LocationScaleDecoder):
    __doc__ = (
        "p(x|z) = prod_i Laplace(x_i; mu_i(z), b_i): an L1 reconstruction likelihood,\n"
        "robust to outliers.\n" + (LocationScaleDecoder.__doc__ or "").split("\n", 2)[2]
    )
    family = tfd.Laplace


CONTINUOUS_TYPES = ("gaussian", "student_t")
COLUMN_TYPES = CONTINUOUS_TYPES + ("bernoulli", "categorical K (an int >= 2)")


def _check_df(df):
    return check_positive_float(df, "df")


@keras.saving.register_keras_serializable(package="probae")
class StudentTDecoder(LocationScaleDecoder):
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


def _check_column_types(column_types):
    if (
        isinstance(column_types, str)
        or not hasattr(column_types, "__len__")
        or not len(column_types)
    ):
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

    def __init__(
        self, column_types, network=None, df=5.0, min_scale=1e-3, event_shape=None, **kwargs
    ):
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
                what = (
                    "0 or 1 (bernoulli)" if t == "bernoulli" else f"an integer code in 0..{k - 1}"
                )
                raise ValueError(
                    f"{name}[:, {j}] must hold {what}. Received: values in "
                    f"[{float(np.min(col)):g}, {float(np.max(col)):g}]"
                )

    def get_config(self):
        config = super().get_config()
        config.pop("event_shape", None)
        config.update(column_types=list(self.column_types), df=self.df, min_scale=self.min_scale)
        return config
