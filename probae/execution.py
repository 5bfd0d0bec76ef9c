"""How Keras runs a model's steps: grouping steps per call, and multi-worker results.

``compile(steps_per_execution="auto")`` (a probae model's default) runs
``AUTO_STEPS_PER_EXECUTION`` batches per call of the compiled step when every callback
supports it and 1 otherwise (``supports_steps_per_execution``); ``StepGrouping`` makes
that choice at each ``fit`` / ``evaluate`` and keeps Keras' traced step functions for each
group size. ``worker_results`` adapts a step's outputs to Keras' multi-worker reduction.
"""

import keras
import tensorflow as tf

__all__ = [
    "AUTO_STEPS_PER_EXECUTION",
    "supports_steps_per_execution",
    "StepGrouping",
    "worker_results",
]

# Batches per call of the compiled training step under compile(steps_per_execution="auto").
AUTO_STEPS_PER_EXECUTION = 10

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
    return all(getattr(type(callback), hook, None) is getattr(base, hook) for hook in _BATCH_HOOKS)


class StepGrouping:
    """The "auto" policy: 10 steps per call if every callback supports it, else 1.

    Keras runs whole groups: with steps_per_epoch=25 and 10 per call an epoch would be 30
    steps. Given step counts, the group size is the largest one up to 10 that divides
    every count. Under a ``tf.distribute`` strategy it is 1: Keras' multi-step loop fails
    to run a probae step there (TF 2.21: "You must feed a value for placeholder tensor
    while/cond/...").
    """

    def __init__(self):
        # Keras traces its step loop for one steps_per_execution: keep one per value
        # (predict's too: traced for one batch, it would read only the first of a group).
        self._functions = {}

    def choose(self, model, callbacks, step_counts=(), epoch_steps=None):
        """Sets ``model.steps_per_execution`` for a run with these callbacks.

        ``epoch_steps`` (the batches of an epoch of array data) caps the group, so an
        epoch of 3 batches runs as one group of 3 and the progress bar reads 3/3.
        """
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = callbacks.callbacks
        elif isinstance(callbacks, keras.callbacks.Callback):
            callbacks = [callbacks]
        safe = all(supports_steps_per_execution(cb) for cb in callbacks or ())
        # Made or run under a strategy (outside one, a model's strategy is the default).
        distributed = tf.distribute.has_strategy() or (
            model.distribute_strategy is not tf.distribute.get_strategy()
        )
        steps = AUTO_STEPS_PER_EXECUTION if safe and not distributed else 1
        counts = [c for c in step_counts if c]
        while steps > 1 and any(c % steps for c in counts):
            steps -= 1
        if epoch_steps:
            steps = max(1, min(steps, epoch_steps))
        if steps == model.steps_per_execution:
            return
        self._functions[model.steps_per_execution] = (
            model.train_function,
            model.test_function,
            model.predict_function,
        )
        model.steps_per_execution = steps
        model.train_function, model.test_function, model.predict_function = self._functions.get(
            steps, (None, None, None)
        )


def worker_results(strategy, results):
    """Step results in the shape Keras' multi-worker reduction needs.

    Keras reduces step outputs across workers with reduce(MEAN, axis=0), which fails on
    scalars: under a ``MultiWorkerMirroredStrategy`` in multi-worker mode each result gets
    shape [1] (the reduction returns a scalar). TensorFlow exposes that mode only through
    ``strategy.extended._in_multi_worker_mode()``; this is the one place probae reads it.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    ):
        return {k: tf.reshape(v, [1]) for k, v in results.items()}
    return results
