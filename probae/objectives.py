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
            it are not pushed further down. Needs a factorised closed-form KL.

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


def _free_bits_kl(posterior, prior, kl, free_bits):
    """Per-example KL whose per-dimension batch means are clamped below at ``free_bits``."""
    try:
        q = tfd.Normal(posterior.mean(), posterior.stddev())
        p = tfd.Normal(prior.mean(), prior.stddev())
        kl_dims = tfd.kl_divergence(q, p)  # [batch, latent_dim]
    except NotImplementedError:
        raise ValueError("free_bits needs a Gaussian posterior and a Gaussian prior.") from None
    mean_dims = tf.reduce_mean(kl_dims, axis=0, keepdims=True)
    # Dimensions above the floor keep their gradient; those below contribute a constant.
    clamped = tf.where(mean_dims < free_bits, tf.stop_gradient(kl_dims) * 0 + free_bits, kl_dims)
    return tf.reduce_sum(clamped, axis=-1)


def log_weights(x, posterior, decode, prior, num_samples, seed=None):
    """Importance log-weights log p(x|z_k) + log p(z_k) - log q(z_k|x), shape ``[k, batch]``.

    Also returns log p(x|z_k) so callers can report the reconstruction term from the same
    samples: ``(log_w, log_px_z, z)``.
    """
    z, log_px_z = sample_log_likelihoods(x, posterior, decode, num_samples, seed)
    log_w = log_px_z + prior.log_prob(z) - posterior.log_prob(z)
    return log_w, log_px_z, z


def iwae_bound(x, posterior, decode, prior, num_samples, seed=None):
    """The importance-weighted bound, per example.

    IWAE_k(x) = E[log (1/k) sum_k p(x, z_k) / q(z_k|x)], with ELBO = IWAE_1 <= IWAE_k <=
    IWAE_{k+1} <= log p(x); as an estimate of log p(x) it is biased low, the bias falling
    as O(1/k).

    Args:
        x, posterior, decode, prior: as in ``elbo`` (a prior is required).
        num_samples: k.
        seed: stateless seed or None.

    Returns:
        A dict of ``[batch]`` tensors: ``iwae`` (the bound, also ``objective``), and the
        k-sample Monte Carlo ``elbo``, ``reconstruction`` and ``kl`` from the same samples.

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders.
    """
    if prior is None:
        raise ValueError("iwae_bound needs a prior. Received: prior=None")
    log_w, log_px_z, _ = log_weights(x, posterior, decode, prior, num_samples, seed)
    bound = tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    mc_elbo = tf.reduce_mean(log_w, axis=0)
    return {
        "iwae": bound,
        "objective": bound,
        "elbo": mc_elbo,
        "reconstruction": reconstruction,
        "kl": reconstruction - mc_elbo,
    }
