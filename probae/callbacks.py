"""Keras callbacks that anneal a model's KL weight beta during ``fit``.

The model keeps beta in a non-trainable variable (``model.beta_variable``), read by the
compiled training step at every step, so a callback can change it between steps. Each
schedule sets beta at the start of every epoch (``per="epoch"``, t = the epoch index) or
of every training step (``per="step"``, t = the optimizer's step count, which keeps
counting across ``fit`` calls), and writes the beta in force at the end of each epoch into
the epoch's logs, so it appears in ``History.history["beta"]`` (and in CSVLogger,
TensorBoard, ...). ``schedule.betas`` lists every (t, beta) the callback set.
"""

import numbers

import keras

from probae._validation import check_non_negative_float, check_positive_int

__all__ = ["BetaSchedule", "LinearBetaWarmup", "CyclicalBetaSchedule"]

PER = ("epoch", "step")


class BetaSchedule(keras.callbacks.Callback):
    """Base class: sets ``model.beta = value(t)``; subclasses implement ``value``.

    Args:
        per: "epoch" (t = epoch index, from 0) or "step" (t = optimizer step, from 0).
    """

    @property
    def supports_steps_per_execution(self):
        # A per-step schedule sets beta before every batch.
        return self.per == "epoch"

    def __init__(self, per="epoch"):
        super().__init__()
        if per not in PER:
            raise ValueError(f"per must be one of {PER}. Received: per={per!r}")
        self.per = per
        self.betas = []

    def value(self, t):
        """The beta at time t (an epoch or a step index, from 0)."""
        raise NotImplementedError

    def _set(self, t):
        beta = float(self.value(t))
        self.model.beta = beta
        self.betas.append((t, beta))

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "beta_variable"):
            raise TypeError(
                f"{type(self).__name__} needs a probae model with a KL weight (beta_variable). "
                f"Received: a {type(self.model).__name__}"
            )
        if getattr(self.model, "objective", "elbo") != "elbo":
            raise ValueError(
                f"{type(self).__name__} anneals the ELBO's KL weight; the model's objective "
                f"is {self.model.objective!r}, which has none."
            )

    def on_epoch_begin(self, epoch, logs=None):
        if self.per == "epoch":
            self._set(int(epoch))

    def on_train_batch_begin(self, batch, logs=None):
        if self.per == "step":
            self._set(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = self.model.beta


@keras.saving.register_keras_serializable(package="probae")
class LinearBetaWarmup(BetaSchedule):
    """Linear KL warm-up: beta(t) = start + (end - start) * min(t / warmup, 1).

    beta rises linearly from ``start`` at t = 0 to ``end`` at t = ``warmup`` and stays
    there. Training then maximises E_q[log p(x|z)] - beta(t) KL(q(z|x) || p(z)), which is
    the ELBO once beta = 1; warm-up helps avoid posterior collapse early in training.

    Args:
        warmup: number of epochs (or steps) to reach ``end``.
        start: beta at t = 0 (>= 0).
        end: beta after the warm-up (>= 0).
        per: "epoch" or "step".

    References: Bowman et al. 2016, Generating sentences from a continuous space;
    Sonderby et al. 2016, Ladder variational autoencoders.
    """

    def __init__(self, warmup, start=0.0, end=1.0, per="epoch"):
        super().__init__(per=per)
        self.warmup = check_positive_int(warmup, "warmup")
        self.start = check_non_negative_float(start, "start")
        self.end = check_non_negative_float(end, "end")

    def value(self, t):
        return self.start + (self.end - self.start) * min(t / self.warmup, 1.0)

    def get_config(self):
        return {"warmup": self.warmup, "start": self.start, "end": self.end, "per": self.per}


@keras.saving.register_keras_serializable(package="probae")
class CyclicalBetaSchedule(BetaSchedule):
    """Cyclical KL annealing: beta repeats a ramp-then-hold cycle of length ``period``.

    With tau = (t mod period) / period, beta(t) = start + (end - start) * min(tau / ratio,
    1): within each cycle beta rises linearly over the first ``ratio`` of it and holds
    ``end`` for the rest.

    Args:
        period: length of one cycle in epochs (or steps).
        ratio: fraction of each cycle spent rising, in (0, 1].
        start: beta at the start of each cycle (>= 0).
        end: beta at the top of each cycle (>= 0).
        per: "epoch" or "step" (the paper anneals per step).

    References: Fu et al. 2019, Cyclical annealing schedule: a simple approach to
    mitigating KL vanishing.
    """

    def __init__(self, period, ratio=0.5, start=0.0, end=1.0, per="step"):
        super().__init__(per=per)
        self.period = check_positive_int(period, "period")
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be a number in (0, 1]. Received: ratio={ratio!r}")
        self.ratio = float(ratio)
        self.start = check_non_negative_float(start, "start")
        self.end = check_non_negative_float(end, "end")

    def value(self, t):
        tau = (t % self.period) / self.period
        return self.start + (self.end - self.start) * min(tau / self.ratio, 1.0)

    def get_config(self):
        return {
            "period": self.period,
            "ratio": self.ratio,
            "start": self.start,
            "end": self.end,
            "per": self.per,
        }
