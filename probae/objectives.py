"""Objectives: pure functions over distributions that return per-example terms.

The sign is in the name: ``elbo`` and ``iwae_bound`` are lower bounds on log p(x) to
maximise; a model's loss is ``-mean(objective)``. Training, evaluation and anomaly scores
call these same functions.

All functions take ``decode``, a callable mapping a batch of codes ``[n, latent_dim]`` to
the likelihood distribution p(x|z) (batch shape ``[n]``). For several samples per example
the k samples are folded into the batch (``[k * batch, latent_dim]``) so that the
decoder network runs once on one large batch.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "kl_divergence",
    "kl_per_dimension",
    "sample_log_likelihoods",
    "elbo",
    "iwae_bound",
    "log_weights",
    "tile_samples",
]


def tile_samples(x, k):
    """[batch, ...] -> [k * batch, ...], sample-major (matching a reshape of z [k, batch, d])."""
    if k == 1:
        return x
    x = tf.convert_to_tensor(x)
    return tf.tile(x, [k] + [1] * (x.shape.rank - 1))


def sample_log_likelihoods(x, posterior, decode, num_samples=1, seed=None):
    """Draws k codes per example and evaluates log p(x|z) for each.

    Args:
        x: data, shape ``[batch, *event_shape]``.
        posterior: q(z|x), batch shape ``[batch]``, event shape ``[latent_dim]``.
        decode: callable from codes ``[n, latent_dim]`` to p(x|z).
        num_samples: k, codes per example.
        seed: a stateless seed (shape-[2] int tensor), an int or None.

    Returns:
        ``(z, log_px_z)``: codes ``[k, batch, latent_dim]`` and log p(x|z_k) ``[k, batch]``.
    """
    z = posterior.sample(num_samples, seed=seed)
    latent_dim = tf.shape(z)[-1]
    likelihood = decode(tf.reshape(z, [-1, latent_dim]))
    log_px_z = likelihood.log_prob(tile_samples(x, num_samples))
    return z, tf.reshape(log_px_z, [num_samples, -1])


def kl_divergence(posterior, prior, z=None):
    """KL(q(z|x) || p(z)) per example: analytic where TFP registers it, else Monte Carlo.

    Args:
        posterior: q(z|x) with batch shape ``[batch]``.
        prior: p(z).
        z: codes ``[k, batch, latent_dim]`` drawn from the posterior, used for the Monte
            Carlo estimate mean_k(log q(z_k) - log p(z_k)) when no closed form exists.

    Returns:
        ``(kl, analytic)``: the per-example KL ``[batch]`` and whether it is exact.

    Raises:
        ValueError: no closed form is registered and no ``z`` was given.
    """
    try:
        return tfd.kl_divergence(posterior, prior), True
    except NotImplementedError:
        if z is None:
            raise ValueError(
                f"No analytic KL is registered between {type(posterior).__name__} and "
                f"{type(prior).__name__}; pass z (posterior samples) for a Monte Carlo estimate."
            ) from None
        return tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0), False


def elbo(x, posterior, decode, prior, beta=1.0, num_samples=1, seed=None, free_bits=None):
    """The evidence lower bound, per example.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x), with E_q estimated from
    k reparameterised samples and the KL in closed form when TFP registers one.

    Args:
        x: data ``[batch, *event_shape]``.
        posterior: q(z|x).
        decode: callable from codes ``[n, latent_dim]`` to p(x|z).
        prior: p(z), or None for an autoencoder without a prior (the KL term is then 0).
        beta: weight of the KL term in the objective (beta-VAE); the reported ``elbo`` is
            always the true bound (beta = 1).
        num_samples: k, samples for the reconstruction term.
        seed: stateless seed or None.
        free_bits: None, or a minimum KL per latent dimension (nats) applied to the
            objective only (Kingma et al. 2016): dimensions whose batch-mean KL is below
            it are not pushed further down by the KL term (their KL is not held above
            the floor: the objective is only flat below it). Needs a diagonal Gaussian
            posterior and prior (raises ValueError otherwise).

    Returns:
        A dict of ``[batch]`` tensors: ``elbo`` (reconstruction - kl), ``reconstruction``
        (E_q log p(x|z)), ``kl`` and ``objective`` (reconstruction - beta * kl, the
        quantity training maximises).
    """
    z, log_px_z = sample_log_likelihoods(x, posterior, decode, num_samples, seed)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    if prior is None:
        kl = tf.zeros_like(reconstruction)
        penalised_kl = kl
    else:
        kl, _ = kl_divergence(posterior, prior, z)
        penalised_kl = kl
        if free_bits is not None:
            penalised_kl = _free_bits_kl(posterior, prior, kl, free_bits)
    return {
        "elbo": reconstruction - kl,
        "reconstruction": reconstruction,
        "kl": kl,
        "objective": reconstruction - beta * penalised_kl,
    }


def kl_per_dimension(posterior, prior):
    """KL(q(z_j|x) || p(z_j)) per example and latent dimension, ``[batch, latent_dim]``.

    Exact for a diagonal Gaussian posterior and a diagonal Gaussian prior (whose KL is the
    sum of these terms); other pairs have no per-dimension split and raise.

    Raises:
        ValueError: the posterior or the prior is not a ``tfd.MultivariateNormalDiag``.
    """
    for role, dist in (("posterior", posterior), ("prior", prior)):
        if not isinstance(dist, tfd.MultivariateNormalDiag):
            raise ValueError(
                "The KL per latent dimension (free bits) needs a diagonal Gaussian posterior "
                "and a diagonal Gaussian prior (for example probae.GaussianEncoder with "
                f"probae.StandardNormalPrior). Received: a {role} of type {type(dist).__name__}"
            )
    q = tfd.Normal(posterior.mean(), posterior.stddev())
    p = tfd.Normal(prior.mean(), prior.stddev())
    return tfd.kl_divergence(q, p)


def _free_bits_kl(posterior, prior, kl, free_bits):
    """Per-example KL whose per-dimension batch means are clamped below at ``free_bits``.

    The batch mean of the result is sum_j max(free_bits, mean_batch KL_j). A dimension
    below the floor contributes a constant (no gradient): the KL term stops pushing it
    down, which does not by itself keep its KL above the floor.
    """
    kl_dims = kl_per_dimension(posterior, prior)  # [batch, latent_dim]
    mean_dims = tf.reduce_mean(kl_dims, axis=0, keepdims=True)
    # Dimensions above the floor keep their gradient; those below contribute a constant.
    clamped = tf.where(mean_dims < free_bits, tf.stop_gradient(kl_dims) * 0 + free_bits, kl_dims)
    return tf.reduce_sum(clamped, axis=-1)


def _stop_parameters(distribution):
    """The same distribution with gradients stopped at its (tensor) parameters."""
    params = {k: tf.stop_gradient(v) for k, v in distribution.parameters.items() if tf.is_tensor(v)}
    return distribution.copy(**params)


def log_weights(x, posterior, decode, prior, num_samples, seed=None, stop_posterior_gradient=False):
    """Importance log-weights log p(x|z_k) + log p(z_k) - log q(z_k|x), shape ``[k, batch]``.

    Also returns log p(x|z_k) so callers can report the reconstruction term from the same
    samples: ``(log_w, log_px_z, z)``.

    With ``stop_posterior_gradient`` the term log q(z_k|x) is evaluated with the
    posterior's parameters held constant, so the encoder's gradient reaches log_w only
    through the reparameterised z_k (the path derivative used by DReG).
    """
    z, log_px_z = sample_log_likelihoods(x, posterior, decode, num_samples, seed)
    q = _stop_parameters(posterior) if stop_posterior_gradient else posterior
    log_w = log_px_z + prior.log_prob(z) - q.log_prob(z)
    return log_w, log_px_z, z


GRADIENT_ESTIMATORS = ("iwae", "dreg")


def iwae_bound(x, posterior, decode, prior, num_samples, seed=None, gradient_estimator="iwae"):
    """The importance-weighted bound, per example.

    IWAE_k(x) = E[log (1/k) sum_k p(x, z_k) / q(z_k|x)], with ELBO = IWAE_1 <= IWAE_k <=
    IWAE_{k+1} <= log p(x); as an estimate of log p(x) it is biased low, the bias falling
    as O(1/k).

    Args:
        x, posterior, decode, prior: as in ``elbo`` (a prior is required).
        num_samples: k.
        seed: stateless seed or None.
        gradient_estimator: "iwae" (the gradient of the bound's estimate, Burda et al.) or
            "dreg" (doubly reparameterised, Tucker et al.): the value of every term is
            the same; with "dreg" the dict also holds ``encoder_objective``, a surrogate
            whose gradient with respect to the encoder's parameters (and only those) is
            the DReG estimator sum_k w~_k^2 d log w_k / d z_k d z_k / d phi, with
            w~ = softmax(log w) held constant. It is unbiased for the gradient of IWAE_k
            and, unlike the IWAE estimator, its signal-to-noise ratio does not fall as k
            grows. The decoder's and the prior's gradients come from ``objective`` as for
            "iwae"; DReG assumes the prior does not depend on the encoder's parameters.

    Returns:
        A dict of ``[batch]`` tensors: ``iwae`` (the bound, also ``objective``), and the
        k-sample Monte Carlo ``elbo``, ``reconstruction`` and ``kl`` from the same samples
        (plus ``encoder_objective`` with ``gradient_estimator="dreg"``).

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders;
    Tucker, Lawson, Gu and Maddison 2019, Doubly reparameterized gradient estimators for
    Monte Carlo objectives.
    """
    if prior is None:
        raise ValueError("iwae_bound needs a prior. Received: prior=None")
    if gradient_estimator not in GRADIENT_ESTIMATORS:
        raise ValueError(
            f"gradient_estimator must be one of {GRADIENT_ESTIMATORS}. "
            f"Received: gradient_estimator={gradient_estimator!r}"
        )
    dreg = gradient_estimator == "dreg"
    log_w, log_px_z, _ = log_weights(
        x, posterior, decode, prior, num_samples, seed, stop_posterior_gradient=dreg
    )
    bound = tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    mc_elbo = tf.reduce_mean(log_w, axis=0)
    terms = {
        "iwae": bound,
        "objective": bound,
        "elbo": mc_elbo,
        "reconstruction": reconstruction,
        "kl": reconstruction - mc_elbo,
    }
    if dreg:
        weights = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
        terms["encoder_objective"] = tf.reduce_sum(tf.square(weights) * log_w, axis=0)
    return terms
