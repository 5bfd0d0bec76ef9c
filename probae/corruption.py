"""Input corruptions for denoising autoencoders.

A corruption is a small serialisable object called as ``corruption(x, seed)`` with a
stateless seed (a shape-[2] int tensor); it returns a corrupted copy of the batch x. A
model with ``corruption=...`` feeds the corrupted x to its encoder during training only;
the likelihood p(x|z) is always evaluated at the clean x, so training maximises
E_{x~ ~ C(x~|x)} ELBO(x | x~), the denoising criterion of Vincent et al. (2008) and, for a
VAE, of Im et al. (2017). Evaluation, encoding and reconstruction see the input as given.
"""

import numbers

import keras
import tensorflow as tf

from probae._serializable import ConfigObject, deserialize_as
from probae._validation import check_non_negative_float
from probae.seeds import batch_seed, seed_tensor

__all__ = [
    "Corruption",
    "GaussianNoise",
    "MaskingNoise",
    "SaltAndPepperNoise",
    "get_corruption",
]


def check_rate(value, name="rate"):
    """Returns ``value`` as a float in [0, 1), or raises naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def _seed(seed, salt):
    """A stateless seed for the corruption, independent of the model's other draws."""
    if seed is None:
        seed = seed_tensor(None)
    return batch_seed(seed, salt)


class Corruption(ConfigObject):
    """Base class: ``corruption(x, seed)`` returns a corrupted copy of the batch x."""

    _salt = 0

    def __call__(self, x, seed=None):
        x = tf.convert_to_tensor(x)
        return self.corrupt(x, _seed(seed, self._salt))

    def corrupt(self, x, seed):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="probae")
class MaskingNoise(Corruption):
    """Masking noise: each input element is set to 0 with probability ``rate``.

    Args:
        rate: fraction of elements dropped, in [0, 1).

    References: Vincent et al. 2008, Extracting and composing robust features with
    denoising autoencoders.
    """

    _salt = 11

    def __init__(self, rate=0.25):
        self.rate = check_rate(rate, "rate")

    def corrupt(self, x, seed):
        keep = tf.random.stateless_uniform(tf.shape(x), seed) >= self.rate
        return tf.where(keep, x, tf.zeros_like(x))

    def get_config(self):
        return {"rate": self.rate}


@keras.saving.register_keras_serializable(package="probae")
class SaltAndPepperNoise(Corruption):
    """Salt-and-pepper noise: with probability ``rate`` an element is set to ``low`` or
    ``high`` (each with probability one half).

    Args:
        rate: fraction of elements corrupted, in [0, 1).
        low: the "pepper" value (default 0, for data in [0, 1]).
        high: the "salt" value (default 1).

    References: Vincent et al. 2010, Stacked denoising autoencoders (section 4.1).
    """

    _salt = 12

    def __init__(self, rate=0.25, low=0.0, high=1.0):
        self.rate = check_rate(rate, "rate")
        if (
            isinstance(low, bool)
            or isinstance(high, bool)
            or not all(isinstance(v, numbers.Real) for v in (low, high))
            or not float(low) < float(high)
        ):
            raise ValueError(
                f"low and high must be numbers with low < high. Received: low={low!r}, high={high!r}"
            )
        self.low, self.high = float(low), float(high)

    def corrupt(self, x, seed):
        u = tf.random.stateless_uniform(tf.shape(x), seed)
        noisy = tf.where(u < self.rate / 2, tf.fill(tf.shape(x), self.low), x)
        return tf.where(
            (u >= self.rate / 2) & (u < self.rate), tf.fill(tf.shape(x), self.high), noisy
        )

    def get_config(self):
        return {"rate": self.rate, "low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="probae")
class GaussianNoise(Corruption):
    """Additive isotropic Gaussian noise: x~ = x + stddev * epsilon, epsilon ~ N(0, I).

    Args:
        stddev: the noise's standard deviation (>= 0), in the data's units.
        clip: None, or a ``(low, high)`` pair the noisy input is clipped to (for
            example ``(0, 1)`` for images).

    References: Vincent et al. 2010, Stacked denoising autoencoders (section 4.1).
    """

    _salt = 13

    def __init__(self, stddev=0.1, clip=None):
        self.stddev = check_non_negative_float(stddev, "stddev")
        if clip is not None:
            if (
                not isinstance(clip, (tuple, list))
                or len(clip) != 2
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in clip)
                or not clip[0] < clip[1]
            ):
                raise ValueError(
                    f"clip must be None or a pair (low, high) with low < high. Received: clip={clip!r}"
                )
            clip = (float(clip[0]), float(clip[1]))
        self.clip = clip

    def corrupt(self, x, seed):
        noisy = x + self.stddev * tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype)
        if self.clip is not None:
            noisy = tf.clip_by_value(noisy, self.clip[0], self.clip[1])
        return noisy

    def get_config(self):
        return {"stddev": self.stddev, "clip": None if self.clip is None else list(self.clip)}


def get_corruption(corruption, name="corruption"):
    """Returns a ``Corruption`` from None, a rate (masking noise), an instance or a config.

    Args:
        corruption: None, a float rate in [0, 1) (masking noise with that rate), a
            ``Corruption`` or its serialised config.
        name: the argument's name for error messages.

    Raises:
        ValueError: a rate outside [0, 1).
        TypeError: anything else.
    """
    if corruption is None:
        return None
    if isinstance(corruption, numbers.Real) and not isinstance(corruption, bool):
        return MaskingNoise(check_rate(corruption, name))
    obj = deserialize_as(corruption, Corruption)
    if obj is not None:
        return obj
    raise TypeError(
        f"{name} must be None, a rate in [0, 1) (masking noise) or a probae corruption such "
        f"as probae.GaussianNoise(0.3). Received: {name}={corruption!r}"
    )
