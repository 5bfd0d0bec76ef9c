"""Input pipelines for data that does not fit in memory: ``.npy`` shards and TFRecords.

``model.fit`` takes NumPy arrays, ``tf.data.Dataset`` objects, Python generators and
``keras.utils.PyDataset``. For data held on disk, the functions here return a
``tf.data.Dataset`` of batches that reads the files a block of rows at a time, so memory
stays bounded by the shuffle buffer and the prefetch queue, not by the data's size:

    probae.data.write_npy_shards(x, "shards/", rows_per_shard=10_000)
    dataset = probae.data.from_npy_shards("shards/", batch_size=100)
    model.fit(dataset, epochs=10)
"""

import glob
import math
import os

import numpy as np
import tensorflow as tf

from probae._validation import as_float_array, check_positive_int, check_seed

__all__ = ["write_npy_shards", "from_npy_shards", "write_tfrecords", "from_tfrecords"]


def _check_directory(directory, name="directory"):
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a path (str or os.PathLike). Received: {name}={directory!r}"
        )
    return os.fspath(directory)


def write_npy_shards(x, directory, rows_per_shard=10_000, prefix="shard"):
    """Writes the rows of ``x`` to ``directory`` as ``.npy`` files of at most ``rows_per_shard`` rows.

    Args:
        x: array ``[n, *event_shape]`` (a NumPy array or a ``np.memmap``; written one shard
            at a time, as float32).
        directory: output directory (created if missing).
        rows_per_shard: rows per file.
        prefix: file name prefix; files are ``{prefix}-00000.npy``, ...

    Returns:
        The list of paths written, in order.

    Raises:
        ValueError: bad ``rows_per_shard`` or an empty ``x``.
        TypeError: a non-path ``directory``.
    """
    directory = _check_directory(directory)
    rows_per_shard = check_positive_int(rows_per_shard, "rows_per_shard")
    if not hasattr(x, "shape") or len(x.shape) < 2 or x.shape[0] == 0:
        x = as_float_array(x, "x")  # raises the usual error for bad input
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, start in enumerate(range(0, x.shape[0], rows_per_shard)):
        block = as_float_array(x[start : start + rows_per_shard], "x")
        path = os.path.join(directory, f"{prefix}-{i:05d}.npy")
        np.save(path, block)
        paths.append(path)
    return paths


