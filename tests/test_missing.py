"""Missing values marginalised, not imputed (probae.missing, probae.distributions.Masked):
the exact log p(x_obs) of a linear-Gaussian model, comparable scores for rows missing
different numbers of entries, and the parts' contracts."""

import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from sklearn.metrics import roc_auc_score

import probae
from probae import estimators
from probae.distributions import Masked
from probae.missing import MaskedGaussianDecoder, MaskedGaussianEncoder, marginalize_missing

tfd = tfp.distributions


def test_masked_log_prob_is_zero_at_missing_entries_with_finite_gradients():
    loc = tf.Variable([[0.5, -1.0, 2.0]])
    x = tf.constant([[1.0, np.nan, 0.0]])
    with tf.GradientTape() as tape:
        dist = tfd.Independent(Masked(tfd.Normal(loc, 2.0)), 1)
        lp = dist.log_prob(x)
    per = dist.distribution.log_prob(x).numpy()
    normal = lambda v, m: -0.5 * ((v - m) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(per, [[normal(1.0, 0.5), 0.0, normal(0.0, 2.0)]], rtol=1e-6)
    np.testing.assert_allclose(lp.numpy(), per.sum(-1), rtol=1e-6)
    grad = tape.gradient(lp, loc).numpy()
    np.testing.assert_allclose(grad, [[(1.0 - 0.5) / 4.0, 0.0, (0.0 - 2.0) / 4.0]], rtol=1e-6)
    assert dist.distribution.mean().shape == (1, 3)
    with pytest.raises(ValueError, match="scalar events"):
        Masked(tfd.MultivariateNormalDiag(tf.zeros(3)))


def linear_gaussian_with_missing(latent=2, dim=5, noise=0.5, inflation=1.5, seed=0):
    """z ~ N(0, I), x | z ~ N(W z + b, noise^2 I): p(x_obs) = N(x_obs; b_o, (W W^T + noise^2 I)_oo).

    The masked encoder reads [x with NaN set to 0, observed mask]; its head is set so that
    the proposal's mean is A (x - b) over the observed entries (A the complete-data
    posterior's regression), its scales the exact posterior's inflated by ``inflation``.
    """
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(dim, latent)), rng.normal(size=dim)
    S = np.linalg.inv(np.eye(latent) + W.T @ W / noise**2)
    A = S @ W.T / noise**2
    with warnings.catch_warnings():  # an identity network gets a head, with a warning
        warnings.simplefilter("ignore")
        encoder = MaskedGaussianEncoder(latent, network=keras.layers.Identity(), min_scale=1e-4)
        decoder = MaskedGaussianDecoder(
            event_shape=(dim,), network=keras.layers.Identity(), scale=noise
        )
        model = probae.ProbabilisticAutoencoder(encoder, decoder, input_shape=(dim,))
    raw = np.log(np.expm1(np.sqrt(np.diag(S)) * inflation - 1e-4))
    kernel = np.zeros((2 * dim, 2 * latent))
    kernel[:dim, :latent] = A.T  # x (0 where missing)
    kernel[dim:, :latent] = -(A * b).T  # the mask: subtracts A_j b_j for observed j only
    encoder.head.set_weights(
        [kernel.astype(np.float32), np.r_[np.zeros(latent), raw].astype(np.float32)]
    )
    decoder.head.set_weights([W.T.astype(np.float32), b.astype(np.float32)])
    cov = W @ W.T + noise**2 * np.eye(dim)

    def exact(x):
        out = []
        for row in np.asarray(x, np.float64):
            o = ~np.isnan(row)
            d = row[o] - b[o]
            c = cov[np.ix_(o, o)]
            out.append(
                -0.5
                * (
                    d @ np.linalg.solve(c, d)
                    + np.linalg.slogdet(c)[1]
                    + o.sum() * math.log(2 * math.pi)
                )
            )
        return np.array(out)

    r = np.random.default_rng(seed + 1)
    x = (r.normal(size=(60, latent)) @ W.T + b + noise * r.normal(size=(60, dim))).astype(
        np.float32
    )
    return model, exact, x


def test_importance_sampling_with_missing_entries_matches_exact_log_p_x_obs():
    model, exact, x = linear_gaussian_with_missing()
    rng = np.random.default_rng(5)
    x = x.copy()
    hide = rng.random(x.shape) < 0.4
    hide[np.arange(len(x)), rng.integers(0, x.shape[1], len(x))] = False  # one entry observed
    x[hide] = np.nan
    assert 0.3 < hide.mean() < 0.4 and (hide.sum(1) >= 2).sum() > 20
    k = 5000
    estimate = model.log_likelihood(x, num_samples=k, seed=11)
    truth = exact(x)
    # Delta-method standard error of log(mean w) per row, from 2000 separate weights.
    log_w, _, _ = estimators.log_weights(
        tf.constant(x),
        model.encoder(x),
        model.decoder,
        model.prior.distribution(),
        2000,
        tf.constant([4, 2]),
    )
    w = np.exp(log_w.numpy() - log_w.numpy().max(0))
    rel_var = w.var(0) / w.mean(0) ** 2
    se, bias = np.sqrt(rel_var / k), rel_var / (2 * k)
    err = truth - estimate
    assert np.all(np.abs(err) < 4 * se + bias + 1e-4), (err, se)
    # The likelihood of the observed entries, not of a completed row: log p(x_obs) rises by
    # about one entry's log-density per missing entry, which no imputation reproduces.
    complete = exact(np.where(np.isnan(x), 0.0, x))
    assert np.mean(truth - complete) > 1.0
    # per-feature terms of missing entries are exactly 0
    per = probae.anomaly_scores(model, x, method="reconstruction", per_feature=True)
    assert np.all(per[np.isnan(x)] == 0) and np.all(per[~np.isnan(x)] != 0)


