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
    # The reconstruction is the decoder's mean at the posterior's point estimate of both
    # layers (how well the model reconstructs depends on the training run, and on
    # TensorFlow's random streams: not checked here; the bounds test checks the model).
    point = probae.posteriors.point_estimate(model.encode(x[:10], verbose=0))
    assert set(point) == {"z1", "z2"}
    np.testing.assert_allclose(recon, model.decode(point).mean().numpy(), rtol=1e-6, atol=1e-6)
    scores = probae.anomaly_scores(model, x, seed=0, num_samples=2000)
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


# ---------------------------------------------------------------------------- the preset
# probae.HierarchicalVAE with linear networks (no hidden layers) and a Gaussian likelihood
# is a two-layer linear-Gaussian model once p(z1|z2)'s scale does not depend on z2: p(z2) =
# N(0, I), p(z1|z2) = N(A z2 + a, diag(s1^2)), p(x|z1, z2) = N(B1 z1 + B2 z2 + b,
# diag(sx^2)), so p(x) = N(B1 a + b, M M^T + B1 diag(s1^2) B1^T + diag(sx^2)), M = B1 A + B2.


def preset_exact_log_px(model, x):
    d1, _ = model.encoder.latent_dims
    head = model.prior.conditional.head
    kernel, bias = (w.astype(np.float64) for w in head.get_weights())
    assert np.all(kernel[:, d1:] == 0.0), "p(z1|z2)'s scale must not depend on z2"
    a_matrix, a = kernel[:, :d1].T, bias[:d1]
    s1 = np.log1p(np.exp(bias[d1:])) + model.prior.conditional.min_scale
    dec_kernel, dec_bias = (w.astype(np.float64) for w in model.decoder.head.get_weights())
    b1, b2 = dec_kernel[:d1].T, dec_kernel[d1:].T  # the decoder reads [z1, z2] (sorted names)
    sx = np.log1p(np.exp(model.decoder.raw_scale.numpy().astype(np.float64)))
    sx = sx + model.decoder.min_scale
    m = b1 @ a_matrix + b2
    cov = m @ m.T + b1 @ np.diag(s1**2) @ b1.T + np.diag(sx**2)
    mvn = tfd.MultivariateNormalTriL(b1 @ a + dec_bias, np.linalg.cholesky(cov))
    return mvn.log_prob(x.astype(np.float64)).numpy()


def _preset(prior=None, objective=None):
    keras.utils.set_random_seed(0)
    return probae.HierarchicalVAE(
        (D,),
        latent_dims=(D1, D2),
        likelihood="gaussian",
        prior=prior,
        hidden_units=(),
        prior_hidden_units=(),
        objective=objective or probae.IWAE(num_samples=8),
        seed=0,
    )


@pytest.fixture(scope="module")
def trained_preset():
    model = _preset()
    model.compile(keras.optimizers.Adam(0.02))
    history = model.fit(_data(2000), epochs=25, batch_size=200, verbose=0)
    # Make p(z1|z2)'s scale constant in z2: the model is then exactly linear-Gaussian.
    head = model.prior.conditional.head
    kernel = head.kernel.numpy()
    kernel[:, D1:] = 0.0
    head.kernel.assign(kernel)
    return model, _data(200, seed=1), history


def test_preset_is_the_one_model_with_a_two_layer_code(trained_preset):
    model, x, history = trained_preset
    assert type(model) is probae.ProbabilisticAutoencoder
    assert isinstance(model.encoder, probae.HierarchicalEncoder)
    assert isinstance(model.prior, probae.HierarchicalPrior)
    assert model.code_shape == {"z1": (D1,), "z2": (D2,)}
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 1.0, losses
    q = model.encode(x[:5], verbose=0)
    assert isinstance(q, tfd.JointDistributionNamed)
    # q(z1|x, z2) reads z2: its mean moves with z2.
    z2 = np.zeros((5, D2), "float32")
    dists, _ = q.sample_distributions(value={"z2": z2, "z1": np.zeros((5, D1), "float32")})
    dists_1, _ = q.sample_distributions(value={"z2": z2 + 1.0, "z1": np.zeros((5, D1), "float32")})
    assert np.abs(dists["z1"].mean() - dists_1["z1"].mean()).max() > 1e-3


def test_preset_bounds_against_the_exact_marginal(trained_preset):
    model, x, _ = trained_preset
    exact = preset_exact_log_px(model, x)
    elbo = model.elbo(x, num_samples=200, seed=0, verbose=0)
    iwae_50 = model.log_likelihood(x, num_samples=50, seed=0, verbose=0)
    terms = model.log_likelihood(x, num_samples=5000, seed=1, return_terms=True, verbose=0)
    assert elbo.mean() < iwae_50.mean() < exact.mean() + 0.02, (
        elbo.mean(),
        iwae_50.mean(),
        exact.mean(),
    )
    mc_se = math.sqrt(float(np.sum(terms["mc_stderr"] ** 2))) / len(x)
    gap = abs(terms["log_likelihood"].mean() - exact.mean())
    assert gap < 4 * mc_se + 1e-3, (gap, mc_se)
    assert np.all(np.abs(terms["log_likelihood"] - exact) < 0.1 + 4 * terms["mc_stderr"])


