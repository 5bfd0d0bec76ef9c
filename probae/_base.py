"""The part encoders and decoders share: a network, an optional condition, a config.

How a network's output becomes distribution parameters (one rule, for encoders and
decoders alike):

- probae's default networks always end in a float32 head (a Dense layer, or a 3 x 3
  convolution for images) that outputs the parameters;
- a user's network (``network=``) is used as it is: when its output already has the
  parameters' size (see each encoder and decoder) it is read as the parameters and
  nothing is added. When it does not, ``head="auto"`` (the default) adds a head and says
  so in a warning and in the model's ``summary()``; ``head=True`` adds one without a
  warning; ``head=False`` raises a ``ValueError`` naming both widths.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from probae import networks
from probae._validation import check_shape


def serialize_network(network):
    return None if network is None else keras.saving.serialize_keras_object(network)


def deserialize_network(config):
    return None if config is None else keras.saving.deserialize_keras_object(config)


HEAD_OPTIONS = ("auto", True, False)


def output_width(output):
    """The number of values per example of a network output (a tensor or a list)."""
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return sum(int(np.prod(o.shape[1:])) for o in outputs)


class NetworkLayer(keras.layers.Layer):
    """A Keras layer holding a tensor-to-tensor network and an optional condition.

    Subclasses build the default network in ``_default_network`` and a head on top.

    Args:
        network: any Keras layer or model mapping tensors to features, or None for a
            default built from the data's shape.
        architecture: "auto" (an MLP for vectors, a CNN for H x W x C images), "mlp" or
            "conv"; used only when ``network`` is None.
        hidden_units: widths of the default network's dense layers.
        activation: activation of the default network: a Keras activation name or
            callable; "glu" makes every layer gated (h = (W1 x + b1) * sigmoid(W2 x + b2),
            the gated layers of the VampPrior paper's networks) with the same widths.
        filters: channels of the default CNN's convolutions.
        condition_shape: shape of one condition vector (conditional models), or None.
        head: "auto", True or False: whether a user's network gets a head (see the
            module doc). probae's default networks always have one.
    """

    default_hidden_units = (256, 128)

    def __init__(
        self,
        network=None,
        architecture="auto",
        hidden_units=None,
        activation="relu",
        filters=(32, 64),
        condition_shape=None,
        head="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            head not in HEAD_OPTIONS
            or isinstance(head, (int, float))
            and not isinstance(head, bool)
        ):
            raise ValueError(f"head must be one of {HEAD_OPTIONS}. Received: head={head!r}")
        if network is not None and not isinstance(network, keras.layers.Layer):
            raise TypeError(
                "network must be a Keras layer or model mapping tensors to features. "
                f"Received: network={network!r}"
            )
        if architecture not in networks.ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {networks.ARCHITECTURES}. "
                f"Received: architecture={architecture!r}"
            )
        self.network = network
        self._user_network = network is not None
        self.head_option = head
        self.added_head = False  # set at build when probae puts a head on a user's network
        self.architecture = architecture
        self.hidden_units = networks.check_hidden_units(
            self.default_hidden_units if hidden_units is None else hidden_units
        )
        self.activation = networks.check_activation(activation)
        self.filters = networks.check_hidden_units(filters, "filters")
        self.condition_shape = (
            None if condition_shape is None else check_shape(condition_shape, "condition_shape")
        )

    def _use_head(self, fits, expected, received):
        """Whether to put a head on the network (see the module doc), warning if asked to."""
        if not self._user_network or self.head_option is True:
            return True
        if fits:
            return False
        if self.head_option is False:
            raise ValueError(
                f"{type(self).__name__}: your network's output does not fit and head=False. "
                f"Expected: {expected}. Received: {received}. Change the network's last "
                "layer, or pass head=True to let probae add a Dense head."
            )
        self.added_head = True
        warnings.warn(
            f"{type(self).__name__}: your network's output does not fit ({received}; "
            f"expected {expected}), so probae added a Dense head on top of it. Make the "
            "last layer fit to use the network as it is, or pass head=True (no warning) "
            "or head=False (an error instead).",
            UserWarning,
            stacklevel=4,
        )
        return True

    @property
    def condition_dim(self):
        return 0 if self.condition_shape is None else int(np.prod(self.condition_shape))

    def _check_condition(self, condition, batch_size=None):
        if self.condition_shape is None:
            if condition is not None:
                raise ValueError(
                    f"condition must be None: {self.name} was not built for a condition. "
                    "Pass condition_shape=... to use one."
                )
            return None
        if condition is None:
            raise ValueError(
                f"condition is required: {self.name} was built with "
                f"condition_shape={self.condition_shape}. Received: condition=None"
            )
        condition = tf.cast(condition, self.compute_dtype)
        condition = tf.reshape(condition, [-1, self.condition_dim])
        return condition

    def _run_network(self, inputs, condition, condition_first):
        """Runs the network, joining the condition before it or after it."""
        if condition is not None and condition_first:
            inputs = tf.concat([tf.reshape(inputs, [tf.shape(inputs)[0], -1]), condition], -1)
        features = self.network(inputs)
        if condition is not None and not condition_first:
            features = tf.reshape(features, [tf.shape(features)[0], -1])
            features = tf.concat([features, tf.cast(condition, features.dtype)], -1)
        return features

    def get_config(self):
        config = super().get_config()
        config.update(
            network=serialize_network(self.network if self._user_network else None),
            architecture=self.architecture,
            hidden_units=list(self.hidden_units),
            activation=(
                keras.activations.serialize(self.activation)
                if callable(self.activation)
                else self.activation
            ),
            filters=list(self.filters),
            condition_shape=None if self.condition_shape is None else list(self.condition_shape),
            head=self.head_option,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Files saved before the head option always had a head on a user's network.
        config.setdefault("head", True)
        config["network"] = deserialize_network(config.get("network"))
        if isinstance(config.get("activation"), dict):
            config["activation"] = keras.activations.deserialize(config["activation"])
        return cls(**config)
