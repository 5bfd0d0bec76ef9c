"""Priors p(z): Keras layers whose ``distribution()`` returns a ``tfd`` distribution.

Priors take no input; the model builds them with the code size and asks for
``distribution(encoder)`` inside every step, so learned parameters are read from their
variables' current values (a variable passed to a ``tfd`` constructor outside the step
would be frozen to a constant).
"""

from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae._validation import check_positive_float, check_positive_int, check_shape, check_size
from probae.distributions import DiagonalGaussianMixture

tfd = tfp.distributions

__all__ = [
    "sample",
    "Prior",
    "StandardNormalPrior",
    "MixtureOfGaussiansPrior",
    "VampPrior",
]


def sample(distribution, n, seed, temperature=1.0):
    """n draws from a prior with its spread scaled by ``temperature``.

    For a Gaussian prior N(mu, diag(s^2)) the draws come from N(mu, diag((t s)^2)); for a
    mixture of diagonal Gaussians (``MixtureOfGaussiansPrior``, ``VampPrior``) a component
    is drawn with its usual weight and then a point from it with its scale multiplied by
    t: the component means stay where they are, and t < 1 concentrates the draws around
    them (typical samples), t > 1 spreads them out. t = 1 is an ordinary draw.

    Args:
        distribution: p(z), a ``tfd.MultivariateNormalDiag`` or a mixture of them (any
            distribution for t = 1).
        n: number of draws.
        seed: a stateless seed.
        temperature: t > 0.

    Raises:
        ValueError: t != 1 for a prior of another family.
    """
    if temperature == 1.0:
        return distribution.sample(n, seed=seed)
    if isinstance(distribution, tfd.MultivariateNormalDiag):
        z = distribution.sample(n, seed=seed)
        return distribution.mean() + temperature * (z - distribution.mean())
    components = getattr(distribution, "components_distribution", None)
    if isinstance(components, tfd.MultivariateNormalDiag) and components.batch_shape.rank == 1:
        index_seed, z_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        index = distribution.mixture_distribution.sample(n, seed=index_seed)
        loc = tf.gather(components.mean(), index)
        scale = tf.gather(components.stddev(), index)
        eps = tf.random.stateless_normal(tf.shape(loc), seed=z_seed, dtype=loc.dtype)
        return loc + temperature * scale * eps
    raise ValueError(
        "temperature other than 1 needs a Gaussian prior or a mixture of diagonal Gaussians. "
        f"Received: a prior distribution of type {type(distribution).__name__} and "
        f"temperature={temperature!r}"
    )


