"""ProbabilisticAutoencoder (probae.model): mixed precision, extreme data, and
convolutional and gated networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_same_after_reload, fit, seeded

import probae


# ------------------------------------------------------------------- fit inputs
def small_vae(**kwargs):
    return probae.VAE((784,), 8, hidden_units=(64,), activation="tanh", **kwargs)


def _train(policy, x_train, x_test, seed=0):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        model = small_vae(seed=seed)
        model.fit(x_train, batch_size=100, epochs=3, verbose=0)
        return model, float(np.mean(model.elbo(x_test, seed=0)))
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def mixed_runs(binarized):
    x_train, x_test = binarized[0][:3000], binarized[1][:500]
    return {p: _train(p, x_train, x_test) for p in ("float32", "mixed_float16", "mixed_bfloat16")}


# Tolerance: 3 percent of the float32 test ELBO (about 8 nats here: 3 epochs on 3000
# images give about -266 nats). Measured: mixed_float16 1.2 nats and mixed_bfloat16
# 0.02 nats away from float32 (same seed).
MIXED_RTOL = 0.03


@pytest.mark.parametrize(
    "policy, low", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_elbo_matches_float32(mixed_runs, binarized, policy, low):
    model, elbo = mixed_runs[policy]
    _, elbo32 = mixed_runs["float32"]
    print(f"\n{policy}: test ELBO {elbo:.2f} nats, float32 {elbo32:.2f} nats")
    assert np.isfinite(elbo)
    assert abs(elbo - elbo32) <= MIXED_RTOL * abs(elbo32), (policy, elbo, elbo32)
    # networks compute in low precision, distribution parameters stay float32
    assert model.encoder.network.compute_dtype == low
    assert model.decoder.network.compute_dtype == low
    x = binarized[1][:10]
    posterior = model.encode(x)
    assert posterior.dtype == tf.float32 and posterior.mean().dtype == tf.float32
    likelihood = model.decode(posterior.mean().numpy())
    assert likelihood.dtype == tf.float32
    assert likelihood.log_prob(x).dtype == tf.float32
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_mixed_float16_conv_learned_scale_and_mixture_prior():
    """The whole path: conv network, centre crop, learned scale, learned prior."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        x = rng.random((64, 10, 10, 1)).astype("float32")  # 10 is cropped from 12
        model = probae.VAE(
            (10, 10, 1),
            3,
            likelihood="gaussian",
            prior=probae.MixtureOfGaussiansPrior(2),
            filters=(4, 8),
            hidden_units=(16,),
        )
        hist = model.fit(x, batch_size=32, epochs=2, verbose=0)
        assert np.all(np.isfinite(hist.history["loss"]))
        assert model.decoder.raw_scale.dtype == "float32"
        likelihood = model.decode(np.zeros((2, 3), np.float32))
        assert likelihood.dtype == tf.float32
        assert likelihood.distribution.scale.dtype == tf.float32
        assert model.prior.distribution().dtype == tf.float32
        assert np.all(np.isfinite(model.elbo(x)))
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ----------------------------------------------------------------- extreme data
def _fit_outcome(model, x, epochs=3):
    history = model.fit(x, epochs=epochs, batch_size=16, verbose=0)
    losses = np.array(history.history["loss"])
    assert np.all(np.isfinite(losses)), losses
    # A point-mass encoder has no bound on log p(x) (model.elbo refuses it): its score is
    # the reconstruction term.
    if model.has_density:
        elbo = model.elbo(x[:16])
    else:
        elbo = -probae.anomaly_scores(model, x[:16], method="reconstruction")
    assert np.all(np.isfinite(elbo))
    return losses, elbo


def test_all_zero_images():
    x = np.zeros((32, 8, 8, 1), "float32")
    model = probae.VAE((8, 8, 1), 2, filters=(4,), hidden_units=(8,))
    losses, elbo = _fit_outcome(model, x)
    assert losses[-1] < losses[0]  # learns to predict zeros: log p(x|z) -> 0 from below
    assert np.all(elbo <= 0)


def test_constant_columns_with_learned_gaussian_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6)).astype("float32")
    x[:, :3] = 5.0  # zero variance: the learned scale goes to its floor, not to 0
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    _fit_outcome(model, x, epochs=5)
    # Driven far below the floor (softplus underflows to 0), the learned scale is min_scale
    # and the reconstruction term stays finite.
    model.decoder.raw_scale.assign(np.full(6, -1e4, "float32"))
    likelihood = model.decode(model.encode(x).mean())
    np.testing.assert_allclose(likelihood.distribution.stddev(), model.decoder.min_scale, rtol=1e-6)
    assert np.all(np.isfinite(likelihood.log_prob(x).numpy()))


