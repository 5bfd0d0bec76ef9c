"""Seeds: the one convention that turns a user's integer seed into TensorFlow randomness.

Every estimator, sampler and corruption in probae draws its randomness from stateless
seeds (shape-[2] int32 tensors) derived here:

- ``seed_tensor(seed)`` maps an int seed s >= 0 to ``[s mod 2**31, (s // 2**31) mod
  2**31]`` (two different seeds below 2**62 never collide), and None to a fresh random
  seed;
- ``batch_seed(seed, i)`` is the seed of the i-th batch (or chunk) of a computation,
  ``stateless_fold_in(seed, i)``: the same seed, data and batch size give the same
  numbers, and different batches draw independent noise.

Estimators whose results must not depend on the batching (anomaly scores, which use
common random numbers) give every batch the same seed instead. Training draws from the
model's own ``keras.random.SeedGenerator`` (saved with the model so that a resumed run
draws the same noise); ``set_seed`` seeds everything else, and ``keras_seed`` only the
initial weights of the models built inside it.
"""

import contextlib
import numbers
import random

import keras
import tensorflow as tf

from probae._validation import check_seed

__all__ = ["set_seed", "keras_seed", "seed_tensor", "batch_seed", "split_seed"]

_HALF = 2**31


def seed_tensor(seed):
    """An int seed (or None) -> a stateless shape-[2] int32 seed tensor.

    Args:
        seed: None (a fresh random seed) or a non-negative integer.

    Raises:
        ValueError: ``seed`` is not None or a non-negative integer.
    """
    seed = check_seed(seed)
    if seed is None:
        return tf.random.uniform([2], maxval=_HALF - 1, dtype=tf.int32)
    return tf.constant([seed % _HALF, (seed // _HALF) % _HALF], dtype=tf.int32)


def batch_seed(seed, index):
    """The stateless seed of batch (or chunk) ``index`` of a computation seeded ``seed``."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int32), index)


def split_seed(seed, num=2):
    """``num`` independent stateless seeds from one (a list of shape-[2] tensors)."""
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), num))


def set_seed(seed: int, deterministic: bool = True) -> None:
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


@contextlib.contextmanager
def keras_seed(seed: int):
    """Within the block, Keras draws as after ``keras.utils.set_random_seed(seed)``:
    layers' initializers without a seed of their own (they take one from Python's
    ``random``) and ``keras.random`` calls without a seed (Keras' global generator). On
    exit Python's random state and Keras' global seed and generator are as they were.

    Unlike ``keras.utils.set_random_seed`` it leaves NumPy's and TensorFlow's global
    generators alone: reseeding TensorFlow's clears its kernel caches, so every traced
    function in the process is instantiated again at its next call (0.4 s of each
    ``probae.AnomalyDetector`` table fit on a 2-core machine).

    Args:
        seed: a non-negative integer.
    """
    from keras.src.backend.common import global_state

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    names = ("global_random_seed", "global_seed_generator")  # Keras' keys, 3.11 to 3.15
    saved = [global_state.get_global_attribute(name) for name in names]
    python_state = random.getstate()
    global_state.set_global_attribute(names[0], int(seed))
    global_state.set_global_attribute(names[1], None)  # made again, from Python's random
    random.seed(int(seed))
    try:
        yield
    finally:
        random.setstate(python_state)
        for name, value in zip(names, saved):
            global_state.set_global_attribute(name, value)
