"""Input corruptions (probae.corruption): their statistics, and their use in training only."""

import numpy as np
import tensorflow as tf
from helpers import assert_same_after_reload

import probae


def test_corruptions_statistics():
    n = 200_000
    seed = tf.constant([3, 4])
    ones = tf.ones([n // 100, 100])
    masked = probae.MaskingNoise(0.3)(ones, seed).numpy()
    se = np.sqrt(0.3 * 0.7 / n)
    assert abs((masked == 0).mean() - 0.3) < 4 * se
    assert set(np.unique(masked)) == {0.0, 1.0}
    # Same seed, same corruption; another seed, another one.
    np.testing.assert_array_equal(masked, probae.MaskingNoise(0.3)(ones, seed).numpy())
    assert not np.array_equal(masked, probae.MaskingNoise(0.3)(ones, tf.constant([3, 5])).numpy())

    half = 0.5 * ones
    sp = probae.SaltAndPepperNoise(0.2)(half, seed).numpy()
    se = np.sqrt(0.1 * 0.9 / n)
    assert abs((sp == 0).mean() - 0.1) < 4 * se and abs((sp == 1).mean() - 0.1) < 4 * se
    assert abs((sp == 0.5).mean() - 0.8) < 4 * np.sqrt(0.16 / n)

    noisy = probae.GaussianNoise(0.4)(half, seed).numpy() - 0.5
    assert abs(noisy.mean()) < 4 * 0.4 / np.sqrt(n)
    assert abs(noisy.std() - 0.4) < 4 * 0.4 / np.sqrt(2 * n)
    clipped = probae.GaussianNoise(2.0, clip=(0, 1))(half, seed).numpy()
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_corruption_in_training_only_and_likelihood_of_clean_input():
    rng = np.random.default_rng(1)
    x = tf.constant((rng.random((16, 10)) < 0.5).astype("float32"))
    model = probae.Autoencoder((10,), 3, hidden_units=(8,), corruption=probae.MaskingNoise(0.5))
    seed = tf.constant([7, 8])

    def reconstruction(encoder_input):
        code = model.encoder(encoder_input).mean()
        return model.decoder(code).log_prob(x).numpy()

    train_terms = model.compute_terms(x, seed=seed, training=True)
    x_tilde = model.corruption(x, seed)
    assert not np.array_equal(x_tilde.numpy(), x.numpy())
    np.testing.assert_allclose(train_terms["reconstruction"], reconstruction(x_tilde), rtol=1e-5)
    eval_terms = model.compute_terms(x, seed=seed, training=False)
    np.testing.assert_allclose(eval_terms["reconstruction"], reconstruction(x), rtol=1e-5)


def test_corruption_option_on_a_vae_saves(tmp_path):
    model = probae.VAE((6,), 2, hidden_units=(4,), corruption=0.2)
    assert isinstance(model.corruption, probae.MaskingNoise) and model.corruption.rate == 0.2
    x = (np.random.default_rng(0).random((20, 6)) < 0.5).astype("float32")
    model.fit(x, epochs=1, verbose=0)
    loaded = assert_same_after_reload(model, x, tmp_path)
    assert isinstance(loaded.corruption, probae.MaskingNoise)