def test_masked_parts_save_load_and_refuse_what_they_cannot_marginalise(tmp_path):
    keras.utils.set_random_seed(0)
    plain = probae.VAE((4,), 2, likelihood="gaussian", hidden_units=(8,))
    model = marginalize_missing(plain)
    assert type(model.encoder).__name__ == "MaskedGaussianEncoder"
    assert type(model.decoder).__name__ == "MaskedGaussianDecoder"
    first = next(layer for layer in model.encoder.network.layers if hasattr(layer, "kernel"))
    assert first.kernel.shape[0] == 8  # reads [x, mask]
    assert model.beta == plain.beta and model.decoder.scale == plain.decoder.scale
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    x[::3, 1] = np.nan
    model.fit(x, epochs=1, batch_size=10, verbose=0)
    scores = probae.anomaly_scores(model, x, seed=1, num_samples=20)
    assert np.all(np.isfinite(scores))
    model.save(str(tmp_path / "m.keras"))
    loaded = probae.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(
        probae.anomaly_scores(loaded, x, seed=1, num_samples=20), scores, rtol=1e-5
    )
    assert marginalize_missing(model).encoder.get_config() == model.encoder.get_config()
    with pytest.raises(ValueError, match="finite"):  # a plain model refuses NaN
        probae.anomaly_scores(plain, x)
    with pytest.raises(TypeError, match="model must be a probae.ProbabilisticAutoencoder"):
        marginalize_missing("vae")
    cb = probae.VAE((4,), 2, likelihood="continuous_bernoulli", hidden_units=(8,))
    with pytest.raises(TypeError, match="ContinuousBernoulliDecoder"):
        marginalize_missing(cb)


def low_rank_table(n, seed):
    r = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).normal(size=(2, 8))
    return r.normal(size=(n, 2)) @ mixing + 0.3 * r.normal(size=(n, 8))


def drop_entries(x, k, seed):
    x = x.copy()
    r = np.random.default_rng(seed)
    for i in range(len(x)):
        x[i, r.choice(x.shape[1], k, replace=False)] = np.nan
    return x


@pytest.fixture(scope="module")
def detector_with_missing():
    X = low_rank_table(600, 0)
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    return probae.AnomalyDetector(num_samples=50, random_state=0).fit(X)


def test_rows_missing_different_numbers_of_entries_are_comparable(detector_with_missing):
    """Raw log p(x_obs) rises with every missing entry (a normal row missing 4 of 8 entries
    looks 4-5 nats more normal); the detector's calibration (per missing entry of column j,
    entry_log_prob_[j]) removes that drift, so normal rows score alike whatever they miss
    and anomalies missing entries are still found."""
    det = detector_with_missing
    normal = low_rank_table(300, 2)
    anomalies = np.random.default_rng(3).normal(size=(300, 8)) * normal.std(0)
    raw, calibrated = {}, {}
    for k in (0, 2, 4):
        x = drop_entries(normal, k, 10 + k)
        raw[k] = -probae.anomaly_scores(
            det.model_, det.preprocessor_.transform(x), seed=0, num_samples=50
        )
        calibrated[k] = det.score_samples(x)
    np.testing.assert_allclose(raw[0], calibrated[0], rtol=1e-6)  # nothing missing: no change
    assert np.mean(raw[4] - raw[0]) > 2.0 and np.mean(raw[2] - raw[0]) > 1.0
    for k in (2, 4):
        assert abs(np.mean(calibrated[k] - calibrated[0])) < 0.1 * np.mean(raw[k] - raw[0])
    y = np.r_[np.zeros(300), np.ones(300)]
    # Is a normal row missing 4 entries told apart from a complete one? Raw: almost always
    # (it looks more normal); calibrated: about chance.
    assert roc_auc_score(y, np.r_[-raw[0], -raw[4]]) < 0.2
    assert 0.35 < roc_auc_score(y, np.r_[-calibrated[0], -calibrated[4]]) < 0.65
    # anomalies missing 4 entries against complete normal rows
    a4 = drop_entries(anomalies, 4, 7)
    raw_a = -probae.anomaly_scores(
        det.model_, det.preprocessor_.transform(a4), seed=0, num_samples=50
    )
    auc_raw = roc_auc_score(y, np.r_[-raw[0], -raw_a])
    auc_calibrated = roc_auc_score(y, np.r_[-calibrated[0], -det.score_samples(a4)])
    assert auc_calibrated > auc_raw + 0.3
    assert np.all(np.isfinite(det.entry_log_prob_)) and len(det.entry_log_prob_) == 8


def test_own_encoder_network_of_the_wrong_width_is_named():
    """marginalize_missing feeds the encoder [x, observed mask]: a user's encoder network
    declared for d features must be refused by name (it once died deep in Keras)."""
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu")])
    model = probae.VAE((3,), 2, likelihood="gaussian", encoder_network=net, seed=0)
    with pytest.raises(ValueError, match=r"reads 2 x 3 = 6 features.*declares 3"):
        probae.marginalize_missing(model)
