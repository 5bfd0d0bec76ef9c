"""Missing values: models that marginalise NaN entries instead of imputing them.

A NaN in x is a missing entry. A model whose encoder and decoder both declare
``allows_missing = True`` accepts it (``probae.inputs.allows_missing``) and every
likelihood it reports is that of the observed entries, log p(x_obs) (MIWAE, Mattei and
Frellsen 2019):

- the encoder (``MaskedGaussianEncoder``, ``MaskedDeterministicEncoder``) is told which
  entries are missing: its network reads ``[x with NaN set to 0, the observed mask]``
  (concatenated on the last axis), so q(z | x_obs) can depend on the pattern;
- the decoder (``Masked*Decoder``) returns ``tfd.Independent(probae.distributions.Masked(
  ...))``, whose ``log_prob`` sums log p(x_j | z) over the observed entries only (the
  per-feature terms of missing entries are exactly 0). Each feature is independent given
  z, so p(x_obs | z) is the product over observed entries and the importance-sampled
  estimate ``probae.estimators`` computes is an estimate of log p(x_obs): no estimator or
  objective changes.

``marginalize_missing(model)`` returns a copy of a model (same configuration, fresh
weights) with these parts; the tabular entry point (``probae.tables.tabular_model``) and
``probae.AnomalyDetector`` use it for tables.

References: Mattei and Frellsen 2019, MIWAE: Deep generative modelling and imputation of
incomplete data sets.
"""

import keras
import numpy as np
import tensorflow as tf

from probae import networks
from probae.decoders import (
    BernoulliDecoder,
    GaussianDecoder,
    LaplaceDecoder,
    MixedDecoder,
    StudentTDecoder,
)
from probae.distributions import Masked
from probae.encoders import DeterministicEncoder, GaussianEncoder
from probae.model import ProbabilisticAutoencoder

__all__ = [
    "MaskedGaussianEncoder",
    "MaskedDeterministicEncoder",
    "MaskedGaussianDecoder",
    "MaskedStudentTDecoder",
    "MaskedLaplaceDecoder",
    "MaskedBernoulliDecoder",
    "MaskedMixedDecoder",
    "marginalize_missing",
]


class _ObservedMaskInput:
    """Encoder mixin: the network reads ``[x with NaN set to 0, observed mask]``."""

    allows_missing = True

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        d = int(input_shape[-1])
        declared = None if self.network is None else networks.declared_shape(self.network, "input")
        if declared is not None and declared[-1] != 2 * d:
            raise ValueError(
                f"A {type(self).__name__} reads 2 x {d} = {2 * d} features per example (the "
                f"values with NaN set to 0, then the observed mask), but its encoder network "
                f"declares {declared[-1]} input features. Give a network with "
                f"keras.Input(({2 * d},)) to marginalise missing entries, or fill them."
            )
        super().build((*input_shape[:-1], 2 * d))
        self.event_shape = tuple(int(d) for d in input_shape[1:])

    def call(self, inputs, condition=None):
        x = tf.convert_to_tensor(inputs)
        observed = tf.logical_not(tf.math.is_nan(x))
        filled = tf.where(observed, x, tf.zeros_like(x))
        return super().call(
            tf.concat([filled, tf.cast(observed, x.dtype)], axis=-1), condition=condition
        )


class _MarginalLikelihood:
    """Decoder mixin: log p(x|z) sums over the observed (non-NaN) entries only."""

    allows_missing = True

    def distribution(self, params):
        return Masked(super().distribution(params))

    def check_support(self, x, name="x"):
        x = np.asarray(x)
        super().check_support(np.where(np.isnan(x), 0.0, x), name)


@keras.saving.register_keras_serializable(package="probae")
class MaskedGaussianEncoder(_ObservedMaskInput, GaussianEncoder):
    """``GaussianEncoder`` told which entries are missing (NaN): q(z | x_obs).

    The network reads ``[x with NaN set to 0, observed mask]``, twice the features of x.
    Arguments as ``probae.GaussianEncoder``.
    """


