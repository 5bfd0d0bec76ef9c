"""Input pipelines (arrays, datasets, generators, shards on disk) and mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae
from probae import data


def small_vae(**kwargs):
    return probae.VAE((784,), 8, hidden_units=(64,), activation="tanh", **kwargs)


@pytest.fixture(scope="module")
def mnist():
    import os

    path = os.environ.get("PROBAE_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("no local dataset directory")
    x_train, _, x_test = probae.datasets.load_binarized_mnist()
    return x_train[:3000], x_test[:500]


# ---------------------------------------------------------------------- .npy shards
@pytest.fixture(scope="module")
def shards(tmp_path_factory, mnist):
    x = mnist[0][:1000]
    directory = tmp_path_factory.mktemp("shards")
    paths = data.write_npy_shards(x, directory, rows_per_shard=300)
    return x, directory, paths


def test_write_npy_shards_splits_rows(shards):
    x, _, paths = shards
    sizes = [np.load(p, mmap_mode="r").shape[0] for p in paths]
    assert sizes == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([np.load(p) for p in paths]), x)


def test_from_npy_shards_yields_every_example_once_per_epoch(shards):
    x, directory, _ = shards
    ds = data.from_npy_shards(directory, batch_size=64, shuffle=True, shuffle_buffer=200, seed=3)
    assert ds.element_spec.shape.as_list() == [None, 784]
    epochs = [np.concatenate([b.numpy() for b in ds]) for _ in range(2)]
    key = lambda a: a @ (np.arange(784) % 97 + 1.0)  # noqa: E731  (an order-free row key)
    for got in epochs:
        assert got.shape == x.shape and got.dtype == np.float32
        np.testing.assert_allclose(np.sort(key(got)), np.sort(key(x)))
    # shuffled, and reshuffled each epoch
    assert not np.array_equal(epochs[0], x)
    assert not np.array_equal(epochs[0], epochs[1])
    in_order = np.concatenate([b.numpy() for b in data.from_npy_shards(directory, 100, shuffle=False)])
    np.testing.assert_array_equal(in_order, x)


def test_unbuilt_model_trains_from_shards(shards):
    _, directory, _ = shards
    model = probae.ProbabilisticAutoencoder(
        probae.GaussianEncoder(4, hidden_units=(32,)), probae.BernoulliDecoder(hidden_units=(32,))
    )
    hist = model.fit(data.from_npy_shards(directory, 100, seed=0), epochs=2, verbose=0)
    assert model.event_shape == (784,)
    assert hist.history["loss"][1] < hist.history["loss"][0]


def test_tfrecords_round_trip(tmp_path, mnist):
    x = mnist[0][:250]
    paths = data.write_tfrecords(x, str(tmp_path / "x.tfrecord"), rows_per_file=100)
    assert len(paths) == 3
    got = np.concatenate([b.numpy() for b in data.from_tfrecords(paths, 64, (784,), shuffle=False)])
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda d: data.from_npy_shards(123, 10), TypeError, "directory"),
        (lambda d: data.from_npy_shards(d / "empty", 10), ValueError, "directory"),
        (lambda d: data.from_npy_shards(d, 0), ValueError, "batch_size"),
        (lambda d: data.from_npy_shards(d, 10, shuffle_buffer=-1), ValueError, "shuffle_buffer"),
        (lambda d: data.write_npy_shards(np.zeros((4, 3)), d, rows_per_shard=0), ValueError, "rows_per_shard"),
        (lambda d: data.write_npy_shards(np.zeros((0, 3)), d), ValueError, "x"),
        (lambda d: data.from_tfrecords(str(d / "missing.tfrecord"), 10, (3,)), ValueError, "files"),
        (lambda d: data.from_tfrecords([], 10, (3,)), ValueError, "files"),
        (lambda d: data.from_tfrecords(str(d), 10, (0,)), ValueError, "event_shape"),
    ],
)
def test_data_bad_input(tmp_path, call, exc, name):
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    with pytest.raises(exc, match=name):
        call(tmp_path)


def test_shards_of_different_shapes_are_rejected(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="same example shape"):
        data.from_npy_shards(tmp_path, 2)


# ---------------------------------------------------------------------- fit inputs
def test_fit_accepts_arrays_datasets_generators_and_pydatasets(mnist):
    x = mnist[0][:400]

    def gen():
        while True:
            for i in range(0, 400, 100):
                yield x[i : i + 100]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 100 : (i + 1) * 100]

    ds = tf.data.Dataset.from_tensor_slices(x).batch(100)
    model = small_vae()
    for inputs, kwargs in [
        (x, {"batch_size": 100}),
        (ds, {}),
        (gen(), {"steps_per_epoch": 4}),
        (Batches(), {}),
    ]:
        hist = model.fit(inputs, epochs=1, verbose=0, **kwargs)
        assert np.isfinite(hist.history["loss"][0])
    # an unbuilt model builds from a PyDataset ...
    fresh = probae.ProbabilisticAutoencoder(probae.GaussianEncoder(3), probae.BernoulliDecoder())
    fresh.fit(Batches(), epochs=1, verbose=0)
    assert fresh.event_shape == (784,)
    # ... and says what to do with a generator
    fresh = probae.ProbabilisticAutoencoder(probae.GaussianEncoder(3), probae.BernoulliDecoder())
    with pytest.raises(ValueError, match="input_shape"):
        fresh.fit(gen(), steps_per_epoch=2, epochs=1, verbose=0)


# ---------------------------------------------------------------------- mixed precision
def _train(policy, x_train, x_test, seed=0):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        model = small_vae(seed=seed)
        model.fit(x_train, batch_size=100, epochs=3, verbose=0)
        return model, float(np.mean(model.elbo(x_test, seed=0)))
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def mixed_runs(mnist):
    x_train, x_test = mnist
    return {p: _train(p, x_train, x_test) for p in ("float32", "mixed_float16", "mixed_bfloat16")}


# Tolerance: 3 percent of the float32 test ELBO (about 8 nats here: 3 epochs on 3000
# images give about -266 nats). Measured: mixed_float16 1.2 nats and mixed_bfloat16
# 0.02 nats away from float32 (same seed).
MIXED_RTOL = 0.03


@pytest.mark.parametrize("policy, low", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_elbo_matches_float32(mixed_runs, mnist, policy, low):
    model, elbo = mixed_runs[policy]
    _, elbo32 = mixed_runs["float32"]
    print(f"\n{policy}: test ELBO {elbo:.2f} nats, float32 {elbo32:.2f} nats")
    assert np.isfinite(elbo)
    assert abs(elbo - elbo32) <= MIXED_RTOL * abs(elbo32), (policy, elbo, elbo32)
    # networks compute in low precision, distribution parameters stay float32
    assert model.encoder.network.compute_dtype == low
    assert model.decoder.network.compute_dtype == low
    x = mnist[1][:10]
    posterior = model.encode(x)
    assert posterior.dtype == tf.float32 and posterior.mean().dtype == tf.float32
    likelihood = model.decode(posterior.mean().numpy())
    assert likelihood.dtype == tf.float32
    assert likelihood.log_prob(x).dtype == tf.float32
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_mixed_float16_conv_learned_scale_and_mixture_prior():
    """The whole path: conv network, centre crop, learned scale, learned prior."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        x = rng.random((64, 10, 10, 1)).astype("float32")  # 10 is cropped from 12
        model = probae.VAE(
            (10, 10, 1), 3, likelihood="gaussian", prior=probae.MixtureOfGaussiansPrior(2),
            filters=(4, 8), hidden_units=(16,),
        )
        hist = model.fit(x, batch_size=32, epochs=2, verbose=0)
        assert np.all(np.isfinite(hist.history["loss"]))
        assert model.decoder.raw_scale.dtype == "float32"
        likelihood = model.decode(np.zeros((2, 3), np.float32))
        assert likelihood.dtype == tf.float32
        assert likelihood.distribution.scale.dtype == tf.float32
        assert model.prior.distribution().dtype == tf.float32
        assert np.all(np.isfinite(model.elbo(x)))
    finally:
        keras.mixed_precision.set_global_policy(previous)


