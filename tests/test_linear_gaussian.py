"""ELBO <= IWAE_k <= log p(x) on a model whose log p(x) is exact, and convergence of the
importance-sampling estimate."""

import math

import numpy as np
import pytest
import tensorflow as tf
from linear_gaussian_model import make

from probae import estimators


@pytest.fixture(scope="module")
def lg():
    model, exact = make()
    x = model.sample_data(200)
    return model, exact, x


def test_elbo_below_iwae_below_log_likelihood(lg):
    """E[IWAE_k] estimated without bias by splitting 4000 draws into groups of k."""
    model, exact, x = lg
    post = model.encoder(x)
    log_w, _, _ = estimators.log_weights(
        x, post, model.decoder, model.prior.distribution(), 4000, tf.constant([0, 1])
    )
    log_w = log_w.numpy().astype(np.float64)
    bounds = []
    for k in (1, 5, 50, 500):
        groups = log_w.reshape(4000 // k, k, -1)
        m = groups.max(1, keepdims=True)
        iw = np.log(np.exp(groups - m).mean(1)) + m[:, 0]
        bounds.append(iw.mean(0))  # per-example estimate of E[IWAE_k]
    analytic_elbo = model.elbo(x, num_samples=1000, seed=0)
    truth = exact(x)
    # The ELBO from the model's own method matches IWAE_1.
    d = bounds[0] - analytic_elbo
    assert abs(d.mean()) < 4 * d.std() / math.sqrt(len(d)) + 1e-3
    # Strictly increasing in k, each step beyond 4 standard errors (paired over examples).
    for lo, hi in zip(bounds, bounds[1:]):
        diff = hi - lo
        assert diff.mean() > 4 * diff.std() / math.sqrt(len(diff))
    # And below the exact log-likelihood.
    gap = truth - bounds[-1]
    assert gap.mean() > 0
    assert gap.mean() < bounds[1].mean() - bounds[0].mean()


def test_importance_sampling_converges_to_exact(lg):
    model, exact, x = lg
    x = x[:50]
    k = 5000
    est = model.log_likelihood(x, num_samples=k, seed=11)
    truth = exact(x)
    # Delta-method standard error of log(mean w) per example, from the weights themselves.
    post = model.encoder(x)
    log_w, _, _ = estimators.log_weights(
        x, post, model.decoder, model.prior.distribution(), 2000, tf.constant([4, 2])
    )
    w = np.exp(log_w.numpy() - log_w.numpy().max(0))
    rel_var = w.var(0) / w.mean(0) ** 2
    se = np.sqrt(rel_var / k)
    bias = rel_var / (2 * k)
    err = truth - est
    assert np.all(np.abs(err) < 4 * se + bias + 1e-4), (err, se)
    assert abs(err.mean()) < 0.01


def test_log_likelihood_is_deterministic_under_seed(lg):
    model, _, x = lg
    a = model.log_likelihood(x[:20], num_samples=100, seed=5)
    b = model.log_likelihood(x[:20], num_samples=100, seed=5)
    c = model.log_likelihood(x[:20], num_samples=100, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_chunking_does_not_change_the_estimate_statistics(lg, monkeypatch):
    """A small memory budget forces 24 sample chunks (the last one partial)."""
    monkeypatch.setattr(estimators, "MAX_ELEMENTS", 5 * 7 * 128)
    model, exact, x = lg
    est = model.log_likelihood(x[:20], num_samples=3000, seed=1, batch_size=7)
    assert np.abs(est - exact(x[:20])).max() < 0.05
