"""Default tensor-to-tensor networks, built from the data's shape.

These are plain Keras ``Sequential`` models (tensors in, tensors out). Encoders and
decoders wrap them with a head that turns the network's output into distribution
parameters, so any Keras layer or model can replace them.
"""

import math

import keras

from probae._validation import check_size

ARCHITECTURES = ("auto", "mlp", "conv")


def resolve_architecture(architecture, event_shape):
    """Picks "mlp" for vectors and "conv" for H x W x C images when ``architecture="auto"``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {ARCHITECTURES}. Received: architecture={architecture!r}"
        )
    if architecture == "auto":
        return "conv" if len(event_shape) == 3 else "mlp"
    if architecture == "conv" and len(event_shape) != 3:
        raise ValueError(
            "architecture='conv' needs image inputs of shape (height, width, channels). "
            f"Received: an input shape of {tuple(event_shape)}"
        )
    return architecture


def declared_shape(network, which):
    """A Keras network's declared input or output shape (without the batch axis), or None
    when it has none yet (an unbuilt Sequential without an Input)."""
    try:
        shape = network.input_shape if which == "input" else network.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list) or shape is None or any(d is None for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def check_activation(activation):
    """``activation`` if Keras resolves it, else ValueError naming the argument."""
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            "activation must be a Keras activation name (such as 'relu', 'tanh' or 'glu') "
            f"or a callable. Received: activation={activation!r}"
        ) from None
    return activation


def check_hidden_units(hidden_units, name="hidden_units"):
    """Returns ``hidden_units`` as a tuple of positive ints."""
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    if isinstance(hidden_units, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of positive integers, not a string. Received: "
            f"{name}={hidden_units!r} (write ({hidden_units},) for one layer)"
        )
    try:
        units = tuple(hidden_units)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of positive integers. Received: {name}={hidden_units!r}"
        ) from None
    for u in units:
        check_size(u, name)
    return units


@keras.saving.register_keras_serializable(package="probae")
class GLU(keras.layers.Layer):
    """Gated linear unit (Dauphin et al. 2017): splits the last axis into halves a, b and
    returns a * sigmoid(b), so a layer with 2n outputs followed by GLU gives
    h = (W1 x + b1) * sigmoid(W2 x + b2), the gated layers of Tomczak and Welling's
    VampPrior networks."""

    def call(self, inputs):
        return keras.activations.glu(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (
            None if input_shape[-1] is None else input_shape[-1] // 2,
        )


def _layers(make, units, activation, **kwargs):
    """``make(units, activation=...)`` as a list of layers with ``units`` outputs;
    ``activation="glu"`` makes it gated: ``make(2 * units)`` then ``GLU``."""
    if activation == "glu":
        return [make(2 * units, activation=None, **kwargs), GLU()]
    return [make(units, activation=activation, **kwargs)]


def dense(units, activation):
    """The layers of one Dense layer with ``units`` outputs under ``activation`` (a list:
    Dense then GLU for "glu")."""
    return _layers(keras.layers.Dense, units, activation)


def _conv(units, activation, transpose=False):
    make = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return _layers(make, units, activation, kernel_size=3, strides=2, padding="same")


def mlp(hidden_units, activation, name=None):
    """A flattening MLP: Flatten, then one Dense layer per entry of ``hidden_units``."""
    layers = [keras.layers.Flatten()]
    for u in hidden_units:
        layers += dense(u, activation)
    return keras.Sequential(layers, name=name)


def conv_encoder(filters, hidden_units, activation, name=None):
    """Strided 3x3 convolutions (each halves height and width), then Dense layers."""
    layers = []
    for f in filters:
        layers += _conv(f, activation)
    layers.append(keras.layers.Flatten())
    for u in hidden_units:
        layers += dense(u, activation)
    return keras.Sequential(layers, name=name)


def conv_decoder(event_shape, filters, hidden_units, activation, name=None):
    """Dense layers, then transposed convolutions up to at least the image size.

    The output feature map has spatial size ``ceil(H / 2**n) * 2**n`` (n = len(filters)),
    never smaller than the image; the decoder head crops it to H x W exactly, so any
    image size works (for example 28 x 28 or 30 x 17).
    """
    height, width = event_shape[0], event_shape[1]
    factor = 2 ** len(filters)
    h0, w0 = math.ceil(height / factor), math.ceil(width / factor)
    first = filters[0] if filters else 32
    layers = []
    for u in hidden_units:
        layers += dense(u, activation)
    layers += dense(h0 * w0 * first, activation) + [keras.layers.Reshape((h0, w0, first))]
    for f in filters:
        layers += _conv(f, activation, transpose=True)
    return keras.Sequential(layers, name=name)
