"""Normalizing-flow posteriors: inverse autoregressive flows with Keras 3 conditioners.

q(z|x) is a diagonal Gaussian pushed through T steps of an inverse autoregressive flow
(IAF, Kingma et al. 2016). Step t maps its input z to

    z' = sigmoid(s_t(z, h)) * (z - m_t(z, h)),

where (m_t, s_t) come from a MADE network (Germain et al. 2015): output i depends on the
inputs before i in the step's ordering only, so the Jacobian is triangular and
log |det dz'/dz| = sum_i log sigmoid(s_ti). h is a context vector the encoder computes
from x. Orderings alternate between steps (left to right, then right to left). The gate
sigmoid(s) is the numerically stable form of the IAF paper (section 4); its bias starts at
``gate_bias`` so that every step starts close to the identity.

Design rules (docs/design.md): the conditioner is ``MADE``, a Keras 3 layer whose masked
Dense weights are its own variables, so ``fit`` trains them and ``save`` stores them (TFP's
``tfb.AutoregressiveNetwork`` is a tf_keras layer: inside a Keras 3 model its weights are
invisible and silently stay at their initial values). The bijector is TFP's:
``tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=...))``, whose forward
pass (sampling) is one network call per step and whose inverse (the density of a code that
was not just sampled) is TFP's autoregressive loop of ``latent_dim`` calls. A code drawn
from q(z|x) keeps its base point in TFP's bijector cache, so log q(z|x) of the model's own
samples (every objective and estimator) costs no inversion.

What a flow posterior supports (``probae.posteriors``): reparameterised samples, shared
noise (the flow applied to a shared base draw), the point estimate (the flow's image of
the base mean), every objective whose gradient differentiates through samples (ELBO, IWAE
with ``gradient_estimator="iwae"``, the Renyi bound), ``log_likelihood`` and anomaly
scores. ``IWAE(gradient_estimator="dreg")`` needs the posterior's parameters held
constant, which a flow's network parameters cannot be (``stop_parameter_gradients``
refuses it): training raises a ``ValueError`` saying to use ``gradient_estimator="iwae"``.
A ``VampPrior`` on a flow encoder with a context (``context_units > 0``) is refused with
a ``ValueError`` at the first use: its mixture components would be flows evaluated at
codes of other examples. Without a context it works, at the price of the autoregressive
inverse (``latent_dim`` network calls) for every component density.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probae import networks
from probae._validation import check_positive_int
from probae.encoders import GaussianEncoder

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["MADE", "iaf_bijector", "IAFEncoder"]


def _check_activation(activation, name):
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name} must be a Keras activation name or a callable. Received: {name}={activation!r}"
        ) from None
    return activation


def _check_float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number. Received: {name}={value!r}")
    return float(value)


def made_degrees(latent_dim, hidden_units, reverse=False):
    """The MADE degrees: inputs 1..d (reversed with ``reverse``), each hidden layer's units
    cycling through 1..max(d - 1, 1). Returns ``(input_degrees, [hidden degrees, ...])``."""
    inputs = np.arange(1, latent_dim + 1)
    if reverse:
        inputs = inputs[::-1]
    hidden = [np.arange(units) % max(latent_dim - 1, 1) + 1 for units in hidden_units]
    return inputs, hidden


def made_masks(latent_dim, hidden_units, reverse=False):
    """The 0/1 masks of MADE's layers (input -> hidden, hidden -> hidden, hidden -> output):
    a hidden unit of degree k sees inputs of degree <= k; output i (of degree d_i) sees
    hidden units of degree < d_i, so it depends on the inputs before i only."""
    inputs, hidden = made_degrees(latent_dim, hidden_units, reverse)
    masks = [(hidden[0][None, :] >= inputs[:, None])]
    for before, after in zip(hidden[:-1], hidden[1:]):
        masks.append(after[None, :] >= before[:, None])
    masks.append(inputs[None, :] > hidden[-1][:, None])
    return [m.astype("float32") for m in masks]


@keras.saving.register_keras_serializable(package="probae")
class MADE(keras.layers.Layer):
    """A masked autoencoder for distribution estimation as a Keras 3 layer: the
    conditioner of one IAF step.

    ``call(z, context)`` returns ``(m, s)``, each ``[..., latent_dim]``, where m_i and s_i
    depend on z_j for j before i in the layer's ordering (and on the whole context). The
    weights are masked Dense kernels (the masks are constants rebuilt from the config).
    The context enters the first hidden layer unmasked.

    Args:
        hidden_units: widths of the hidden layers (at least one).
        activation: their activation (Keras name or callable; default "elu", as in the
            IAF paper).
        reverse: order the latent dimensions right to left instead of left to right.
        context_dim: width of the context vector (0: none).
        gate_bias: initial bias of s (sigmoid(2) = 0.88: a step starts near the identity).

    References: Germain, Gregor, Murray and Larochelle 2015, MADE: Masked autoencoder for
    distribution estimation.
    """

    def __init__(
        self,
        hidden_units=(256, 256),
        activation="elu",
        reverse=False,
        context_dim=0,
        gate_bias=2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = networks.check_hidden_units(hidden_units, "hidden_units")
        if not self.hidden_units:
            raise ValueError(
                "hidden_units must hold at least one layer width. Received: hidden_units=()"
            )
        self.activation = _check_activation(activation, "activation")
        self._act = keras.activations.get(activation)
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be True or False. Received: reverse={reverse!r}")
        self.reverse = reverse
        if isinstance(context_dim, bool) or not isinstance(context_dim, (int, np.integer)):
            raise TypeError(f"context_dim must be an integer >= 0. Received: {context_dim!r}")
        if context_dim < 0:
            raise ValueError(f"context_dim must be an integer >= 0. Received: {context_dim!r}")
        self.context_dim = int(context_dim)
        self.gate_bias = _check_float(gate_bias, "gate_bias")

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.latent_dim = d
        masks = made_masks(d, self.hidden_units, self.reverse)
        self._masks = [tf.constant(m) for m in masks[:-1]]
        # The output layer gives m and s for every dimension: the mask twice, side by side.
        self._masks.append(tf.constant(np.concatenate([masks[-1], masks[-1]], axis=1)))
        widths = (d, *self.hidden_units, 2 * d)
        self.kernels, self.biases = [], []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(n_in, n_out),
                    initializer=keras.initializers.RandomNormal(stddev=0.01)
                    if last
                    else "glorot_uniform",
                )
            )
            bias_init = (
                keras.initializers.Constant(np.r_[np.zeros(d), np.full(d, self.gate_bias)])
                if last
                else "zeros"
            )
            self.biases.append(
                self.add_weight(name=f"bias_{i}", shape=(n_out,), initializer=bias_init)
            )
        self.context_kernel = None
        if self.context_dim:
            self.context_kernel = self.add_weight(
                name="context_kernel",
                shape=(self.context_dim, self.hidden_units[0]),
                initializer="glorot_uniform",
            )

    def call(self, z, context=None):
        z = tf.convert_to_tensor(z)
        d = self.latent_dim
        lead = tf.shape(z)[:-1]
        h = tf.reshape(z, [-1, d])
        for i, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self._masks)):
            h = tf.matmul(h, tf.convert_to_tensor(kernel) * mask) + bias
            if i == 0 and self.context_kernel is not None:
                if context is None:
                    raise ValueError(
                        f"context is required: this MADE was built with context_dim="
                        f"{self.context_dim}. Received: context=None"
                    )
                context = tf.convert_to_tensor(context)
                if z.shape.rank is not None and context.shape.rank is not None:
                    try:
                        joint = tf.broadcast_static_shape(z.shape[:-1], context.shape[:-1])
                    except ValueError:
                        joint = None
                    if joint is None or (
                        joint.is_fully_defined()
                        and z.shape[:-1].is_fully_defined()
                        and joint != z.shape[:-1]
                    ):
                        raise ValueError(
                            f"The flow's codes have batch shape {z.shape[:-1]} and its context "
                            f"{context.shape[:-1]}: each code must come from the example whose "
                            "context the flow holds. A flow posterior with a context cannot be "
                            "evaluated at codes of other examples (for example as the mixture "
                            "components of a VampPrior); use context_units=0 or another prior."
                        )
                c = tf.broadcast_to(context, tf.concat([lead, [self.context_dim]], 0))
                h = h + tf.matmul(tf.reshape(c, [-1, self.context_dim]), self.context_kernel)
            if i < len(self.kernels) - 1:
                h = self._act(h)
        h = tf.reshape(h, tf.concat([lead, [2 * d]], 0))
        m, s = tf.split(h, 2, axis=-1)
        return m, s

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_units=list(self.hidden_units),
            activation=self.activation
            if not callable(self.activation)
            else keras.activations.serialize(self.activation),
            reverse=self.reverse,
            context_dim=self.context_dim,
            gate_bias=self.gate_bias,
        )
        return config


def _shift_and_log_scale(made, context, y):
    """TFP's MaskedAutoregressiveFlow convention from MADE's (m, s): the flow's inverse,
    our IAF step, is (y - shift) * exp(-log_scale) = sigmoid(s) * (y - m)."""
    m, s = made(y, context)
    return m, tf.math.softplus(-s)


def iaf_bijector(mades, context=None):
    """The IAF as a TFP bijector: ``mades[0]``'s step first, then the next.

    Each step is ``tfb.Invert(tfb.MaskedAutoregressiveFlow(...))`` with the MADE layer as
    its conditioner: its forward pass z -> sigmoid(s(z)) * (z - m(z)) is one network call
    and its forward log-determinant sum_i log sigmoid(s_i(z)).

    Args:
        mades: built ``MADE`` layers, one per step.
        context: the context ``[batch, context_dim]`` (None for MADEs without one).
    """
    steps = [
        tfb.Invert(
            tfb.MaskedAutoregressiveFlow(
                shift_and_log_scale_fn=functools.partial(_shift_and_log_scale, made, context)
            )
        )
        for made in mades
    ]
    return tfb.Chain(steps[::-1])  # tfb.Chain applies its last bijector first


@keras.saving.register_keras_serializable(package="probae")
class IAFEncoder(GaussianEncoder):
    """q(z|x): a diagonal Gaussian N(mu(x), diag(sigma(x)^2)) pushed through an inverse
    autoregressive flow (see the module doc), a ``tfd.TransformedDistribution``.

    The encoder's network (the default MLP or CNN, or yours) gives mu, sigma (its head, as
    ``GaussianEncoder``) and a context h(x) (a Dense layer on the same features, with
    ``context_units`` outputs) that every flow step reads. With ``num_flows`` steps of
    ``flow_hidden_units`` each, log q(z|x) = log N(z_0; mu, sigma) - sum_t sum_i
    log sigmoid(s_ti), z_0 the base point of z.

    Args:
        latent_dim: size of the code z.
        num_flows: T, the number of IAF steps (>= 1).
        flow_hidden_units: widths of each step's MADE hidden layers.
        flow_activation: the MADE layers' activation (default "elu").
        context_units: width of the context h(x) (0: the steps see z only).
        network, min_scale, **kwargs: see ``GaussianEncoder``.

    Raises:
        ValueError, TypeError: an option of the wrong type or range (named in the message).

    References: Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling 2016, Improved
    variational inference with inverse autoregressive flow; Germain et al. 2015 (MADE).
    """

    # IWAE(gradient_estimator='dreg') cannot stop the gradients of this posterior's
    # parameters (objectives.IWAE.check refuses it when the model is built).
    stoppable_posterior = False

    def __init__(
        self,
        latent_dim=None,
        num_flows=2,
        flow_hidden_units=(256, 256),
        flow_activation="elu",
        context_units=64,
        network=None,
        min_scale=1e-4,
        **kwargs,
    ):
        self.num_flows = check_positive_int(num_flows, "num_flows")
        self.flow_hidden_units = networks.check_hidden_units(flow_hidden_units, "flow_hidden_units")
        if not self.flow_hidden_units:
            raise ValueError(
                "flow_hidden_units must hold at least one layer width. Received: "
                "flow_hidden_units=()"
            )
        self.flow_activation = _check_activation(flow_activation, "flow_activation")
        if isinstance(context_units, bool) or not isinstance(context_units, (int, np.integer)):
            raise TypeError(
                f"context_units must be an integer >= 0. Received: context_units={context_units!r}"
            )
        if context_units < 0:
            raise ValueError(
                f"context_units must be an integer >= 0. Received: context_units={context_units!r}"
            )
        self.context_units = int(context_units)
        super().__init__(latent_dim, network=network, min_scale=min_scale, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        if self.head is not None:
            feat_dim = int(self.head.kernel.shape[0])
        else:  # a user's network giving the parameters: the context reads them
            feat_dim = 2 * self.latent_dim
        self.context_head = None
        if self.context_units:
            self.context_head = keras.layers.Dense(
                self.context_units, activation="elu", dtype="float32", name="context"
            )
            self.context_head.build((None, feat_dim))
        self.flows = []
        for t in range(self.num_flows):
            made = MADE(
                self.flow_hidden_units,
                self.flow_activation,
                reverse=bool(t % 2),
                context_dim=self.context_units,
                dtype="float32",
                name=f"made_{t}",
            )
            made.build((None, self.latent_dim))
            self.flows.append(made)

    def call(self, inputs, condition=None):
        condition = self._check_condition(condition)
        if self.head is None:
            out = self.network(inputs)
            outputs = out if isinstance(out, (list, tuple)) else [out]
            flat = [tf.reshape(tf.cast(o, "float32"), [tf.shape(o)[0], -1]) for o in outputs]
            features = params = tf.concat(flat, axis=-1)
        else:
            features = self._run_network(inputs, condition, self._condition_first)
            features = tf.reshape(features, [tf.shape(features)[0], -1])
            params = self.head(features)
        base = self.distribution(params)
        context = None
        if self.context_head is not None:
            context = self.context_head(tf.cast(features, "float32"))
        return tfd.TransformedDistribution(base, iaf_bijector(self.flows, context))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_flows=self.num_flows,
            flow_hidden_units=list(self.flow_hidden_units),
            flow_activation=self.flow_activation
            if not callable(self.flow_activation)
            else keras.activations.serialize(self.flow_activation),
            context_units=self.context_units,
        )
        return config