# ------------------------------------------------------------ steps per execution
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
        x, batch_size=32, epochs=2, verbose=0, shuffle=True, validation_data=x[:96],
        callbacks=callbacks,
    )
    return model, history


def test_auto_steps_per_execution_changes_nothing_but_speed(mnist):
    x = mnist[0][:700]  # 22 batches per epoch: two full groups of 10 and a partial one
    grouped, h_grouped = _fit_small(x)
    single, h_single = _fit_small(x, steps_per_execution=1)
    assert grouped.steps_per_execution == probae.model.AUTO_STEPS_PER_EXECUTION == 10
    assert single.steps_per_execution == 1
    assert int(grouped.optimizer.iterations.numpy()) == int(single.optimizer.iterations.numpy()) == 44
    for a, b in zip(grouped.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "kl", "val_elbo"):
        np.testing.assert_allclose(h_grouped.history[key], h_single.history[key], rtol=1e-5)


def test_grouped_steps_respect_steps_per_epoch(mnist):
    # Keras runs whole groups: "auto" picks a group size that divides steps_per_epoch.
    x = mnist[0][:1000]
    repeated = tf.data.Dataset.from_tensor_slices(x).repeat().batch(50)
    for steps_per_epoch, group in ((25, 5), (7, 7), (13, 1), (40, 10)):
        model = probae.VAE((784,), 4, hidden_units=(16,), seed=3)
        model.fit(repeated, steps_per_epoch=steps_per_epoch, epochs=2, verbose=0)
        assert model.steps_per_execution == group
        assert int(model.optimizer.iterations.numpy()) == 2 * steps_per_epoch
    model.evaluate(repeated, steps=4, verbose=0)
    assert model.steps_per_execution == 4


def test_predict_before_and_after_grouped_fit_returns_every_row(mnist):
    x = mnist[0][:700]
    model = probae.VAE((784,), 4, hidden_units=(16,), seed=3)
    model.compile()
    before = model.predict(x, batch_size=32, verbose=0)  # traced with 1 step per call
    model.fit(x, batch_size=32, epochs=1, verbose=0)  # switches to 10
    after = model.predict(x, batch_size=32, verbose=0)
    assert before.shape == after.shape == (700, 784)
    np.testing.assert_allclose(after, model.reconstruct(x), rtol=1e-5, atol=1e-6)


def test_batch_callbacks_still_see_every_batch(mnist):
    x = mnist[0][:700]
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
    for callback in (probae.callbacks.LinearBetaWarmup(5, per="step"), probae.BackupAndRestore("unused", save_freq=3)):
        assert not probae.reliability.supports_steps_per_execution(callback)
    assert probae.reliability.supports_steps_per_execution(keras.callbacks.ModelCheckpoint("m.keras"))
