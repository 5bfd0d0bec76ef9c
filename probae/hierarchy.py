"""Two stochastic layers: the hierarchical VAE of the VampPrior paper, as a configuration.

The model (Tomczak and Welling 2018, section 3.2 "HVAE"):

    q(z1, z2 | x) = q(z2|x) q(z1|x, z2),    p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1, z2).

It is the one ``ProbabilisticAutoencoder`` with a structured code ``{"z1", "z2"}``
(docs/design.md, "Structured codes"): ``HierarchicalEncoder`` returns q as a
``tfd.JointDistributionNamed``, ``HierarchicalPrior`` returns p(z2) p(z1|z2) as another,
and any probae decoder reads p(x|z1, z2) from the concatenated latents. Training,
``elbo``, ``log_likelihood``, sampling, anomaly scores and saving are the model's own; the
KL term is the Monte Carlo log q(z1, z2|x) - log p(z1, z2) at the same draws.

Every conditional is a probae ``GaussianEncoder`` (a network and a head giving a diagonal
Gaussian): q(z2|x) an encoder of x, q(z1|x, z2) an encoder of x with z2 as its
condition, p(z1|z2) an encoder of z2. The top prior p(z2) is any probae prior over a flat
code; a ``VampPrior`` there is the paper's: p(z2) = (1/K) sum_k q(z2|u_k), run through
the hierarchical encoder's q(z2|x) (``HierarchicalEncoder.top``).

``HierarchicalVAE(input_shape, latent_dims=(z1_dim, z2_dim), ...)`` builds it.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from probae._validation import check_positive_float, check_shape, check_size
from probae.encoders import Encoder, GaussianEncoder
from probae.model import ProbabilisticAutoencoder
from probae.networks import check_activation, check_hidden_units
from probae.presets import make_decoder
from probae.priors import Prior, StandardNormalPrior

tfd = tfp.distributions

__all__ = [
    "HierarchicalEncoder",
    "HierarchicalPrior",
    "HierarchicalVAE",
    "check_latent_dims",
    "conditional_gaussian",
]


def check_latent_dims(latent_dims):
    """``(z1_dim, z2_dim)`` as two positive ints."""
    if isinstance(latent_dims, (str, bytes)) or not hasattr(latent_dims, "__len__"):
        raise TypeError(
            "latent_dims must be a pair (z1_dim, z2_dim) of positive integers. "
            f"Received: latent_dims={latent_dims!r}"
        )
    if len(latent_dims) != 2:
        raise ValueError(
            "latent_dims must be a pair (z1_dim, z2_dim) of positive integers. "
            f"Received: latent_dims={tuple(latent_dims)!r} ({len(latent_dims)} values)"
        )
    return tuple(check_size(d, "latent_dims") for d in latent_dims)


def conditional_gaussian(encoder, parent, x=None):
    """The diagonal Gaussian ``encoder`` gives for a parent code with any leading shape.

    ``parent`` is ``[..., batch, d]`` (k draws of a parent latent, or one); with ``x``
    (``[batch, ...]``) the encoder reads x and takes the parent as its condition, without
    it the encoder reads the parent itself. The network runs on the leading axes folded
    into one batch (x repeated sample-major, as ``probae.estimators.merge_sample_axis``
    folds codes) and the result has batch shape ``[..., batch]``.
    """
    parent = tf.convert_to_tensor(parent)
    lead = tf.shape(parent)[:-1]
    flat = tf.reshape(parent, [-1, tf.shape(parent)[-1]])
    if x is None:
        q = encoder(flat)
    else:
        x = tf.convert_to_tensor(x)
        reps = tf.shape(flat)[0] // tf.shape(x)[0]
        tiled = tf.tile(x, tf.concat([[reps], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
        q = encoder(tiled, condition=flat)
    shape = tf.concat([lead, [encoder.latent_dim]], 0)
    return tfd.MultivariateNormalDiag(
        loc=tf.reshape(q.mean(), shape), scale_diag=tf.reshape(q.stddev(), shape)
    )


@keras.saving.register_keras_serializable(package="probae")
class HierarchicalEncoder(Encoder):
    """q(z1, z2|x) = q(z2|x) q(z1|x, z2), a ``tfd.JointDistributionNamed`` over
    ``{"z1", "z2"}``.

    ``top`` (q(z2|x)) and ``bottom`` (q(z1|x, z2), z2 as the condition: for the default
    MLP it joins x at the input) are ``GaussianEncoder`` layers with the default networks
    of the given options.

    Args:
        latent_dims: ``(z1_dim, z2_dim)``.
        architecture, hidden_units, activation, filters: the two encoders' default
            networks (see ``NetworkLayer``).
        min_scale: floor on every posterior scale.

    Raises:
        ValueError: a ``network`` or a ``condition_shape`` (not supported), or invalid
            options.
    """

    # IWAE(gradient_estimator='dreg') cannot stop the gradients of this posterior's
    # parameters (objectives.IWAE.check refuses it when the model is built).
    stoppable_posterior = False

    def __init__(self, latent_dims=(40, 40), min_scale=1e-4, **kwargs):
        self.latent_dims = check_latent_dims(latent_dims)
        for option in ("network", "condition_shape"):
            if kwargs.get(option) is not None:
                raise ValueError(
                    f"HierarchicalEncoder builds its own networks and takes no {option}. "
                    f"Received: {option}={kwargs[option]!r}"
                )
        kwargs.pop("network", None)
        kwargs.pop("latent_dim", None)
        self.min_scale = check_positive_float(min_scale, "min_scale")
        super().__init__(sum(self.latent_dims), **kwargs)
        net = dict(
            architecture=self.architecture,
            hidden_units=self.hidden_units,
            activation=self.activation,
            filters=self.filters,
            min_scale=min_scale,
        )
        z1_dim, z2_dim = self.latent_dims
        self.top = GaussianEncoder(z2_dim, name="q_z2", **net)
        self.bottom = GaussianEncoder(z1_dim, condition_shape=(z2_dim,), name="q_z1", **net)

    @property
    def code_shape(self):
        return {"z1": (self.latent_dims[0],), "z2": (self.latent_dims[1],)}

    def build(self, input_shape):
        self.event_shape = tuple(int(d) for d in input_shape[1:])
        self.top.build(input_shape)
        self.bottom.build(input_shape)
        self.head = None

    def call(self, inputs, condition=None):
        self._check_condition(condition)
        x = tf.convert_to_tensor(inputs)
        bottom = self.bottom
        return tfd.JointDistributionNamed(
            {"z2": self.top(x), "z1": lambda z2: conditional_gaussian(bottom, z2, x)}
        )

    def get_config(self):
        config = super().get_config()
        for key in ("latent_dim", "network", "condition_shape", "head"):
            config.pop(key, None)
        config.update(latent_dims=list(self.latent_dims), min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="probae")
class HierarchicalPrior(Prior):
    """p(z1, z2) = p(z2) p(z1|z2), a ``tfd.JointDistributionNamed`` over ``{"z1", "z2"}``.

    p(z2) is ``top``, any probae prior over a flat code (default N(0, I)); a prior that
    runs the encoder (``VampPrior``) runs the hierarchical encoder's q(z2|x). p(z1|z2) is
    a ``GaussianEncoder`` of z2 (a default MLP of ``hidden_units`` and a head).

    Args:
        top: the prior p(z2) (None: ``StandardNormalPrior``).
        hidden_units, activation: the network of p(z1|z2).
        min_scale: floor on p(z1|z2)'s scale.
        latent_dims: ``(z1_dim, z2_dim)``, or None to take them from the model's code.
    """

    def __init__(
        self,
        top=None,
        hidden_units=(300, 300),
        activation="relu",
        min_scale=1e-4,
        latent_dims=None,
        **kwargs,
    ):
        kwargs.pop("latent_dim", None)
        super().__init__(**kwargs)
        if isinstance(top, dict):
            top = keras.saving.deserialize_keras_object(top)
        if top is None:
            top = StandardNormalPrior()
        if not isinstance(top, Prior) or isinstance(top, HierarchicalPrior):
            raise TypeError(
                "top must be None or a probae prior over a flat code (for example "
                f"probae.VampPrior(500)). Received: top={top!r}"
            )
        self.top = top
        self.hidden_units = check_hidden_units(hidden_units)
        self.activation = check_activation(activation)
        self.min_scale = check_positive_float(min_scale, "min_scale")
        self.latent_dims = None if latent_dims is None else check_latent_dims(latent_dims)
        self.conditional = None

    @property
    def uses_encoder(self):
        return self.top.uses_encoder

    def set_data_shape(self, data_shape):
        self.top.set_data_shape(data_shape)

    def build(self, input_shape):
        if not isinstance(input_shape, dict) or set(input_shape) != {"z1", "z2"}:
            raise ValueError(
                "HierarchicalPrior needs a code {'z1', 'z2'} (a HierarchicalEncoder's). "
                f"Received: a code of shape {input_shape!r}"
            )
        dims = (int(input_shape["z1"][-1]), int(input_shape["z2"][-1]))
        if self.latent_dims is not None and self.latent_dims != dims:
            raise ValueError(
                f"The prior was made for latent_dims={self.latent_dims}, but the encoder's "
                f"code has {dims}."
            )
        self.latent_dims = dims
        if not self.top.built:  # a top prior read from a file comes built
            self.top.build((None, dims[1]))
        self.conditional = GaussianEncoder(
            dims[0],
            architecture="mlp",
            hidden_units=self.hidden_units,
            activation=self.activation,
            min_scale=self.min_scale,
            name="p_z1",
        )
        self.conditional.build((None, dims[1]))
        self.built = True

    def distribution(self, encoder=None):
        top_encoder = getattr(encoder, "top", encoder)
        if self.top.uses_encoder and not isinstance(encoder, HierarchicalEncoder):
            raise ValueError(
                f"The top prior {type(self.top).__name__} runs q(z2|x): it needs the model's "
                f"HierarchicalEncoder. Received: encoder={type(encoder).__name__}"
            )
        conditional = self.conditional
        return tfd.JointDistributionNamed(
            {
                "z2": self.top.distribution(top_encoder),
                "z1": lambda z2: conditional_gaussian(conditional, z2),
            }
        )

    def get_config(self):
        config = super().get_config()
        config.pop("latent_dim", None)
        config.update(
            top=keras.saving.serialize_keras_object(self.top),
            hidden_units=list(self.hidden_units),
            activation=self.activation,
            min_scale=self.min_scale,
            latent_dims=None if self.latent_dims is None else list(self.latent_dims),
        )
        return config


def HierarchicalVAE(
    input_shape,
    latent_dims=(40, 40),
    likelihood="bernoulli",
    prior=None,
    architecture="auto",
    hidden_units=None,
    activation="relu",
    filters=(32, 64),
    prior_hidden_units=None,
    min_scale=1e-4,
    name="hierarchical_vae",
    **kwargs,
):
    """A VAE with two stochastic layers (the VampPrior paper's HVAE).

    q(z2|x) q(z1|x, z2) and p(z2) p(z1|z2) p(x|z1, z2), trained by default with the ELBO
    E_q[log p(x|z1, z2)] - E_q[log q(z1, z2|x) - log p(z1, z2)] (Monte Carlo KL). The
    code is ``{"z1": [n, z1_dim], "z2": [n, z2_dim]}``: ``encode`` returns the joint
    posterior, ``decode`` and ``sample`` take and give such dicts.

    Args:
        input_shape: shape of one example, e.g. (784,).
        latent_dims: ``(z1_dim, z2_dim)`` (the paper: 40 and 40).
        likelihood: "bernoulli", "gaussian", "continuous_bernoulli", "laplace" or a
            probae decoder (it reads the latents concatenated).
        prior: the prior p(z2) on the top layer: None (N(0, I)), a probae prior over a
            flat code (``probae.VampPrior(500)``, ``probae.MixtureOfGaussiansPrior(10)``),
            or a whole ``HierarchicalPrior``.
        architecture, hidden_units, activation, filters: the networks of q(z2|x),
            q(z1|x, z2) and p(x|z1, z2) (the paper: two gated layers of 300,
            ``activation="glu"``, ``hidden_units=(300, 300)``).
        prior_hidden_units: the network of p(z1|z2) (None: ``hidden_units``, or
            (300, 300) when that is None too).
        min_scale: floor on every Gaussian scale.
        name: the model's name.
        **kwargs: passed to ``ProbabilisticAutoencoder`` (objective, seed, ...).

    Returns:
        A built ``ProbabilisticAutoencoder``.

    References: Tomczak and Welling 2018, VAE with a VampPrior (HVAE, section 3.2);
    Burda et al. 2016 (two stochastic layers).
    """
    input_shape = check_shape(input_shape, "input_shape")
    latent_dims = check_latent_dims(latent_dims)
    net = dict(architecture=architecture, activation=activation, filters=filters)
    if hidden_units is not None:
        net["hidden_units"] = tuple(check_hidden_units(hidden_units))
    if prior_hidden_units is None:
        prior_hidden_units = hidden_units if hidden_units is not None else (300, 300)
    if not isinstance(prior, HierarchicalPrior):
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(
                "prior must be None, a probae prior for the top layer p(z2) (for example "
                f"probae.VampPrior(500)) or a HierarchicalPrior. Received: prior={prior!r}"
            )
        prior = HierarchicalPrior(
            top=prior,
            hidden_units=prior_hidden_units,
            activation=activation,
            min_scale=min_scale,
        )
    encoder = HierarchicalEncoder(latent_dims, min_scale=min_scale, **net)
    decoder = make_decoder(likelihood, input_shape, **net)
    return ProbabilisticAutoencoder(
        encoder, decoder, prior=prior, input_shape=input_shape, name=name, **kwargs
    )
