"""Closed forms at tight tolerance, and seeded statistical checks with derived tolerances."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probae
from probae import objectives

tfd = tfp.distributions


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------- closed forms
def test_gaussian_kl_matches_formula():
    rng = _rng()
    mu = rng.normal(size=(16, 5)).astype(np.float32)
    sigma = rng.uniform(0.1, 3.0, size=(16, 5)).astype(np.float32)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    p = probae.StandardNormalPrior(latent_dim=5)
    p.build((None, 5))
    kl, analytic = objectives.kl_divergence(q, p.distribution())
    expected = 0.5 * np.sum(sigma**2 + mu**2 - 1.0 - 2.0 * np.log(sigma), axis=-1)
    assert analytic
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_point_mass_kl_is_minus_log_prior():
    z = _rng(1).normal(size=(8, 3)).astype(np.float32)
    q = tfd.VectorDeterministic(z)
    p = tfd.MultivariateNormalDiag(tf.zeros(3))
    kl, analytic = objectives.kl_divergence(q, p)
    expected = 0.5 * np.sum(z**2, -1) + 1.5 * math.log(2 * math.pi)
    assert analytic
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-6)


def test_bernoulli_decoder_log_prob_is_minus_bce():
    dec = probae.BernoulliDecoder(event_shape=(6, 5, 1))
    dec.build((None, 3))
    z = _rng(2).normal(size=(4, 3)).astype(np.float32)
    x = (_rng(3).random((4, 6, 5, 1)) > 0.5).astype(np.float32)
    dist = dec(z)
    assert dist.batch_shape == (4,) and dist.event_shape == (6, 5, 1)
    logits = dist.distribution.logits.numpy().astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(dist.log_prob(x).numpy(), -bce, rtol=1e-5)


def test_unit_normal_log_prob_is_half_sse():
    dec = probae.GaussianDecoder(event_shape=(7,), scale=1.0)
    dec.build((None, 2))
    z = _rng(4).normal(size=(5, 2)).astype(np.float32)
    x = _rng(5).normal(size=(5, 7)).astype(np.float32)
    dist = dec(z)
    sse = np.sum((x - dist.mean().numpy()) ** 2, axis=-1)
    expected = -sse / 2 - 7 / 2 * math.log(2 * math.pi)
    np.testing.assert_allclose(dist.log_prob(x).numpy(), expected, rtol=1e-5)


def test_autoencoder_loss_is_exactly_bce_and_half_sse():
    rng = _rng(6)
    x = (rng.random((32, 12)) > 0.5).astype(np.float32)
    ae = probae.Autoencoder((12,), 3)
    terms = ae.compute_terms(tf.constant(x))
    p = ae.reconstruct(x).astype(np.float64)
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    np.testing.assert_allclose(-terms["objective"].numpy(), bce, rtol=1e-4)
    assert ae.beta == 0.0

    xg = rng.normal(size=(32, 12)).astype(np.float32)
    aeg = probae.Autoencoder((12,), 3, likelihood="gaussian")
    terms = aeg.compute_terms(tf.constant(xg))
    sse = np.sum((xg - aeg.reconstruct(xg)) ** 2, axis=-1)
    np.testing.assert_allclose(
        -terms["objective"].numpy(), sse / 2 + 6 * math.log(2 * math.pi), rtol=1e-4
    )


def test_elbo_terms_are_consistent():
    x = (_rng(7).random((10, 8)) > 0.5).astype(np.float32)
    vae = probae.BetaVAE((8,), 2, beta=3.0)
    terms = vae.compute_terms(tf.constant(x), seed=tf.constant([1, 2]))
    r, k = terms["reconstruction"].numpy(), terms["kl"].numpy()
    np.testing.assert_allclose(terms["elbo"].numpy(), r - k, rtol=1e-6)
    np.testing.assert_allclose(terms["objective"].numpy(), r - 3.0 * k, rtol=1e-5)
    assert np.all(k >= 0)


# ---------------------------------------------------------------------- statistics
def test_monte_carlo_kl_agrees_with_analytic():
    """Mixture-free check: the MC estimator used for non-registered pairs is unbiased."""
    rng = _rng(8)
    mu = rng.normal(size=(3, 4)).astype(np.float32)
    sigma = rng.uniform(0.3, 2.0, size=(3, 4)).astype(np.float32)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    p = tfd.MultivariateNormalDiag(tf.zeros(4))
    n = 20000
    z = q.sample(n, seed=(3, 4))
    samples = (q.log_prob(z) - p.log_prob(z)).numpy()  # [n, 3]
    mc = samples.mean(0)
    se = samples.std(0) / math.sqrt(n)
    analytic = tfd.kl_divergence(q, p).numpy()
    assert np.all(np.abs(mc - analytic) < 4 * se), (mc, analytic, se)


def test_mixture_prior_uses_monte_carlo_kl():
    prior = probae.MixtureOfGaussiansPrior(num_components=3, latent_dim=2)
    prior.build((None, 2))
    q = tfd.MultivariateNormalDiag(tf.zeros((5, 2)), tf.ones((5, 2)))
    with pytest.raises(ValueError, match="Monte Carlo"):
        objectives.kl_divergence(q, prior.distribution())
    z = q.sample(4000, seed=(1, 1))
    kl, analytic = objectives.kl_divergence(q, prior.distribution(), z)
    assert not analytic and np.all(np.isfinite(kl.numpy()))


def test_iwae_bound_with_k_equal_one_is_the_elbo_estimate():
    x = (_rng(9).random((6, 8)) > 0.5).astype(np.float32)
    vae = probae.VAE((8,), 2)
    post = vae.encoder(x)
    prior = vae.prior.distribution()
    seed = tf.constant([5, 6])
    iw = objectives.iwae_bound(x, post, vae.decoder, prior, 1, seed)
    log_w, _, _ = objectives.log_weights(x, post, vae.decoder, prior, 1, seed)
    np.testing.assert_allclose(iw["iwae"].numpy(), log_w.numpy()[0], rtol=1e-6)
    np.testing.assert_allclose(iw["elbo"].numpy(), iw["iwae"].numpy(), rtol=1e-6)
