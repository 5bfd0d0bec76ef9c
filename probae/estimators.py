"""Estimators: every log-likelihood, ELBO, importance-weighted bound and anomaly score.

Two layers, one module:

- **Per-batch maths** (pure functions of tensors): ``sample_log_likelihoods``,
  ``kl_divergence``, ``log_weights`` and ``log_mean_exp``. The training objectives
  (``probae.objectives``) are written with them.
- **The chunked estimator** ``importance_sampling``: k draws from q(z|x) taken ``chunk``
  at a time inside one ``tf.while_loop``, with running log-sum-exps of the importance
  weights w_k = p(x, z_k) / q(z_k|x) and running sums of log p(x|z_k), so memory is
  bounded for any k. From the same draws it returns the importance-sampled log p(x)
  (the IWAE_k bound), the ELBO and its two parts, the effective sample size, the Monte
  Carlo standard error and, on request, the per-feature reconstruction terms.
  ``estimate`` runs it over a data set batch by batch; ``model.elbo``,
  ``model.log_likelihood``, ``probae.evaluate_likelihood``, ``probae.anomaly_scores``
  and the command line all call ``estimate``.

Memory: one chunk holds at most ``MAX_ELEMENTS`` decoder outputs (examples x samples x
features); ``plan`` chooses the batch and chunk sizes. Seeds follow ``probae.seeds``:
batch i of a computation seeded s draws with ``batch_seed(seed_tensor(s), i)``, and chunk
j of a batch with ``batch_seed(that, j)``. With ``shared_noise`` (common random numbers,
used by anomaly scores) every batch uses the same seed and every example of a chunk the
same standard noise, so an example's estimate does not depend on the batching.

All values are in nats, per example.

References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders (the
estimator); Kingma and Welling 2014 (the ELBO).
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae import posteriors
from probae.seeds import batch_seed, seed_tensor

tfd = tfp.distributions

__all__ = [
    "MAX_ELEMENTS",
    "tile_samples",
    "merge_sample_axis",
    "sample_log_likelihoods",
    "kl_divergence",
    "kl_per_dimension",
    "log_weights",
    "log_mean_exp",
    "importance_sampling",
    "plan",
    "estimate",
    "reconstruction_at_point",
    "progress",
    "TERMS",
]

# Upper bound on the decoder outputs (rows x features) of one chunk: about 4 MB of
# float32 per tensor whatever k and the batch size are (BENCHMARKS.md, "Test NLL on
# binarized MNIST", has the speed this choice gives).
MAX_ELEMENTS = 2**20

TERMS = ("log_likelihood", "elbo", "reconstruction", "kl", "effective_sample_size", "mc_stderr")


# ---------------------------------------------------------------------- per-batch maths
def tile_samples(x, k):
    """[batch, ...] -> [k * batch, ...], sample-major (matching ``merge_sample_axis``)."""
    if k == 1:
        return x
    x = tf.convert_to_tensor(x)
    return tf.tile(x, [k] + [1] * (x.shape.rank - 1))


def merge_sample_axis(z):
    """Codes ``[k, batch, ...]`` (a tensor or a structure) -> ``[k * batch, ...]``."""
    return tf.nest.map_structure(lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0)), z)


def sample_log_likelihoods(
    x, posterior, decode, num_samples=1, seed=None, shared_noise=False, per_feature=False
):
    """Draws k codes per example and evaluates log p(x|z) for each.

    Args:
        x: data, shape ``[batch, *event_shape]``.
        posterior: q(z|x), batch shape ``[batch]``.
        decode: callable from codes ``[n, ...]`` (the k samples folded into the batch,
            sample-major) to p(x|z) with batch shape ``[n]``.
        num_samples: k, codes per example.
        seed: a stateless seed (shape-[2] int tensor) or None.
        shared_noise: one set of standard noise for the whole batch
            (``probae.posteriors.sample``).
        per_feature: also return log p(x_i|z_k) per feature ``[k, batch, *event_shape]``
            (the likelihood must be a ``tfd.Independent`` over the features).

    Returns:
        ``(z, log_px_z)`` or, with ``per_feature``, ``(z, log_px_z, per_feature_terms)``:
        codes ``[k, batch, ...]`` and log p(x|z_k) ``[k, batch]``.
    """
    z = posteriors.sample(posterior, num_samples, seed, shared_noise=shared_noise)
    likelihood = decode(merge_sample_axis(z))
    target = tile_samples(x, num_samples)
    if per_feature:
        per = likelihood.distribution.log_prob(target)
        per = tf.reshape(per, tf.concat([[num_samples, -1], tf.shape(per)[1:]], 0))
        axes = list(range(2, per.shape.rank))
        log_px_z = tf.reduce_sum(per, axis=axes) if axes else per
        return z, log_px_z, per
    log_px_z = likelihood.log_prob(target)
    return z, tf.reshape(log_px_z, [num_samples, -1])


def kl_divergence(posterior, prior, z=None):
    """KL(q(z|x) || p(z)) per example: analytic where TFP registers it, else Monte Carlo.

    Args:
        posterior: q(z|x) with batch shape ``[batch]``.
        prior: p(z).
        z: codes ``[k, batch, ...]`` drawn from the posterior, used for the Monte Carlo
            estimate mean_k(log q(z_k) - log p(z_k)) when no closed form exists.

    Returns:
        ``(kl, analytic)``: the per-example KL ``[batch]`` and whether it is exact.

    Raises:
        ValueError: no closed form is registered and no ``z`` was given.
    """
    try:
        if isinstance(posterior, tfd.JointDistribution) or isinstance(prior, tfd.JointDistribution):
            # TFP's joint-joint KL exists only for independent parts (and raises otherwise).
            raise NotImplementedError
        return tfd.kl_divergence(posterior, prior), True
    except NotImplementedError:
        if z is None:
            raise ValueError(
                f"No analytic KL is registered between {type(posterior).__name__} and "
                f"{type(prior).__name__}; pass z (posterior samples) for a Monte Carlo estimate."
            ) from None
        return tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), axis=0), False


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


def log_weights(
    x,
    posterior,
    decode,
    prior,
    num_samples,
    seed=None,
    stop_posterior_gradient=False,
    shared_noise=False,
):
    """Importance log-weights log p(x|z_k) + log p(z_k) - log q(z_k|x), shape ``[k, batch]``.

    Returns ``(log_w, log_px_z, z)``: the reconstruction term log p(x|z_k) comes from the
    same samples.

    With ``stop_posterior_gradient`` the term log q(z_k|x) is evaluated with the
    posterior's parameters held constant (``probae.posteriors.stop_parameter_gradients``,
    which refuses families it cannot stop), so the encoder's gradient reaches log_w only
    through the reparameterised z_k: the path derivative DReG uses.
    """
    z, log_px_z = sample_log_likelihoods(
        x, posterior, decode, num_samples, seed, shared_noise=shared_noise
    )
    q = posteriors.stop_parameter_gradients(posterior) if stop_posterior_gradient else posterior
    log_w = log_px_z + prior.log_prob(z) - q.log_prob(z)
    return log_w, log_px_z, z


def log_mean_exp(log_w, axis=0):
    """log (1/k) sum_k exp(log_w_k) along ``axis``: the IWAE_k bound of log-weights."""
    k = tf.cast(tf.shape(log_w)[axis], log_w.dtype)
    return tf.reduce_logsumexp(log_w, axis=axis) - tf.math.log(k)


# ---------------------------------------------------------------------- the chunked estimator
def importance_sampling(
    x, posterior, decode, prior, num_samples, chunk, seed, shared_noise=False, per_feature=False
):
    """Per-example terms from k = ``num_samples`` draws taken ``chunk`` at a time.

    Args:
        x: a batch ``[batch, *event_shape]``.
        posterior: q(z|x).
        decode: callable from ``chunk * batch`` codes (sample-major) to p(x|z).
        prior: p(z), or None (a model without a prior: only the reconstruction terms).
        num_samples: k.
        chunk: draws per loop iteration (1 <= chunk <= k).
        seed: stateless seed of the batch; chunk j draws with ``batch_seed(seed, j)``.
        shared_noise: common random numbers across the batch.
        per_feature: also return ``reconstruction_per_feature`` ``[batch, *event_shape]``,
            the k-sample mean of log p(x_i|z) per feature (summing to ``reconstruction``).

    Returns:
        A dict of ``[batch]`` tensors: ``reconstruction`` (mean_k log p(x|z_k)); with a
        prior also ``log_likelihood`` (log (1/k) sum_k w_k, biased low by O(1/k)),
        ``kl`` (analytic where TFP registers it, else mean_k log q(z_k) - log p(z_k)),
        ``elbo`` (reconstruction - kl), ``effective_sample_size`` ((sum w)^2 / sum w^2)
        and ``mc_stderr`` (the delta-method standard error of ``log_likelihood``,
        sqrt((k sum w^2 / (sum w)^2 - 1) / k)).
    """
    k = int(num_samples)
    num_chunks = math.ceil(k / chunk)
    n = tf.shape(x)[0]
    minus_inf = tf.fill([n], tf.constant(-np.inf, tf.float32))
    zeros = tf.zeros([n], tf.float32)
    feature_zeros = tf.zeros_like(tf.cast(x, tf.float32)) if per_feature else zeros

    def body(i, lse, lse2, sum_px, sum_pxw, sum_feat):
        s = batch_seed(seed, i)
        valid = (tf.range(chunk) + i * chunk < k)[:, None]
        out = sample_log_likelihoods(x, posterior, decode, chunk, s, shared_noise, per_feature)
        z, log_px_z = out[0], out[1]
        sum_px += tf.reduce_sum(tf.where(valid, log_px_z, 0.0), axis=0)
        if per_feature:
            mask = tf.reshape(
                valid, tf.concat([[chunk], tf.ones([tf.rank(out[2]) - 1], tf.int32)], 0)
            )
            sum_feat += tf.reduce_sum(tf.where(mask, out[2], 0.0), axis=0)
        if prior is not None:
            log_w = log_px_z + prior.log_prob(z) - posterior.log_prob(z)
            masked = tf.where(valid, log_w, -np.inf)
            lse = tf.reduce_logsumexp(tf.stack([lse, tf.reduce_logsumexp(masked, axis=0)]), axis=0)
            lse2 = tf.reduce_logsumexp(
                tf.stack([lse2, tf.reduce_logsumexp(2 * masked, axis=0)]), axis=0
            )
            sum_pxw += tf.reduce_sum(tf.where(valid, log_px_z - log_w, 0.0), axis=0)
        return i + 1, lse, lse2, sum_px, sum_pxw, sum_feat

    _, lse, lse2, sum_px, sum_pxw, sum_feat = tf.while_loop(
        lambda i, *_: i < num_chunks,
        body,
        (tf.constant(0), minus_inf, minus_inf, zeros, zeros, feature_zeros),
    )
    terms = {"reconstruction": sum_px / k}
    if per_feature:
        terms["reconstruction_per_feature"] = sum_feat / k
    if prior is None:
        return terms
    try:
        kl, _ = kl_divergence(posterior, prior)
    except ValueError:  # no closed form: the Monte Carlo mean of log q - log p
        kl = sum_pxw / k
    log_ess = 2 * lse - lse2
    relative_variance = tf.maximum(k * tf.exp(-log_ess) - 1.0, 0.0)
    terms.update(
        log_likelihood=lse - math.log(k),
        elbo=terms["reconstruction"] - kl,
        kl=kl,
        effective_sample_size=tf.exp(log_ess),
        mc_stderr=tf.sqrt(relative_variance / k),
    )
    return terms


def reconstruction_at_point(x, posterior, decode, per_feature=False):
    """log p(x | z*) with z* the posterior's point estimate, per example (or per feature)."""
    likelihood = decode(posteriors.point_estimate(posterior))
    if per_feature:
        return likelihood.distribution.log_prob(x)
    return likelihood.log_prob(x)


