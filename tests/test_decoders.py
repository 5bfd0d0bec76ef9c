"""Decoders (probae.decoders): the tabular Student-t and mixed column-type decoders (closed
forms, support, serialization), and saturated network outputs."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import probae
from probae.decoders import MixedDecoder, StudentTDecoder
from probae.distributions import Columnwise

TYPES = ["gaussian", 3, "bernoulli", "student_t", "gaussian", 2]


def _mixed_params(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, len(TYPES), 3)).astype(np.float32)


def _mixed_data(batch=4, seed=1):
    rng = np.random.default_rng(seed)
    return np.c_[
        rng.normal(size=batch),
        rng.integers(0, 3, batch),
        rng.integers(0, 2, batch),
        rng.standard_t(3, batch),
        rng.normal(size=batch),
        rng.integers(0, 2, batch),
    ].astype(np.float32)


@pytest.fixture(scope="module")
def mixed_decoder():
    dec = MixedDecoder(TYPES, df=4.0, min_scale=0.01)
    dec.build((None, 2))
    dec.raw_scale.assign(np.linspace(-1.0, 1.0, len(TYPES)).astype(np.float32))
    return dec


def test_mixed_log_prob_is_sum_of_per_column_closed_forms(mixed_decoder):
    params, x = _mixed_params(), _mixed_data()
    per_column = mixed_decoder.distribution(tf.constant(params)).log_prob(x).numpy()
    scale = np.log1p(np.exp(np.linspace(-1.0, 1.0, len(TYPES)))) + 0.01
    expected = np.zeros_like(per_column)
    for j, t in enumerate(TYPES):
        p, col = params[:, j], x[:, j]
        if t == "gaussian":
            expected[:, j] = scipy.stats.norm.logpdf(col, p[:, 0], scale[j])
        elif t == "student_t":
            expected[:, j] = scipy.stats.t.logpdf(col, 4.0, p[:, 0], scale[j])
        elif t == "bernoulli":
            expected[:, j] = col * p[:, 0] - np.log1p(np.exp(p[:, 0]))
        else:
            logits = p[:, :t]
            lse = np.log(np.exp(logits).sum(-1))
            expected[:, j] = logits[np.arange(len(col)), col.astype(int)] - lse
    np.testing.assert_allclose(per_column, expected, rtol=1e-5, atol=1e-5)
    # The decoder's Independent sums the columns into one number per example.
    total = tf.reduce_sum(per_column, -1).numpy()
    dist = probae.decoders.tfd.Independent(mixed_decoder.distribution(tf.constant(params)), 1)
    np.testing.assert_allclose(dist.log_prob(x).numpy(), total, rtol=1e-6)


def test_mixed_mean_sample_and_mode(mixed_decoder):
    params = _mixed_params()
    dist = mixed_decoder.distribution(tf.constant(params))
    assert isinstance(dist, Columnwise)
    mean = dist.mean().numpy()
    np.testing.assert_allclose(mean[:, 0], params[:, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(mean[:, 2], 1 / (1 + np.exp(-params[:, 2, 0])), rtol=1e-5)
    np.testing.assert_array_equal(mean[:, 1], params[:, 1, :3].argmax(-1))
    np.testing.assert_array_equal(mean[:, 5], params[:, 5, :2].argmax(-1))
    draws = dist.sample(2000, seed=[1, 2]).numpy()
    assert draws.shape == (2000, 4, len(TYPES))
    assert set(np.unique(draws[..., 1])) <= {0.0, 1.0, 2.0}
    assert set(np.unique(draws[..., 2])) <= {0.0, 1.0}
    # Bernoulli column: sample mean within 4 standard errors of sigmoid(logit).
    p = 1 / (1 + np.exp(-params[:, 2, 0]))
    assert np.all(np.abs(draws[..., 2].mean(0) - p) < 4 * np.sqrt(p * (1 - p) / 2000) + 1e-3)


def test_student_t_decoder_closed_form():
    dec = StudentTDecoder(event_shape=(3,), df=3.0, scale=2.0)
    params = tf.constant([[[0.5], [-1.0], [2.0]]])
    x = np.array([[1.0, 0.0, -3.0]], np.float32)
    got = dec.distribution(params).log_prob(x).numpy()
    np.testing.assert_allclose(
        got, scipy.stats.t.logpdf(x, 3.0, [[0.5, -1.0, 2.0]], 2.0), rtol=1e-5
    )


def test_student_t_tends_to_gaussian_for_large_df():
    params = tf.constant([[[0.3], [0.0]]])
    x = np.array([[1.0, -2.0]], np.float32)
    t = StudentTDecoder(event_shape=(2,), df=1e6, scale=1.0).distribution(params).log_prob(x)
    g = probae.GaussianDecoder(event_shape=(2,), scale=1.0).distribution(params).log_prob(x)
    np.testing.assert_allclose(t.numpy(), g.numpy(), atol=1e-4)


def test_mixed_vae_trains_saves_and_loads(tmp_path):
    x = _mixed_data(64, seed=3)
    model = probae.VAE((len(TYPES),), 2, likelihood=MixedDecoder(TYPES), hidden_units=(8,))
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    elbo = model.elbo(x, seed=0)
    assert np.all(np.isfinite(elbo))
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.elbo(x, seed=0), elbo, rtol=1e-6)
    assert loaded.decoder.column_types == TYPES


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"column_types": []}, ValueError, "column_types"),
        ({"column_types": "gaussian"}, ValueError, "column_types"),
        ({"column_types": ["gaussian", "poisson"]}, ValueError, "column_types[1]"),
        ({"column_types": ["gaussian", 1]}, ValueError, "column_types[1]"),
        ({"column_types": ["gaussian", True]}, ValueError, "column_types[1]"),
        ({"column_types": ["gaussian"], "df": 0.0}, ValueError, "df"),
        ({"column_types": ["gaussian"], "min_scale": -1.0}, ValueError, "min_scale"),
        ({"column_types": ["gaussian"], "event_shape": (3,)}, ValueError, "event_shape"),
    ],
)
def test_mixed_decoder_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=rf"{name.replace('[', '.').replace(']', '.')}"):
        MixedDecoder(**kwargs)


def test_student_t_bad_df():
    with pytest.raises(ValueError, match="df"):
        StudentTDecoder(df=-1.0)


@pytest.mark.parametrize(
    "column, value, match",
    [
        (2, 0.5, r"x\[:, 2\] must hold 0 or 1"),
        (1, 3.0, r"x\[:, 1\] must hold an integer code in 0..2"),
        (5, -1.0, r"x\[:, 5\]"),
    ],
)
def test_mixed_support_errors(column, value, match):
    x = _mixed_data(4)
    x[0, column] = value
    with pytest.raises(ValueError, match=match):
        MixedDecoder(TYPES).check_support(x)


def test_collapsed_posterior_and_saturated_logits_stay_finite():
    """Extreme network outputs: the scale floors and the logit parameterisations hold."""
    extreme = tf.constant([[-1e30, -1e4, -1.0, -1e-7, 0.0, 1e-7, 1.0, 1e4]], tf.float32)
    encoder = probae.GaussianEncoder(4)
    # means 0, 1, -1, 3; raw scales so negative that softplus underflows to 0: the floor holds
    posterior = encoder.distribution(
        tf.constant([[0.0, 1.0, -1.0, 3.0, -1e30, -1e4, -100.0, -88.0]])
    )
    assert np.all(posterior.stddev().numpy() >= encoder.min_scale)
    kl = probae.estimators.kl_divergence(posterior, probae.StandardNormalPrior(4).distribution())[0]
    assert np.all(np.isfinite(kl.numpy()))
    for decoder in (
        probae.BernoulliDecoder(event_shape=(8,)),
        probae.ContinuousBernoulliDecoder(event_shape=(8,)),
    ):
        dist = decoder.distribution(tf.clip_by_value(extreme, -1e4, 1e4)[..., None])
        for value in (0.0, 0.5, 1.0):
            log_prob = dist.log_prob(tf.fill([1, 8], value)).numpy()
            assert np.all(np.isfinite(log_prob)), (type(decoder).__name__, value, log_prob)


# BetaBinomialDecoder: 8-bit pixels 0..255.


def _digits_8bit(n=96, seed=0):
    """Blurry 8-bit 'images' of 16 pixels: a bright bar at one of two places, mostly 0."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 16), np.uint8)
    for i in range(n):
        start = 2 if i % 2 else 9
        x[i, start : start + 5] = rng.integers(180, 256, size=5)
    x[:, 15] = rng.integers(0, 256, size=n)  # one noisy pixel, the whole range
    return x