def test_preset_samples_reconstructs_scores_and_saves(trained_preset, tmp_path):
    model, x, _ = trained_preset
    samples = model.sample(2000, seed=0)
    # The marginal mean B1 a + b (see preset_exact_log_px).
    _, bias = model.prior.conditional.head.get_weights()
    dec_kernel, dec_bias = model.decoder.head.get_weights()
    marginal_mean = dec_kernel[:D1].T @ bias[:D1] + dec_bias
    assert samples.shape == (2000, D) and np.all(np.isfinite(samples))
    np.testing.assert_allclose(samples.mean(0), marginal_mean, atol=0.2)
    recon = model.reconstruct(x[:10], verbose=0)
    assert recon.shape == (10, D)
    assert np.mean((recon - x[:10]) ** 2) < np.mean((x[:10] - x.mean(0)) ** 2)
    scores = probae.anomaly_scores(model, x, seed=0, num_samples=100)
    assert np.corrcoef(scores, -preset_exact_log_px(model, x))[0, 1] > 0.99
    path = str(tmp_path / "hvae.keras")
    model.save(path)
    loaded = probae.load_model(path)
    assert isinstance(loaded.prior, probae.HierarchicalPrior)
    np.testing.assert_array_equal(
        loaded.log_likelihood(x[:20], num_samples=100, seed=3, verbose=0),
        model.log_likelihood(x[:20], num_samples=100, seed=3, verbose=0),
    )
    np.testing.assert_array_equal(loaded.sample(5, seed=1), model.sample(5, seed=1))


def test_vamp_prior_on_the_top_layer(tmp_path):
    """p(z2) = (1/K) sum_k q(z2|u_k) through the hierarchical encoder's q(z2|x); trained with
    the ELBO (the Monte Carlo KL of two joint distributions)."""
    model = _preset(prior=probae.VampPrior(5), objective=probae.ELBO())
    assert model.prior.uses_encoder and isinstance(model.prior.top, probae.VampPrior)
    x = _data(400)
    model.compile(keras.optimizers.Adam(0.02))
    history = model.fit(x, epochs=3, batch_size=100, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    p = model.prior_distribution()
    z2 = np.random.default_rng(0).normal(size=(7, D2)).astype("float32")
    z1 = np.random.default_rng(1).normal(size=(7, D1)).astype("float32")
    q_u = model.encoder.top(model.prior.top.pseudo_inputs)  # q(z2|u_k), k = 1..5
    mu, sd = q_u.mean().numpy().astype(np.float64), q_u.stddev().numpy().astype(np.float64)
    log_n = -0.5 * (((z2[:, None] - mu) / sd) ** 2 + np.log(2 * np.pi * sd**2)).sum(-1)
    log_p_z2 = np.logaddexp.reduce(log_n, axis=1) - np.log(5)
    p_z1 = model.prior.conditional(z2)
    expected = log_p_z2 + p_z1.log_prob(z1).numpy()
    np.testing.assert_allclose(p.log_prob({"z1": z1, "z2": z2}).numpy(), expected, rtol=1e-4)
    xt = _data(50, seed=1)
    assert (
        model.elbo(xt, seed=0, verbose=0).mean()
        < model.log_likelihood(xt, num_samples=100, seed=0, verbose=0).mean()
    )
    assert model.sample(4, seed=0).shape == (4, D)
    path = str(tmp_path / "vamp_hvae.keras")
    model.save(path)
    loaded = probae.load_model(path)
    np.testing.assert_array_equal(
        loaded.log_likelihood(xt[:10], num_samples=50, seed=2, verbose=0),
        model.log_likelihood(xt[:10], num_samples=50, seed=2, verbose=0),
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"latent_dims": 4}, TypeError, "latent_dims"),
        ({"latent_dims": (2, 2, 2)}, ValueError, "latent_dims"),
        ({"latent_dims": (2, 0)}, ValueError, "latent_dims"),
        ({"prior": "vamp"}, TypeError, "prior"),
        ({"input_shape": (0,)}, ValueError, "input_shape"),
        ({"min_scale": -1.0}, ValueError, "min_scale"),
        (
            {"objective": probae.IWAE(4, gradient_estimator="dreg")},
            ValueError,
            "gradient_estimator='iwae'",
        ),
    ],
)
def test_preset_refuses_bad_options_by_name(kwargs, error, match):
    kwargs = {"input_shape": (D,), **kwargs}
    with pytest.raises(error, match=match):
        probae.HierarchicalVAE(**kwargs)


def test_hierarchical_prior_needs_a_two_layer_code():
    with pytest.raises(TypeError, match="top"):
        probae.HierarchicalPrior(top="standard")
    with pytest.raises(ValueError, match="z1"):
        probae.ProbabilisticAutoencoder(
            probae.GaussianEncoder(3),
            probae.GaussianDecoder(),
            prior=probae.HierarchicalPrior(),
            input_shape=(D,),
        )
