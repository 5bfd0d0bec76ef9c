"""Interrupted training, reproducibility, atomic saving, safe loading, NaN handling and
numerical safety (issue 7)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae
from probae import reliability

WORKER = pathlib.Path(__file__).with_name("reliability_worker.py")


# ----------------------------------------------------------------------------- processes
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


# ----------------------------------------------------------------------------- saving
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return model, path, x


def _rewrite(src, dst, edit_config=None, drop=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename == drop:
                continue
            data = zin.read(item.filename)
            if item.filename == "config.json" and edit_config is not None:
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def test_saved_file_round_trips_and_holds_no_code(saved):
    model, path, x = saved
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == {"config.json", "metadata.json", "model.weights.h5"}
        config = archive.read("config.json").decode()
    assert "Lambda" not in config and "lambda" not in config and "pickle" not in config
    loaded = probae.load_model(path)
    assert isinstance(loaded, probae.ProbabilisticAutoencoder)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    # The sampling seed's state is part of the saved state (resumed runs draw the same noise).
    np.testing.assert_array_equal(
        loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy()
    )
    assert int(loaded.optimizer.iterations.numpy()) == 4
    np.testing.assert_allclose(loaded.elbo(x, seed=1), model.elbo(x, seed=1), rtol=1e-6)


def _inject_lambda(config):
    encoder = config["config"]["encoder"]["config"]
    encoder["network"] = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
    }


def _unknown_class(config):
    config["config"]["decoder"]["class_name"] = "EvilDecoder"
    config["config"]["decoder"]["registered_name"] = "evil>EvilDecoder"


def _not_probae(config):
    config["class_name"] = "Sequential"
    config["registered_name"] = None


@pytest.mark.parametrize(
    "edit, message",
    [
        (_inject_lambda, "Lambda layer"),
        (_unknown_class, "EvilDecoder"),
        (_not_probae, "not a probae ProbabilisticAutoencoder"),
    ],
)
def test_tampered_file_gives_clear_error(saved, tmp_path, edit, message):
    _, path, _ = saved
    bad = tmp_path / "tampered.keras"
    _rewrite(path, bad, edit_config=edit)
    with pytest.raises(probae.InvalidModelFileError, match=message) as info:
        probae.load_model(bad)
    assert "path=" in str(info.value)


def test_lambda_is_refused_by_keras_safe_mode_too(saved, tmp_path):
    """Without probae's own check, Keras' safe mode still refuses to run the code."""
    _, path, _ = saved
    bad = tmp_path / "tampered.keras"
    _rewrite(path, bad, edit_config=_inject_lambda)
    with pytest.raises(Exception, match="safe_mode"):
        keras.models.load_model(bad)


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_file_gives_clear_error(saved, tmp_path, cut):
    _, path, _ = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(probae.InvalidModelFileError, match="truncated"):
        probae.load_model(bad)


def test_missing_or_foreign_files_give_clear_errors(saved, tmp_path):
    _, path, _ = saved
    with pytest.raises(FileNotFoundError, match="path="):
        probae.load_model(tmp_path / "nope.keras")
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(probae.InvalidModelFileError, match="path="):
        probae.load_model(text)
    no_weights = tmp_path / "no_weights.keras"
    _rewrite(path, no_weights, drop="model.weights.h5")
    with pytest.raises(probae.InvalidModelFileError, match="path="):
        probae.load_model(no_weights)
    with pytest.raises(TypeError, match="path"):
        probae.load_model(123)


def test_failed_save_leaves_previous_file_intact(saved, tmp_path, monkeypatch):
    model, path, _ = saved
    target = tmp_path / "model.keras"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()
    from keras.src.saving import saving_lib

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saving_lib, "_save_state", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temp left
    with pytest.raises(FileExistsError, match="filepath"):
        model.save(target, overwrite=False)
    with pytest.raises(ValueError, match="filepath"):
        model.save(tmp_path / "model.h5")


# ----------------------------------------------------------------------------- NaN
def _nan_dataset(bad_batch):
    x = np.random.default_rng(0).random((48, 6)).astype("float32")
    x[bad_batch * 8 + 3, 2] = np.nan  # batches of 8: batch `bad_batch` (0-based) has a NaN
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
    x[13 * 8 + 3, 2] = np.nan  # batch 14 (1-based) of 20
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
    assert np.isnan(history.history["loss"][-1])


def test_guard_is_not_added_twice():
    guard = probae.StopOnNaN()
    assert reliability.with_nan_guard([guard]) == [guard]
    assert isinstance(reliability.with_nan_guard(None)[0], probae.StopOnNaN)


# ----------------------------------------------------------------------------- extremes
def _fit_outcome(model, x, epochs=3):
    history = model.fit(x, epochs=epochs, batch_size=16, verbose=0)
    losses = np.array(history.history["loss"])
    assert np.all(np.isfinite(losses)), losses
    elbo = model.elbo(x[:16])
    assert np.all(np.isfinite(elbo))
    return losses, elbo


def test_all_zero_images():
    x = np.zeros((32, 8, 8, 1), "float32")
    model = probae.VAE((8, 8, 1), 2, filters=(4,), hidden_units=(8,))
    losses, elbo = _fit_outcome(model, x)
    assert losses[-1] < losses[0]  # learns to predict zeros: log p(x|z) -> 0 from below
    assert np.all(elbo <= 0)


def test_constant_columns_with_learned_gaussian_scale():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 6)).astype("float32")
    x[:, :3] = 5.0  # zero variance: the learned scale goes to its floor, not to 0
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    _fit_outcome(model, x, epochs=5)
    scale = keras.ops.softplus(model.decoder.raw_scale).numpy() + model.decoder.min_scale
    assert np.all(scale >= model.decoder.min_scale)


def test_huge_features_with_gaussian_decoder():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(32, 6)) * 1e6).astype("float32")
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    losses, elbo = _fit_outcome(model, x)
    # The loss is astronomically large (the model starts with unit scales) but finite.
    assert losses[0] > 1e9


def test_single_repeated_example():
    x = np.tile(np.random.default_rng(3).random((1, 6)).astype("float32"), (32, 1))
    for model in (
        probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,)),
        probae.Autoencoder((6,), 2, likelihood="bernoulli", hidden_units=(8,)),
    ):
        model.compile(optimizer=keras.optimizers.Adam(0.05))
        _fit_outcome(model, x, epochs=5)


def test_collapsed_posterior_and_saturated_logits_stay_finite():
    """Extreme network outputs: the scale floors and the logit parameterisations hold."""
    extreme = tf.constant([[-1e30, -1e4, -1.0, -1e-7, 0.0, 1e-7, 1.0, 1e4]], tf.float32)
    encoder = probae.GaussianEncoder(4)
    # means 0, 1, -1, 3; raw scales so negative that softplus underflows to 0: the floor holds
    posterior = encoder.distribution(tf.constant([[0.0, 1.0, -1.0, 3.0, -1e30, -1e4, -100.0, -88.0]]))
    assert np.all(posterior.stddev().numpy() >= encoder.min_scale)
    kl = probae.objectives.kl_divergence(posterior, probae.StandardNormalPrior(4).distribution())[0]
    assert np.all(np.isfinite(kl.numpy()))
    for decoder in (
        probae.BernoulliDecoder(event_shape=(8,)),
        probae.ContinuousBernoulliDecoder(event_shape=(8,)),
    ):
        dist = decoder.distribution(tf.clip_by_value(extreme, -1e4, 1e4)[..., None])
        for value in (0.0, 0.5, 1.0):
            log_prob = dist.log_prob(tf.fill([1, 8], value)).numpy()
            assert np.all(np.isfinite(log_prob)), (type(decoder).__name__, value, log_prob)


def test_collapsed_posterior_against_a_learned_mixture_prior_stays_finite():
    """Monte Carlo KL to a mixture prior (no closed form) with a posterior at its scale floor."""
    encoder = probae.GaussianEncoder(2)
    posterior = encoder.distribution(tf.constant([[0.5, -3.0, -1e30, -1e30]] * 3))
    prior = probae.MixtureOfGaussiansPrior(num_components=3, latent_dim=2)
    prior.build((None, 2))
    z = posterior.sample(4, seed=[1, 2])
    kl, analytic = probae.objectives.kl_divergence(posterior, prior.distribution(), z)
    assert not analytic
    kl = kl.numpy()
    # log q(z) of a 2-d Gaussian with sigma = 1e-4 is about 2 * 8.3 nats; finite and large.
    assert np.all(np.isfinite(kl)) and np.all(kl > 10)
