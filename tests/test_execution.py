"""Step grouping (probae.execution): steps_per_execution="auto" changes nothing but speed."""

import keras
import numpy as np
import tensorflow as tf

import probae


class _CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


def _fit_small(x, steps_per_execution="auto", callbacks=None):
    keras.utils.set_random_seed(1)
    model = probae.VAE((784,), 4, hidden_units=(16,), seed=3)
    model.compile(keras.optimizers.Adam(1e-3), steps_per_execution=steps_per_execution)
    history = model.fit(
        x,
        batch_size=32,
        epochs=2,
        verbose=0,
        shuffle=True,
        validation_data=x[:96],
        callbacks=callbacks,
    )
    return model, history


def test_auto_steps_per_execution_changes_nothing_but_speed(binarized):
    x = binarized[0][:700]  # 22 batches per epoch: two full groups of 10 and a partial one
    grouped, h_grouped = _fit_small(x)
    single, h_single = _fit_small(x, steps_per_execution=1)
    assert grouped.steps_per_execution == probae.execution.AUTO_STEPS_PER_EXECUTION == 10
    assert single.steps_per_execution == 1
    assert (
        int(grouped.optimizer.iterations.numpy()) == int(single.optimizer.iterations.numpy()) == 44
    )
    for a, b in zip(grouped.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "kl", "val_elbo"):
        np.testing.assert_allclose(h_grouped.history[key], h_single.history[key], rtol=1e-5)


def test_grouped_steps_respect_steps_per_epoch(binarized):
    # Keras runs whole groups: "auto" picks a group size that divides steps_per_epoch.
    x = binarized[0][:1000]
    repeated = tf.data.Dataset.from_tensor_slices(x).repeat().batch(50)
    for steps_per_epoch, group in ((25, 5), (7, 7), (13, 1), (40, 10)):
        model = probae.VAE((784,), 4, hidden_units=(16,), seed=3)
        model.fit(repeated, steps_per_epoch=steps_per_epoch, epochs=2, verbose=0)
        assert model.steps_per_execution == group
        assert int(model.optimizer.iterations.numpy()) == 2 * steps_per_epoch
    model.evaluate(repeated, steps=4, verbose=0)
    assert model.steps_per_execution == 4


def test_predict_before_and_after_grouped_fit_returns_every_row(binarized):
    x = binarized[0][:700]
    model = probae.VAE((784,), 4, hidden_units=(16,), seed=3)
    model.compile()
    before = model.predict(x, batch_size=32, verbose=0)  # traced with 1 step per call
    model.fit(x, batch_size=32, epochs=1, verbose=0)  # switches to 10
    after = model.predict(x, batch_size=32, verbose=0)
    assert before.shape == after.shape == (700, 784)
    np.testing.assert_allclose(after, model.reconstruct(x), rtol=1e-5, atol=1e-6)


def test_batch_callbacks_still_see_every_batch(binarized):
    x = binarized[0][:700]
    counter = _CountBatches()
    model, _ = _fit_small(x, callbacks=[counter])
    assert model.steps_per_execution == 1
    assert counter.batches == list(range(22)) * 2
    # A callback that declares it copes with grouped steps lets "auto" group them.
    counter = _CountBatches()
    counter.supports_steps_per_execution = True
    model, _ = _fit_small(x, callbacks=[counter, probae.callbacks.LinearBetaWarmup(2)])
    assert model.steps_per_execution == 10
    assert len(counter.batches) == 6 and counter.batches[:2] == [9, 19]  # once per group
    # Per-step beta schedules and batch-frequency backups need every batch.
    for callback in (
        probae.callbacks.LinearBetaWarmup(5, per="step"),
        probae.BackupAndRestore("unused", save_freq=3),
    ):
        assert not probae.execution.supports_steps_per_execution(callback)
    assert probae.execution.supports_steps_per_execution(keras.callbacks.ModelCheckpoint("m.keras"))