def test_huge_features_with_gaussian_decoder():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(32, 6)) * 1e6).astype("float32")
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    losses, elbo = _fit_outcome(model, x)
    # The loss is astronomically large (the model starts with unit scales) but finite.
    assert losses[0] > 1e9


def test_single_repeated_example():
    x = np.tile(np.random.default_rng(3).random((1, 6)).astype("float32"), (32, 1))
    for model in (
        probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,)),
        probae.Autoencoder((6,), 2, likelihood="bernoulli", hidden_units=(8,)),
    ):
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        _fit_outcome(model, x, epochs=5)


# --------------------------------------------------------------- IWAE with DReG
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (30, 17, 2)])
def test_convolutional_models_match_any_image_shape(shape, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((8, *shape)).astype("float32")
    model = probae.VAE(shape, 3, likelihood="gaussian", filters=(8, 16), hidden_units=(16,))
    assert model.encoder._arch == "conv"
    likelihood = model.decode(np.zeros((2, 3), "float32"))
    assert likelihood.event_shape == shape and likelihood.mean().shape == (2, *shape)
    assert model.reconstruct(x).shape == x.shape and model.sample(3, seed=0).shape == (3, *shape)
    elbo = model.elbo(x, seed=0)
    assert elbo.shape == (8,) and np.all(np.isfinite(elbo))
    if shape == (30, 17, 2):  # train and reload one (non-square, odd-sized) model
        model.fit(x, epochs=1, batch_size=4, verbose=0)
        assert_same_after_reload(model, x, tmp_path)


def test_conv_vae_beats_mlp_vae_of_similar_size(binarized):
    """Same data, epochs, batch size and latent size; about 0.9M parameters each."""
    x, xt = binarized[0][:2000], binarized[1]
    conv = seeded(lambda: probae.VAE((28, 28, 1), 16, architecture="conv", hidden_units=(128,)))
    mlp = seeded(lambda: probae.VAE((784,), 16, hidden_units=(400, 400)))
    sizes = [sum(int(np.prod(v.shape)) for v in m.trainable_variables) for m in (conv, mlp)]
    assert 0.8 < sizes[0] / sizes[1] < 1.2, sizes
    keras.utils.set_random_seed(0)
    conv.fit(x.reshape(-1, 28, 28, 1), epochs=5, batch_size=20, verbose=0)
    keras.utils.set_random_seed(0)
    mlp.fit(x, epochs=5, batch_size=20, verbose=0)
    conv_elbo = conv.elbo(xt.reshape(-1, 28, 28, 1), seed=0)
    mlp_elbo = mlp.elbo(xt, seed=0)
    gain = conv_elbo - mlp_elbo
    print(f"test ELBO: conv {conv_elbo.mean():.1f}, MLP {mlp_elbo.mean():.1f} nats (sizes {sizes})")
    assert gain.mean() > 4 * gain.std() / np.sqrt(len(gain))


@pytest.mark.parametrize("shape,architecture", [((12,), "mlp"), ((8, 8, 1), "conv")])
def test_gated_networks_compute_glu_and_survive_saving(shape, architecture, tmp_path):
    """activation="glu": each layer computes (W1 x + b1) * sigmoid(W2 x + b2) with the
    requested width (Tomczak and Welling's gated layers), trains and reloads exactly."""
    rng = np.random.default_rng(0)
    x = (rng.random((16,) + shape) < 0.3).astype("float32")
    model = seeded(
        lambda: probae.VAE(
            shape,
            3,
            architecture=architecture,
            hidden_units=(10, 6),
            filters=(4,),
            activation="glu",
        )
    )
    model(x[:2])
    dense = [
        layer for layer in model.encoder.network.layers if isinstance(layer, keras.layers.Dense)
    ]
    widths = [10, 6] if architecture == "mlp" else [10]  # the CNN encoder keeps one dense layer
    assert [d.units for d in dense] == [2 * w for w in widths]  # two halves (value, gate)
    assert (
        sum(isinstance(layer, probae.networks.GLU) for layer in model.decoder.network.layers) >= 2
    )
    if architecture == "mlp":  # the first gated layer against numpy
        inputs = np.asarray(x)
        kernel, bias = (np.asarray(w) for w in (dense[0].kernel, dense[0].bias))
        a = inputs @ kernel + bias
        expected = a[:, :10] / (1 + np.exp(-a[:, 10:]))
        glu = model.encoder.network.layers[2]
        np.testing.assert_allclose(glu(dense[0](inputs)), expected, rtol=1e-5, atol=1e-6)
    assert model.encoder.network(x).shape == (16, widths[-1])
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    fit(model, x, epochs=2, batch_size=8)
    assert np.all(np.isfinite(model.elbo(x, seed=0)))
    assert_same_after_reload(model, x, tmp_path)


# ------------------------------------------------------------------- targets and weights
def _ae(seed=0, optimizer="sgd"):
    keras.utils.set_random_seed(seed)
    model = probae.Autoencoder((20,), 4, hidden_units=(8,))
    model.compile(keras.optimizers.SGD(0.1) if optimizer == "sgd" else optimizer)
    return model


def _bits(n=64, seed=0):
    return (np.random.default_rng(seed).random((n, 20)) > 0.5).astype("float32")


def test_fit_x_y_reconstructs_y_from_x():
    """fit(noisy, clean) trains p(clean | encoder(noisy)): the loss is the clean target's."""
    x = _bits()
    noisy = np.abs(x - (np.random.default_rng(1).random(x.shape) < 0.2)).astype("float32")
    model = _ae()
    logs = model.evaluate(noisy, x, batch_size=64, verbose=0, return_dict=True)
    terms = model.compute_terms(tf.constant(noisy), target=tf.constant(x))
    np.testing.assert_allclose(logs["loss"], -terms["objective"].numpy().mean(), rtol=1e-5)
    own = model.evaluate(noisy, batch_size=64, verbose=0, return_dict=True)
    assert abs(own["loss"] - logs["loss"]) > 1e-3  # y is used, not dropped
    model.fit(tf.data.Dataset.from_tensor_slices((noisy, x)).batch(16), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y must have shape \(batch, 20\)"):
        model.fit(noisy, np.arange(64), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="y must have one row per example"):
        model.fit(noisy, x[:10], epochs=1, verbose=0)


def test_sample_weight_weights_each_example():
    x = _bits()
    zero = _ae()
    before = [w.copy() for w in zero.get_weights()]
    zero.fit(x, sample_weight=np.zeros(64), epochs=1, batch_size=64, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, zero.get_weights()))
    # Weight 2 on a row is the row twice (one full-batch SGD step, no sampling noise).
    weights = np.ones(64)
    weights[3] = 2.0
    weighted = _ae()
    weighted.fit(x, sample_weight=weights, epochs=1, batch_size=64, shuffle=False, verbose=0)
    twice = _ae()
    twice.fit(np.concatenate([x, x[3:4]]), epochs=1, batch_size=65, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), twice.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    unweighted = _ae()
    unweighted.fit(x, epochs=1, batch_size=64, shuffle=False, verbose=0)
    assert not all(
        np.allclose(a, b) for a, b in zip(unweighted.get_weights(), weighted.get_weights())
    )
    # evaluate weights its metrics the same way.
    logs = weighted.evaluate(x, sample_weight=weights, batch_size=64, verbose=0, return_dict=True)
    per_example = -weighted.compute_terms(tf.constant(x))["objective"].numpy()
    np.testing.assert_allclose(logs["loss"], np.average(per_example, weights=weights), rtol=1e-5)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        weighted.fit(x, sample_weight=-weights, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="sample_weight must have one weight per example"):
        weighted.fit(x, sample_weight=weights[:5], epochs=1, verbose=0)


def test_progress_bar_counts_an_epoch_shorter_than_a_step_group(capsys):
    model = _ae()
    model.fit(_bits(40), epochs=1, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "3/3" in out and "10/3" not in out
    assert model.steps_per_execution == 3


# ------------------------------------------------------------------- batches and streams
_MEMORY_SCRIPT = """
import resource, sys
import numpy as np, probae
batch_size = int(sys.argv[1])
x = np.random.default_rng(0).random((20000, 28, 28, 1)).astype("float32")
model = probae.VAE((28, 28, 1), 16)
model.encode(x[:300], batch_size=batch_size, verbose=0)  # warm up: trace, allocate
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
q = model.encode(x, batch_size=batch_size, verbose=0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert q.batch_shape == (20000,)
print((after - before) / 1024)
"""


def test_encode_memory_is_bounded_by_the_batch():
    """20,000 MNIST-sized images through the default conv encoder: in batches of 256 the
    peak memory does not grow. (The whole set in one call, as encode did before it took
    batch_size, raised the peak by about 980 MB in this script run alone.)"""
    import subprocess
    import sys

    def extra_mb(batch_size):
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_SCRIPT, str(batch_size)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    batched = extra_mb(256)
    assert batched < 100, batched


def test_every_data_method_takes_batches_datasets_and_shows_progress(capsys):
    x = (np.random.default_rng(0).random((40, 6)) > 0.5).astype("float32")
    model = probae.VAE((6,), 2, hidden_units=(4,))
    ds = tf.data.Dataset.from_tensor_slices(x).batch(8)
    q = model.encode(x, batch_size=7, verbose=0)
    np.testing.assert_allclose(
        q.mean(), model.encode(x, batch_size=40, verbose=0).mean(), rtol=1e-6
    )
    np.testing.assert_allclose(model.encode(ds, verbose=0).stddev(), q.stddev(), rtol=1e-6)
    # A point mass too (its scalar tolerances are kept, its codes joined).
    autoencoder = probae.Autoencoder((6,), 2, hidden_units=(4,))
    codes = autoencoder.encode(x, batch_size=7, verbose=0)
    np.testing.assert_allclose(
        codes.loc, autoencoder.encode(x, batch_size=40, verbose=0).loc, rtol=1e-6
    )
    np.testing.assert_allclose(
        model.reconstruct(ds, verbose=0), model.reconstruct(x, batch_size=8, verbose=0), rtol=1e-6
    )
    np.testing.assert_array_equal(
        model.elbo(ds, seed=1, verbose=0), model.elbo(x, batch_size=8, seed=1, verbose=0)
    )
    np.testing.assert_allclose(
        probae.anomaly_scores(model, ds, seed=0, verbose=0),
        probae.anomaly_scores(model, x, seed=0, verbose=0),
        rtol=1e-6,
    )
    capsys.readouterr()
    model.log_likelihood(x, num_samples=10)  # verbose="auto": Keras' progress bar
    assert "40/40" in capsys.readouterr().out
    model.reconstruct(x, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match='verbose must be "auto", 0, 1 or 2'):
        model.elbo(x, verbose=3)


def test_predict_validates_like_every_other_entry_point():
    x = (np.random.default_rng(0).random((12, 6)) > 0.5).astype("float32")
    model = probae.VAE((6,), 2, hidden_units=(4,))
    np.testing.assert_allclose(
        model.predict(x, verbose=0), model.reconstruct(x, verbose=0), rtol=1e-5
    )
    for bad, match in [
        (x * 255, r"\[0, 1\] for a Bernoulli"),
        (x[:0], "at least one example"),
        (x[:, :5], r"shape \(batch, 6\)"),
        (np.where(x > 0.5, np.nan, x), "finite"),
    ]:
        with pytest.raises(ValueError, match=match):
            model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        model.predict(tf.data.Dataset.from_tensor_slices(x * 255).batch(4), verbose=0)


# ------------------------------------------------------------------- composition and export
def test_the_encoder_inside_a_keras_functional_model_fine_tunes():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 12)) > 0.5).astype("float32")
    labels = (x[:, 0] > 0.5).astype("float32")
    vae = probae.VAE((12,), 3, hidden_units=(8,))
    inputs = keras.Input((12,))
    code = vae.feature_extractor()(inputs)
    classifier = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(code))
    np.testing.assert_allclose(
        classifier.layers[1](x),
        probae.posteriors.point_estimate(vae.encode(x, verbose=0)),
        rtol=1e-6,
    )
    before = [w.copy() for w in vae.encoder.get_weights()]
    classifier.compile("adam", "binary_crossentropy")
    classifier.fit(x, labels, epochs=2, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, vae.encoder.get_weights()))
    sampled = keras.Sequential([keras.Input((12,)), vae.feature_extractor(output="sample", seed=1)])
    draws = np.stack([sampled(x[:1]).numpy()[0] for _ in range(200)])
    q = vae.encode(x[:1], verbose=0)
    np.testing.assert_allclose(
        draws.mean(0), q.mean()[0], atol=4 * float(np.max(q.stddev())) / np.sqrt(200)
    )