class Prior(keras.layers.Layer):
    """Base class of priors over a code of size ``latent_dim``.

    Args:
        latent_dim: size of the code; None lets the model set it from the encoder.
    """

    # Whether ``distribution(encoder)`` depends on the encoder's parameters (VampPrior).
    uses_encoder = False

    def __init__(self, latent_dim: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latent_dim = None if latent_dim is None else check_size(latent_dim, "latent_dim")

    def set_data_shape(self, data_shape):
        """Told the shape of one example by the model before ``build`` (a hook for priors
        defined in data space, such as the VampPrior); ignored by default."""

    def build(self, input_shape):
        latent_dim = int(input_shape[-1])
        if self.latent_dim is not None and self.latent_dim != latent_dim:
            raise ValueError(
                f"The prior was made for latent_dim={self.latent_dim}, but the encoder's code "
                f"has {latent_dim} dimensions."
            )
        self.latent_dim = latent_dim
        self._build_variables()

    def _build_variables(self):
        """Hook for priors with learned parameters."""

    def call(self, inputs=None):
        return self.distribution()

    def distribution(self, encoder=None):
        """Returns p(z) as a distribution with event shape ``[latent_dim]``.

        Args:
            encoder: the model's encoder (used by priors defined through it, such as the
                VampPrior); ignored by the others.
        """
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config["latent_dim"] = self.latent_dim
        return config


@keras.saving.register_keras_serializable(package="probae")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I), the prior of the original VAE (Kingma and Welling 2014)."""

    def distribution(self, encoder=None):
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))


@keras.saving.register_keras_serializable(package="probae")
class MixtureOfGaussiansPrior(Prior):
    """A learnable mixture of K diagonal Gaussians:
    p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)).

    The KL term to it has no closed form, so the model uses a Monte Carlo estimate
    (unbiased for the KL; the ELBO stays a lower bound in expectation).

    Args:
        num_components: K, the number of mixture components.
        latent_dim: size of the code (None: set by the model).
        min_scale: floor on every sigma.

    References: Dilokthanakul et al. 2016, Deep unsupervised clustering with Gaussian
    mixture variational autoencoders; Tomczak and Welling 2018, VAE with a VampPrior
    (section 2, the mixture-of-Gaussians prior).
    """

    def __init__(
        self,
        num_components: int = 10,
        latent_dim: int | None = None,
        min_scale: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        self.num_components = check_positive_int(num_components, "num_components")
        self.min_scale = check_positive_float(min_scale, "min_scale")
        super().__init__(latent_dim=latent_dim, **kwargs)

    def _build_variables(self):
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(name="logits", shape=(k,), initializer="zeros")
        self.locs = self.add_weight(
            name="locs", shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=1.0)
        )
        self.raw_scales = self.add_weight(
            name="raw_scales", shape=(k, d), initializer=keras.initializers.Constant(0.5413)
        )

    def distribution(self, encoder=None):
        scales = tf.nn.softplus(tf.convert_to_tensor(self.raw_scales)) + self.min_scale
        return DiagonalGaussianMixture(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=tf.convert_to_tensor(self.locs), scale_diag=scales
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="probae")
class VampPrior(Prior):
    """The variational mixture of posteriors prior:
    p(z) = (1/K) sum_k q(z | u_k), with K learned pseudo-inputs u_k in data space.

    The prior is the encoder's own posterior at the pseudo-inputs, so it is learned jointly
    with the encoder (``distribution(encoder)`` runs the encoder on the u_k). Its KL term
    has no closed form: the model uses a Monte Carlo estimate (unbiased for the KL).
    It cannot be used with conditional models (the pseudo-inputs carry no condition) nor
    with ``gradient_estimator="dreg"`` (it depends on the encoder's parameters).

    Args:
        num_pseudo_inputs: K, the number of pseudo-inputs (mixture components).
        latent_dim: size of the code (None: set by the model).
        data_shape: shape of one example (None: set by the model from the data).
        pseudo_input_mean, pseudo_input_stddev: the pseudo-inputs' initial values are
            drawn from N(mean, stddev^2) (Tomczak and Welling use 0.05 and 0.01 on
            MNIST); call ``initialize_from(x)`` to start them at data examples instead.
        pseudo_input_range: None, or ``(low, high)`` to clip the pseudo-inputs to the
            data's range (for example (0, 1) for images; the paper's hard tanh).

    References: Tomczak and Welling 2018, VAE with a VampPrior.
    """

    uses_encoder = True

    def __init__(
        self,
        num_pseudo_inputs=500,
        latent_dim=None,
        data_shape=None,
        pseudo_input_mean=0.05,
        pseudo_input_stddev=0.01,
        pseudo_input_range=None,
        **kwargs,
    ):
        self.num_pseudo_inputs = check_positive_int(num_pseudo_inputs, "num_pseudo_inputs")
        if isinstance(pseudo_input_mean, bool) or not isinstance(pseudo_input_mean, (int, float)):
            raise TypeError(
                f"pseudo_input_mean must be a number. Received: pseudo_input_mean={pseudo_input_mean!r}"
            )
        self.pseudo_input_mean = float(pseudo_input_mean)
        self.pseudo_input_stddev = check_positive_float(pseudo_input_stddev, "pseudo_input_stddev")
        if pseudo_input_range is not None:
            try:
                low, high = (float(v) for v in pseudo_input_range)
            except (TypeError, ValueError):
                low = high = None
            if low is None or not low < high:
                raise ValueError(
                    "pseudo_input_range must be None or a pair (low, high) with low < high. "
                    f"Received: pseudo_input_range={pseudo_input_range!r}"
                )
            pseudo_input_range = (low, high)
        self.pseudo_input_range = pseudo_input_range
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.data_shape = None if data_shape is None else check_shape(data_shape, "data_shape")

    def set_data_shape(self, data_shape):
        data_shape = check_shape(data_shape, "data_shape")
        if self.data_shape is not None and self.data_shape != data_shape:
            raise ValueError(
                f"The VampPrior was made for examples of shape {self.data_shape}, but the data "
                f"has examples of shape {data_shape}."
            )
        self.data_shape = data_shape

    def _build_variables(self):
        if self.data_shape is None:
            raise ValueError(
                "The VampPrior's data_shape is unknown: pass data_shape=... or use it inside "
                "a ProbabilisticAutoencoder, which sets it from the data."
            )
        self.pseudo_inputs = self.add_weight(
            name="pseudo_inputs",
            shape=(self.num_pseudo_inputs, *self.data_shape),
            initializer=keras.initializers.RandomNormal(
                mean=self.pseudo_input_mean, stddev=self.pseudo_input_stddev
            ),
        )

    def initialize_from(self, x, seed=None):
        """Sets the pseudo-inputs to K examples drawn without replacement from x.

        Args:
            x: data ``[n, *data_shape]`` with n >= K.
            seed: int seed of the draw, or None.
        """
        x = np.asarray(x, dtype="float32")
        if not self.built or x.ndim != 1 + len(self.data_shape) or x.shape[1:] != self.data_shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.data_shape or ()))}) and the "
                f"prior must be built. Received: x with shape {x.shape}"
            )
        if len(x) < self.num_pseudo_inputs:
            raise ValueError(
                f"x must hold at least num_pseudo_inputs={self.num_pseudo_inputs} examples. "
                f"Received: {len(x)}"
            )
        idx = np.random.default_rng(seed).choice(len(x), self.num_pseudo_inputs, replace=False)
        self.pseudo_inputs.assign(x[idx])

    def _inputs(self):
        u = tf.convert_to_tensor(self.pseudo_inputs)
        if self.pseudo_input_range is not None:
            u = tf.clip_by_value(u, *self.pseudo_input_range)
        return u

    def distribution(self, encoder=None):
        if encoder is None:
            raise ValueError("The VampPrior needs the model's encoder: call distribution(encoder).")
        if getattr(encoder, "condition_shape", None) is not None:
            raise ValueError(
                "The VampPrior cannot be used with a conditional encoder (its pseudo-inputs "
                f"have no condition). Received: an encoder with condition_shape={encoder.condition_shape}"
            )
        components = encoder(self._inputs(), training=False)
        return DiagonalGaussianMixture(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([self.num_pseudo_inputs])),
            components_distribution=components,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_pseudo_inputs=self.num_pseudo_inputs,
            data_shape=None if self.data_shape is None else list(self.data_shape),
            pseudo_input_mean=self.pseudo_input_mean,
            pseudo_input_stddev=self.pseudo_input_stddev,
            pseudo_input_range=None
            if self.pseudo_input_range is None
            else list(self.pseudo_input_range),
        )
        return config
