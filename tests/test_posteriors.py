"""The posterior contract (probae.posteriors) and the models that rely on it."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probae
from probae import posteriors

tfd = tfp.distributions
tfb = tfp.bijectors


def _gaussian(n=3, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return tfd.MultivariateNormalDiag(
        rng.normal(size=(n, d)).astype(np.float32),
        rng.uniform(0.5, 2, size=(n, d)).astype(np.float32),
    )


def _flow(base):
    return tfd.TransformedDistribution(base, tfb.Chain([tfb.Shift(1.0), tfb.Scale(2.0)]))


def test_point_estimates():
    q = _gaussian()
    np.testing.assert_array_equal(posteriors.point_estimate(q), q.mean())
    point = tfd.VectorDeterministic(tf.ones((3, 2)))
    np.testing.assert_array_equal(posteriors.point_estimate(point), tf.ones((3, 2)))
    # A flow: the image of the base's point estimate (the flow's mean has no closed form).
    np.testing.assert_allclose(posteriors.point_estimate(_flow(q)), 2.0 * q.mean() + 1.0, rtol=1e-6)
    # A family with a mode but no mean.
    cat = tfd.Categorical(logits=[[0.0, 3.0, 1.0]])
    assert int(posteriors.point_estimate(cat)[0]) == 1


def test_shared_noise_is_shared_and_distributed_right():
    q = _gaussian(n=3)
    z = posteriors.sample(q, 20000, tf.constant([1, 2]), shared_noise=True)
    eps = (z - q.mean()) / q.stddev()
    np.testing.assert_allclose(eps[:, 0], eps[:, 1], atol=1e-4)  # the same noise per example
    np.testing.assert_allclose(eps[:, 2], eps[:, 0], atol=1e-4)
    se = 1 / np.sqrt(20000)
    assert np.all(np.abs(np.mean(eps[:, 0], 0)) < 4 * se) and np.all(
        np.abs(np.std(eps[:, 0], 0) - 1) < 4 * se * 0.75
    )
    # Through a flow, the same noise pushed through the bijector.
    zf = posteriors.sample(_flow(q), 5, tf.constant([1, 2]), shared_noise=True)
    np.testing.assert_allclose(zf, 2.0 * z[:5] + 1.0, rtol=1e-5, atol=1e-5)
    assert posteriors.supports_shared_noise(_flow(q)) and not posteriors.supports_shared_noise(
        tfd.JointDistributionNamed({"a": tfd.Normal(0.0, 1.0)})
    )


def test_stop_parameter_gradients_and_its_refusal():
    loc = tf.Variable(tf.zeros((2, 3)))
    q = tfd.MultivariateNormalDiag(loc, tf.ones((2, 3)))
    z = tf.ones((2, 3))
    with tf.GradientTape(persistent=True) as tape:
        stopped = posteriors.stop_parameter_gradients(
            tfd.MultivariateNormalDiag(loc * 1.0, tf.ones((2, 3)))
        )
        lp_stopped = tf.reduce_sum(stopped.log_prob(z))
        lp = tf.reduce_sum(q.log_prob(z))
    np.testing.assert_allclose(lp_stopped, lp)
    assert tape.gradient(lp_stopped, loc) is None
    assert tape.gradient(lp, loc) is not None
    with pytest.raises(ValueError, match="cannot be stopped"):
        posteriors.stop_parameter_gradients(_flow(_gaussian()))


def test_declarations():
    assert posteriors.is_reparameterized(_gaussian())
    assert not posteriors.is_reparameterized(tfd.Categorical(logits=[0.0, 1.0]))
    assert posteriors.is_point_mass(tfd.VectorDeterministic(tf.ones((1, 2))))
    assert not posteriors.is_point_mass(_gaussian())


def test_dreg_refuses_a_posterior_it_cannot_stop():
    """An encoder whose q(z|x) is a flow: DReG raises instead of keeping the gradient."""

    class FlowEncoder(probae.GaussianEncoder):
        def distribution(self, params):
            return _flow(super().distribution(params))

    x = (np.random.default_rng(0).random((8, 6)) > 0.5).astype(np.float32)
    model = probae.ProbabilisticAutoencoder(
        FlowEncoder(2, hidden_units=(4,)),
        probae.BernoulliDecoder(hidden_units=(4,)),
        objective=probae.IWAE(3, gradient_estimator="dreg"),
        input_shape=(6,),
    )
    with pytest.raises(ValueError, match="doubly reparameterised"):
        model.fit(x, epochs=1, verbose=0)
    # The IWAE estimator itself trains it, and the point estimate is the flow's.
    model = probae.ProbabilisticAutoencoder(
        FlowEncoder(2, hidden_units=(4,)),
        probae.BernoulliDecoder(hidden_units=(4,)),
        objective=probae.IWAE(3),
        input_shape=(6,),
    )
    model.fit(x, epochs=1, verbose=0)
    q = model.encode(x)
    np.testing.assert_allclose(
        model.reconstruct(x), model.decode(posteriors.point_estimate(q)).mean(), rtol=1e-6
    )


def test_a_point_mass_encoder_has_no_prior_unless_given_one():
    x = (np.random.default_rng(1).random((40, 6)) > 0.5).astype(np.float32)
    ae = probae.Autoencoder((6,), 2, hidden_units=(8,))
    assert ae.prior is None and not ae.has_density
    history = ae.fit(x, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "reconstruction"}
    for call in (
        lambda: ae.elbo(x),
        lambda: ae.log_likelihood(x),
        lambda: probae.evaluate_likelihood(ae, x),
    ):
        with pytest.raises(ValueError, match="point mass"):
            call()
    with pytest.raises(ValueError, match="needs a prior"):
        ae.sample(3)
    with pytest.raises(ValueError, match="point mass"):
        probae.anomaly_scores(ae, x, method="log_likelihood")
    # Given one, it is used (the objective is then log p(x|z) + log p(z), the user's choice).
    with_prior = probae.Autoencoder((6,), 2, hidden_units=(8,), prior=probae.StandardNormalPrior())
    assert with_prior.prior is not None and with_prior.sample(3, seed=0).shape == (3, 6)
