"""Priors (probae.priors): the VampPrior's and the mixture prior's densities, their Monte
Carlo KL, and learned priors against the standard normal on binarized MNIST."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_same_after_reload, fit, seeded

import probae


def test_vamp_prior_is_the_mixture_of_posteriors_at_pseudo_inputs():
    model = probae.VAE((6,), 2, hidden_units=(4,), prior=probae.VampPrior(5))
    prior = model.prior
    assert prior.pseudo_inputs.shape == (5, 6)
    z = tf.random.normal([7, 2], seed=1)
    posteriors = model.encoder(tf.convert_to_tensor(prior.pseudo_inputs))
    expected = tf.reduce_logsumexp(posteriors.log_prob(z[:, None, :]), axis=1) - np.log(5)
    np.testing.assert_allclose(prior.distribution(model.encoder).log_prob(z), expected, rtol=1e-5)
    # No closed-form KL: the model's KL is the Monte Carlo estimate.
    x = (np.random.default_rng(0).random((8, 6)) < 0.5).astype("float32")
    terms = model.elbo(x, num_samples=4000, seed=0, return_terms=True)
    post = model.encode(x)
    zs = post.sample(4000, seed=2)
    mc = tf.reduce_mean(post.log_prob(zs) - prior.distribution(model.encoder).log_prob(zs), 0)
    spread = tf.math.reduce_std(
        post.log_prob(zs) - prior.distribution(model.encoder).log_prob(zs), 0
    )
    assert np.all(np.abs(terms["kl"] - mc.numpy()) < 6 * spread.numpy() / np.sqrt(4000))
    prior.initialize_from(x, seed=0)
    assert all(any(np.array_equal(u, row) for row in x) for u in prior.pseudo_inputs.numpy())


def test_learned_priors_use_the_fast_mixture():
    vamp = probae.VAE((6,), 2, hidden_units=(4,), prior=probae.VampPrior(5))
    assert isinstance(
        vamp.prior.distribution(vamp.encoder), probae.distributions.DiagonalGaussianMixture
    )
    mog = probae.MixtureOfGaussiansPrior(3, latent_dim=2)
    mog.build((None, 2))
    assert isinstance(mog.distribution(), probae.distributions.DiagonalGaussianMixture)


@pytest.fixture(scope="module")
def prior_models(binarized):
    """The same VAE with three priors, trained with the same budget."""
    x = binarized[0]
    priors = {
        "standard normal": None,
        "mixture of Gaussians": probae.MixtureOfGaussiansPrior(10),
        "VampPrior": probae.VampPrior(50, pseudo_input_range=(0.0, 1.0)),
    }
    return {
        name: fit(seeded(lambda p=prior: probae.VAE((784,), 16, prior=p)), x, epochs=EPOCHS_PRIOR)[
            0
        ]
        for name, prior in priors.items()
    }


EPOCHS_PRIOR = 4


def test_learned_priors_beat_standard_normal(prior_models, binarized):
    xt = binarized[1]
    elbos = {name: m.elbo(xt, num_samples=10, seed=0) for name, m in prior_models.items()}
    print({name: round(float(e.mean()), 2) for name, e in elbos.items()})
    for name in ("mixture of Gaussians", "VampPrior"):
        gain = elbos[name] - elbos["standard normal"]
        se = gain.std() / np.sqrt(len(gain))
        assert gain.mean() > 2.0 and gain.mean() > 5 * se, (name, gain.mean(), se)


def test_vamp_prior_model_saves_exactly(prior_models, binarized, tmp_path):
    loaded = assert_same_after_reload(prior_models["VampPrior"], binarized[1][:50], tmp_path)
    np.testing.assert_array_equal(
        loaded.prior.pseudo_inputs.numpy(), prior_models["VampPrior"].prior.pseudo_inputs.numpy()
    )


def test_collapsed_posterior_against_a_learned_mixture_prior_stays_finite():
    """Monte Carlo KL to a mixture prior (no closed form) with a posterior at its scale floor."""
    encoder = probae.GaussianEncoder(2)
    posterior = encoder.distribution(tf.constant([[0.5, -3.0, -1e30, -1e30]] * 3))
    prior = probae.MixtureOfGaussiansPrior(num_components=3, latent_dim=2)
    prior.build((None, 2))
    z = posterior.sample(4, seed=[1, 2])
    kl, analytic = probae.estimators.kl_divergence(posterior, prior.distribution(), z)
    assert not analytic
    kl = kl.numpy()
    # log q(z) of a 2-d Gaussian with sigma = 1e-4 is about 2 * 8.3 nats; finite and large.
    assert np.all(np.isfinite(kl)) and np.all(kl > 10)


def test_temperature_scales_the_prior_spread():
    seed = probae.seeds.seed_tensor(0)
    standard = probae.StandardNormalPrior(3)
    standard.build((None, 3))
    z = probae.priors.sample(standard.distribution(), 40000, seed, temperature=0.5).numpy()
    se = 0.5 / np.sqrt(2 * 40000)
    assert np.all(np.abs(z.std(0) - 0.5) < 4 * se) and np.all(np.abs(z.mean(0)) < 4 * 0.5 / 200)
    mixture = probae.MixtureOfGaussiansPrior(num_components=2, latent_dim=1, min_scale=1e-3)
    mixture.build((None, 1))
    mixture.locs.assign([[-5.0], [5.0]])
    mixture.raw_scales.assign(np.log(np.expm1([[1.0], [1.0]])) - 0.0)
    draws = probae.priors.sample(mixture.distribution(), 40000, seed, temperature=0.25).numpy()[
        :, 0
    ]
    # Component means stay; each component's spread is scaled by t.
    for centre in (-5.0, 5.0):
        part = draws[np.abs(draws - centre) < 2.5]
        assert abs(part.mean() - centre) < 0.02 and abs(part.std() - 0.25 * 1.001) < 0.01
    assert 0.45 < np.mean(draws > 0) < 0.55
    model = probae.VAE((6,), 2, hidden_units=(4,))
    assert model.sample(3, seed=0, temperature=0.1).shape == (3, 6)
    with pytest.raises(ValueError, match="temperature must be"):
        model.sample(3, temperature=0.0)