def test_beta_binomial_decoder_log_prob_is_the_sum_of_pixel_pmfs():
    from scipy import stats

    decoder = probae.BetaBinomialDecoder(
        event_shape=(6,), hidden_units=(5,), min_concentration=0.01
    )
    z = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    dist = decoder(z)
    assert decoder.discrete_support == (0, 255)
    params = decoder.head(decoder.network(z)).numpy().reshape(3, 6, 2)
    softplus = lambda u: np.log1p(np.exp(u))
    a = softplus(params[..., 0].astype(np.float64)) + 0.01
    b = softplus(params[..., 1].astype(np.float64)) + 0.01
    x = np.array([[0, 255, 3, 128, 77, 0]] * 3, np.float32)
    want = stats.betabinom.logpmf(x.astype(int), 255, a, b).sum(-1)
    np.testing.assert_allclose(dist.log_prob(x).numpy(), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dist.mean().numpy(), 255 * a / (a + b), rtol=1e-5)
    assert dist.log_prob(x).shape == (3,)


def test_beta_binomial_vae_trains_scores_and_round_trips(tmp_path):
    x = _digits_8bit()
    keras.utils.set_random_seed(0)
    model = probae.VAE((16,), 2, likelihood="beta_binomial", hidden_units=(16,))
    assert isinstance(model.decoder, probae.BetaBinomialDecoder)
    before = float(np.mean(model.elbo(x, seed=0)))
    model.fit(x, epochs=30, batch_size=32, verbose=0)
    after = float(np.mean(model.elbo(x, seed=0)))
    assert np.isfinite(after) and after > before + 50.0  # nats per example
    # Floats holding integers are the same data as the uint8 array.
    np.testing.assert_allclose(model.elbo(x.astype(np.float64), seed=0), model.elbo(x, seed=0))
    # bits/dim is -log2 p(x) / D of the pmf: positive, no dequantisation offset.
    result = probae.evaluate_likelihood(model, x, num_samples=20, seed=0, verbose=0)
    assert result["log_likelihood"] < 0.0
    np.testing.assert_allclose(
        result["bits_per_dim"], -result["log_likelihood"] / (16 * np.log(2)), rtol=1e-12
    )
    scores = probae.anomaly_scores(model, x, method="elbo", seed=0, verbose=0)
    assert scores.shape == (len(x),) and np.all(np.isfinite(scores))
    # An image unlike the training data scores higher than the training images.
    odd = np.full((1, 16), 255, np.uint8)
    assert probae.anomaly_scores(model, odd, method="elbo", seed=0, verbose=0)[0] > np.median(
        scores
    )
    recon = model.predict(x[:4], verbose=0)
    assert recon.shape == (4, 16) and np.all((recon >= 0) & (recon <= 255))
    path = tmp_path / "bb.keras"
    model.save(path)
    loaded = probae.load_model(path)
    assert isinstance(loaded.decoder, probae.BetaBinomialDecoder)
    assert loaded.decoder.min_concentration == model.decoder.min_concentration
    np.testing.assert_allclose(loaded.elbo(x, seed=0), model.elbo(x, seed=0), rtol=1e-6)


@pytest.mark.parametrize(
    "bad, match",
    [
        (256.0, r"integers in 0\.\.255.*\[0, 256\]"),
        (-1.0, r"integers in 0\.\.255.*\[-1, "),
        (3.5, r"not all integers"),
    ],
)
def test_beta_binomial_decoder_refuses_data_outside_0_to_255(bad, match):
    x = _digits_8bit(8).astype(np.float32)
    x[0, 0] = bad
    model = probae.VAE((16,), 2, likelihood="beta_binomial", hidden_units=(4,))
    with pytest.raises(ValueError, match=match) as info:
        model.fit(x, epochs=1, verbose=0)
    assert str(info.value).startswith("x must hold")


def test_beta_binomial_decoder_hints_at_scaled_images():
    model = probae.VAE((16,), 2, likelihood="beta_binomial", hidden_units=(4,))
    with pytest.raises(ValueError, match=r"scaled to \[0, 1\].*0\.\.255 integers"):
        model.elbo(_digits_8bit(8) / 255.0)


def test_beta_binomial_decoder_bad_min_concentration():
    with pytest.raises(ValueError, match="min_concentration"):
        probae.BetaBinomialDecoder(event_shape=(4,), min_concentration=0.0)
