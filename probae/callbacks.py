"""Keras callbacks: KL-weight schedules, the NaN guard and exact resuming.

- ``BetaSchedule``, ``LinearBetaWarmup``, ``CyclicalBetaSchedule``: anneal an annealable
  objective weight (the ELBO's beta) during ``fit``. The model keeps beta in a
  non-trainable variable (``model.beta_variable``), read by the compiled training step at
  every step, so a callback can change it between steps. Each schedule sets beta at the
  start of every epoch (``per="epoch"``, t = the epoch index) or of every training step
  (``per="step"``, t = the optimizer's step count, which keeps counting across ``fit``
  calls), and writes the beta in force at the end of each epoch into the epoch's logs, so
  it appears in ``History.history["beta"]`` (and in CSVLogger, TensorBoard, ...).
  ``schedule.betas`` lists every (t, beta) the callback set.
- ``StopOnNaN`` (on by default in ``ProbabilisticAutoencoder.fit``): stops training at the
  first step whose loss is NaN or infinite, or whose update left a weight (or an
  optimizer slot) NaN or infinite, naming the step, before any later callback can write a
  checkpoint of the broken weights.
- ``BackupAndRestore``: ``keras.callbacks.BackupAndRestore`` made exact for mid-epoch
  interruptions: backups are committed atomically, and a resumed run skips the batches of
  the interrupted epoch that were already trained on, so a run killed at any step and
  restarted ends with the same weights as an uninterrupted one.
"""

import json
import math
import numbers
import os
import socket
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from probae._validation import check_non_negative_float, check_positive_int
from probae.saving import replace_atomically

__all__ = [
    "BetaSchedule",
    "LinearBetaWarmup",
    "CyclicalBetaSchedule",
    "NonFiniteLossError",
    "StopOnNaN",
    "BackupAndRestore",
    "with_nan_guard",
    "weights_are_finite",
]

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
        if "beta" not in getattr(getattr(self.model, "objective", None), "annealable", ("beta",)):
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


class NonFiniteLossError(FloatingPointError):
    """Raised by ``StopOnNaN`` when a training step produces a NaN or infinite loss or
    leaves non-finite weights, and by ``BackupAndRestore`` instead of writing them."""


def _float_variables(model):
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables += list(optimizer.variables)
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen and np.dtype(v.dtype).kind == "f":
            seen.add(id(v))
            out.append(v)
    return out


# model -> (variable ids, compiled check)
_CHECKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _finite_check(model):
    """A callable returning whether all of ``model``'s float weights and optimizer slots
    are finite: one compiled reduction, traced once per model and set of variables (the
    optimizer adds its slots at the first step), reading each variable once."""
    variables = _float_variables(model)
    key = tuple(map(id, variables))
    cached = _CHECKS.get(model)
    if cached is None or cached[0] != key:

        @tf.function(autograph=False)
        def all_finite():
            return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))

        check = (lambda: bool(all_finite())) if variables else (lambda: True)
        cached = _CHECKS[model] = (key, check)
    return cached[1]


def weights_are_finite(model):
    """Whether every float weight of ``model`` and every slot of its optimizer is finite."""
    return _finite_check(model)()


def _may_save_mid_epoch(callback):
    """Whether ``callback`` may write the weights between two epochs' ends."""
    if isinstance(callback, (keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore)):
        return getattr(callback, "save_freq", "epoch") != "epoch"
    if isinstance(callback, (StopOnNaN, BetaSchedule)) or type(callback).__module__.startswith(
        "keras."
    ):
        return False
    base = keras.callbacks.Callback
    hooks = ("on_train_batch_end", "on_batch_end", "on_train_batch_begin", "on_batch_begin")
    return any(getattr(type(callback), h, None) is not getattr(base, h) for h in hooks)