_SERVE_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = {name: getattr(loaded, name)(tf.constant(x)).numpy().tolist() for name in ("encode", "reconstruct", "elbo")}
out["probae_imported"] = any(m == "probae" or m.startswith("probae.") for m in sys.modules)
print(json.dumps(out))
"""


def test_export_serves_tensors_without_probae(tmp_path):
    import json
    import subprocess
    import sys

    x = (np.random.default_rng(1).random((5, 12)) > 0.5).astype("float32")
    vae = probae.VAE((12,), 3, hidden_units=(8,))
    vae.fit(x, epochs=1, verbose=0)
    path = str(tmp_path / "exported")
    vae.export(path, verbose=False)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run(
        [sys.executable, "-c", _SERVE_SCRIPT, path, str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        check=True,
    )
    served = json.loads(out.stdout.strip().splitlines()[-1])
    assert served["probae_imported"] is False
    np.testing.assert_allclose(
        served["encode"], vae.encode(x, verbose=0).mean(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        served["reconstruct"], vae.reconstruct(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    # The ELBO from one draw with the fixed seed [0, 0]: the library's estimator, exactly.
    expected = probae.estimators.importance_sampling(
        tf.constant(x),
        vae.posterior(x),
        vae.decoder_fn(),
        vae.prior_distribution(),
        1,
        1,
        tf.constant([0, 0]),
    )["elbo"]
    np.testing.assert_allclose(served["elbo"], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="format must be"):
        vae.export(path, format="onnx")
