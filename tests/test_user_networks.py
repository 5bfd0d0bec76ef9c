"""Users' own Keras networks, used as given (issue 15, item 1).

The two seed programs run here as their users wrote them: the VAE notes' hello world and
the classic Keras autoencoder. Then the one rule that turns a network's output into
distribution parameters: read as is when it fits, a head added with a warning (and a line
in summary()) when it does not, an error with head=False.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae

latent_dim = 2


def _digits(n=512, seed=0):
    return (np.random.default_rng(seed).random((n, 784)) > 0.7).astype("float32")


def test_the_vae_notes_hello_world_runs_line_for_line():
    x_train, x_test = _digits(), _digits(64, seed=1)
    encoder = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(2 * latent_dim),
        ]
    )
    decoder = keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(784, activation="sigmoid"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # both networks fit: nothing added
        vae = probae.VAE(encoder, decoder)
        vae.compile(optimizer="adam")
        history = vae.fit(x_train, epochs=2, verbose=0)
    encoded = encoder(x_test)
    generated = decoder(encoded[:, :latent_dim])
    assert generated.shape == (64, 784)
    # probae added nothing: the parameters are the users' networks' own.
    assert vae.encoder.head is None and vae.decoder.head is None
    assert vae.count_params() == encoder.count_params() + decoder.count_params() + 1  # + beta
    assert history.history["loss"][-1] < history.history["loss"][0]
    # vae.encoder(x) is q(z|x); vae.decoder takes a code or that distribution (its mean).
    q = vae.encoder(x_test)
    np.testing.assert_allclose(q.mean(), encoded[:, :latent_dim], rtol=1e-6)
    np.testing.assert_allclose(q.stddev(), np.exp(0.5 * encoded[:, latent_dim:]) + 1e-4, rtol=1e-5)
    np.testing.assert_allclose(vae.decoder(q).mean(), decoder(q.mean()), rtol=1e-5, atol=1e-6)


def test_the_hello_world_verbatim_with_a_code_output_encoder():
    """The notes' lines exactly: encoder(x_test) is a code the user's decoder takes, so the
    Gaussian needs a head, which probae adds and announces (a warning, summary())."""
    x_train, x_test = _digits(), _digits(32, seed=4)
    encoder = keras.Sequential(
        [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(latent_dim)]
    )
    decoder = keras.Sequential(
        [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(784, activation="sigmoid")]
    )
    with pytest.warns(UserWarning, match="probae added a Dense head"):
        vae = probae.VAE(encoder, decoder)
        vae.compile(optimizer="adam")
        vae.fit(x_train, epochs=10, verbose=0)
    encoded = encoder(x_test)
    generated = decoder(encoded)
    assert generated.shape == (32, 784) and vae.latent_dim == latent_dim
    assert vae.decoder.head is None  # the decoder fits: used as it is


def test_the_classic_keras_autoencoder_runs_and_its_loss_is_keras_bce():
    x_train, x_test = _digits(), _digits(64, seed=2)
    encoder = keras.Sequential([keras.layers.Dense(64, activation="relu")])
    decoder = keras.Sequential([keras.layers.Dense(784, activation="sigmoid")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        autoencoder = probae.Autoencoder(encoder, decoder)
        autoencoder.compile(optimizer="adam")
        autoencoder.fit(x_train, epochs=2, batch_size=256, verbose=0)
    decoded = decoder(encoder(x_test))
    assert decoded.shape == (64, 784)
    assert autoencoder.count_params() == encoder.count_params() + decoder.count_params() + 1
    bce = keras.losses.binary_crossentropy(x_test, decoded).numpy() * 784
    terms = autoencoder.compute_terms(tf.constant(x_test))
    np.testing.assert_allclose(-terms["objective"].numpy(), bce, rtol=1e-5)
    logs = autoencoder.evaluate(x_test, batch_size=64, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], bce.mean(), rtol=1e-4)
    np.testing.assert_allclose(autoencoder.reconstruct(x_test), decoded, rtol=1e-5, atol=1e-6)


def test_keras_io_encoder_with_two_outputs_is_mean_and_log_var():
    inputs = keras.Input((784,))
    h = keras.layers.Dense(32, activation="relu")(inputs)
    z_mean = keras.layers.Dense(latent_dim)(h)
    z_log_var = keras.layers.Dense(latent_dim)(h)
    encoder = keras.Model(inputs, [z_mean, z_log_var])
    decoder = keras.Sequential(
        [keras.Input((latent_dim,)), keras.layers.Dense(784, activation="sigmoid")]
    )
    vae = probae.VAE(encoder, decoder)
    x = _digits(32)
    vae.fit(x, epochs=1, verbose=0)
    mean, log_var = encoder(x)
    q = vae.encode(x)
    np.testing.assert_allclose(q.mean(), mean, rtol=1e-6)
    np.testing.assert_allclose(q.stddev(), np.exp(0.5 * log_var) + 1e-4, rtol=1e-5)


def test_a_network_that_does_not_fit_gets_a_head_with_a_warning_or_an_error():
    def nets():
        encoder = keras.Sequential(
            [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(8)]
        )
        decoder = keras.Sequential([keras.layers.Dense(784, activation="sigmoid")])
        return encoder, decoder

    x = _digits(64)
    vae = probae.VAE(*nets())
    with pytest.warns(UserWarning, match="probae added a Dense head"):
        vae.fit(x, epochs=1, verbose=0)
    # The code is the encoder's output (8 wide), so decoder(encoder(x)) stays valid.
    assert vae.latent_dim == 8 and vae.encoder.added_head and not vae.decoder.added_head
    lines = []
    vae.summary(print_fn=lines.append)
    assert any("probae added a Dense head" in line and "encoder" in line for line in lines)
    strict = probae.VAE(*nets(), head=False)
    with pytest.raises(ValueError, match=r"does not fit and head=False.*2 x latent_dim=8"):
        strict.fit(x, epochs=1, verbose=0)
    asked = probae.VAE(*nets(), head=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        asked.fit(x, epochs=1, verbose=0)
    assert asked.encoder.head is not None and not asked.encoder.added_head


def test_an_image_decoder_ending_in_its_data_shape_gets_no_head(tmp_path):
    decoder = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(7 * 7 * 8, activation="relu"),
            keras.layers.Reshape((7, 7, 8)),
            keras.layers.Conv2DTranspose(1, 3, strides=4, padding="same", activation="sigmoid"),
        ]
    )
    encoder = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(8)]
    )
    vae = probae.VAE(encoder, decoder)
    assert vae.event_shape == (28, 28, 1) and vae.decoder.head is None and vae.encoder.head is None
    x = (np.random.default_rng(3).random((16, 28, 28, 1)) > 0.5).astype("float32")
    vae.fit(x, epochs=1, verbose=0)
    path = str(tmp_path / "byo.keras")
    vae.save(path)
    loaded = probae.load_model(path)
    np.testing.assert_allclose(loaded.reconstruct(x), vae.reconstruct(x), rtol=1e-5, atol=1e-6)


class SaturatedSigmoid(keras.layers.Layer):
    """Probabilities from tf.sigmoid (Keras records no logits) that saturate to 0 and 1."""

    activation = staticmethod(keras.activations.sigmoid)  # declares a final sigmoid

    def call(self, inputs):
        return tf.sigmoid(1e4 * tf.concat([inputs, -inputs, inputs], axis=-1))


def test_saturated_probabilities_are_read_safely():
    """Outputs of exactly 0 and 1 give a finite log-likelihood: clipped to [1e-7, 1 - 1e-7]
    as Keras' cross-entropy clips them."""
    decoder = probae.BernoulliDecoder(event_shape=(3,), network=SaturatedSigmoid(), head=False)
    decoder.build((None, 1))
    likelihood = decoder(tf.ones((1, 1)))  # probabilities exactly [1, 0, 1]
    np.testing.assert_allclose(likelihood.mean(), [[1 - 1e-7, 1e-7, 1 - 1e-7]], atol=1e-9)
    target = tf.constant([[0.0, 1.0, 0.0]])
    wrong = likelihood.log_prob(target).numpy()
    assert np.isfinite(wrong).all() and wrong[0] < -40
    # Keras' own cross-entropy on the same saturated probabilities (float32 clipping).
    keras_bce = (
        keras.losses.binary_crossentropy(target, decoder.network(tf.ones((1, 1)))).numpy() * 3
    )
    np.testing.assert_allclose(-wrong, keras_bce, rtol=0.02)
    np.testing.assert_allclose(likelihood.log_prob(tf.constant([[1.0, 0.0, 1.0]])), 0.0, atol=1e-5)
