"""Inverse autoregressive flow posteriors (probae.flows).

The density of a flow posterior is checked against the change of variables computed from
a numerical Jacobian (tf.GradientTape) of the flow; the MADE conditioner against the
autoregressive property; training against the tf_keras trap (every flow weight must
change during fit); and the encoder against every objective, the estimators and saving.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from linear_gaussian_model import make as make_linear_gaussian

import probae
from probae.flows import MADE, IAFEncoder, iaf_bijector, made_masks

tfd = tfp.distributions

D_IN, LATENT = 12, 3


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.random((3, D_IN)) > 0.5
    return (centres[rng.integers(0, 3, n)] ^ (rng.random((n, D_IN)) < 0.1)).astype("float32")


def _model(objective=None, prior=None, context_units=4, num_flows=2, seed=0):
    keras.utils.set_random_seed(seed)
    encoder = IAFEncoder(
        LATENT,
        num_flows=num_flows,
        flow_hidden_units=(16, 16),
        context_units=context_units,
        hidden_units=(32,),
    )
    return probae.ProbabilisticAutoencoder(
        encoder,
        probae.BernoulliDecoder(hidden_units=(32,)),
        prior=prior,
        objective=objective or probae.ELBO(),
        input_shape=(D_IN,),
        seed=seed,
    )


def _randomize(layer, scale=0.5, seed=0):
    """Large random weights, so the flow is far from the identity it starts near."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(scale=scale, size=v.shape).astype("float32"))


