"""Callbacks (probae.callbacks): beta schedules (closed-form values, what fit logs, what
training uses), the NaN guard, and exact resuming of killed training with
BackupAndRestore."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae
from probae.callbacks import CyclicalBetaSchedule, LinearBetaWarmup


# --------------------------------------------------------------- beta schedules
def _data(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, d)) < 0.3).astype("float32")


def _tiny_vae(**kwargs):
    return probae.VAE((12,), 2, hidden_units=(8,), **kwargs)


def test_linear_warmup_values():
    schedule = LinearBetaWarmup(4, start=0.0, end=1.0)
    assert [schedule.value(t) for t in range(7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    schedule = LinearBetaWarmup(2, start=2.0, end=1.0)
    assert [schedule.value(t) for t in range(4)] == [2.0, 1.5, 1.0, 1.0]


def test_cyclical_values():
    schedule = CyclicalBetaSchedule(4, ratio=0.5)
    assert [schedule.value(t) for t in range(9)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0]
    schedule = CyclicalBetaSchedule(5, ratio=1.0, end=2.0)
    np.testing.assert_allclose([schedule.value(t) for t in range(6)], [0, 0.4, 0.8, 1.2, 1.6, 0])


def test_epoch_warmup_is_logged_and_used():
    """History's beta follows the schedule, and each epoch's loss is -rec + beta * kl with
    that beta: the training step really read the variable the callback set."""
    model = _tiny_vae()
    schedule = LinearBetaWarmup(4)
    history = model.fit(_data(), epochs=6, batch_size=50, verbose=0, callbacks=[schedule])
    h = history.history
    np.testing.assert_allclose(h["beta"], [0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    expected_loss = -np.array(h["reconstruction"]) + np.array(h["beta"]) * np.array(h["kl"])
    np.testing.assert_allclose(h["loss"], expected_loss, rtol=1e-4, atol=1e-3)
    assert model.beta == 1.0
    assert [t for t, _ in schedule.betas] == list(range(6))


def test_step_cyclical_schedule_follows_optimizer_steps():
    model = _tiny_vae()
    schedule = CyclicalBetaSchedule(3, ratio=0.5, per="step")
    steps_per_epoch = 4  # 200 examples, batch 50
    history = model.fit(_data(), epochs=3, batch_size=50, verbose=0, callbacks=[schedule])
    steps = [t for t, _ in schedule.betas]
    assert steps == list(range(3 * steps_per_epoch))
    np.testing.assert_allclose([b for _, b in schedule.betas], [schedule.value(t) for t in steps])
    last = [schedule.value(steps_per_epoch * (e + 1) - 1) for e in range(3)]
    np.testing.assert_allclose(history.history["beta"], last)
    # A second fit continues counting steps (the schedule keeps its phase).
    model.fit(_data(), epochs=1, batch_size=50, verbose=0, callbacks=[schedule])
    assert schedule.betas[-1][0] == 4 * steps_per_epoch - 1


@pytest.mark.parametrize(
    "make, error, argument",
    [
        (lambda: LinearBetaWarmup(0), ValueError, "warmup"),
        (lambda: LinearBetaWarmup(3, start=-1.0), ValueError, "start"),
        (lambda: LinearBetaWarmup(3, end=float("nan")), ValueError, "end"),
        (lambda: LinearBetaWarmup(3, per="batch"), ValueError, "per"),
        (lambda: CyclicalBetaSchedule(0), ValueError, "period"),
        (lambda: CyclicalBetaSchedule(4, ratio=0.0), ValueError, "ratio"),
        (lambda: CyclicalBetaSchedule(4, ratio=1.5), ValueError, "ratio"),
        (lambda: CyclicalBetaSchedule(4, end="1"), TypeError, "end"),
    ],
)
def test_bad_schedules(make, error, argument):
    with pytest.raises(error, match=argument):
        make()


def test_schedule_rejects_iwae_model():
    model = probae.VAE((12,), 2, objective=probae.IWAE(), hidden_units=(8,))
    with pytest.raises(ValueError, match="objective"):
        model.fit(_data(), epochs=1, verbose=0, callbacks=[LinearBetaWarmup(2)])


def test_negative_beta_rejected():
    with pytest.raises(ValueError, match="beta"):
        probae.BetaVAE((12,), 2, beta=-1.0)
    model = _tiny_vae()
    with pytest.raises(ValueError, match="beta"):
        model.beta = -0.5


# -------------------------------------------------------------------- NaN guard
# A finite value so extreme that its Gaussian log-likelihood overflows: the loss becomes
# infinite at that batch (NaN data itself is refused by fit's streamed checks first).
_OVERFLOW = 1e30


def _nan_dataset(bad_batch):
    x = np.random.default_rng(0).random((48, 6)).astype("float32")
    x[bad_batch * 8 + 3, 2] = _OVERFLOW  # batches of 8: batch `bad_batch` (0-based) overflows
    return tf.data.Dataset.from_tensor_slices(x).batch(8)


def test_nan_stops_training_at_once_and_keeps_last_backup(tmp_path):
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    backup = probae.BackupAndRestore(tmp_path / "backup", save_freq=1)
    with pytest.raises(probae.NonFiniteLossError, match=r"epoch 1, batch 3 \(optimizer step 3\)"):
        model.fit(_nan_dataset(2), epochs=2, verbose=0, shuffle=False, callbacks=[backup])
    state = json.loads((tmp_path / "backup" / "probae_state.json").read_text())
    assert state["batches_done"] == 2  # the backup of the last good step is kept
    restored = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    restored.compile()
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(tmp_path / "backup" / state["weights"])
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())
    assert int(restored.optimizer.iterations.numpy()) == 2


def test_nan_guard_names_the_group_of_steps_run_together():
    # No batch-level callback: compile's steps_per_execution="auto" runs 10 steps a call,
    # so the guard sees the NaN after the group and names its range of batches.
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    x = np.random.default_rng(0).random((160, 6)).astype("float32")
    x[13 * 8 + 3, 2] = _OVERFLOW  # batch 14 (1-based) of 20
    data = tf.data.Dataset.from_tensor_slices(x).batch(8)
    with pytest.raises(
        probae.NonFiniteLossError,
        match=r"epoch 1, one of batches 11-20 .*optimizer steps 11-20",
    ):
        model.fit(data, epochs=1, verbose=0)
    assert model.steps_per_execution == 10


def test_without_guard_keras_trains_on_with_nan():
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    history = model.fit(_nan_dataset(0), epochs=1, verbose=0, shuffle=False, stop_on_nan=False)
    assert not np.isfinite(history.history["loss"][-1])


def test_guard_is_not_added_twice():
    guard = probae.StopOnNaN()
    assert probae.callbacks.with_nan_guard([guard]) == [guard]
    assert isinstance(probae.callbacks.with_nan_guard(None)[0], probae.StopOnNaN)


# -------------------------------------------------- killed and resumed training
WORKER = pathlib.Path(__file__).with_name("resume_worker.py")


def _start(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _kill_when(proc, marker, timeout=240):
    """Waits for ``marker`` (written by the worker just before it blocks), then SIGKILLs."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{proc.stdout.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("worker never reached the kill point")
        time.sleep(0.05)
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _finish(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode()[-3000:]


def test_killed_training_resumes_exactly_reproducibly_and_saves_atomically(tmp_path):
    """Four fresh processes (two at a time):

    a: an uninterrupted run; b: the same run with BackupAndRestore every 2 steps, killed
    with SIGKILL after global step 8 (epoch 2, batch 2 of 6); c: b restarted with the same
    command, which then saves its model and is SIGKILLed half-way through a second save
    of the same file; d: the uninterrupted run again. Then a == d (same seed, fresh
    processes) and a == c (resumed mid-epoch), bit for bit, and c's model file is intact.
    """
    a, b, c, d = (tmp_path / n for n in "abcd")
    backup = tmp_path / "backup"
    proc_a = _start(a)
    proc_b = _start(b, "--backup", backup, "--block-at-step", 8)
    _kill_when(proc_b, b / "blocked")
    state = json.loads((backup / "probae_state.json").read_text())
    assert (state["epoch"], state["batches_done"]) == (1, 2)  # a mid-epoch backup
    assert not (b / "result.npz").exists()
    _finish(proc_a)

    target = c / "model.keras"
    proc_c = _start(c, "--backup", backup, "--block-during-save", target)
    proc_d = _start(d)
    _kill_when(proc_c, c / "saving")
    _finish(proc_d)

    ra, rc, rd = (np.load(p / "result.npz") for p in (a, c, d))
    assert int(ra["epochs_run"]) == 3 and int(rc["epochs_run"]) == 2  # resumed at epoch 2
    assert not backup.exists()  # removed once training completed
    for key in ra.files:
        if key == "epochs_run":
            continue
        np.testing.assert_array_equal(ra[key], rd[key], err_msg=f"same seed, {key}")
        np.testing.assert_array_equal(ra[key], rc[key], err_msg=f"resumed, {key}")
    assert np.all(np.isfinite(ra["log_likelihood"])) and np.all(ra["log_likelihood"] < 0)

    # The kill left a partial temporary file beside the target; the target is intact.
    leftovers = [p for p in c.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(leftovers) == 1
    with pytest.raises(probae.InvalidModelFileError):
        probae.load_model(leftovers[0])
    model = probae.load_model(target)
    weights = [ra[f"arr_{i}"] for i in range(len(model.get_weights()))]
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------- the guard checks the weights, not only the loss
def _nan_learning_rate_at(epoch):
    """A schedule that makes the learning rate NaN from ``epoch`` on: the first update of
    that epoch makes every weight NaN while its loss (computed before the update) is finite."""
    return keras.callbacks.LearningRateScheduler(lambda e, lr: float("nan") if e >= epoch else 1e-3)


def test_nan_weights_from_an_epochs_last_step_are_never_checkpointed(tmp_path):
    """One step per epoch: epoch 2's only update makes the weights NaN with a finite loss.
    ModelCheckpoint and BackupAndRestore (both after the guard) must keep epoch 1's
    finite weights, and the error must say that the weights, not the loss, went bad."""
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    checkpoint = tmp_path / "ckpt.keras"
    callbacks = [
        _nan_learning_rate_at(1),
        keras.callbacks.ModelCheckpoint(checkpoint),
        probae.BackupAndRestore(tmp_path / "backup", delete_checkpoint=False),
    ]
    with pytest.raises(
        probae.NonFiniteLossError, match=r"weights .*end of epoch 2 \(optimizer step 2\)"
    ) as info:
        model.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    assert "intact" in str(info.value)
    assert any(not np.all(np.isfinite(w)) for w in model.get_weights())  # really poisoned
    saved = probae.load_model(checkpoint)
    assert all(np.all(np.isfinite(w)) for w in saved.get_weights())
    state = json.loads((tmp_path / "backup" / "probae_state.json").read_text())
    assert state["epoch"] == 1
    restored = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    restored.compile()
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(tmp_path / "backup" / state["weights"])
    assert all(np.all(np.isfinite(w)) for w in restored.get_weights())


def test_guard_is_moved_before_a_checkpoint_listed_first(tmp_path):
    guard = probae.StopOnNaN()
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "m.keras")
    assert probae.callbacks.with_nan_guard([checkpoint, guard]) == [guard, checkpoint]


def test_backup_refuses_to_write_non_finite_weights(tmp_path):
    """Even without the guard (stop_on_nan=False), BackupAndRestore never commits NaN weights."""
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    backup = probae.BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    with pytest.raises(probae.NonFiniteLossError, match="backup"):
        model.fit(
            x,
            epochs=2,
            batch_size=16,
            verbose=0,
            stop_on_nan=False,
            callbacks=[_nan_learning_rate_at(1), backup],
        )
    state = json.loads((tmp_path / "backup" / "probae_state.json").read_text())
    assert state["epoch"] == 1


def test_backup_of_another_run_is_refused(tmp_path):
    """A backup written for 4 steps per epoch is not resumed by a fit with 2 (other
    data), nor by a model of another shape: a ValueError names the directory."""
    backup = tmp_path / "backup"
    model = probae.VAE((6,), 2, hidden_units=(8,))
    x = (np.random.default_rng(0).random((32, 6)) < 0.5).astype("float32")
    model.fit(
        x,
        epochs=1,
        batch_size=8,
        verbose=0,
        callbacks=[probae.BackupAndRestore(backup, delete_checkpoint=False)],
    )
    assert not (backup / probae.BackupAndRestore.LOCK).exists()  # released at the end
    with pytest.raises(ValueError, match=r"backup_dir=.*another run: 4 steps per epoch.* 2"):
        model.fit(
            x[:16], epochs=2, batch_size=8, verbose=0, callbacks=[probae.BackupAndRestore(backup)]
        )
    other = probae.VAE((6,), 3, hidden_units=(8,))
    with pytest.raises(ValueError, match=r"backup_dir=.*another model"):
        other.fit(x, epochs=2, batch_size=8, verbose=0, callbacks=[probae.BackupAndRestore(backup)])


def test_backup_dir_in_use_by_a_live_process_is_refused(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (backup / probae.BackupAndRestore.LOCK).write_text(
            json.dumps({"pid": holder.pid, "host": __import__("socket").gethostname()})
        )
        model = probae.VAE((6,), 2, hidden_units=(8,))
        x = np.zeros((8, 6), "float32")
        with pytest.raises(
            ValueError, match=rf"in use by another training process \(pid {holder.pid}\)"
        ):
            model.fit(x, epochs=1, verbose=0, callbacks=[probae.BackupAndRestore(backup)])
    finally:
        holder.kill()
        holder.wait()
    # Once that process is gone, its stale lock is taken over.
    model.fit(x, epochs=1, verbose=0, callbacks=[probae.BackupAndRestore(backup)])
    assert not backup.exists()


def test_mid_epoch_checkpoints_make_the_guard_check_every_step(tmp_path):
    """ModelCheckpoint(save_freq=1) saves after every batch: the guard then checks the
    weights after every step, so the NaN update of epoch 2's first batch is never saved."""
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    checkpoint = tmp_path / "ckpt.keras"
    callbacks = [_nan_learning_rate_at(1), keras.callbacks.ModelCheckpoint(checkpoint, save_freq=1)]
    model.compile(steps_per_execution=1)  # a save after every batch
    with pytest.raises(
        probae.NonFiniteLossError, match=r"weights .*epoch 2, batch 1 \(optimizer step 3\)"
    ):
        model.fit(x, epochs=2, batch_size=8, verbose=0, callbacks=callbacks)
    saved = probae.load_model(checkpoint)
    assert int(saved.optimizer.iterations.numpy()) == 2
    assert all(np.all(np.isfinite(w)) for w in saved.get_weights())
    assert not probae.callbacks.with_nan_guard([])[0].every_batch  # no mid-epoch saver
