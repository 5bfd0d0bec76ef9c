"""The part encoders and decoders share: a network, an optional condition, a config."""

import keras
import numpy as np
import tensorflow as tf

from probae import networks
from probae._validation import check_shape


def serialize_network(network):
    return None if network is None else keras.saving.serialize_keras_object(network)


def deserialize_network(config):
    return None if config is None else keras.saving.deserialize_keras_object(config)


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
        **kwargs,
    ):
        super().__init__(**kwargs)
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
        self.architecture = architecture
        self.hidden_units = networks.check_hidden_units(
            self.default_hidden_units if hidden_units is None else hidden_units
        )
        try:
            keras.activations.get(activation)
        except (ValueError, TypeError):
            raise ValueError(
                "activation must be a Keras activation name (such as 'relu', 'tanh' or 'glu') "
                f"or a callable. Received: activation={activation!r}"
            ) from None
        self.activation = activation
        self.filters = networks.check_hidden_units(filters, "filters")
        self.condition_shape = None if condition_shape is None else check_shape(
            condition_shape, "condition_shape"
        )

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
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = deserialize_network(config.get("network"))
        if isinstance(config.get("activation"), dict):
            config["activation"] = keras.activations.deserialize(config["activation"])
        return cls(**config)
