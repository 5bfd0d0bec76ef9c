"""The one estimator module: closed forms, chunking, seeds, and every caller using it."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from linear_gaussian_model import make

import probae
from probae import estimators

tfd = tfp.distributions


@pytest.fixture(scope="module")
def exact_posterior_model():
    """One latent unit: the diagonal encoder can be the exact posterior (inflation 1)."""
    model, exact = make(latent_dim=1, data_dim=4, scale_inflation=1.0)
    return model, exact, model.sample_data(50)


def test_with_the_exact_posterior_every_weight_is_p_x(exact_posterior_model):
    """w_k = p(x, z_k) / p(z_k|x) = p(x) for every k: the estimate is exact, ESS = k."""
    model, exact, x = exact_posterior_model
    terms = model.log_likelihood(x, num_samples=64, seed=0, return_terms=True)
    np.testing.assert_allclose(terms["log_likelihood"], exact(x), atol=2e-3)
    np.testing.assert_allclose(terms["effective_sample_size"], 64, rtol=1e-3)
    assert np.all(terms["mc_stderr"] < 1e-3)
    # The analytic-KL ELBO is log p(x) in expectation (its reconstruction term is sampled).
    gap = terms["elbo"] - exact(x)
    assert abs(gap.mean()) < 4 * gap.std() / math.sqrt(len(gap)) + 1e-3


def test_log_mean_exp_closed_form():
    values = np.random.default_rng(0).normal(size=(7, 3)) * 50
    expected = np.log(np.mean(np.exp(values - values.max(0)), 0)) + values.max(0)
    np.testing.assert_allclose(estimators.log_mean_exp(tf.constant(values)), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "dim,k,batch", [(784, 5000, 100), (784, 1, 256), (3, 100, 10_000), (10**6, 7, 5)]
)
def test_plan_bounds_memory(dim, k, batch):
    for shared in (False, True):
        b, chunk = estimators.plan(dim, k, batch, shared_noise=shared)
        assert 1 <= b <= batch and 1 <= chunk <= k
        assert b * chunk * dim <= max(estimators.MAX_ELEMENTS, dim)
    # Shared noise: the chunk, hence every draw, does not depend on the batch size.
    assert estimators.plan(dim, k, 1, True)[1] == estimators.plan(dim, k, batch, True)[1]


def test_chunked_sums_equal_one_chunk_on_the_same_draws():
    """Splitting k draws into chunks changes nothing but memory: a point-mass posterior
    makes every draw equal, so any chunking (the last chunk partial) gives the same sums."""
    x = tf.constant(np.random.default_rng(1).random((4, 6)), tf.float32)
    q = tfd.VectorDeterministic(
        tf.constant(np.random.default_rng(2).normal(size=(4, 2)), tf.float32)
    )
    prior = tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))

    def decode(z):
        loc = tf.tile(z, [1, 3])  # depends on the code: each example its own likelihood
        return tfd.Independent(tfd.Normal(loc, 1.0), 1)

    out = [
        estimators.importance_sampling(
            x, q, decode, prior, 10, chunk, tf.constant([1, 2]), per_feature=True
        )
        for chunk in (10, 3, 1)
    ]
    for other in out[1:]:
        for key in out[0]:
            # mc_stderr is 0 up to float32 rounding of the log-sum-exps (a few 1e-4).
            atol = 2e-3 if key == "mc_stderr" else 1e-5
            np.testing.assert_allclose(other[key], out[0][key], rtol=1e-5, atol=atol)
    # Per-feature terms add up to the reconstruction term.
    np.testing.assert_allclose(
        tf.reduce_sum(out[0]["reconstruction_per_feature"], -1), out[0]["reconstruction"], rtol=1e-5
    )


def test_arrays_and_datasets_give_identical_estimates():
    """One seed convention: batch i draws with batch_seed(seed, i), whatever the source."""
    model, _ = make()
    x = model.sample_data(30)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(8)
    a = probae.evaluate_likelihood(model, x, num_samples=40, batch_size=8, seed=5)
    b = probae.evaluate_likelihood(model, ds, num_samples=40, seed=5)
    for key in ("log_likelihood", "elbo", "kl", "mc_stderr"):
        np.testing.assert_array_equal(a["per_example"][key], b["per_example"][key])
    np.testing.assert_allclose(a["unit_variances"], b["unit_variances"], rtol=1e-6)
    np.testing.assert_array_equal(
        model.log_likelihood(x, num_samples=40, batch_size=8, seed=5),
        a["per_example"]["log_likelihood"],
    )
    np.testing.assert_array_equal(
        model.log_likelihood(ds, num_samples=40, seed=5), a["per_example"]["log_likelihood"]
    )


def test_every_caller_uses_the_same_estimator():
    model, _ = make()
    x = model.sample_data(12)
    terms = estimators.estimate(model, [(x, None)], 30, seed=2)
    np.testing.assert_array_equal(
        model.log_likelihood(x, num_samples=30, seed=2, batch_size=12), terms["log_likelihood"]
    )
    np.testing.assert_array_equal(
        model.elbo(x, num_samples=30, seed=2, batch_size=12), terms["elbo"]
    )
    shared = estimators.estimate(model, [(x, None)], 30, seed=2, shared_noise=True)
    np.testing.assert_allclose(
        probae.anomaly_scores(model, x, method="log_likelihood", num_samples=30, seed=2),
        -shared["log_likelihood"],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        probae.anomaly_scores(model, x, method="elbo", num_samples=30, seed=2),
        -shared["elbo"],
        rtol=1e-6,
    )


def test_elbo_parts_and_analytic_kl():
    model, _ = make()
    x = model.sample_data(10)
    terms = model.elbo(x, num_samples=3, seed=0, return_terms=True)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
    q = model.encoder(x)
    expected_kl = tfd.kl_divergence(q, model.prior_distribution()).numpy()
    np.testing.assert_allclose(terms["kl"], expected_kl, rtol=1e-6)


def test_kl_divergence_monte_carlo_when_no_closed_form():
    q = tfd.MultivariateNormalDiag(tf.zeros((5, 2)), tf.ones((5, 2)))
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.zeros(2)),
        tfd.MultivariateNormalDiag(tf.constant([[0.0, 0.0], [0.0, 0.0]]), tf.ones((2, 2))),
    )
    with pytest.raises(ValueError, match="Monte Carlo"):
        estimators.kl_divergence(q, mixture)
    z = q.sample(10, seed=(1, 2))
    kl, analytic = estimators.kl_divergence(q, mixture, z)
    # Both mixture components equal q's family member N(0, I): the KL is exactly 0.
    assert not analytic
    np.testing.assert_allclose(kl, 0.0, atol=1e-5)
