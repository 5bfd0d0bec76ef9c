"""Reliability: stopping on NaN, resumable training, atomic saving, safe loading, seeding.

- ``StopOnNaN``: a callback (on by default in ``ProbabilisticAutoencoder.fit``) that stops
  training at the first step whose loss is NaN or infinite, naming the step, before any
  later callback can write a checkpoint of the broken weights.
- ``BackupAndRestore``: ``keras.callbacks.BackupAndRestore`` made exact for mid-epoch
  interruptions: backups are committed atomically, and a resumed run skips the batches of
  the interrupted epoch that were already trained on, so a run killed at any step and
  restarted ends with the same weights as an uninterrupted one.
- ``atomic_save`` (used by ``ProbabilisticAutoencoder.save``): the model is written to a
  temporary file in the same directory and renamed over the target, so a crash while
  saving never leaves a corrupt file in place of a good one.
- ``load_model``: ``keras.models.load_model`` in safe mode, with a clear error for a
  missing, truncated, tampered or non-probae file.
- ``set_seed``: the seeds and the op determinism a reproducible run needs.
"""

import json
import math
import numbers
import os
import zipfile

import keras
import tensorflow as tf

__all__ = [
    "NonFiniteLossError",
    "InvalidModelFileError",
    "StopOnNaN",
    "BackupAndRestore",
    "supports_steps_per_execution",
    "atomic_save",
    "load_model",
    "set_seed",
]


class NonFiniteLossError(FloatingPointError):
    """Raised by ``StopOnNaN`` when a training step produces a NaN or infinite loss."""


class InvalidModelFileError(ValueError):
    """Raised by ``load_model`` for a file that is not a loadable, safe probae model."""


