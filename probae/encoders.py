"""Encoders: Keras layers mapping x (and an optional condition) to a distribution q(z|x)."""

from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae import networks, posteriors
from probae._base import NetworkLayer, output_width
from probae._validation import check_positive_float, check_size

tfd = tfp.distributions

__all__ = ["Encoder", "GaussianEncoder", "DeterministicEncoder", "CodeLayer"]


class Encoder(NetworkLayer):
    """Base class: a network, then (for probae's default networks) a float32 head giving
    the posterior's parameters.

    Subclasses set ``params_per_dim`` and implement ``distribution(params)``, which
    returns q(z|x) honouring the posterior contract (``probae.posteriors``). An encoder
    whose q(z|x) is a point mass sets ``point_mass = True``: the model then gives it no
    prior unless the user passes one. ``code_shape`` is the shape of one code (a tuple,
    or a dict of named shapes for a structured code).

    A user's network is used as it is when its output already holds the parameters:
    ``params_per_dim * latent_dim`` values per example (for a Gaussian encoder, also two
    outputs ``[mean, log_var]`` of ``latent_dim`` each, the keras.io convention). With
    ``latent_dim=None`` the code size is read from the network's output: the width of the
    two outputs ``[mean, log_var]``, or else the output's width (the output is taken for
    the code itself, so ``decoder(encoder(x))`` of the user's two networks stays valid).
    Otherwise see ``head`` (probae's ``_base`` module doc): a head is added with a
    warning, or ``head=False`` raises.

    Args:
        latent_dim: size of the code z (None: read from a user network's output).
        network, architecture, hidden_units, activation, filters, condition_shape, head:
            see ``NetworkLayer``: the default network is an MLP for vectors and a CNN for
            images.
    """

    params_per_dim = 1
    point_mass = False

    def __init__(self, latent_dim: int | None = None, network: Any = None, **kwargs: Any) -> None:
        if latent_dim is None and network is None:
            raise ValueError(
                "latent_dim must be a positive integer (it can be left out only when "
                "your own network's output gives it). Received: latent_dim=None"
            )
        self.latent_dim = None if latent_dim is None else check_size(latent_dim, "latent_dim")
        super().__init__(network=network, **kwargs)
        self.event_shape = None
        self._reads_log_var = False

    @property
    def code_shape(self):
        """The shape of one code z: ``(latent_dim,)``."""
        return (self.latent_dim,)

    def _reads_output(self, output):
        """Whether a user network's output holds the parameters (setting latent_dim when
        it was left out: the width of ``[mean, log_var]``'s parts, else of the output,
        which is then taken for the code itself)."""
        outputs = output if isinstance(output, (list, tuple)) else [output]
        widths = [int(np.prod(o.shape[1:])) for o in outputs]
        pair = len(outputs) == self.params_per_dim == 2 and widths[0] == widths[1]
        if self.latent_dim is None:
            self.latent_dim = widths[0] if pair else sum(widths)
        if pair:
            return widths[0] == self.latent_dim
        return len(outputs) == 1 and widths[0] == self.params_per_dim * self.latent_dim

    def build(self, input_shape):
        self.event_shape = tuple(int(d) for d in input_shape[1:])
        self._arch = networks.resolve_architecture(self.architecture, self.event_shape)
        self._condition_first = self._arch == "mlp" and not self._user_network
        if self.network is None:
            if self._arch == "conv":
                self.network = networks.conv_encoder(
                    self.filters, self.hidden_units[:1], self.activation, name="network"
                )
            else:
                self.network = networks.mlp(self.hidden_units, self.activation, name="network")
        in_shape = (None,) + self.event_shape
        if self._condition_first and self.condition_dim:
            in_shape = (None, int(tf.reduce_prod(self.event_shape)) + self.condition_dim)
        feat = self.network(tf.zeros((1,) + tuple(in_shape[1:])))
        fits = self._user_network and not self.condition_dim and self._reads_output(feat)
        if self.latent_dim is None:  # a conditional encoder's own network: its output's width
            self.latent_dim = output_width(feat)
        expected = f"{self.params_per_dim} x latent_dim={self.latent_dim} values per example" + (
            " (or two outputs [mean, log_var] of latent_dim each)"
            if self.params_per_dim == 2
            else ""
        )
        if not self._use_head(fits, expected, f"{output_width(feat)} values per example"):
            self.head = None
            self._reads_log_var = self.params_per_dim == 2
            return
        feat_dim = output_width(feat)
        if not self._condition_first:
            feat_dim += self.condition_dim
        # Distribution parameters stay float32 under mixed precision.
        self.head = keras.layers.Dense(
            self.latent_dim * self.params_per_dim, dtype="float32", name="head"
        )
        self.head.build((None, feat_dim))

    def call(self, inputs, condition=None):
        condition = self._check_condition(condition)
        if self.head is None:
            out = self.network(inputs)
            outputs = out if isinstance(out, (list, tuple)) else [out]
            flat = [tf.reshape(tf.cast(o, "float32"), [tf.shape(o)[0], -1]) for o in outputs]
            return self.distribution(tf.concat(flat, axis=-1))
        features = self._run_network(inputs, condition, self._condition_first)
        features = tf.reshape(features, [tf.shape(features)[0], -1])
        return self.distribution(self.head(features))

    def distribution(self, params):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config["latent_dim"] = self.latent_dim
        return config


