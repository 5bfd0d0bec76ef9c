"""Input pipelines on disk (probae.data): .npy shards and TFRecord files."""

import numpy as np
import pytest
import tensorflow as tf

import probae
from probae import data


@pytest.fixture(scope="module")
def shards(tmp_path_factory, binarized):
    x = binarized[0][:1000]
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
    key = lambda a: a @ (np.arange(784) % 97 + 1.0)
    for got in epochs:
        assert got.shape == x.shape and got.dtype == np.float32
        np.testing.assert_allclose(np.sort(key(got)), np.sort(key(x)))
    # shuffled, and reshuffled each epoch
    assert not np.array_equal(epochs[0], x)
    assert not np.array_equal(epochs[0], epochs[1])
    in_order = np.concatenate(
        [b.numpy() for b in data.from_npy_shards(directory, 100, shuffle=False)]
    )
    np.testing.assert_array_equal(in_order, x)


def test_unbuilt_model_trains_from_shards(shards):
    _, directory, _ = shards
    model = probae.ProbabilisticAutoencoder(
        probae.GaussianEncoder(4, hidden_units=(32,)), probae.BernoulliDecoder(hidden_units=(32,))
    )
    hist = model.fit(data.from_npy_shards(directory, 100, seed=0), epochs=2, verbose=0)
    assert model.event_shape == (784,)
    assert hist.history["loss"][1] < hist.history["loss"][0]


def test_tfrecords_round_trip(tmp_path, binarized):
    x = binarized[0][:250]
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
        (
            lambda d: data.write_npy_shards(np.zeros((4, 3)), d, rows_per_shard=0),
            ValueError,
            "rows_per_shard",
        ),
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


# ------------------------------------------------- issue 17: corrupt files name themselves
def _shard_dir(tmp_path, edit):
    d = tmp_path / "shards"
    d.mkdir()
    np.save(d / "a.npy", np.zeros((8, 3), np.float32))
    x = np.ones((8, 3), np.float32)
    path = d / "b.npy"
    np.save(path, x)
    edit(path, x)
    return d


def _truncate(path, x):
    path.write_bytes(path.read_bytes()[:-10])


def _wrong_magic(path, x):
    path.write_bytes(b"NOTNUMPY" + path.read_bytes()[8:])


def _with_value(value):
    def edit(path, x):
        x[5, 1] = value
        np.save(path, x)

    return edit


@pytest.mark.parametrize(
    "edit, text",
    [
        (_truncate, "truncated"),
        (_wrong_magic, "not a .npy file"),
        (_with_value(np.nan), "NaN or infinite"),
        (_with_value(-np.inf), "NaN or infinite"),
    ],
    ids=["truncated", "wrong magic", "nan", "-inf"],
)
def test_corrupt_or_non_finite_shard_is_named(tmp_path, edit, text):
    d = _shard_dir(tmp_path, edit)
    with pytest.raises(ValueError, match=f"b.npy.*{text}|{text}.*b.npy"):
        data.from_npy_shards(d, 4)


def _records(tmp_path, rows):
    return data.write_tfrecords(rows, str(tmp_path / "r.tfrecord"))


def test_corrupt_or_non_finite_tfrecords_are_named(tmp_path):
    x = np.ones((6, 3), np.float32)
    path = _records(tmp_path, x)[0]
    raw = open(path, "rb").read()
    with open(path, "wb") as f:  # flip bytes inside the last record: its CRC fails
        f.write(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:]))
    with pytest.raises(ValueError, match="r.tfrecord.*corrupt"):
        data.from_tfrecords(path, 2, (3,))
    nan_path = str(tmp_path / "nan.tfrecord")  # written by hand: write_tfrecords refuses NaN
    with tf.io.TFRecordWriter(nan_path) as writer:
        for row in ([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0]):
            feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=row))}
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    with pytest.raises(ValueError, match="nan.tfrecord.*NaN or infinite"):
        data.from_tfrecords(nan_path, 2, (3,))
    good = data.write_tfrecords(x, str(tmp_path / "good.tfrecord"))[0]
    with pytest.raises(ValueError, match=r"good.tfrecord.*4 values \(event_shape=\(4,\)\)"):
        data.from_tfrecords(good, 2, (4,))


def test_write_tfrecords_of_zero_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="x must hold at least one example"):
        data.write_tfrecords(np.zeros((0, 3), np.float32), str(tmp_path / "r.tfrecord"))
    assert not list(tmp_path.iterdir())
