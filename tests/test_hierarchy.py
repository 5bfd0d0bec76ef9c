"""A model with two stochastic layers is a configuration of the one model (docs/design.md).

A two-layer linear-Gaussian model, p(z2) = N(0, I), p(z1|z2) = N(A z2, I),
p(x|z1) = N(B z1 + b, s^2 I), has the exact marginal p(x) = N(b, B (A A^T + I) B^T + s^2 I).
Its encoder returns q(z2|x) q(z1|x, z2) as a ``tfd.JointDistributionNamed`` over the code
{"z1", "z2"}, its prior a joint over the same names: nothing in ProbabilisticAutoencoder
is specific to one flat code. The tests train it with ``fit`` and check the bounds against
the exact log p(x), then sampling, reconstruction, anomaly scores and saving.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probae

tfd = tfp.distributions

D, D1, D2 = 4, 2, 1


def _matvec(matrix, v):
    return tf.einsum("ij,...j->...i", matrix, v)


@keras.saving.register_keras_serializable(package="probae_tests")
class TwoLayerEncoder(probae.Encoder):
    """q(z2|x) = N(W2 x + c2, diag), q(z1|x, z2) = N(W1 x + V z2 + c1, diag)."""

    def __init__(self, latent_dim=D1 + D2, **kwargs):
        super().__init__(latent_dim, **kwargs)

    @property
    def code_shape(self):
        return {"z1": (D1,), "z2": (D2,)}

    def build(self, input_shape):
        self.event_shape = tuple(input_shape[1:])
        self.to_z2 = keras.layers.Dense(2 * D2, name="to_z2")
        self.to_z2.build((None, D))
        self.to_z1 = keras.layers.Dense(2 * D1, name="to_z1")
        self.to_z1.build((None, D))
        self.from_z2 = keras.layers.Dense(D1, use_bias=False, name="from_z2")
        self.from_z2.build((None, D2))

    def call(self, x, condition=None):
        loc2, raw2 = tf.split(self.to_z2(x), 2, axis=-1)
        loc1, raw1 = tf.split(self.to_z1(x), 2, axis=-1)
        v = tf.convert_to_tensor(self.from_z2.kernel)  # [D2, D1]
        return tfd.JointDistributionNamed(
            {
                "z2": tfd.MultivariateNormalDiag(loc2, tf.nn.softplus(raw2) + 1e-3),
                "z1": lambda z2: tfd.MultivariateNormalDiag(
                    loc1 + tf.einsum("...j,ji->...i", z2, v), tf.nn.softplus(raw1) + 1e-3
                ),
            }
        )


@keras.saving.register_keras_serializable(package="probae_tests")
class TwoLayerPrior(probae.Prior):
    """p(z2) = N(0, I), p(z1|z2) = N(A z2, I) with A learned."""

    def build(self, input_shape):
        self.a = self.add_weight(name="a", shape=(D1, D2), initializer="random_normal")

    def distribution(self, encoder=None):
        a = tf.convert_to_tensor(self.a)
        return tfd.JointDistributionNamed(
            {
                "z2": tfd.MultivariateNormalDiag(tf.zeros(D2), tf.ones(D2)),
                "z1": lambda z2: tfd.MultivariateNormalDiag(_matvec(a, z2), tf.ones(D1)),
            }
        )


@keras.saving.register_keras_serializable(package="probae_tests")
class LinearGaussianDecoder(probae.Decoder):
    """p(x|z1) = N(B z1 + b, s^2 I) with a learned s."""

    def build(self, input_shape):
        self.b_matrix = self.add_weight(name="b_matrix", shape=(D, D1), initializer="random_normal")
        self.bias = self.add_weight(name="bias", shape=(D,), initializer="zeros")
        self.raw_scale = self.add_weight(name="raw_scale", shape=(), initializer="zeros")

    def call(self, z, condition=None):
        loc = _matvec(tf.convert_to_tensor(self.b_matrix), z["z1"]) + self.bias
        scale = tf.nn.softplus(self.raw_scale) + 1e-3
        return tfd.Independent(tfd.Normal(loc, scale * tf.ones_like(loc)), 1)


def exact_log_px(model, x):
    a = model.prior.a.numpy().astype(np.float64)
    b = model.decoder.b_matrix.numpy().astype(np.float64)
    s = float(tf.nn.softplus(model.decoder.raw_scale)) + 1e-3
    cov = b @ (a @ a.T + np.eye(D1)) @ b.T + s**2 * np.eye(D)
    mvn = tfd.MultivariateNormalTriL(
        model.decoder.bias.numpy().astype(np.float64), np.linalg.cholesky(cov)
    )
    return mvn.log_prob(x.astype(np.float64)).numpy()


def _data(n, seed=0):
    a = np.array([[1.5], [-1.0]])
    b = np.random.default_rng(123).normal(size=(D, D1))  # one generative model
    rng = np.random.default_rng(seed)
    z2 = rng.normal(size=(n, D2))
    z1 = z2 @ a.T + rng.normal(size=(n, D1))
    return (z1 @ b.T + 0.3 * rng.normal(size=(n, D)) + 1.0).astype(np.float32)


def _model(objective="iwae"):
    keras.utils.set_random_seed(0)
    return probae.ProbabilisticAutoencoder(
        TwoLayerEncoder(),
        LinearGaussianDecoder(event_shape=(D,)),
        prior=TwoLayerPrior(),
        objective=probae.IWAE(num_samples=8) if objective == "iwae" else probae.ELBO(),
        input_shape=(D,),
        seed=0,
    )


@pytest.fixture(scope="module")
def trained():
    model = _model()
    x = _data(2000)
    model.compile(keras.optimizers.Adam(0.02))
    history = model.fit(x, epochs=25, batch_size=200, verbose=0)
    return model, _data(200, seed=1), history


def test_the_code_is_a_dict_of_named_latents(trained):
    model, x, history = trained
    assert model.code_shape == {"z1": (D1,), "z2": (D2,)}
    q = model.encode(x[:5])
    z = probae.posteriors.point_estimate(q)
    assert sorted(z) == ["z1", "z2"] and z["z1"].shape == (5, D1) and z["z2"].shape == (5, D2)
    # The point estimate of z1 is its conditional mean at z2's point estimate.
    dists, _ = q.sample_distributions(value=z, seed=(1, 2))
    np.testing.assert_allclose(z["z1"], dists["z1"].mean(), rtol=1e-5, atol=1e-6)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 1.0, losses  # it trains


def test_bounds_against_the_exact_marginal(trained):
    model, x, _ = trained
    exact = exact_log_px(model, x)
    elbo = model.elbo(x, num_samples=200, seed=0)
    iwae_50 = model.log_likelihood(x, num_samples=50, seed=0)
    terms = model.log_likelihood(x, num_samples=5000, seed=1, return_terms=True)
    n = len(x)
    # ELBO <= IWAE_50 <= log p(x) on average, beyond Monte Carlo noise.
    assert elbo.mean() < iwae_50.mean() < exact.mean() + 0.02, (
        elbo.mean(),
        iwae_50.mean(),
        exact.mean(),
    )
    # The k = 5000 estimate agrees with the exact log p(x) within 4 standard errors.
    mc_se = math.sqrt(float(np.sum(terms["mc_stderr"] ** 2))) / n
    gap = abs(terms["log_likelihood"].mean() - exact.mean())
    assert gap < 4 * mc_se + 1e-3, (gap, mc_se)
    # Every example's estimate is finite and close to its exact value.
    assert np.all(np.abs(terms["log_likelihood"] - exact) < 0.1 + 4 * terms["mc_stderr"])


def test_sampling_reconstruction_scores_and_saving(trained, tmp_path):
    model, x, _ = trained
    samples = model.sample(500, seed=0)
    assert samples.shape == (500, D) and np.all(np.isfinite(samples))
    # Samples follow the learned marginal: its mean is the decoder's bias.
    np.testing.assert_allclose(samples.mean(0), model.decoder.bias.numpy(), atol=0.35)
    recon = model.reconstruct(x[:10])
    assert recon.shape == (10, D)
    assert np.mean((recon - x[:10]) ** 2) < np.mean((x[:10] - x.mean(0)) ** 2)
    scores = probae.anomaly_scores(model, x, seed=0, num_samples=100)
    exact = exact_log_px(model, x)
    assert np.corrcoef(scores, -exact)[0, 1] > 0.99
    decoded = model.decode({"z1": np.zeros((3, D1)), "z2": np.zeros((3, D2))}).mean().numpy()
    np.testing.assert_allclose(decoded, np.tile(model.decoder.bias.numpy(), (3, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="z must be a dict with keys"):
        model.decode(np.zeros((3, D1 + D2)))
    path = str(tmp_path / "hvae.keras")
    model.save(path)
    loaded = probae.load_model(path)
    np.testing.assert_allclose(
        loaded.log_likelihood(x[:20], num_samples=100, seed=3),
        model.log_likelihood(x[:20], num_samples=100, seed=3),
        rtol=1e-5,
    )
    assert probae.evaluate_likelihood(loaded, x[:20], num_samples=50)["active_units"] >= 1