@pytest.mark.parametrize("reverse", [False, True])
def test_made_is_autoregressive(reverse):
    d = 5
    made = MADE((16, 8), reverse=reverse, context_dim=3)
    made.build((None, d))
    _randomize(made)
    z = tf.random.normal([4, d], seed=1)
    context = tf.random.normal([4, 3], seed=2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        m, s = made(z, context)
    order = np.arange(d)[::-1] if reverse else np.arange(d)
    for out in (m, s):
        jac = tape.batch_jacobian(out, z).numpy()  # [batch, out i, in j]
        jac = jac[:, order][:, :, order]  # in the layer's ordering
        # Output i depends on the inputs strictly before i only...
        assert np.all(jac[:, np.triu_indices(d)[0], np.triu_indices(d)[1]] == 0.0)
        # ... and does depend on them (the masks are not all zero).
        assert np.all(np.abs(jac[:, np.tril_indices(d, -1)[0], np.tril_indices(d, -1)[1]]) > 0)
    # The context reaches every output but the first in the ordering, which sees no
    # hidden unit (its shift and gate are learned constants; the base Gaussian depends on x).
    with tf.GradientTape() as tape:
        tape.watch(context)
        m, _ = made(z, context)
    jac = tape.batch_jacobian(m, context).numpy()[:, order]
    assert np.all(jac[:, 0] == 0.0) and np.all(np.abs(jac[:, 1:]) > 0)


def test_made_masks_for_one_dimension_see_only_the_context():
    masks = made_masks(1, (4,))
    assert masks[-1].sum() == 0  # the single output depends on no input


def test_log_density_is_the_change_of_variables_with_a_numerical_jacobian():
    d, n = LATENT, 5
    mades = []
    for t in range(3):
        made = MADE((16,), reverse=bool(t % 2), context_dim=2)
        made.build((None, d))
        _randomize(made, seed=t)
        mades.append(made)
    context = tf.random.normal([n, 2], seed=3)
    flow = iaf_bijector(mades, context)
    base = tfd.MultivariateNormalDiag(
        tf.random.normal([n, d], seed=4), tf.exp(tf.random.normal([n, d], seed=5) * 0.3)
    )
    q = tfd.TransformedDistribution(base, flow)
    z0 = base.sample(seed=(6, 7))
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z = flow.forward(z0)
    jac = tape.batch_jacobian(z, z0).numpy().astype(np.float64)
    _, log_abs_det = np.linalg.slogdet(jac)
    expected = base.log_prob(z0).numpy() - log_abs_det
    # A fresh tensor: TFP's cache cannot help, log_prob inverts the flow (the MAF loop).
    fresh = tf.constant(z.numpy())
    np.testing.assert_allclose(q.log_prob(fresh).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(flow.inverse(fresh).numpy(), z0.numpy(), rtol=1e-4, atol=1e-4)
    # The flow is far from the identity (the test means something) and triangular.
    assert np.abs(log_abs_det).max() > 0.5
    assert np.abs(z.numpy() - z0.numpy()).max() > 0.5


def test_encoder_log_prob_matches_the_numerical_jacobian():
    model = _model()
    for made in model.encoder.flows:
        _randomize(made, seed=11)
    x = _data(6)
    q = model.posterior(x)
    base, flow = q.distribution, q.bijector
    z0 = base.sample(seed=(1, 2))
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z = flow.forward(z0)
    log_abs_det = np.linalg.slogdet(tape.batch_jacobian(z, z0).numpy().astype(np.float64))[1]
    expected = base.log_prob(z0).numpy() - log_abs_det
    np.testing.assert_allclose(
        q.log_prob(tf.constant(z.numpy())).numpy(), expected, rtol=1e-4, atol=1e-4
    )
    # The point estimate is the flow's image of the base mean.
    np.testing.assert_allclose(
        probae.posteriors.point_estimate(q), flow.forward(base.mean()), rtol=1e-6
    )


def test_every_flow_weight_changes_during_fit():
    model = _model()
    names = [v.path for v in model.encoder.trainable_variables]
    flow_vars = [v for v in model.encoder.trainable_variables if "made_" in v.path]
    assert len(flow_vars) == 2 * (2 * 3 + 1)  # 2 steps x (3 kernels + 3 biases + context)
    assert any("context" in n for n in names)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(keras.optimizers.Adam(1e-2))
    model.fit(_data(), epochs=2, batch_size=32, verbose=0)
    unchanged = [
        v.path
        for v, old in zip(model.trainable_variables, before)
        if np.array_equal(v.numpy(), old)
    ]
    assert not unchanged, unchanged


def test_save_and_load_reproduce_outputs_exactly(tmp_path):
    model = _model()
    x = _data(64)
    model.compile(keras.optimizers.Adam(1e-2))
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    path = str(tmp_path / "iaf.keras")
    model.save(path)
    loaded = probae.load_model(path)
    assert isinstance(loaded.encoder, IAFEncoder)
    assert loaded.encoder.get_config() == model.encoder.get_config()
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        loaded.log_likelihood(x[:8], num_samples=20, seed=1, verbose=0),
        model.log_likelihood(x[:8], num_samples=20, seed=1, verbose=0),
    )
    np.testing.assert_array_equal(
        loaded.reconstruct(x[:8], verbose=0), model.reconstruct(x[:8], verbose=0)
    )
    z = np.random.default_rng(0).normal(size=(8, LATENT)).astype("float32")
    np.testing.assert_array_equal(
        loaded.posterior(x[:8]).log_prob(z).numpy(), model.posterior(x[:8]).log_prob(z).numpy()
    )


@pytest.mark.parametrize(
    "objective",
    [probae.ELBO(), probae.IWAE(num_samples=4), probae.RenyiBound(alpha=0.5, num_samples=4)],
    ids=["elbo", "iwae", "renyi"],
)
def test_trains_with_every_objective_and_the_estimators(objective):
    model = _model(objective)
    x = _data()
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(x, epochs=4, batch_size=32, verbose=0)
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0], loss
    terms = model.log_likelihood(x[:40], num_samples=200, seed=0, return_terms=True, verbose=0)
    elbo = model.elbo(x[:40], num_samples=200, seed=0, verbose=0)
    assert np.all(np.isfinite(terms["log_likelihood"]))
    assert elbo.mean() < terms["log_likelihood"].mean()
    # The KL of a flow has no closed form: the Monte Carlo mean of log q - log p.
    assert np.all(np.isfinite(terms["kl"])) and terms["kl"].mean() > 0
    scores = probae.anomaly_scores(model, x[:6], num_samples=50, seed=2)
    assert scores.shape == (6,) and np.all(np.isfinite(scores))
    # Common random numbers through the flow: a score does not depend on the batching.
    one_batch = probae.anomaly_scores(model, x[:6], num_samples=50, seed=2, batch_size=2)
    np.testing.assert_allclose(scores, one_batch, rtol=1e-5)