# ---------------------------------------------------------------------------- NaN guard
class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first step that leaves a NaN or infinite loss or weight.

    Unlike ``keras.callbacks.TerminateOnNaN`` it raises ``NonFiniteLossError`` at once (in
    the same step) with a message naming the epoch and step, so training never goes on
    silently and no later callback (``ModelCheckpoint``, ``BackupAndRestore``) gets to
    overwrite the last good checkpoint with the broken weights.
    ``ProbabilisticAutoencoder.fit`` puts one first in the callback list unless
    ``stop_on_nan=False`` (``with_nan_guard`` moves a user's guard to the front).

    After every call of the training step it reads the ``loss`` Keras already reports
    (the running mean over the epoch, which stays non-finite once one step was). The loss
    alone is not enough: it is computed before the update, so an update that makes the
    weights NaN (a NaN or huge learning rate, an infinite gradient) would be seen only
    at the next step, after an epoch-end checkpoint had saved them. So the guard also
    checks that every weight and optimizer slot is finite wherever a later callback may
    save: at the end of every epoch and of training, and after every call of the step
    when another callback may save mid-epoch (a ``ModelCheckpoint`` or
    ``BackupAndRestore`` with a save_freq in batches, or any callback with batch hooks
    of its own; ``with_nan_guard`` looks at the list). The check is one compiled
    reduction over the variables, traced once per model; its cost is in the README's
    reliability section. When Keras runs several steps per call
    (``steps_per_execution`` > 1) it is called once per group of steps, and names the
    group's range of batches and optimizer steps.

    Args:
        monitor: the logged value to check.
        check_weights: "auto" (the default: as described above), True (after every call
            of the step as well) or False (the loss only).
    """

    supports_steps_per_execution = True

    def __init__(self, monitor="loss", check_weights="auto"):
        super().__init__()
        if check_weights not in ("auto", True, False):
            raise ValueError(
                "check_weights must be 'auto', True or False. Received: "
                f"check_weights={check_weights!r}"
            )
        self.monitor = monitor
        self.check_weights = check_weights
        self.every_batch = check_weights is True
        self._epoch = 0
        self._first_batch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._first_batch = batch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isfinite(float(value)):
            self._stop(f"the {self.monitor} became {float(value)}", self._where(batch))
        if self.every_batch:
            self._check_weights(self._where(batch))

    def on_epoch_end(self, epoch, logs=None):
        self._check_weights(f"the end of epoch {epoch + 1}{self._step()}")

    def on_train_end(self, logs=None):
        self._check_weights(f"the end of training{self._step()}")

    def _check_weights(self, where):
        if self.check_weights is not False and not _finite_check(self.model)():
            self._stop(
                "the weights (or the optimizer's slots) became NaN or infinite in an update "
                "whose loss, computed before it, was finite",
                where,
            )

    def _stop(self, what, where):
        raise NonFiniteLossError(
            f"Training stopped: {what}, at {where}. The model's weights in memory are no "
            "longer usable; checkpoints written before this step are intact (this guard "
            "runs before every checkpoint callback). Common causes: a learning rate too "
            "high, data on a very large scale (standardise it), or a likelihood that does "
            "not fit the data's range."
        )

    def _step(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return ""
        return f" (optimizer step {int(keras.ops.convert_to_numpy(optimizer.iterations))})"

    def _where(self, batch):
        first = batch if self._first_batch is None else min(self._first_batch, batch)
        steps = (self.params or {}).get("steps")
        if steps:  # Keras numbers a last, partial group as if it were full
            batch = min(batch, steps - 1)
        step = None
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        if first == batch:
            where = f"epoch {self._epoch + 1}, batch {batch + 1}"
            if step is not None:
                where += f" (optimizer step {step})"
            return where
        where = (
            f"epoch {self._epoch + 1}, one of batches {first + 1}-{batch + 1} (run "
            "together: steps_per_execution > 1)"
        )
        if step is not None:
            where += f", optimizer steps {step - (batch - first)}-{step}"
        return where


def with_nan_guard(callbacks):
    """Returns ``callbacks`` (None, a callback or a list) with a ``StopOnNaN`` first (a
    given one is moved to the front, so it runs before any checkpoint callback)."""
    if callbacks is None:
        callbacks = []
    elif isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    elif isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    else:
        callbacks = list(callbacks)
    guards = [cb for cb in callbacks if isinstance(cb, StopOnNaN)]
    others = [cb for cb in callbacks if not isinstance(cb, StopOnNaN)]
    guards = guards or [StopOnNaN()]
    if any(_may_save_mid_epoch(cb) for cb in others):
        for guard in guards:
            if guard.check_weights == "auto":
                guard.every_batch = True
    return guards + others  # first, before any checkpoint callback


# ---------------------------------------------------------------------------- resuming
class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that resumes mid-epoch exactly.

    Keras' callback restores the weights of a mid-epoch backup but then restarts that
    epoch from its first batch (training twice on the batches already seen), and it
    writes the backup in place (a kill during the write corrupts it). This one:

    - commits each backup atomically: the weights go to a new file, then a small JSON
      file naming it and the position in training is renamed into place;
    - on restart, skips the batches of the interrupted epoch that were already trained
      on (they are drawn from the data but not trained on);
    - keeps the model's sampling seed state and the optimizer's state in the backup (a
      ``ProbabilisticAutoencoder`` saves both with its weights).

    With ``set_seed`` and a data order that a fresh process reproduces, a run killed at
    any step and restarted with the same command ends with the same weights as an
    uninterrupted run. That holds for arrays with ``shuffle=False``, and also with
    ``shuffle=True``: once a global seed is set, Keras' array adapter draws the same
    permutation for every epoch's iterator. A ``tf.data`` pipeline that reshuffles on
    each iteration (``reshuffle_each_iteration=True``) restarts its sequence in the new
    process: the resumed epochs see other orders, so training goes on correctly but not
    bit for bit.

    It also refuses to be misled or to poison a run: it never writes a backup whose
    weights or optimizer slots are NaN or infinite (``NonFiniteLossError``; the last good
    backup stays), it records what the backup was written for (the model's weight shapes
    and the number of steps per epoch) and refuses, with a ``ValueError`` naming
    ``backup_dir``, to resume another run's backup, and it holds a lock file while
    training, so that a second live process on the same machine using the same
    directory is refused instead of silently resuming from the first one's state. (Two
    runs with the same model and data size but different data cannot be told apart:
    give each run its own directory.)

    Args:
        backup_dir: a directory used only by this callback.
        save_freq: "epoch" or a number of batches between backups.
        delete_checkpoint: remove the backup when training completes.
    """

    LOCK = "probae.lock"

    @property
    def supports_steps_per_execution(self):
        # Mid-epoch backups are counted (and skipped on resume) batch by batch.
        return self.save_freq == "epoch"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch":
            save_freq = check_positive_int(save_freq, "save_freq")
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._state_path = os.path.join(os.fspath(backup_dir), "probae_state.json")
        self._skip = 0
        self._skipping = False
        self._real_train_function = None
        self._logs = None
        self._counter = 0
        self._lock_path = os.path.join(os.fspath(backup_dir), self.LOCK)

    def _read_state(self):
        if not os.path.exists(self._state_path):
            return None
        try:
            with open(self._state_path) as f:
                state = json.load(f)
            if not isinstance(state, dict) or not {"weights", "epoch", "batches_done"} <= set(
                state
            ):
                raise ValueError("missing keys")
        except (OSError, ValueError) as err:
            raise ValueError(
                f"backup_dir={os.fspath(self.backup_dir)!r} holds an unreadable backup state "
                f"({self._state_path}: {err}). Delete the directory to start afresh."
            ) from None
        return state

    def _run_signature(self):
        """What a backup is only valid for: the model's weight shapes and steps per epoch."""
        return {
            "weight_shapes": [list(map(int, w.shape)) for w in self.model.weights],
            "steps_per_epoch": (self.params or {}).get("steps"),
        }

    def _check_signature(self, state):
        recorded = state.get("run")
        if recorded is None:
            return
        current = self._run_signature()
        where = f"backup_dir={os.fspath(self.backup_dir)!r}"
        if recorded["weight_shapes"] != current["weight_shapes"]:
            raise ValueError(
                f"{where} holds a backup written for another model (its weights have other "
                "shapes). Use a new backup_dir for this run, or delete the old one."
            )
        if None not in (recorded["steps_per_epoch"], current["steps_per_epoch"]) and (
            recorded["steps_per_epoch"] != current["steps_per_epoch"]
        ):
            raise ValueError(
                f"{where} holds a backup written for another run: "
                f"{recorded['steps_per_epoch']} steps per epoch, where this fit has "
                f"{current['steps_per_epoch']} (other data or batch size). Use a new "
                "backup_dir for this run, or delete the old one."
            )

    def _acquire_lock(self):
        """Refuses a directory held by another live process on this machine."""
        os.makedirs(self.backup_dir, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        try:
            with open(self._lock_path) as f:
                holder = json.load(f)
        except (OSError, ValueError):
            holder = None
        if isinstance(holder, dict) and holder.get("pid") != me["pid"]:
            if holder.get("host") == me["host"] and _process_alive(holder.get("pid")):
                raise ValueError(
                    f"backup_dir={os.fspath(self.backup_dir)!r} is in use by another "
                    f"training process (pid {holder.get('pid')}). Give each run its own "
                    "backup_dir."
                )
            if holder.get("host") != me["host"]:
                warnings.warn(
                    f"backup_dir={os.fspath(self.backup_dir)!r} was locked by a process on "
                    f"host {holder.get('host')!r}; taking it over. If that run is still "
                    "going, the two runs will overwrite each other's backups.",
                    stacklevel=2,
                )

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(me, f)

        replace_atomically(write, self._lock_path)

    def _release_lock(self):
        try:
            os.remove(self._lock_path)
        except OSError:
            pass

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(
                "The model must be built before fit() to use BackupAndRestore: pass "
                "input_shape=... or call model.build((None, *shape))."
            )
        if self.save_freq != "epoch" and getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "BackupAndRestore with save_freq in batches needs steps_per_execution=1 in "
                "compile(). Received: steps_per_execution="
                f"{self.model.steps_per_execution}. Use save_freq='epoch' instead."
            )
        self._acquire_lock()
        state = self._read_state()
        if state is None:
            return
        self._check_signature(state)
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        weights_path = os.path.join(self.backup_dir, state["weights"])
        try:
            self.model.load_weights(weights_path)
        except Exception as err:  # a missing, truncated or foreign weights file
            raise ValueError(
                f"backup_dir={os.fspath(self.backup_dir)!r}: could not restore the backup "
                f"{weights_path} ({type(err).__name__}: {str(err)[:300]}). Delete the "
                "directory to start afresh."
            ) from None
        if not weights_are_finite(self.model):
            raise ValueError(
                f"backup_dir={os.fspath(self.backup_dir)!r}: the backup {weights_path} holds "
                "NaN or infinite weights. Delete the directory to start afresh."
            )
        self.model._initial_epoch = state["epoch"]
        self._current_epoch = state["epoch"]
        self._skip = state["batches_done"]
        self._counter = state["counter"]

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._batches_done = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self._skip and batch < self._skip:
            if not self._skipping:
                self._real_train_function = self.model.train_function
                self.model.train_function = self._skip_one
                self._skipping = True
        elif self._skipping:
            self.model.train_function = self._real_train_function
            self._skipping = False
            self._skip = 0

    def _skip_one(self, iterator):
        next(iterator)
        return self._logs if self._logs is not None else {}

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = batch + 1
        if self._skipping:
            return
        if self.save_freq != "epoch":
            self._batches_seen_since_last_saving += 1
            if self._batches_seen_since_last_saving >= self.save_freq:
                self._batches_seen_since_last_saving = 0
                self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        if self._skipping:  # an epoch that was entirely done before the interruption
            self.model.train_function = self._real_train_function
            self._skipping = False
            self._skip = 0
        self._current_epoch = epoch + 1
        self._batches_done = 0
        if self.save_freq == "epoch":
            self._save_model()

    def _save_model(self):
        if not weights_are_finite(self.model):
            raise NonFiniteLossError(
                f"BackupAndRestore did not write a backup to backup_dir="
                f"{os.fspath(self.backup_dir)!r}: the model's weights or optimizer slots are "
                f"NaN or infinite (epoch {self._current_epoch + 1}, after batch "
                f"{self._batches_done}). The last backup written is kept."
            )
        os.makedirs(self.backup_dir, exist_ok=True)
        previous = self._read_state()
        self._counter += 1
        weights = f"backup-{self._counter}.weights.h5"
        weights_path = os.path.join(self.backup_dir, weights)
        self.model.save_weights(weights_path, overwrite=True)
        with open(weights_path, "rb") as f:  # on disk before the state names it
            os.fsync(f.fileno())
        state = {
            "weights": weights,
            "epoch": self._current_epoch,
            "batches_done": self._batches_done,
            "counter": self._counter,
            "run": self._run_signature(),
        }

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(state, f)

        replace_atomically(write, self._state_path)  # the commit point
        if previous is not None and previous["weights"] != weights:
            old = os.path.join(self.backup_dir, previous["weights"])
            if os.path.exists(old):
                os.remove(old)

    def on_train_end(self, logs=None):
        if self._skipping:
            self.model.train_function = self._real_train_function
            self._skipping = False
        self._release_lock()
        super().on_train_end(logs)


def _process_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True
