"""The one seed convention (probae.seeds)."""

import numpy as np
import pytest

from probae import seeds


def test_seed_tensor_is_injective_below_2_62():
    values = [0, 1, 2**31 - 1, 2**31, 2**31 + 1, 2**40, 2**62 - 1]
    tensors = {tuple(seeds.seed_tensor(s).numpy()) for s in values}
    assert len(tensors) == len(values)
    np.testing.assert_array_equal(seeds.seed_tensor(12345), [12345, 0])  # small seeds unchanged


def test_none_is_fresh_and_batches_are_independent():
    assert not np.array_equal(seeds.seed_tensor(None), seeds.seed_tensor(None))
    base = seeds.seed_tensor(3)
    per_batch = {tuple(seeds.batch_seed(base, i).numpy()) for i in range(50)}
    assert len(per_batch) == 50
    np.testing.assert_array_equal(
        seeds.batch_seed(base, 4), seeds.batch_seed(seeds.seed_tensor(3), 4)
    )
    a, b = seeds.split_seed(base)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seeds_name_the_argument(bad):
    with pytest.raises(ValueError, match="seed must be None or a non-negative integer"):
        seeds.seed_tensor(bad)


def test_keras_seed_initializes_as_set_random_seed_and_restores_the_state():
    import random

    import keras

    def weights():
        layer = keras.layers.Dense(4)
        layer.build((None, 3))
        return layer.kernel.numpy()

    keras.utils.set_random_seed(5)
    expected = weights()
    keras.utils.set_random_seed(9)
    before = random.getstate()
    with seeds.keras_seed(5):
        np.testing.assert_array_equal(weights(), expected)
    assert random.getstate() == before
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        with seeds.keras_seed(-1):
            pass
