"""The posterior contract: what probae may ask of any q(z|x) an encoder returns.

An encoder returns a ``tfd`` distribution over the code. The code may be one tensor
``[batch, latent_dim]`` or a structure of tensors (a ``tfd.JointDistributionNamed`` over
named latents, for a hierarchy); every function here accepts both. Code that needs a
point, a shared-noise draw or a stopped-gradient copy of a posterior calls these
functions, never ``posterior.mean()`` or an ``isinstance`` test of its own:

- ``point_estimate(q)``: one code per example. The mean where the family has one
  (diagonal Gaussian, point mass); for a transformed distribution (a flow) the image of
  the base distribution's point estimate under the bijector (the mean of a flow has no
  closed form; the image of the base mean is the usual substitute and is the mode when
  the base is Gaussian and the bijector is affine); for a joint distribution over
  several latents, each latent's point estimate given its parents' point estimates.
- ``sample(q, k, seed, shared_noise=False)``: k reparameterised draws ``[k, batch, ...]``.
  With ``shared_noise`` every example of the batch uses the same standard noise
  (z_k = mu(x) + sigma(x) eps_k for a diagonal Gaussian, pushed through the flow for a
  transformed one): an example's draws then do not depend on which other examples share
  its batch. Families without a location-scale base (joint distributions) fall back to
  independent draws; ``supports_shared_noise`` says which.
- ``is_reparameterized(q)``: TFP's declared ``reparameterization_type``; objectives that
  differentiate through samples check it.
- ``stop_parameter_gradients(q)``: the same distribution with gradients stopped at its
  parameters (DReG's path derivative). Only families whose parameters are all tensors
  support it; a flow (parameters inside networks) raises ``ValueError`` rather than
  silently leaving gradients on.
- ``is_point_mass(q)``: a ``tfd.Deterministic`` / ``tfd.VectorDeterministic`` code, which
  has no density: its ``elbo`` would be log p(x, z), not a bound.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "point_estimate",
    "sample",
    "supports_shared_noise",
    "is_reparameterized",
    "stop_parameter_gradients",
    "is_point_mass",
]

_POINT_MASSES = (tfd.Deterministic, tfd.VectorDeterministic)
_LOCATION_SCALE = (tfd.MultivariateNormalDiag,)


def _is_transformed(posterior):
    """Whether q is a base distribution pushed through a bijector (a flow).

    Not ``isinstance(q, tfd.TransformedDistribution)``: TFP builds a non-composite-tensor
    class (outside that one) when the bijector holds Python callables, as a flow whose
    conditioners are Keras layers does.
    """
    return isinstance(getattr(posterior, "bijector", None), tfp.bijectors.Bijector) and isinstance(
        getattr(posterior, "distribution", None), tfd.Distribution
    )


def point_estimate(posterior):
    """One code per example (see the module doc); a tensor or a structure of tensors.

    Raises:
        ValueError: the family has no mean, no mode and no rule here.
    """
    if isinstance(posterior, _POINT_MASSES):
        return posterior.loc
    if isinstance(posterior, _LOCATION_SCALE):
        return posterior.mean()
    if _is_transformed(posterior):
        return posterior.bijector.forward(point_estimate(posterior.distribution))
    if isinstance(posterior, tfd.JointDistribution):
        return _joint_point_estimate(posterior)
    for what in ("mean", "mode"):
        try:
            return getattr(posterior, what)()
        except NotImplementedError:
            continue
    raise ValueError(
        "The posterior has no point estimate: it is a "
        f"{type(posterior).__name__} with neither a mean nor a mode. Give the encoder's "
        "distribution a mean, or a location-scale or transformed form."
    )


def _joint_point_estimate(posterior):
    """Each latent's point estimate given its parents' point estimates.

    A fixed-point sweep over the whole joint: after sweep t the latents at depth < t of
    the graph hold their final values (a root's point estimate does not depend on the
    others), so as many sweeps as there are latents suffice.
    """
    values = posterior.sample(seed=tf.constant([0, 0]))
    for _ in range(len(tf.nest.flatten(values))):
        dists, _ = posterior.sample_distributions(value=values, seed=tf.constant([0, 0]))
        values = tf.nest.map_structure(point_estimate, dists)
    return values


def supports_shared_noise(posterior):
    """Whether ``sample(..., shared_noise=True)`` shares the noise across the batch."""
    if isinstance(posterior, _POINT_MASSES + _LOCATION_SCALE):
        return True
    if _is_transformed(posterior):
        return supports_shared_noise(posterior.distribution)
    return False


def sample(posterior, num_samples, seed, shared_noise=False):
    """k draws from q(z|x), shape ``[k, batch, ...]`` per code tensor.

    Args:
        posterior: q(z|x) with batch shape ``[batch]``.
        num_samples: k.
        seed: a stateless seed (shape-[2] int tensor).
        shared_noise: draw one set of standard noise for the whole batch (see the module
            doc); families that do not support it draw independently.
    """
    if shared_noise:
        if isinstance(posterior, _POINT_MASSES):
            loc = posterior.loc
            return tf.broadcast_to(loc[None], tf.concat([[num_samples], tf.shape(loc)], 0))
        if isinstance(posterior, _LOCATION_SCALE):
            mean = posterior.mean()
            eps = tf.random.stateless_normal(
                [num_samples, 1, tf.shape(mean)[-1]], seed=seed, dtype=mean.dtype
            )
            return mean[None] + posterior.stddev()[None] * eps
        if _is_transformed(posterior) and supports_shared_noise(posterior.distribution):
            base = sample(posterior.distribution, num_samples, seed, shared_noise=True)
            return posterior.bijector.forward(base)
    return posterior.sample(num_samples, seed=seed)


def is_reparameterized(posterior):
    """Whether gradients flow through ``posterior.sample`` (TFP's declaration)."""
    kinds = tf.nest.flatten(posterior.reparameterization_type)
    return all(kind == tfd.FULLY_REPARAMETERIZED for kind in kinds)


def is_point_mass(posterior):
    """Whether q(z|x) is a point mass (a deterministic encoder)."""
    return isinstance(posterior, _POINT_MASSES)


_STOPPABLE = (tfd.MultivariateNormalDiag, tfd.Normal) + _POINT_MASSES


def stop_parameter_gradients(posterior):
    """The same distribution with gradients stopped at its parameters.

    Raises:
        ValueError: the family's parameters are not all tensors (a flow, a joint
            distribution, a mixture), so its gradients cannot be stopped here.
    """
    if not isinstance(posterior, _STOPPABLE):
        raise ValueError(
            "The posterior's gradients cannot be stopped at its parameters: it is a "
            f"{type(posterior).__name__}, whose parameters are not all tensors (the "
            "doubly reparameterised gradient needs a diagonal Gaussian or point-mass "
            "posterior). Use gradient_estimator='iwae'."
        )
    params = {k: tf.stop_gradient(v) for k, v in posterior.parameters.items() if tf.is_tensor(v)}
    if isinstance(posterior, tfd.MultivariateNormalDiag):
        # scale_diag may be a tensor while the stored scale operator is not.
        params = {
            "loc": tf.stop_gradient(posterior.loc),
            "scale_diag": tf.stop_gradient(posterior.stddev()),
        }
        return tfd.MultivariateNormalDiag(**params)
    return posterior.copy(**params)