# ---------------------------------------------------------------------------- NaN guard
class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite.

    Unlike ``keras.callbacks.TerminateOnNaN`` it raises ``NonFiniteLossError`` at once (in
    the same step) with a message naming the epoch and step, so training never goes on
    silently and no later callback (``ModelCheckpoint``, ``BackupAndRestore``) gets to
    overwrite the last good checkpoint with the broken weights.
    ``ProbabilisticAutoencoder.fit`` puts one first in the callback list unless
    ``stop_on_nan=False``.

    It reads the ``loss`` Keras already reports (the running mean over the epoch, which
    stays non-finite once one step was): one scalar read per call. When Keras runs several
    steps per call (``steps_per_execution`` > 1) it is called once per group of steps, and
    names the group's range of batches and optimizer steps.
    """

    supports_steps_per_execution = True

    def __init__(self, monitor="loss"):
        super().__init__()
        self.monitor = monitor
        self._epoch = 0
        self._first_batch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._first_batch = batch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
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
            else:
                where = (
                    f"epoch {self._epoch + 1}, one of batches {first + 1}-{batch + 1} (run "
                    "together: steps_per_execution > 1)"
                )
                if step is not None:
                    where += f", optimizer steps {step - (batch - first)}-{step}"
            raise NonFiniteLossError(
                f"Training stopped: the {self.monitor} became {value} at {where}. The "
                "model's weights in memory are no longer usable; checkpoints written "
                "before this step are intact. Common causes: a learning rate too high, "
                "data on a very large scale (standardise it), or a likelihood that does "
                "not fit the data's range."
            )


_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


def _keras_callbacks_grouped_steps_safe():
    """Keras callbacks whose batch hooks are written for steps_per_execution > 1."""
    cbs = keras.callbacks
    return (
        cbs.History,
        cbs.ProgbarLogger,
        cbs.ModelCheckpoint,
        cbs.TensorBoard,
        cbs.TerminateOnNaN,
        cbs.EarlyStopping,
        cbs.BackupAndRestore,
    )


def supports_steps_per_execution(callback):
    """Whether ``callback`` stays correct when Keras runs several steps per call.

    With ``steps_per_execution`` = N > 1 Keras calls the batch hooks once per N batches
    (with the first and the last batch index of the group). A callback is safe when it
    has no batch hooks, when it is one of Keras' callbacks written for that (History,
    ProgbarLogger, ModelCheckpoint, TensorBoard, TerminateOnNaN, EarlyStopping,
    BackupAndRestore), or when it says so with a ``supports_steps_per_execution``
    attribute (a bool, or a property computed from its settings).
    """
    declared = getattr(callback, "supports_steps_per_execution", None)
    if declared is not None:
        return bool(declared)
    if type(callback) in _keras_callbacks_grouped_steps_safe():
        return True
    base = keras.callbacks.Callback
    return all(
        getattr(type(callback), hook, None) is getattr(base, hook) for hook in _BATCH_HOOKS
    )


def with_nan_guard(callbacks):
    """Returns ``callbacks`` (None, a callback or a list) with a ``StopOnNaN`` first."""
    if callbacks is None:
        callbacks = []
    elif isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    elif isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    else:
        callbacks = list(callbacks)
    if any(isinstance(cb, StopOnNaN) for cb in callbacks):
        return callbacks
    return [StopOnNaN()] + callbacks


# ---------------------------------------------------------------------------- files
def _replace_atomically(write, path):
    """Calls ``write(tmp)`` for a temporary path beside ``path``, then renames it."""
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    root, ext = os.path.splitext(base)
    if base.endswith(".weights.h5"):
        root, ext = base[: -len(".weights.h5")], ".weights.h5"
    tmp = os.path.join(directory, f".{root}.tmp-{os.getpid()}{ext}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_save(save, filepath, overwrite=True, **kwargs):
    """Saves through ``save(tmp_path, **kwargs)`` into a temporary file, then renames it.

    The temporary file lies in the target's directory (so ``os.replace`` is an atomic
    rename on the same file system) and keeps its extension (``.keras``). A crash or an
    error while writing leaves the previous file untouched.

    Args:
        save: the function that writes a model file (for example ``keras.Model.save``
            bound to the model).
        filepath: the target path.
        overwrite: if False and the target exists, raise instead of replacing it.
        **kwargs: passed to ``save``.

    Raises:
        TypeError: ``filepath`` is not a path.
        FileExistsError: ``overwrite=False`` and the file exists.
    """
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath must be a path (str or os.PathLike). Received: filepath={filepath!r}")
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            "filepath must end in .keras (probae saves the Keras 3 format only). "
            f"Received: filepath={filepath!r}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(
            f"filepath already exists and overwrite=False. Received: filepath={filepath!r}"
        )
    _replace_atomically(lambda tmp: save(tmp, overwrite=True, **kwargs), filepath)


_UNSAFE_CLASSES = ("Lambda", "TFOpLambda", "SlicingOpLambda")


def _find_unsafe(config, where="config"):
    """Returns a description of the first code-carrying entry in a saved config, or None."""
    if isinstance(config, dict):
        if config.get("class_name") in _UNSAFE_CLASSES:
            return f"a {config['class_name']} layer at {where}"
        if config.get("class_name") == "__lambda__" or "__lambda__" in config:
            return f"a serialised Python function at {where}"
        for key, value in config.items():
            found = _find_unsafe(value, f"{where}.{key}")
            if found:
                return found
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found = _find_unsafe(value, f"{where}[{i}]")
            if found:
                return found
    return None


def _find_unknown_class(config, where="config"):
    """Returns the first custom class a saved config names that is not registered."""
    if isinstance(config, dict):
        registered = config.get("registered_name")
        if (
            isinstance(registered, str)
            and ">" in registered
            and "class_name" in config
            and keras.saving.get_registered_object(registered) is None
        ):
            return f"the unknown class {registered!r} at {where}"
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return None
    for key, value in items:
        found = _find_unknown_class(value, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]")
        if found:
            return found
    return None


def load_model(path, compile=True):
    """Loads a ``ProbabilisticAutoencoder`` saved with ``model.save(path)``, safely.

    ``keras.models.load_model`` with ``safe_mode=True``: no Python code (Lambda layers,
    pickled functions) in the file is ever run. Checks first that the file exists, is a
    complete ``.keras`` archive and describes a probae model.

    Args:
        path: a ``.keras`` file.
        compile: restore the optimizer and its state (to continue training).

    Returns:
        The ``ProbabilisticAutoencoder``.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: no file at ``path``.
        InvalidModelFileError (a ValueError): the file is truncated or not a zip
            archive, is not a saved probae model, holds code that safe mode refuses, or
            Keras cannot rebuild it.
    """
    from probae.model import ProbabilisticAutoencoder

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike). Received: path={path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path does not exist: no saved model at path={path!r}")
    if os.path.isdir(path):
        raise InvalidModelFileError(
            f"path must be a .keras file, not a directory. Received: path={path!r}"
        )
    prefix = f"path={path!r} is not a loadable probae model"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise InvalidModelFileError(f"{prefix}: the archive has no config.json.")
            bad = archive.testzip()
            if bad is not None:
                raise InvalidModelFileError(f"{prefix}: {bad} in the archive is corrupt.")
            config = json.loads(archive.read("config.json"))
    except zipfile.BadZipFile as err:
        raise InvalidModelFileError(
            f"{prefix}: it is not a complete .keras (zip) archive ({err}); the file may be "
            "truncated or of another format."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidModelFileError(f"{prefix}: its config.json is not valid JSON ({err}).") from None
    if not isinstance(config, dict) or config.get("class_name") != "ProbabilisticAutoencoder" or (
        config.get("registered_name", "probae>ProbabilisticAutoencoder")
        != "probae>ProbabilisticAutoencoder"
    ):
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise InvalidModelFileError(
            f"{prefix}: it holds a {found!r}, not a probae ProbabilisticAutoencoder."
        )
    unsafe = _find_unsafe(config)
    unknown = _find_unknown_class(config)
    if unknown and not unsafe:
        raise InvalidModelFileError(
            f"{prefix}: it refers to {unknown}, which is not a registered probae or Keras "
            "class (import the package that defines it, or the file was edited)."
        )
    if unsafe:
        raise InvalidModelFileError(
            f"{prefix}: it contains {unsafe}, which would run arbitrary Python code when "
            "loaded. probae never saves such layers; refusing to load it (safe mode)."
        )
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # Keras raises TypeError/ValueError/OSError/KeyError here
        raise InvalidModelFileError(
            f"{prefix}: Keras could not rebuild it in safe mode: {type(err).__name__}: "
            f"{str(err)[:500]}"
        ) from err
    if not isinstance(model, ProbabilisticAutoencoder):
        raise InvalidModelFileError(f"{prefix}: it loaded as a {type(model).__name__}.")
    return model


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

    Args:
        backup_dir: a directory used only by this callback.
        save_freq: "epoch" or a number of batches between backups.
        delete_checkpoint: remove the backup when training completes.
    """

    @property
    def supports_steps_per_execution(self):
        # Mid-epoch backups are counted (and skipped on resume) batch by batch.
        return self.save_freq == "epoch"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch":
            from probae._validation import check_positive_int

            save_freq = check_positive_int(save_freq, "save_freq")
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._state_path = os.path.join(os.fspath(backup_dir), "probae_state.json")
        self._skip = 0
        self._skipping = False
        self._real_train_function = None
        self._logs = None
        self._counter = 0

    def _read_state(self):
        if not os.path.exists(self._state_path):
            return None
        with open(self._state_path) as f:
            return json.load(f)

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
        state = self._read_state()
        if state is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
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
        }

        def write(tmp):
            with open(tmp, "w") as f:
                json.dump(state, f)

        _replace_atomically(write, self._state_path)  # the commit point
        if previous is not None and previous["weights"] != weights:
            old = os.path.join(self.backup_dir, previous["weights"])
            if os.path.exists(old):
                os.remove(old)

    def on_train_end(self, logs=None):
        if self._skipping:
            self.model.train_function = self._real_train_function
            self._skipping = False
        super().on_train_end(logs)


# ---------------------------------------------------------------------------- seeds
def set_seed(seed, deterministic=True):
    """Seeds Python, NumPy, TensorFlow and Keras, and makes TensorFlow ops deterministic.

    With the same seed, two runs in fresh processes then give the same weights, ELBO and
    log-likelihood estimates (on the same hardware and library versions).

    Args:
        seed: a non-negative integer.
        deterministic: also call ``tf.config.experimental.enable_op_determinism()``
            (needed on GPUs; it cannot be undone in a process, and some ops become slower
            or raise when they have no deterministic implementation).
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