def _npy_header(path):
    """(shape, dtype, fortran_order, data offset) of a ``.npy`` file, read without loading
    it; a file that is not a ``.npy`` file, or shorter than its header says, is refused."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, EOFError, SyntaxError, TypeError) as err:
        raise ValueError(f"{path} is not a .npy file (or its header is damaged): {err}") from None
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise ValueError(
            f"{path} is truncated: its header describes an array of shape {shape} and dtype "
            f"{dtype} ({expected} bytes with the header), but the file holds {size} bytes."
        )
    return shape, dtype, fortran, offset


def _read_rows(path, shape, dtype, offset, block_rows):
    """Yields float32 blocks of ``block_rows`` rows of a ``.npy`` file (plain reads)."""
    row_items = int(np.prod(shape[1:]))
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, shape[0], block_rows):
            rows = min(block_rows, shape[0] - start)
            block = np.fromfile(f, dtype=dtype, count=rows * row_items)
            if block.size != rows * row_items:
                raise ValueError(f"{path} is truncated: rows from {start} are missing.")
            yield start, block.reshape((rows, *shape[1:])).astype(np.float32, copy=False)


def _check_finite_rows(path, start, block):
    """Raises a ValueError naming ``path`` and the row when a block holds NaN or inf."""
    finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
    if not finite.all():
        row = start + int(np.argmin(finite))
        raise ValueError(
            f"{path} holds NaN or infinite values (first in row {row}); every example must "
            "be finite. Clean or drop those rows, or pass validate=False to skip this scan."
        )


def _shard_files(directory, pattern):
    files = sorted(glob.glob(os.path.join(directory, pattern)))
    if not files:
        raise ValueError(
            f"directory must contain files matching {pattern!r}. Received: directory="
            f"{directory!r} with none"
        )
    return files


def from_npy_shards(
    directory,
    batch_size,
    shuffle=True,
    shuffle_buffer=10_000,
    seed=None,
    pattern="*.npy",
    block_rows=1024,
    drop_remainder=False,
    prefetch=2,
    validate=True,
):
    """A ``tf.data.Dataset`` of batches streamed from a directory of ``.npy`` shards.

    Each shard is read ``block_rows`` rows at a time with plain file reads (no memory
    map, so resident memory does not grow with the files' size). With ``shuffle`` the
    order of the shards is shuffled every epoch and examples pass through a shuffle
    buffer of ``shuffle_buffer`` examples (a windowed shuffle: examples more than about
    a buffer apart on disk stay apart; shuffle the rows once when writing the shards for
    a uniform order). Peak memory is about ``(shuffle_buffer + prefetch * batch_size +
    block_rows)`` examples.

    Args:
        directory: directory holding the shards (all of one event shape; any numeric
            dtype, converted to float32).
        batch_size: examples per batch.
        shuffle: shuffle shards and examples every epoch.
        shuffle_buffer: examples in the shuffle buffer.
        seed: int seed of the shuffles, or None.
        pattern: glob pattern of the shard files inside ``directory``.
        block_rows: rows read from a file at a time.
        drop_remainder: drop the last incomplete batch.
        prefetch: batches prepared ahead of the training step.
        validate: read every shard once here, block by block (memory stays bounded),
            and refuse NaN or infinite values with a ``ValueError`` naming the file and
            row: one extra pass over the data (its cost is in the README's reliability
            section). Headers and file sizes are checked either way.

    Returns:
        A ``tf.data.Dataset`` yielding float32 tensors ``[batch, *event_shape]`` (its
        element spec has a known event shape, so an unbuilt model builds from it).

    Raises:
        ValueError: no shard, a file that is not a ``.npy`` file or is truncated (named),
            NaN or infinite values (with ``validate``), shards of different shapes, bad
            sizes.
        TypeError: a non-path ``directory``.
    """
    directory = _check_directory(directory)
    batch_size = check_positive_int(batch_size, "batch_size")
    shuffle_buffer = check_positive_int(shuffle_buffer, "shuffle_buffer")
    block_rows = check_positive_int(block_rows, "block_rows")
    prefetch = check_positive_int(prefetch, "prefetch")
    seed = check_seed(seed)
    files = _shard_files(directory, pattern)
    headers = {}
    for path in files:
        shape, dtype, fortran, offset = _npy_header(path)
        if fortran or len(shape) < 2 or dtype.kind not in "fiub":
            raise ValueError(
                f"Every shard must hold a C-ordered numeric array of rank >= 2. Received: "
                f"{path} with shape {shape}, dtype {dtype}, fortran_order={fortran}"
            )
        headers[path] = (shape, dtype, offset)
    event_shapes = {h[0][1:] for h in headers.values()}
    if len(event_shapes) != 1:
        raise ValueError(
            f"All shards must have the same example shape. Received: shapes "
            f"{sorted(event_shapes)} in {directory!r}"
        )
    event_shape = event_shapes.pop()
    if validate:
        for path, (shape, dtype, offset) in headers.items():
            if dtype.kind == "f":
                for start, block in _read_rows(path, shape, dtype, offset, max(block_rows, 65536)):
                    _check_finite_rows(path, start, block)

    def read_blocks(path):
        path = path.decode() if isinstance(path, bytes) else path
        for _, block in _read_rows(path, *headers[path], block_rows):
            yield block

    spec = tf.TensorSpec((None, *event_shape), tf.float32)
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(
        lambda path: tf.data.Dataset.from_generator(
            read_blocks, output_signature=spec, args=(path,)
        ),
        cycle_length=1,
        num_parallel_calls=None,
        deterministic=True,
    )
    ds = ds.unbatch()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(prefetch)


def write_tfrecords(x, path, rows_per_file=None):
    """Writes the rows of ``x`` to TFRecord file(s), one float32 example per record.

    Args:
        x: array ``[n, *event_shape]``.
        path: output file; with ``rows_per_file`` a prefix, files ``{path}-00000``, ...
        rows_per_file: rows per file, or None for a single file.

    Returns:
        The list of paths written.

    Raises:
        ValueError: ``x`` is empty or not a finite numeric batch, bad ``rows_per_file``.
    """
    path = _check_directory(path, "path")
    if rows_per_file is not None:
        rows_per_file = check_positive_int(rows_per_file, "rows_per_file")
    if not hasattr(x, "shape") or len(x.shape) < 2 or x.shape[0] == 0:
        x = as_float_array(x, "x")  # raises the usual error for bad or empty input
    n = x.shape[0]
    step = rows_per_file or max(n, 1)
    paths = []
    for i, start in enumerate(range(0, n, step)):
        block = as_float_array(x[start : start + step], "x")
        out = path if rows_per_file is None else f"{path}-{i:05d}"
        with tf.io.TFRecordWriter(out) as writer:
            for row in block:
                feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=row.ravel()))}
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(feature=feature)
                    ).SerializeToString()
                )
        paths.append(out)
    return paths


def _scan_tfrecords(files, features, key, event_shape):
    """Reads every record once: a corrupt record, a wrong length or NaN names its file."""
    for path in files:
        ds = tf.data.TFRecordDataset(path).batch(4096)
        ds = ds.map(lambda rec: tf.io.parse_example(rec, features)[key])
        start = 0
        try:
            for block in ds:
                _check_finite_rows(path, start, block.numpy())
                start += len(block)
        except tf.errors.DataLossError as err:
            raise ValueError(
                f"{path} is corrupt or truncated after record {start}: {err.message.splitlines()[0]}"
            ) from None
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(
                f"{path} does not hold records with a float feature {key!r} of "
                f"{math.prod(event_shape)} values (event_shape={tuple(event_shape)}) near "
                f"record {start}: {err.message.splitlines()[0][:200]}"
            ) from None


def from_tfrecords(
    files,
    batch_size,
    event_shape,
    shuffle=True,
    shuffle_buffer=10_000,
    seed=None,
    key="x",
    validate=True,
):
    """A ``tf.data.Dataset`` of batches read from TFRecord files of float examples.

    Args:
        files: a file, a glob pattern, or a list of files (records of ``tf.train.Example``
            with a float list feature ``key`` holding one flattened example).
        batch_size: examples per batch.
        event_shape: shape of one example.
        shuffle, shuffle_buffer, seed: as in ``from_npy_shards``.
        key: the feature name.
        validate: read every record once here and refuse, with a ``ValueError`` naming
            the file, a corrupt or truncated file, records of the wrong length and NaN or
            infinite values (one extra pass over the data; see ``from_npy_shards``).

    Returns:
        A ``tf.data.Dataset`` of float32 tensors ``[batch, *event_shape]``.

    Raises:
        ValueError: missing files, bad sizes, and with ``validate`` bad records.
    """
    from probae._validation import check_shape

    batch_size = check_positive_int(batch_size, "batch_size")
    event_shape = check_shape(event_shape, "event_shape")
    seed = check_seed(seed)
    if isinstance(files, (str, os.PathLike)):
        files = sorted(glob.glob(os.fspath(files))) or [os.fspath(files)]
    files = [os.fspath(f) for f in files]
    missing = [f for f in files if not os.path.exists(f)]
    if not files or missing:
        raise ValueError(
            f"files must name existing TFRecord files. Received: missing {missing or files}"
        )
    size = int(math.prod(event_shape))
    features = {key: tf.io.FixedLenFeature([size], tf.float32)}
    if validate:
        _scan_tfrecords(files, features, key, event_shape)
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=1)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(
        lambda rec: tf.reshape(tf.io.parse_example(rec, features)[key], [-1, *event_shape]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(2)