def plan(dim, num_samples, batch_size, shared_noise=False):
    """``(batch_size, chunk)`` so that one chunk holds at most ``MAX_ELEMENTS`` outputs.

    Independent noise keeps the caller's batch (capped at ``MAX_ELEMENTS // dim``) and
    takes as many draws per chunk as fit. Shared noise fixes the chunk from k and the
    data's size alone, so that the draws, and every example's estimate, do not depend on
    the batch size; the batch then shrinks to fit.
    """
    dim = max(1, int(dim))
    if shared_noise:
        chunk = max(1, min(num_samples, MAX_ELEMENTS // dim))
        batch = max(1, min(batch_size, MAX_ELEMENTS // (dim * chunk)))
    else:
        batch = max(1, min(batch_size, MAX_ELEMENTS // dim))
        chunk = max(1, min(num_samples, MAX_ELEMENTS // (dim * batch)))
    return batch, chunk


def progress(total, verbose):
    """A Keras progress bar over ``total`` examples (None: unknown, a dataset) or None.

    ``verbose`` follows Keras: "auto" is 1 (a bar), 0 is silent, 2 one line at the end.
    """
    if isinstance(verbose, str) and verbose == "auto":
        verbose = 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f'verbose must be "auto", 0, 1 or 2. Received: verbose={verbose!r}')
    if not verbose:
        return None
    return keras.utils.Progbar(total, verbose=verbose, unit_name="example")


def estimate(
    model,
    batches,
    num_samples,
    seed=None,
    shared_noise=False,
    per_feature=False,
    point=False,
    total=None,
    verbose=0,
):
    """Runs the chunked estimator of a model over batches; per-example NumPy arrays.

    Args:
        model: a built ``probae.ProbabilisticAutoencoder`` (through its public accessors
            ``posterior``, ``likelihood``, ``prior_distribution`` and ``traced``).
        batches: an iterable of validated ``(x, condition)`` batches (condition None for
            unconditional models), for example from ``probae.inputs.batches``.
        num_samples: k.
        seed: int seed or None (see ``probae.seeds``).
        shared_noise: common random numbers (every batch gets the same seed).
        per_feature: also return ``reconstruction_per_feature``.
        point: instead of sampling, return ``reconstruction`` = log p(x | point estimate)
            (and its per-feature terms).
        total: number of examples (for the progress bar), or None.
        verbose: "auto" or 1 a progress bar, 0 silent, 2 a line at the end (Keras').

    Returns:
        A dict of arrays with one row per example (see ``importance_sampling``).
    """
    k = int(num_samples)
    base = seed_tensor(seed)
    dim = int(np.prod(model.event_shape))
    progbar = progress(total, verbose)
    parts = []
    for i, (xb, cb) in enumerate(batches):
        n = len(xb)
        if point:
            fn = model.traced(("point", per_feature), _point_fn(model, per_feature))
            out = {("reconstruction_per_feature" if per_feature else "reconstruction"): fn(xb, cb)}
        else:
            _, chunk = plan(dim, k, n, shared_noise)
            fn = model.traced(
                ("importance_sampling", k, chunk, shared_noise, per_feature),
                _importance_fn(model, k, chunk, shared_noise, per_feature),
            )
            out = fn(xb, cb, base if shared_noise else batch_seed(base, i))
        parts.append({key: np.asarray(value) for key, value in out.items()})
        if progbar is not None:
            progbar.add(n)
    if not parts:
        raise ValueError("x must hold at least one example. Received: no batches")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _importance_fn(model, k, chunk, shared_noise, per_feature):
    def run(xb, cb, seed):
        posterior = model.posterior(xb, condition=cb)
        decode = model.decoder_fn(cb, num_samples=chunk)
        return importance_sampling(
            xb,
            posterior,
            decode,
            model.prior_distribution(),
            k,
            chunk,
            seed,
            shared_noise=shared_noise,
            per_feature=per_feature,
        )

    return run


def _point_fn(model, per_feature):
    def run(xb, cb):
        posterior = model.posterior(xb, condition=cb)
        return reconstruction_at_point(xb, posterior, model.decoder_fn(cb), per_feature)

    return run
