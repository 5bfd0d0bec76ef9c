"""Likelihood evaluation of a trained model on a data set, with its uncertainty.

``evaluate_likelihood`` reports the importance-sampling estimate of log p(x) (the
k-sample IWAE bound, Burda et al. 2016) averaged over a data set, with its standard error
over examples and its Monte Carlo standard error, bits per dimension, the ELBO and its
two parts from the same samples, the number of active latent units, and every
per-example value. It calls the model's own chunked estimator
(``ProbabilisticAutoencoder.log_likelihood(..., return_terms=True)``), so memory stays
bounded for any k and the maths is the one used everywhere else in probae. Arrays are
evaluated in one call; a ``tf.data.Dataset`` is streamed batch by batch, for data that
does not fit in memory.
"""

import math
import numbers

import numpy as np
import tensorflow as tf

from probae._validation import check_positive_int, check_seed
from probae.model import ProbabilisticAutoencoder

__all__ = ["evaluate_likelihood", "ACTIVE_UNIT_THRESHOLD"]

# Burda et al. 2016, section 5.2: a unit is active when Cov_x(E_q[z_j]) > 0.01.
ACTIVE_UNIT_THRESHOLD = 0.01

_TERMS = ("log_likelihood", "elbo", "reconstruction", "kl", "effective_sample_size", "mc_stderr")


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


def _posterior_means(model, x, condition, batch_size):
    """E_q[z|x] for every example, in batches: ``[n, latent_dim]``."""
    means = []
    for start in range(0, len(x), batch_size):
        c = None if condition is None else condition[start : start + batch_size]
        means.append(np.asarray(model.encode(x[start : start + batch_size], condition=c).mean()))
    return np.concatenate(means)


def _split_element(model, element):
    """A dataset element -> (x, condition)."""
    if isinstance(element, dict):
        raise TypeError(
            "x as a tf.data.Dataset must yield x, (x,) or (x, condition) batches, not dicts. "
            f"Received: an element with keys {sorted(element)}"
        )
    if isinstance(element, (tuple, list)):
        if model.condition_shape is not None and len(element) >= 2:
            return element[0], element[1]
        return element[0], None
    return element, None


def evaluate_likelihood(
    model,
    x,
    condition=None,
    num_samples=5000,
    batch_size=None,
    seed=0,
    verbose=0,
    active_threshold=ACTIVE_UNIT_THRESHOLD,
):
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
        batch_size: examples per chunk for arrays (default: the model's choice, 100).
            With a Dataset the dataset's own batches are used.
        seed: int seed (default 0). The same seed, batch size and data give identical
            results; None draws a fresh one.
        verbose: 1 prints progress (a progress bar for arrays, a line per batch for a
            Dataset).
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
            support, a condition missing or given to an unconditional model.

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders
    (the estimator, k = 5000, and active units); Wu et al. 2017 on evaluating decoder
    likelihoods by importance sampling.
    """
    _check_model(model)
    k = check_positive_int(num_samples, "num_samples")
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    seed = check_seed(seed)
    verbose = int(verbose)
    threshold = _check_threshold(active_threshold)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    moments = _Moments()
    if isinstance(x, tf.data.Dataset):
        if condition is not None:
            raise ValueError(
                "condition must be None when x is a tf.data.Dataset: yield (x, condition) "
                "batches instead."
            )
        parts, n_seen, total = [], 0, 0.0
        for i, element in enumerate(x):
            xb, cb = _split_element(model, element)
            # A different (deterministic) seed per batch keeps batches independent.
            terms = model.log_likelihood(
                xb, condition=cb, num_samples=k, seed=(seed * 1_000_003 + i) % (2**31 - 1),
                batch_size=len(xb), return_terms=True,
            )
            moments.update(_posterior_means(model, np.asarray(xb), None if cb is None else np.asarray(cb), len(xb)))
            parts.append(terms)
            n_seen += len(xb)
            total += float(np.sum(terms["log_likelihood"]))
            if verbose:
                print(
                    f"evaluate_likelihood: batch {i + 1}, {n_seen} examples, running mean log p(x) "
                    f"{total / n_seen:.3f}",
                    flush=True,
                )
        if not parts:
            raise ValueError("x must yield at least one example. Received: an empty tf.data.Dataset")
        per_example = {key: np.concatenate([p[key] for p in parts]) for key in _TERMS}
    else:
        per_example = model.log_likelihood(
            x, condition=condition, num_samples=k, seed=seed, batch_size=batch_size,
            verbose=verbose, return_terms=True,
        )
        x = model._prepare_x(x)  # validated above; cheap, gives the array for the encoder
        c = model._prepare_condition(condition, len(x))
        moments.update(_posterior_means(model, x, c, batch_size or 1000))
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
