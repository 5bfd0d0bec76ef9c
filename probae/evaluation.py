"""Likelihood evaluation of a trained model on a data set, with its uncertainty.

``evaluate_likelihood`` reports the importance-sampling estimate of log p(x) (the
k-sample IWAE bound, Burda et al. 2016) averaged over a data set, with its standard error
over examples and its Monte Carlo standard error, bits per dimension, the ELBO and its
two parts from the same samples, the number of active latent units, and every
per-example value. It calls the chunked estimator every evaluation in probae uses
(``probae.estimators.estimate``), so memory stays bounded for any k. Arrays and a
``tf.data.Dataset`` (streamed batch by batch, for data that does not fit in memory) go
through the same code: with the same seed, an array and a dataset batched alike give
identical estimates.
"""

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from probae import estimators, inputs, posteriors
from probae._validation import check_positive_int, check_seed
from probae.model import ProbabilisticAutoencoder

__all__ = ["evaluate_likelihood", "ACTIVE_UNIT_THRESHOLD"]

# Burda et al. 2016, section 5.2: a unit is active when Cov_x(E_q[z_j]) > 0.01.
ACTIVE_UNIT_THRESHOLD = 0.01


class _Moments:
    """Running mean and variance per latent unit over examples (Chan et al.'s merge)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def update(self, values):
        values = np.asarray(values, np.float64)
        n_b, mean_b = len(values), values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        if self.n == 0:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def variance(self):
        return self.m2 / self.n


def _check_model(model):
    if not isinstance(model, ProbabilisticAutoencoder):
        raise TypeError(
            "model must be a probae.ProbabilisticAutoencoder. "
            f"Received: model of type {type(model).__name__}"
        )


def _check_threshold(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(
            f"active_threshold must be a number >= 0. Received: active_threshold={value!r}"
        )
    return float(value)


def _code_matrix(code):
    """A point estimate (a tensor or a dict of tensors) as one ``[n, units]`` array."""
    leaves = tf.nest.flatten(code)
    return np.concatenate(
        [np.reshape(np.asarray(t), (len(np.asarray(t)), -1)) for t in leaves], axis=1
    )


def evaluate_likelihood(
    model: ProbabilisticAutoencoder,
    x: Any,
    condition: Any = None,
    num_samples: int = 5000,
    batch_size: int | None = None,
    seed: int | None = 0,
    verbose: int | str = "auto",
    active_threshold: float = ACTIVE_UNIT_THRESHOLD,
) -> dict[str, Any]:
    """Estimates log p(x) on a data set, with its uncertainty and the ELBO's parts.

    For each example, log p(x) ~= log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x) with
    z_k ~ q(z|x) and k = ``num_samples``: the IWAE bound, computed by the model's chunked
    estimator with a running log-sum-exp (memory bounded for any k). It is biased low,
    by about Var(w) / (2 k E[w]^2) for importance weights w, and rises to log p(x) as k
    grows; ``effective_sample_size`` close to 1 warns that k is far too small for the
    posterior. The ELBO, reconstruction and KL come from the same samples (the KL is
    analytic where TFP registers it).

    Args:
        model: a built ``probae.ProbabilisticAutoencoder``.
        x: data ``[n, *event_shape]`` (array or tensor), or a ``tf.data.Dataset`` of
            batches ``x``, ``(x,)`` or ``(x, condition)``, streamed batch by batch.
        condition: for conditional models with array ``x``: ``[n, *condition_shape]``.
        num_samples: k, importance samples per example (5000 is the benchmark standard).
        batch_size: examples per chunk for arrays (default 100). With a Dataset the
            dataset's own batches are used.
        seed: int seed (default 0). The same seed, batch size and data give identical
            results (batch i draws with ``probae.seeds.batch_seed``); None draws a fresh
            one.
        verbose: "auto" (a Keras progress bar, Keras' convention), 0, 1 or 2.
        active_threshold: a latent unit is active when the variance over examples of
            E_q[z_j|x] exceeds it (0.01, Burda et al. 2016).

    Returns:
        A dict. Data-set values (floats, nats unless said): ``log_likelihood`` (mean
        estimate of log p(x)), ``stderr`` (its standard error over examples,
        std / sqrt(n); NaN for n = 1), ``mc_stderr`` (the Monte Carlo standard error of
        the mean estimate for these examples), ``bits_per_dim`` (-log p(x) / (D log 2),
        D = features per example), ``elbo``, ``reconstruction`` (E_q log p(x|z)), ``kl``
        (KL(q(z|x) || p(z))), ``effective_sample_size`` (mean over examples),
        ``active_units`` (an int), ``unit_variances`` (``[latent_dim]`` array),
        ``num_examples``, ``num_samples``; and ``per_example``, a dict of ``[n]`` arrays
        ``log_likelihood``, ``elbo``, ``reconstruction``, ``kl``,
        ``effective_sample_size``, ``mc_stderr``, ``bits_per_dim``.

    Raises:
        TypeError: model is not a probae model; x is not numeric or a dataset yields
            dicts.
        ValueError: num_samples or batch_size not a positive integer, x of the wrong
            shape, empty, or holding NaN or inf, values outside the likelihood's
            support, a condition missing or given to an unconditional model, a model
            without a density (a point-mass encoder).

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders
    (the estimator, k = 5000, and active units); Wu et al. 2017 on evaluating decoder
    likelihoods by importance sampling.
    """
    _check_model(model)
    k = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    seed = check_seed(seed)
    threshold = _check_threshold(active_threshold)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    batch_size = 100 if batch_size is None else batch_size
    if model.built and not isinstance(x, tf.data.Dataset):
        batch_size = estimators.plan(np.prod(model.event_shape), k, batch_size)[0]
    batches, total = inputs.batches(model, x, condition, batch_size)
    moments = _Moments()

    def with_moments(stream):
        # The active-unit statistics come from the same batches, in the same pass.
        for i, (xb, cb) in enumerate(stream):
            if i == 0 and not model.has_density:  # the model is built by the first batch
                raise ValueError(
                    "evaluate_likelihood needs a model whose q(z|x) has a density and a "
                    "prior p(z); this model's encoder is a point mass, for which log p(x) "
                    "has no importance-sampling estimate. Use model.evaluate for its "
                    "reconstruction term."
                )
            posterior = model.posterior(xb, condition=cb)
            moments.update(_code_matrix(posteriors.point_estimate(posterior)))
            yield xb, cb

    per_example = estimators.estimate(
        model, with_moments(batches), k, seed=seed, total=total, verbose=verbose
    )
    return _summarise(model, per_example, moments, k, threshold)


def _summarise(model, per_example, moments, k, threshold):
    n = len(per_example["log_likelihood"])
    dim = int(np.prod(model.event_shape))
    per_example = {key: np.asarray(v, np.float64) for key, v in per_example.items()}
    per_example["bits_per_dim"] = -per_example["log_likelihood"] / (dim * math.log(2))
    ll = per_example["log_likelihood"]
    mean_ll = float(ll.mean())
    unit_variances = moments.variance()
    return {
        "log_likelihood": mean_ll,
        "stderr": float(ll.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        "mc_stderr": float(np.sqrt(np.sum(per_example["mc_stderr"] ** 2)) / n),
        "bits_per_dim": -mean_ll / (dim * math.log(2)),
        "elbo": float(per_example["elbo"].mean()),
        "reconstruction": float(per_example["reconstruction"].mean()),
        "kl": float(per_example["kl"].mean()),
        "effective_sample_size": float(per_example["effective_sample_size"].mean()),
        "active_units": int(np.sum(unit_variances > threshold)),
        "unit_variances": unit_variances,
        "num_examples": n,
        "num_samples": k,
        "per_example": per_example,
    }
