"""Anomaly scores (probae.anomaly)."""

import math

import numpy as np
import pytest
from helpers import D, curve_data
from sklearn.metrics import roc_auc_score

import probae
from probae.anomaly import complexity


@pytest.fixture(scope="module")
def vae():
    import keras

    keras.utils.set_random_seed(0)
    model = probae.VAE((D,), 2, likelihood="gaussian", hidden_units=(16,))
    model.fit(curve_data(), epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def autoencoder():
    import keras

    keras.utils.set_random_seed(0)
    return probae.Autoencoder((D,), 2, likelihood="gaussian", hidden_units=(16,))


def test_reconstruction_score_of_unit_gaussian_autoencoder_is_half_squared_error(autoencoder):
    x = curve_data(20, seed=1)
    scores = probae.anomaly_scores(autoencoder, x, method="reconstruction")
    recon = autoencoder.reconstruct(x)
    expected = 0.5 * ((x - recon) ** 2).sum(-1) + D / 2 * math.log(2 * math.pi)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert probae.anomaly.default_method(autoencoder) == "reconstruction"


def test_deterministic_encoder_reconstruction_probability_equals_reconstruction(autoencoder):
    x = curve_data(10, seed=2)
    a = probae.anomaly_scores(autoencoder, x, method="reconstruction_probability", seed=0)
    b = probae.anomaly_scores(autoencoder, x, method="reconstruction")
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_default_method_and_ordering_of_bounds(vae):
    x = curve_data(100, seed=3)
    assert probae.anomaly.default_method(vae) == "log_likelihood"
    default = probae.anomaly_scores(vae, x, seed=0)
    ll = probae.anomaly_scores(vae, x, method="log_likelihood", seed=0)
    np.testing.assert_array_equal(default, ll)
    ll_1000 = probae.anomaly_scores(vae, x, method="log_likelihood", seed=0, num_samples=1000)
    elbo = probae.anomaly_scores(vae, x, method="elbo", seed=0, num_samples=1000)
    # -log p <= -IWAE_k <= -ELBO: the k=1000 bound is tighter than the ELBO on average,
    # and the ELBO's own Monte Carlo error is small at 1000 samples.
    assert np.mean(ll_1000) < np.mean(elbo)
    # Under common random numbers the mean over examples keeps one draw's Monte Carlo
    # error (a few hundredths of a nat here), so IWAE_1000 >= IWAE_100 holds within it.
    assert np.mean(ll_1000) <= np.mean(ll) + 0.05
    assert np.all(np.isfinite(elbo))


def test_elbo_score_matches_model_elbo(vae):
    x = curve_data(50, seed=4)
    ours = probae.anomaly_scores(vae, x, method="elbo", seed=0, num_samples=2000)
    model = vae.elbo(x, num_samples=2000, seed=1)
    # Two independent 2000-sample estimates of the same expectation.
    np.testing.assert_allclose(ours, -model, atol=0.1, rtol=0.02)


@pytest.mark.parametrize("method", ["log_likelihood", "elbo", "reconstruction_probability"])
def test_same_seed_identical_and_batch_invariant(vae, method):
    x = curve_data(60, seed=5)
    a = probae.anomaly_scores(vae, x, method=method, seed=3)
    b = probae.anomaly_scores(vae, x, method=method, seed=3)
    np.testing.assert_array_equal(a, b)
    c = probae.anomaly_scores(vae, x, method=method, seed=4)
    assert not np.allclose(a, c)
    # Common random numbers: an example's score does not depend on its batch.
    small = probae.anomaly_scores(vae, x, method=method, seed=3, batch_size=7)
    np.testing.assert_allclose(small, a, rtol=1e-5, atol=1e-5)
    sub = probae.anomaly_scores(vae, x[10:13], method=method, seed=3)
    np.testing.assert_allclose(sub, a[10:13], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["reconstruction", "reconstruction_probability"])
def test_per_feature_contributions_sum_to_total(vae, method):
    x = curve_data(30, seed=6)
    per = probae.anomaly_scores(vae, x, method=method, seed=0, per_feature=True)
    total = probae.anomaly_scores(vae, x, method=method, seed=0)
    assert per.shape == x.shape
    np.testing.assert_allclose(per.sum(-1), total, rtol=1e-4, atol=1e-4)
    # A corrupted feature is where the example is anomalous.
    bad = x.copy()
    bad[:, 3] += 5.0
    per_bad = probae.anomaly_scores(vae, bad, method=method, seed=0, per_feature=True)
    assert np.mean(np.argmax(per_bad - per, axis=1) == 3) > 0.9


def test_obvious_anomalies_score_higher(vae):
    x = curve_data(100, seed=7)
    outliers = x + np.float32(4.0)
    for method in ("log_likelihood", "elbo", "reconstruction_probability", "reconstruction"):
        s_in = probae.anomaly_scores(vae, x, method=method, seed=0)
        s_out = probae.anomaly_scores(vae, outliers, method=method, seed=0)
        auc = roc_auc_score(np.r_[np.zeros(100), np.ones(100)], np.r_[s_in, s_out])
        assert auc > 0.95, method


def test_likelihood_ratio(vae):
    x = curve_data(20, seed=8)
    same = probae.anomaly_scores(vae, x, method="likelihood_ratio", background=vae, seed=2)
    np.testing.assert_allclose(same, 0.0, atol=1e-5)  # a model against itself
    ll = probae.anomaly_scores(vae, x, method="log_likelihood", seed=2)
    corrected = probae.anomaly_scores(
        vae, x, method="likelihood_ratio", background="complexity", seed=2
    )
    np.testing.assert_allclose(corrected, ll - complexity(x), rtol=1e-5, atol=1e-3)


def test_complexity_ranks_simple_images_lower():
    rng = np.random.default_rng(0)
    flat = np.zeros((1, 28, 28, 1), np.float32)
    noise = rng.random((1, 28, 28, 1)).astype(np.float32)
    c = complexity(np.concatenate([flat, noise]))
    assert c[0] < 0.1 * c[1]
    # Compressed length is bounded by the raw size plus deflate's overhead.
    assert c[1] <= (784 + 64) * 8 * math.log(2)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"method": "mahalanobis"}, ValueError, "method"),
        ({"seed": -1}, ValueError, "seed"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"per_feature": "yes"}, TypeError, "per_feature"),
        ({"method": "elbo", "per_feature": True}, ValueError, "per_feature"),
        ({"method": "likelihood_ratio"}, TypeError, "background"),
        ({"method": "likelihood_ratio", "background": "png"}, TypeError, "background"),
        ({"background": "complexity"}, ValueError, "background"),
        ({"x": np.full((2, D), np.nan)}, ValueError, "x"),
        ({"x": np.zeros((2, D + 1))}, ValueError, "x"),
        ({"x": np.zeros(D)}, ValueError, "x"),
        ({"model": "vae"}, TypeError, "model"),
    ],
)
def test_anomaly_scores_bad_input(vae, kwargs, exc, name):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", vae)
    x = kwargs.pop("x", curve_data(4))
    with pytest.raises(exc, match=name):
        probae.anomaly_scores(model, x, **kwargs)


