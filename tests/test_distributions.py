"""probae's own tfd distributions (probae.distributions): the diagonal Gaussian mixture's
exact log density and gradients, and the column-wise distribution's checks."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probae
from probae.distributions import Columnwise

tfd = tfp.distributions


def _mixture_parts(rng, k, d, spread):
    """Logits, means and scales of a k-component mixture; ``spread`` puts means many
    scales away from 0 (where a float32 matrix-product log density would cancel)."""
    logits = rng.normal(size=k)
    loc = rng.normal(size=(k, d)) * spread
    scale = np.exp(rng.normal(size=(k, d)) * 1.5 - 2.0)
    return logits, loc, scale


def _exact_mixture_log_prob(z, logits, loc, scale):
    """float64 numpy log density of a diagonal Gaussian mixture, by broadcasting."""
    from scipy.special import logsumexp

    d = loc.shape[-1]
    comp = (
        -0.5 * (((z[..., None, :] - loc) / scale) ** 2).sum(-1)
        - np.log(scale).sum(-1)
        - 0.5 * d * np.log(2 * np.pi)
    )
    return logsumexp(comp + logits - logsumexp(logits), axis=-1)


@pytest.mark.parametrize("spread", [1.0, 4.0])
def test_diagonal_gaussian_mixture_log_prob_is_exact(spread):
    rng = np.random.default_rng(int(spread))
    logits, loc, scale = _mixture_parts(rng, 9, 6, spread)
    # codes near components (the case that matters: z drawn from a posterior) and far away
    near = loc[rng.integers(0, 9, 30)] + scale[rng.integers(0, 9, 30)] * rng.normal(size=(30, 6))
    z = np.concatenate([near, rng.normal(size=(10, 6)) * 3]).reshape(2, 20, 6)

    def parts():
        return dict(
            mixture_distribution=tfd.Categorical(logits=tf.constant(logits, tf.float32)),
            components_distribution=tfd.MultivariateNormalDiag(
                tf.constant(loc, tf.float32), tf.constant(scale, tf.float32)
            ),
        )

    fast = probae.distributions.DiagonalGaussianMixture(**parts())
    generic = tfd.MixtureSameFamily(**parts())
    zt = tf.constant(z, tf.float32)
    exact = _exact_mixture_log_prob(
        z.astype("float32").astype("float64"),
        logits.astype("float32"),
        loc.astype("float32"),
        scale.astype("float32"),
    )
    got = fast.log_prob(zt).numpy()
    assert got.shape == (2, 20) and got.dtype == np.float32
    # as close to the exact value as float32 can hold it (and as TFP's broadcast)
    tol = 4e-7 * np.abs(exact) + 1e-4
    assert np.all(np.abs(got - exact) <= tol), np.abs(got - exact).max()
    assert np.all(np.abs(generic.log_prob(zt).numpy() - exact) <= 4 * tol)
    # gradients with respect to z, the means and the scales agree with TFP's
    loc_v, scale_v = tf.Variable(loc, dtype=tf.float32), tf.Variable(scale, dtype=tf.float32)
    grads = []
    for cls in (probae.distributions.DiagonalGaussianMixture, tfd.MixtureSameFamily):
        with tf.GradientTape() as tape:
            tape.watch(zt)
            dist = cls(
                tfd.Categorical(logits=tf.constant(logits, tf.float32)),
                tfd.MultivariateNormalDiag(loc_v, scale_v),
            )
            total = tf.reduce_sum(dist.log_prob(zt))
        grads.append([g.numpy() for g in tape.gradient(total, [zt, loc_v, scale_v])])
    for g_fast, g_generic in zip(*grads):
        np.testing.assert_allclose(
            g_fast, g_generic, rtol=2e-3, atol=1e-3 * np.abs(g_generic).max()
        )
    # samples are the inherited ones
    assert fast.sample(5, seed=1).shape == (5, 6)


def test_diagonal_gaussian_mixture_falls_back_for_other_components():
    components = tfd.Independent(tfd.Laplace(tf.zeros([3, 2]), tf.ones([3, 2])), 1)
    mixture = tfd.Categorical(logits=tf.zeros([3]))
    z = tf.constant([[0.5, -1.0], [2.0, 0.0]])
    np.testing.assert_allclose(
        probae.distributions.DiagonalGaussianMixture(mixture, components).log_prob(z),
        tfd.MixtureSameFamily(mixture, components).log_prob(z),
        rtol=1e-6,
    )


def test_columnwise_rejects_a_bad_partition():
    comp = probae.decoders.tfd.Normal(tf.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="partition"):
        Columnwise([comp], [[0, 2]], 2)
    assert math.isfinite(float(Columnwise([comp], [[0, 1]], 2).log_prob(tf.zeros((2, 2)))[0, 0]))


# BetaBinomial (the 8-bit pixels' likelihood): closed forms against scipy and TFP.

_BB_CONCENTRATIONS = [(0.01, 0.02), (0.3, 5.0), (1.0, 1.0), (2.5, 0.7), (40.0, 90.0), (1e4, 3e3)]


@pytest.mark.parametrize("a, b", _BB_CONCENTRATIONS)
def test_beta_binomial_pmf_sums_to_one_over_0_to_255(a, b):
    from probae.distributions import BetaBinomial

    k = np.arange(256, dtype=np.float32)
    dist = BetaBinomial(255.0, np.float32(a), np.float32(b))
    log_prob = dist.log_prob(k).numpy()
    assert log_prob.dtype == np.float32
    assert np.all(log_prob <= 0.0)
    assert abs(np.exp(log_prob.astype(np.float64)).sum() - 1.0) < 1e-5
    # The mean of the pmf is the closed form n a / (a + b), which TFP's mean gives.
    mean = (np.exp(log_prob.astype(np.float64)) * k).sum()
    np.testing.assert_allclose(mean, 255.0 * a / (a + b), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(float(dist.mean()), 255.0 * a / (a + b), rtol=1e-5)


def test_beta_binomial_log_prob_is_the_closed_form():
    from scipy import stats

    from probae.distributions import BetaBinomial

    rng = np.random.default_rng(0)
    a = np.exp(rng.uniform(-4, 6, size=(64, 32)))
    b = np.exp(rng.uniform(-4, 6, size=(64, 32)))
    k = rng.integers(0, 256, size=(64, 32))
    k[:, 0], k[:, 1] = 0, 255  # the edges, where MNIST's mass is
    got = BetaBinomial(255.0, a.astype(np.float32), b.astype(np.float32)).log_prob(
        k.astype(np.float32)
    )
    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    want = stats.betabinom.logpmf(k, 255, a32, b32)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=2e-5)
    # One entry by hand: log C(n, k) + log B(k + a, n - k + b) - log B(a, b).
    lbeta = lambda u, v: math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)
    n, kk, aa, bb = 255, int(k[3, 5]), a32[3, 5], b32[3, 5]
    by_hand = (
        math.lgamma(n + 1)
        - math.lgamma(kk + 1)
        - math.lgamma(n - kk + 1)
        + lbeta(kk + aa, n - kk + bb)
        - lbeta(aa, bb)
    )
    assert abs(float(got[3, 5]) - by_hand) < 2e-5
    # TFP's own BetaBinomial agrees (its float32 lbeta is the less accurate of the two).
    tfp_value = tfd.BetaBinomial(255.0, a.astype(np.float32), b.astype(np.float32)).log_prob(
        k.astype(np.float32)
    )
    np.testing.assert_allclose(got.numpy(), tfp_value.numpy(), rtol=1e-4, atol=1e-3)


def test_beta_binomial_gradients_are_finite_and_match_finite_differences():
    from probae.distributions import BetaBinomial

    a = tf.Variable(np.array([1e-3, 0.2, 1.0, 30.0, 5e3], np.float64))
    b = tf.Variable(np.array([2e-3, 4.0, 1.0, 0.5, 7e3], np.float64))
    k = tf.constant([0.0, 255.0, 17.0, 128.0, 100.0], tf.float64)
    with tf.GradientTape() as tape:
        log_prob = BetaBinomial(255.0, a, b).log_prob(k)
    grad_a, grad_b = tape.gradient(log_prob, [a, b])
    assert np.all(np.isfinite(grad_a.numpy())) and np.all(np.isfinite(grad_b.numpy()))
    # d/da log p = digamma(k + a) - digamma(n + a + b) - digamma(a) + digamma(a + b).
    from scipy.special import digamma

    av, bv, kv = a.numpy(), b.numpy(), k.numpy()
    want_a = digamma(kv + av) - digamma(255 + av + bv) - digamma(av) + digamma(av + bv)
    want_b = digamma(255 - kv + bv) - digamma(255 + av + bv) - digamma(bv) + digamma(av + bv)
    np.testing.assert_allclose(grad_a.numpy(), want_a, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_b.numpy(), want_b, rtol=1e-6, atol=1e-8)
