"""One contract over every encoder, decoder and prior, and several shapes: output shapes,
finite log_prob, non-zero gradients, get_config round trip, save/load round trip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae

SHAPES = [(7,), (9, 6, 2)]
LATENT = 3


def _encoders():
    return {
        "gaussian": lambda: probae.GaussianEncoder(LATENT, hidden_units=(16,)),
        "deterministic": lambda: probae.DeterministicEncoder(LATENT, hidden_units=(16,)),
        "deterministic_sigmoid": lambda: probae.DeterministicEncoder(
            LATENT, hidden_units=(16,), code_activation="sigmoid"
        ),
    }


def _decoders():
    return {
        "bernoulli": lambda: probae.BernoulliDecoder(hidden_units=(16,)),
        "continuous_bernoulli": lambda: probae.ContinuousBernoulliDecoder(hidden_units=(16,)),
        "gaussian_fixed": lambda: probae.GaussianDecoder(hidden_units=(16,), scale=0.5),
        "gaussian_shared": lambda: probae.GaussianDecoder(hidden_units=(16,), scale="shared"),
        "gaussian_per_feature": lambda: probae.GaussianDecoder(
            hidden_units=(16,), scale="per_feature"
        ),
        "gaussian_per_example": lambda: probae.GaussianDecoder(
            hidden_units=(16,), scale="per_example"
        ),
        "laplace": lambda: probae.LaplaceDecoder(hidden_units=(16,), scale="per_feature"),
        "student_t": lambda: probae.StudentTDecoder(hidden_units=(16,), df=4.0),
    }


# Mixed tabular columns: one per type (and two categorical sizes); only for 1-D examples.
MIXED_COLUMNS = ["gaussian", "student_t", "bernoulli", 3, "gaussian", "bernoulli", 4]


def _mixed_decoder():
    return probae.MixedDecoder(MIXED_COLUMNS, hidden_units=(16,), df=3.0)


def _priors():
    return {
        "standard_normal": lambda: probae.StandardNormalPrior(),
        "mixture": lambda: probae.MixtureOfGaussiansPrior(num_components=4),
    }


CASES = (
    [("encoder", n, s) for n in _encoders() for s in SHAPES]
    + [("decoder", n, s) for n in _decoders() for s in SHAPES]
    + [("prior", n, (7,)) for n in _priors()]
    # MNIST's size, which the default CNN's strided layers do not divide evenly.
    + [("encoder", "gaussian", (28, 28, 1)), ("decoder", "gaussian_per_example", (28, 28, 1))]
    + [("decoder", "mixed", (len(MIXED_COLUMNS),))]
)


def _model(part, name, shape):
    enc = (
        _encoders()[name]()
        if part == "encoder"
        else probae.GaussianEncoder(LATENT, hidden_units=(16,))
    )
    decoders = dict(_decoders(), mixed=_mixed_decoder)
    dec = decoders[name]() if part == "decoder" else probae.BernoulliDecoder(hidden_units=(16,))
    prior = _priors()[name]() if part == "prior" else None
    return probae.ProbabilisticAutoencoder(enc, dec, prior=prior, input_shape=shape)


def _data(shape, n=6, name=None):
    x = np.random.default_rng(0).random((n, *shape)).astype(np.float32)
    if name == "mixed":  # integer codes in the discrete columns
        for j, t in enumerate(MIXED_COLUMNS):
            if t == "bernoulli" or isinstance(t, int):
                k = 2 if t == "bernoulli" else t
                x[:, j] = np.arange(n) % k
    return x


@pytest.mark.parametrize(
    "part,name,shape", CASES, ids=[f"{p}-{n}-{'x'.join(map(str, s))}" for p, n, s in CASES]
)
def test_contract(part, name, shape, tmp_path):
    model = _model(part, name, shape)
    x = _data(shape, name=name)
    # Shapes.
    post = model.encode(x)
    assert post.batch_shape == (6,) and post.event_shape == (LATENT,)
    lik = model.decode(post.mean().numpy())
    assert lik.batch_shape == (6,) and tuple(lik.event_shape) == shape
    assert model.reconstruct(x).shape == x.shape
    if model.prior is not None:  # a point-mass encoder has none unless given one
        assert model.sample(4, seed=0).shape == (4, *shape)
    # Finite log_prob and objective terms, one number per example.
    lp = lik.log_prob(x).numpy()
    assert lp.shape == (6,) and np.all(np.isfinite(lp))
    terms = model.compute_terms(tf.constant(x), seed=tf.constant([1, 2]))
    expected = model.objective.metric_names(model.prior is not None) + ("objective",)
    assert set(expected) <= set(terms)
    for key in expected:
        assert terms[key].shape == (6,) and np.all(np.isfinite(terms[key].numpy())), key
    # Non-zero gradients for every trainable variable of the part under test.
    model.beta = 1.0
    part_layer = {"encoder": model.encoder, "decoder": model.decoder, "prior": model.prior}[part]
    variables = part_layer.trainable_variables
    if variables:
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(
                model.compute_terms(tf.constant(x), seed=tf.constant([3, 4]))["objective"]
            )
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, v.path
    # get_config round trip.
    config = part_layer.get_config()
    clone = type(part_layer).from_config(config)
    assert clone.get_config() == config
    # Save / load round trip: the same encoder means and decoder parameters.
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is probae.ProbabilisticAutoencoder
    np.testing.assert_allclose(
        loaded.encode(x).mean().numpy(), post.mean().numpy(), rtol=1e-6, atol=1e-6
    )
    z = post.mean().numpy()
    np.testing.assert_allclose(
        loaded.decode(z).log_prob(x).numpy(), model.decode(z).log_prob(x).numpy(), rtol=1e-5
    )
    score = probae.anomaly_scores  # log_likelihood with a density, reconstruction otherwise
    np.testing.assert_allclose(
        score(loaded, x, seed=3, num_samples=20), score(model, x, seed=3, num_samples=20), rtol=1e-5
    )


PRESETS = {
    "Autoencoder": lambda s: probae.Autoencoder(s, 2, hidden_units=(16,)),
    "Autoencoder_gaussian": lambda s: probae.Autoencoder(
        s, 2, likelihood="gaussian", hidden_units=(16,)
    ),
    "VAE": lambda s: probae.VAE(s, 2, hidden_units=(16,)),
    "BetaVAE": lambda s: probae.BetaVAE(s, 2, beta=2.5, hidden_units=(16,)),
    "IWAE": lambda s: probae.VAE(s, 2, objective=probae.IWAE(num_samples=3), hidden_units=(16,)),
    "Renyi": lambda s: probae.VAE(s, 2, objective=probae.RenyiBound(0.5, 3), hidden_units=(16,)),
    "VAE_mixture": lambda s: probae.VAE(
        s, 2, prior=probae.MixtureOfGaussiansPrior(3), hidden_units=(16,)
    ),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_are_the_one_class_and_round_trip_after_training(preset, tmp_path):
    shape = (10,)
    rng = np.random.default_rng(1)
    prototypes = rng.random((2, *shape)) > 0.5
    x = (prototypes[rng.integers(0, 2, 64)] ^ (rng.random((64, *shape)) < 0.05)).astype(np.float32)
    model = PRESETS[preset](shape)
    assert type(model) is probae.ProbabilisticAutoencoder
    history = model.fit(x, epochs=3, batch_size=16, verbose=0)
    names = ("loss",) + model.objective.metric_names(model.prior is not None)
    assert set(history.history) == set(names)
    for key in names:
        assert np.all(np.isfinite(history.history[key])), key
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "p.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert json.loads(json.dumps(loaded.get_config())) == json.loads(json.dumps(model.get_config()))
    np.testing.assert_allclose(loaded.reconstruct(x), model.reconstruct(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        loaded.encode(x).mean().numpy(), model.encode(x).mean().numpy(), rtol=1e-6, atol=1e-6
    )
    # Training continues from the restored optimizer state.
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    loaded.fit(x, epochs=1, batch_size=16, verbose=0)


def test_metrics_reported_by_fit_and_evaluate_agree_with_elbo():
    x = (np.random.default_rng(2).random((200, 12)) > 0.5).astype(np.float32)
    model = probae.VAE((12,), 2, hidden_units=(16,))
    history = model.fit(x, epochs=1, batch_size=50, verbose=0, validation_data=(x,))
    assert {"loss", "elbo", "reconstruction", "kl", "val_loss", "val_elbo"} <= set(history.history)
    result = model.evaluate(x, batch_size=200, verbose=0, return_dict=True)
    elbo = model.elbo(x, num_samples=200, seed=0)
    # evaluate draws one sample per example; the mean over 200 examples is close.
    assert abs(result["elbo"] - elbo.mean()) < 0.5
    np.testing.assert_allclose(result["elbo"], result["reconstruction"] - result["kl"], rtol=1e-5)
    np.testing.assert_allclose(result["loss"], -result["elbo"], rtol=1e-5)


def test_standard_keras_callbacks_work(tmp_path):
    x = (np.random.default_rng(3).random((100, 8)) > 0.5).astype(np.float32)
    model = probae.VAE((8,), 2, hidden_units=(8,))
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(
            tmp_path / "best.keras", monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb")),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
    ]
    model.fit(x, epochs=3, batch_size=20, verbose=0, validation_data=(x[:20],), callbacks=callbacks)
    best = keras.models.load_model(tmp_path / "best.keras")
    assert isinstance(best, probae.ProbabilisticAutoencoder)
    assert any((tmp_path / "tb").iterdir())


def test_fit_accepts_tf_data_and_builds_lazily():
    x = (np.random.default_rng(4).random((64, 6)) > 0.5).astype(np.float32)
    model = probae.ProbabilisticAutoencoder(
        probae.GaussianEncoder(2, hidden_units=(8,)), probae.BernoulliDecoder(hidden_units=(8,))
    )
    assert not model.built
    ds = tf.data.Dataset.from_tensor_slices(x).batch(16)
    history = model.fit(ds, epochs=1, verbose=0)
    assert model.built and model.event_shape == (6,)
    assert np.isfinite(history.history["loss"][0])


def test_mixed_decoder_samples_and_means_stay_in_each_column_support():
    model = _model("decoder", "mixed", (len(MIXED_COLUMNS),))
    x = _data((len(MIXED_COLUMNS),), n=50, name="mixed")
    draws = np.asarray(model.sample(50, seed=0, mean=False))
    for is_mean, values in (
        (False, draws),
        (True, model.sample(50, seed=0, mean=True)),
        (True, model.reconstruct(x)),
    ):
        values = np.asarray(values)
        assert np.all(np.isfinite(values))
        for j, t in enumerate(MIXED_COLUMNS):
            if t == "bernoulli" and is_mean:  # a probability
                assert np.all((values[:, j] >= 0) & (values[:, j] <= 1)), j
            elif t == "bernoulli" or isinstance(t, int):  # a code (categorical mean: the mode)
                k = 2 if t == "bernoulli" else t
                assert set(np.unique(values[:, j])) <= set(range(k)), (j, is_mean)
    assert len(np.unique(draws[:, 3])) > 1  # draws vary
    # Per-column terms sum to the per-example log_prob.
    lik = model.decode(model.encode(x).mean().numpy())
    np.testing.assert_allclose(
        lik.distribution.log_prob(x).numpy().sum(axis=1), lik.log_prob(x).numpy(), rtol=1e-5
    )