def test_point_mass_encoder_refuses_likelihood_methods(autoencoder):
    for method in ("log_likelihood", "elbo"):
        with pytest.raises(ValueError, match="probabilistic encoder"):
            probae.anomaly_scores(autoencoder, curve_data(4), method=method)


def test_scores_trace_once_for_any_number_of_rows(monkeypatch):
    """The last batch is padded to the batch size (and the padding's scores dropped): the
    scoring function is traced once whatever the number of rows, and every row's score
    is the one it gets in any other call."""
    import keras

    import probae.estimators

    keras.utils.set_random_seed(0)
    model = probae.VAE((D,), 2, likelihood="gaussian", hidden_units=(8,))
    model.fit(curve_data(32), epochs=1, verbose=0)
    traces = []
    real = probae.estimators.importance_sampling

    def spy(x, *args, **kwargs):
        traces.append(tuple(x.shape))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(probae.estimators, "importance_sampling", spy)
    x = curve_data(70, seed=1)
    full = probae.anomaly_scores(model, x, seed=0, batch_size=16, num_samples=4, verbose=0)
    assert full.shape == (70,) and np.all(np.isfinite(full))
    for n in (1, 3, 16, 41):
        part = probae.anomaly_scores(model, x[:n], seed=0, batch_size=16, num_samples=4, verbose=0)
        assert part.shape == (n,)
        np.testing.assert_allclose(part, full[:n], rtol=1e-5, atol=1e-5)
    assert traces == [(16, D)]
