"""Input adaptation (probae.inputs): arrays and datasets become the same validated batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import probae
from probae import inputs


@pytest.fixture(scope="module")
def model():
    return probae.VAE((5,), 2, likelihood="gaussian", hidden_units=(4,))


def test_arrays_and_datasets_give_the_same_batches(model):
    x = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    from_arrays, total = inputs.batches(model, x, batch_size=4)
    from_dataset, unknown = inputs.batches(model, tf.data.Dataset.from_tensor_slices(x).batch(4))
    assert total == 11 and unknown is None
    for (a, ca), (b, cb) in zip(from_arrays, from_dataset, strict=True):
        np.testing.assert_array_equal(a, b)
        assert ca is None and cb is None


def test_streamed_batches_are_validated_as_they_come(model):
    bad = np.ones((6, 5), np.float32)
    bad[5, 2] = np.nan
    stream, _ = inputs.batches(model, tf.data.Dataset.from_tensor_slices(bad).batch(3))
    next(stream)  # the first batch is fine
    with pytest.raises(ValueError, match="finite"):
        next(stream)
    dicts = tf.data.Dataset.from_tensor_slices({"x": bad[:3]}).batch(3)
    with pytest.raises(TypeError, match="not dicts"):
        next(inputs.batches(model, dicts)[0])
    with pytest.raises(ValueError, match="condition must be None"):
        inputs.batches(model, tf.data.Dataset.from_tensor_slices(bad).batch(3), condition=bad)


def test_loop_options_are_checked():
    kwargs = {"epochs": 2, "batch_size": None}
    inputs.check_loop_options(kwargs, "epochs")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        inputs.check_loop_options({"epochs": 0}, "epochs")


def small_vae(**kwargs):
    return probae.VAE((784,), 8, hidden_units=(64,), activation="tanh", **kwargs)


def test_fit_accepts_arrays_datasets_generators_and_pydatasets(binarized):
    x = binarized[0][:400]

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
    for data, kwargs in [
        (x, {"batch_size": 100}),
        (ds, {}),
        (gen(), {"steps_per_epoch": 4}),
        (Batches(), {}),
    ]:
        hist = model.fit(data, epochs=1, verbose=0, **kwargs)
        assert np.isfinite(hist.history["loss"][0])
    # an unbuilt model builds from a PyDataset ...
    fresh = probae.ProbabilisticAutoencoder(probae.GaussianEncoder(3), probae.BernoulliDecoder())
    fresh.fit(Batches(), epochs=1, verbose=0)
    assert fresh.event_shape == (784,)
    # ... and says what to do with a generator
    fresh = probae.ProbabilisticAutoencoder(probae.GaussianEncoder(3), probae.BernoulliDecoder())
    with pytest.raises(ValueError, match="input_shape"):
        fresh.fit(gen(), steps_per_epoch=2, epochs=1, verbose=0)


# -------------------------------------------------------------- mixed precision


def test_integer_labels_for_a_one_hot_condition():
    x = (np.random.default_rng(0).random((30, 6)) > 0.5).astype(np.float32)
    labels = np.arange(30) % 3
    cvae = probae.ConditionalVAE((6,), 2, condition_shape=(3,), hidden_units=(4,))
    np.testing.assert_array_equal(inputs.check_condition(cvae, labels, 30), np.eye(3)[labels])
    np.testing.assert_array_equal(inputs.check_condition(cvae, 2, 4), np.tile([0, 0, 1], (4, 1)))
    one_hot = cvae.evaluate(
        x, np.eye(3, dtype=np.float32)[labels], batch_size=30, verbose=0, return_dict=True
    )
    by_label = cvae.evaluate(x, labels, batch_size=30, verbose=0, return_dict=True)
    assert one_hot["kl"] == pytest.approx(by_label["kl"], rel=1e-6)
    cvae.fit(tf.data.Dataset.from_tensor_slices((x, labels)).batch(10), epochs=1, verbose=0)
    assert cvae.sample(5, condition=1, seed=0).shape == (5, 6)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        cvae.fit(x, labels + 1, epochs=1, verbose=0)


def test_streamed_datasets_are_checked_in_fit():
    x = (np.random.default_rng(0).random((40, 6)) > 0.5).astype(np.float32)
    model = probae.VAE((6,), 2, hidden_units=(4,))
    cases = [
        (
            tf.data.Dataset.from_tensor_slices(x * 255).batch(8),
            ValueError,
            r"x must lie in \[0, 1\]",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.where(x > 0.5, np.nan, x)).batch(8),
            ValueError,
            "x must contain only finite",
        ),
        (
            tf.data.Dataset.from_tensor_slices(x[:, :5]).batch(8),
            ValueError,
            r"x \(from the tf.data.Dataset\) must have shape \(batch, 6\)",
        ),
        (
            tf.data.Dataset.from_tensor_slices((x, np.arange(40))).batch(8),
            ValueError,
            r"y \(from the tf.data.Dataset\)",
        ),
        (tf.data.Dataset.from_tensor_slices({"a": x}).batch(8), TypeError, "not dicts"),
        (tf.data.Dataset.from_tensor_slices(x.astype(str)).batch(8), TypeError, "must be numeric"),
    ]
    for data, error, match in cases:
        with pytest.raises(error, match=match):
            model.fit(data, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x is required"):
        model.fit(None, epochs=1, verbose=0)


def test_dataframes_and_sparse_matrices():
    import pandas as pd
    import scipy.sparse as sp

    x = (np.random.default_rng(0).random((20, 6)) > 0.5).astype(np.float32)
    model = probae.VAE((6,), 2, hidden_units=(4,))
    frame = pd.DataFrame(x, columns=list("abcdef"))
    model.fit(frame, epochs=1, verbose=0)
    np.testing.assert_allclose(model.reconstruct(frame, verbose=0), model.reconstruct(x, verbose=0))
    with pytest.raises(TypeError, match=r"columns \['city'\] are not numeric"):
        model.fit(frame.assign(city="paris"), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="finite"):
        model.fit(frame.where(frame > 0), epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"scipy.sparse csr_matrix.*toarray\(\)"):
        model.fit(sp.csr_matrix(x), epochs=1, verbose=0)


def test_streamed_support_error_gives_the_scaling_hint_only_for_unit_interval_data():
    # An 8-bit likelihood takes 0..255 as it is: "divide by 255" would be wrong advice.
    x = np.random.default_rng(0).integers(0, 256, size=(16, 6)).astype(np.float32)
    model = probae.VAE((6,), 2, hidden_units=(4,), likelihood="beta_binomial")
    bad = tf.data.Dataset.from_tensor_slices(np.concatenate([x, x + 300])).batch(8)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 255\]") as info:
        model.fit(bad, epochs=1, verbose=0)
    assert "divide by 255" not in str(info.value)
    binary = probae.VAE((6,), 2, hidden_units=(4,))
    with pytest.raises(ValueError, match="divide by 255"):
        binary.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)
