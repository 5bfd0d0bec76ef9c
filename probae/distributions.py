"""Custom ``tfd`` distributions: every distribution probae defines lives here.

- ``LogitBernoulli``: ``tfd.Bernoulli`` with a cheaper ``log_prob`` (the Bernoulli
  decoder's likelihood).
- ``DiagonalGaussianMixture``: ``tfd.MixtureSameFamily`` of diagonal Gaussians with a
  matrix-product ``log_prob`` (the mixture and VampPrior priors).
- ``Columnwise``: independent columns of different families (the mixed tabular decoder).
- ``Masked``: an elementwise distribution whose ``log_prob`` is 0 at NaN entries (missing
  values, marginalised by the decoders of ``probae.missing``).
- ``BetaBinomial``: ``tfd.BetaBinomial`` with a ``log_prob`` from log-gamma terms (the
  8-bit pixels' likelihood of ``probae.BetaBinomialDecoder``).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["LogitBernoulli", "DiagonalGaussianMixture", "Columnwise", "Masked", "BetaBinomial"]


class LogitBernoulli(tfd.Bernoulli):
    """``tfd.Bernoulli`` whose ``log_prob`` is x * logits - softplus(logits).

    The same value as TFP's formula, multiply_no_nan(-softplus(l), 1 - x) +
    multiply_no_nan(-softplus(-l), x), for finite logits, with one softplus instead of two
    and no multiply_no_nan (the saving is measured in BENCHMARKS.md, "Throughput").
    Infinite logits (which a Dense head never produces) would give NaN here.
    """

    def _log_prob(self, event):
        logits = tf.convert_to_tensor(self._logits)
        return tf.cast(event, logits.dtype) * logits - tf.math.softplus(logits)


class DiagonalGaussianMixture(tfd.MixtureSameFamily):
    """A ``tfd.MixtureSameFamily`` of K ``tfd.MultivariateNormalDiag`` components whose
    ``log_prob`` is computed with two matrix products instead of a [n, K, d] broadcast.

    With s_k the components' scales, sum_j (z_j - mu_kj)^2 / s_kj^2 =
    z^2 . (1/s_k^2) - 2 z . (mu_k/s_k^2) + sum_j mu_kj^2/s_kj^2: one [n, d] x [d, K] matrix
    product per term. The products run in float64, because in float32 the three terms
    cancel badly when a component's mean is many of its scales from 0 (a posterior with
    mean 4 and scale 0.005 loses about 0.05 nats per dimension); the result is cast back.
    Same values and gradients as ``tfd.MixtureSameFamily`` (tested against a float64
    reference); its speed against TFP's mixture is in BENCHMARKS.md ("Mixture priors",
    ``benchmarks/mixture_prior.py``).
    Construct it exactly as a ``tfd.MixtureSameFamily``; components of another family, or
    with batch dimensions besides K, use the inherited ``log_prob``. The priors
    ``VampPrior`` and ``MixtureOfGaussiansPrior`` return it.
    """

    def _log_prob(self, x):
        components = self.components_distribution
        if (
            not isinstance(components, tfd.MultivariateNormalDiag)
            or components.batch_shape.rank != 1
        ):
            return super()._log_prob(x)
        x = tf.convert_to_tensor(x)
        dtype = x.dtype
        loc = tf.cast(components.loc, tf.float64)  # [K, d]
        scale = tf.abs(tf.cast(components.scale.diag_part(), tf.float64))  # [K, d]
        inv_var = tf.math.reciprocal(tf.square(scale))
        d = tf.shape(x)[-1]
        flat = tf.reshape(tf.cast(x, tf.float64), [-1, d])
        quadratic = (
            tf.matmul(tf.square(flat), inv_var, transpose_b=True)
            - 2.0 * tf.matmul(flat, loc * inv_var, transpose_b=True)
            + tf.reduce_sum(tf.square(loc) * inv_var, axis=-1)
        )  # [n, K]
        log_norm = -tf.reduce_sum(tf.math.log(scale), axis=-1) - 0.5 * tf.cast(
            d, tf.float64
        ) * np.log(2.0 * np.pi)
        log_weights = tf.cast(
            tf.math.log_softmax(self.mixture_distribution.logits_parameter(), axis=-1), tf.float64
        )
        log_prob = tf.reduce_logsumexp(log_weights + log_norm - 0.5 * quadratic, axis=-1)
        return tf.reshape(tf.cast(log_prob, dtype), tf.shape(x)[:-1])


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


class Masked(tfd.Distribution):
    """An elementwise distribution with missing entries: ``log_prob`` is 0 where x is NaN.

    ``distribution`` has scalar events (batch shape ``[..., d]``, one entry per feature,
    as every probae decoder's inner distribution). ``log_prob(x)`` is
    ``distribution.log_prob(x)`` at the observed entries and exactly 0 at the NaN ones,
    so ``tfd.Independent(Masked(d), 1).log_prob(x)`` is log p(x_obs), the likelihood of
    the observed entries with the missing ones integrated out (each feature is
    independent given the code). The missing entries are replaced by 0 (a value in the
    support of every decoder family) before ``distribution.log_prob``, so no NaN reaches
    a gradient. Sampling, mean, mode and standard deviation are ``distribution``'s.

    Args:
        distribution: the distribution of every entry (scalar events).

    References: Mattei and Frellsen 2019, MIWAE: Deep generative modelling and
    imputation of incomplete data sets.
    """

    def __init__(self, distribution, name="Masked"):
        parameters = dict(locals())
        if tuple(distribution.event_shape) != ():
            raise ValueError(
                "distribution must have scalar events (one entry per feature). Received: "
                f"event_shape={distribution.event_shape}"
            )
        self._distribution = distribution
        super().__init__(
            dtype=distribution.dtype,
            reparameterization_type=distribution.reparameterization_type,
            validate_args=False,
            allow_nan_stats=True,
            parameters=parameters,
            name=name,
        )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @property
    def distribution(self):
        return self._distribution

    def _batch_shape(self):
        return self._distribution.batch_shape

    def _batch_shape_tensor(self):
        return self._distribution.batch_shape_tensor()

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], dtype=tf.int32)

    def _log_prob(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        observed = tf.logical_not(tf.math.is_nan(x))
        filled = tf.where(observed, x, tf.zeros_like(x))
        log_prob = tf.cast(
            self._distribution.log_prob(tf.cast(filled, self._distribution.dtype)), tf.float32
        )
        return tf.where(observed, log_prob, tf.zeros_like(log_prob))

    def _sample_n(self, n, seed=None):
        return self._distribution.sample(n, seed=seed)

    def _mean(self):
        return self._distribution.mean()

    def _mode(self):
        return self._distribution.mode()

    def _stddev(self):
        return self._distribution.stddev()

    def _variance(self):
        return self._distribution.variance()


class BetaBinomial(tfd.BetaBinomial):
    """``tfd.BetaBinomial`` whose ``log_prob`` is a sum of log-gamma terms.

    With n the total count, a = ``concentration1`` and b = ``concentration0``,

        log p(k) = log C(n, k) + log B(k + a, n - k + b) - log B(a, b),

    with log B(u, v) = lgamma(u) + lgamma(v) - lgamma(u + v): the value of TFP's formula,
    with ``tf.math.lgamma`` instead of ``tfp.math.lbeta`` (whose extra care for large
    arguments costs several times as much per element; the pixels of an 8-bit image have
    n = 255). The sum runs in float64, because in float32 the terms (about 1,200 for
    n = 255) cancel to a few nats with an error near 1e-4; the result is cast back to the
    distribution's dtype. ``k`` must be an integer in 0..n (nothing checks it here: the
    decoder validates the data). Sampling, mean, variance and mode are TFP's.
    """

    def _log_prob(self, counts):
        n, a, b = self._params_list_as_tensors()
        dtype = a.dtype
        n, a, b, k = (tf.cast(t, tf.float64) for t in (n, a, b, counts))
        lgamma = tf.math.lgamma
        # Grouped by shape: the codec asks for all 256 counts at once ([256, 1, ..., 1]
        # against parameters [batch, ...]), and only the last line is that large.
        log_binomial = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0)  # counts
        log_norm = lgamma(a + b) - lgamma(a) - lgamma(b) - lgamma(n + a + b)  # parameters
        log_prob = lgamma(k + a) + lgamma(n - k + b) + (log_binomial + log_norm)
        return tf.cast(log_prob, dtype)
