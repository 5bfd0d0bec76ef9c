"""Code penalties: terms on the code z that a model subtracts from its objective.

A penalty is a small serialisable Keras object called on the batch of codes (the
posterior means, which for a point-mass encoder are the codes themselves). It returns one
number per example; the model subtracts it from the per-example objective and logs its
batch mean under the penalty's ``name`` (for example ``sparsity``) in ``fit`` and
``evaluate``. The reported ``elbo`` is unchanged: a penalty changes what training
optimises, never the bound that is reported.
"""

import keras
import tensorflow as tf

from probae._serializable import ConfigObject, deserialize_as
from probae._validation import check_non_negative_float

__all__ = ["CodePenalty", "SparsityPenalty", "get_penalty"]


class CodePenalty(ConfigObject):
    """Base class of penalties on the code.

    Subclasses implement ``__call__(code)`` returning a ``[batch]`` tensor (a penalty per
    example; batch-level terms are broadcast) and ``get_config``.

    Attributes:
        name: the name of the metric the model logs for this penalty.
    """

    name = "penalty"

    def __call__(self, code):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="probae")
class SparsityPenalty(CodePenalty):
    """The sparse autoencoder's penalty on codes in (0, 1) (sigmoid units).

    For a batch of codes h (``[batch, latent_dim]``) with batch-mean activation
    rho_hat_j = mean_n h_nj, the penalty of example n is

        kl_weight * sum_j KL(rho || rho_hat_j) + l1_weight * sum_j |h_nj|,

    where KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) /
    (1 - rho_hat)) is the KL divergence between Bernoulli(rho) and Bernoulli(rho_hat). The
    first term (the same for every example of the batch) pulls each unit's mean activation
    to the target rate rho; the second is an L1 activity penalty on each code.

    Args:
        sparsity: rho, the target mean activation of each code unit, in (0, 1).
        kl_weight: weight of the KL-divergence term (>= 0).
        l1_weight: weight of the L1 activity term (>= 0).

    Raises:
        ValueError: ``sparsity`` outside (0, 1) or a negative weight.

    References: Ng 2011, Sparse autoencoder (CS294A lecture notes); Lee, Ekanadham and Ng
    2008, Sparse deep belief net model for visual area V2 (target activation rates).
    """

    name = "sparsity"

    def __init__(self, sparsity=0.05, kl_weight=1.0, l1_weight=0.0):
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
            raise TypeError(f"sparsity must be a number in (0, 1). Received: sparsity={sparsity!r}")
        if not 0.0 < float(sparsity) < 1.0:
            raise ValueError(
                f"sparsity must be a number in the open interval (0, 1). Received: sparsity={sparsity!r}"
            )
        self.sparsity = float(sparsity)
        self.kl_weight = check_non_negative_float(kl_weight, "kl_weight")
        self.l1_weight = check_non_negative_float(l1_weight, "l1_weight")

    def kl_term(self, code):
        """sum_j KL(rho || rho_hat_j), a scalar for the batch."""
        rho = self.sparsity
        eps = 1e-6
        rho_hat = tf.clip_by_value(tf.reduce_mean(code, axis=0), eps, 1.0 - eps)
        kl = rho * tf.math.log(rho / rho_hat) + (1.0 - rho) * tf.math.log(
            (1.0 - rho) / (1.0 - rho_hat)
        )
        return tf.reduce_sum(kl)

    def __call__(self, code):
        code = tf.convert_to_tensor(code)
        l1 = tf.reduce_sum(tf.abs(code), axis=-1)
        return self.kl_weight * self.kl_term(code) + self.l1_weight * l1

    def get_config(self):
        return {"sparsity": self.sparsity, "kl_weight": self.kl_weight, "l1_weight": self.l1_weight}


def get_penalty(penalty):
    """Returns ``penalty`` as a ``CodePenalty`` (None stays None; a config dict is deserialised)."""
    if penalty is None:
        return None
    obj = deserialize_as(penalty, CodePenalty)
    if obj is not None:
        return obj
    raise TypeError(
        "penalty must be None or a probae code penalty (for example "
        f"probae.SparsityPenalty(0.05)). Received: penalty={penalty!r}"
    )