@keras.saving.register_keras_serializable(package="probae")
class MaskedDeterministicEncoder(_ObservedMaskInput, DeterministicEncoder):
    """``DeterministicEncoder`` told which entries are missing (NaN).

    The network reads ``[x with NaN set to 0, observed mask]``. Arguments as
    ``probae.DeterministicEncoder``.
    """


@keras.saving.register_keras_serializable(package="probae")
class MaskedGaussianDecoder(_MarginalLikelihood, GaussianDecoder):
    """``GaussianDecoder`` whose log_prob is over the observed (non-NaN) entries only."""


@keras.saving.register_keras_serializable(package="probae")
class MaskedStudentTDecoder(_MarginalLikelihood, StudentTDecoder):
    """``StudentTDecoder`` whose log_prob is over the observed (non-NaN) entries only."""


@keras.saving.register_keras_serializable(package="probae")
class MaskedLaplaceDecoder(_MarginalLikelihood, LaplaceDecoder):
    """``LaplaceDecoder`` whose log_prob is over the observed (non-NaN) entries only."""


@keras.saving.register_keras_serializable(package="probae")
class MaskedBernoulliDecoder(_MarginalLikelihood, BernoulliDecoder):
    """``BernoulliDecoder`` whose log_prob is over the observed (non-NaN) entries only."""


@keras.saving.register_keras_serializable(package="probae")
class MaskedMixedDecoder(_MarginalLikelihood, MixedDecoder):
    """``MixedDecoder`` whose log_prob is over the observed (non-NaN) entries only."""


ENCODERS = {
    GaussianEncoder: MaskedGaussianEncoder,
    DeterministicEncoder: MaskedDeterministicEncoder,
}
DECODERS = {
    GaussianDecoder: MaskedGaussianDecoder,
    StudentTDecoder: MaskedStudentTDecoder,
    LaplaceDecoder: MaskedLaplaceDecoder,
    BernoulliDecoder: MaskedBernoulliDecoder,
    MixedDecoder: MaskedMixedDecoder,
}


def _masked_part(part, table, role):
    if getattr(part, "allows_missing", False):
        return part
    cls = table.get(type(part))
    if cls is None:
        raise TypeError(
            f"marginalize_missing supports the {role}s {sorted(c.__name__ for c in table)} "
            f"(or one that declares allows_missing = True). Received: a {role} of type "
            f"{type(part).__name__}"
        )
    return cls.from_config(part.get_config())


def marginalize_missing(model):
    """A copy of ``model`` that marginalises missing (NaN) entries: log p(x_obs).

    The encoder and the decoder are replaced by their ``Masked*`` counterparts with the
    same configuration (the encoder's network then reads twice the features: x with NaN
    set to 0 and the observed mask); the prior, objective and other settings are kept.
    The copy has fresh weights: train it. A part that already declares
    ``allows_missing = True`` is kept as it is.

    Args:
        model: a ``probae.ProbabilisticAutoencoder`` with a Gaussian or deterministic
            encoder and a Gaussian, Student-t, Laplace, Bernoulli or mixed decoder.

    Returns:
        A new ``ProbabilisticAutoencoder``.

    Raises:
        TypeError: ``model`` is not a ``ProbabilisticAutoencoder``, or one of its parts
            has no masked counterpart.
    """
    if not isinstance(model, ProbabilisticAutoencoder):
        raise TypeError(
            f"model must be a probae.ProbabilisticAutoencoder. Received: model={type(model).__name__}"
        )
    config = model.get_config()
    config["encoder"] = keras.saving.serialize_keras_object(
        _masked_part(model.encoder, ENCODERS, "encoder")
    )
    config["decoder"] = keras.saving.serialize_keras_object(
        _masked_part(model.decoder, DECODERS, "decoder")
    )
    return type(model).from_config(config)