def test_dreg_is_refused_with_a_clear_error_when_the_model_is_built():
    with pytest.raises(ValueError, match="gradient_estimator='iwae'"):
        _model(probae.IWAE(num_samples=4, gradient_estimator="dreg"))


def test_vamp_prior_needs_a_flow_without_context():
    model = _model(prior=probae.VampPrior(4))
    model.compile()
    with pytest.raises(ValueError, match="VampPrior"):
        model.fit(_data(64), epochs=1, batch_size=32, verbose=0)
    model = _model(prior=probae.VampPrior(4), context_units=0, num_flows=1)
    model.compile()
    history = model.fit(_data(64), epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_flows": 0}, ValueError, "num_flows"),
        ({"num_flows": 1.5}, (TypeError, ValueError), "num_flows"),
        ({"flow_hidden_units": "64"}, TypeError, "flow_hidden_units"),
        ({"flow_hidden_units": ()}, ValueError, "flow_hidden_units"),
        ({"flow_hidden_units": (0,)}, ValueError, "flow_hidden_units"),
        ({"context_units": -1}, ValueError, "context_units"),
        ({"context_units": 2.0}, TypeError, "context_units"),
        ({"flow_activation": "no_such"}, ValueError, "flow_activation"),
    ],
)
def test_bad_options_are_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        IAFEncoder(LATENT, **kwargs)


def test_made_refuses_bad_options_and_a_missing_context():
    with pytest.raises(ValueError, match="hidden_units"):
        MADE(())
    with pytest.raises(TypeError, match="reverse"):
        MADE((4,), reverse="yes")
    with pytest.raises(ValueError, match="gate_bias"):
        MADE((4,), gate_bias=float("nan"))
    made = MADE((4,), context_dim=2)
    made.build((None, 3))
    with pytest.raises(ValueError, match="context is required"):
        made(tf.zeros([1, 3]))


def test_iaf_encoder_is_exported():
    assert probae.IAFEncoder is IAFEncoder
    assert "IAFEncoder" in probae.__all__


def test_a_flow_beats_the_best_diagonal_gaussian_on_an_exact_posterior():
    """On a linear-Gaussian model the posterior is N(A(x - b), S) with a full S. The best
    diagonal Gaussian's ELBO gap (closed form) is KL = (sum_i log L_ii - log det L) / 2 for
    the posterior precision L = I + W^T W / s^2, the same for every x; an IAF posterior,
    trained with the decoder held at the true model, must close most of it (and stay a
    lower bound)."""
    lg, exact = make_linear_gaussian(latent_dim=2, data_dim=5, noise=0.5, seed=0)
    w, noise = lg.linear_gaussian["W"], lg.linear_gaussian["noise"]
    precision = np.eye(2) + w.T @ w / noise**2
    diagonal_gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    assert diagonal_gap > 0.2  # the posterior is strongly correlated: the test can fail
    keras.utils.set_random_seed(0)
    lg.decoder.trainable = False
    encoder = IAFEncoder(
        2,
        num_flows=2,
        flow_hidden_units=(16,),
        context_units=0,
        network=keras.layers.Identity(),
        head=True,
    )
    model = probae.ProbabilisticAutoencoder(
        encoder, lg.decoder, input_shape=(5,), seed=0, objective=probae.ELBO(num_samples=4)
    )
    model.compile(keras.optimizers.Adam(0.01))
    model.fit(lg.sample_data(2000), epochs=30, batch_size=100, verbose=0)
    x = lg.sample_data(500, data_seed=2)
    elbo = model.elbo(x, num_samples=200, seed=0, verbose=0)
    gap = exact(x) - elbo
    stderr = gap.std() / np.sqrt(len(x))
    assert gap.mean() > -4 * stderr  # a lower bound
    assert gap.mean() < 0.5 * diagonal_gap, (gap.mean(), diagonal_gap)
