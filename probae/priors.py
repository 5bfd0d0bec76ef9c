"""Priors p(z): Keras layers whose ``distribution()`` returns a ``tfd`` distribution.

Priors take no input; the model builds them with the code size and asks for
``distribution(encoder)`` inside every step, so learned parameters are read from their
variables' current values (a variable passed to a ``tfd`` constructor outside the step
would be frozen to a constant).
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from probae._validation import check_positive_float, check_positive_int

tfd = tfp.distributions

__all__ = ["Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior"]


class Prior(keras.layers.Layer):
    """Base class of priors over a code of size ``latent_dim``.

    Args:
        latent_dim: size of the code; None lets the model set it from the encoder.
    """

    def __init__(self, latent_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = None if latent_dim is None else check_positive_int(latent_dim, "latent_dim")

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

    def __init__(self, num_components=10, latent_dim=None, min_scale=1e-3, **kwargs):
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
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=tf.convert_to_tensor(self.locs), scale_diag=scales
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale)
        return config