@keras.saving.register_keras_serializable(package="probae")
class GaussianEncoder(Encoder):
    """q(z|x) = N(mu(x), diag(sigma(x)^2)), a ``tfd.MultivariateNormalDiag``.

    sigma = softplus(raw) + min_scale from a head's output; from a user's network read as
    it is (its output ``[mean, log_var]``, two outputs or one of width 2 * latent_dim),
    sigma = exp(log_var / 2) + min_scale. The floor keeps log q and the KL finite even
    when a posterior collapses.

    Args:
        latent_dim: size of the code z (None: read from a user network's output).
        network: a Keras layer or model mapping x to features or to ``[mean, log_var]``
            (None: a default MLP or CNN).
        min_scale: floor on sigma.
        **kwargs: see ``Encoder``.

    References: Kingma and Welling 2014, Auto-Encoding Variational Bayes.
    """

    params_per_dim = 2

    def __init__(
        self,
        latent_dim: int | None = None,
        network: Any = None,
        min_scale: float = 1e-4,
        **kwargs: Any,
    ) -> None:
        self.min_scale = check_positive_float(min_scale, "min_scale")
        super().__init__(latent_dim, network=network, **kwargs)

    def distribution(self, params):
        loc, raw = tf.split(params, 2, axis=-1)
        if self._reads_log_var:  # a user's network outputs [mean, log_var]
            scale = tf.exp(0.5 * raw) + self.min_scale
        else:
            scale = tf.nn.softplus(raw) + self.min_scale
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

    def get_config(self):
        config = super().get_config()
        config["min_scale"] = self.min_scale
        return config


@keras.saving.register_keras_serializable(package="probae")
class DeterministicEncoder(Encoder):
    """A point mass q(z|x) = delta(z - f(x)), a ``tfd.VectorDeterministic``.

    With it the autoencoder is deterministic: the KL to the prior is -log p(f(x)) and
    gradients flow through ``sample()``, so the classic autoencoder is the degenerate case
    of the probabilistic one.

    Args:
        latent_dim: size of the code z.
        network: a Keras layer or model mapping x to features (None: a default MLP or CNN).
        code_activation: activation applied to the code (for example "sigmoid" for the
            sparse autoencoder), or None for a linear code.
        **kwargs: see ``Encoder``.
    """

    point_mass = True

    def __init__(
        self,
        latent_dim: int | None = None,
        network: Any = None,
        code_activation: Any = None,
        **kwargs: Any,
    ) -> None:
        self.code_activation = code_activation
        try:
            self._code_fn = keras.activations.get(code_activation)
        except (ValueError, TypeError):
            raise ValueError(
                "code_activation must be None, a Keras activation name or a callable. "
                f"Received: code_activation={code_activation!r}"
            ) from None
        super().__init__(latent_dim, network=network, **kwargs)

    def distribution(self, params):
        return tfd.VectorDeterministic(loc=self._code_fn(params))

    def get_config(self):
        config = super().get_config()
        config["code_activation"] = self.code_activation
        return config


CODE_OUTPUTS = ("mean", "sample")


@keras.saving.register_keras_serializable(package="probae")
class CodeLayer(keras.layers.Layer):
    """A probae encoder as a tensor-to-tensor Keras layer, for functional models.

    A probae encoder returns a distribution, which Keras' functional and Sequential models
    cannot pass between layers. This layer wraps one and returns a tensor: the posterior's
    point estimate (``output="mean"``, ``probae.posteriors.point_estimate``) or one
    reparameterised draw from q(z|x) (``output="sample"``, differentiable). The weights
    are the encoder's own, so training a model built on this layer fine-tunes the
    encoder (and the autoencoder it belongs to). ``model.feature_extractor()`` makes one.

    Args:
        encoder: a probae encoder (built or not).
        output: "mean" or "sample".
        seed: seed of the draws with ``output="sample"``.
    """

    def __init__(
        self, encoder: Any, output: str = "mean", seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be a probae encoder. Received: encoder={encoder!r}")
        if output not in CODE_OUTPUTS:
            raise ValueError(f"output must be one of {CODE_OUTPUTS}. Received: output={output!r}")
        self.encoder = encoder
        self.output_kind = output
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)

    def call(self, inputs):
        posterior = self.encoder(inputs)
        if self.output_kind == "sample":
            seed = tf.cast(self.seed_generator.next(), tf.int32)
            return posteriors.sample(posterior, 1, seed)[0]
        return posteriors.point_estimate(posterior)

    def compute_output_shape(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        return (input_shape[0], *self.encoder.code_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            output=self.output_kind,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
