"""Helpers shared by several test modules: seeded model building and training, the
save-and-reload check, and a small synthetic data set."""

import keras
import numpy as np

import probae


def seeded(make, seed=0):
    """Builds a model from a fixed global seed, whatever ran before (test order)."""
    keras.utils.set_random_seed(seed)
    return make()


def fit(model, x, epochs, y=None, seed=0, batch_size=100, **kwargs):
    keras.utils.set_random_seed(seed)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, **kwargs)
    return model, history


def assert_same_after_reload(model, x, tmp_path, condition=None):
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    parts = ("encoder", "decoder", "prior")
    own = lambda m: {k: v for k, v in m.get_config().items() if k not in parts}
    assert own(loaded) == own(model)
    for part in parts:
        assert type(getattr(loaded, part)) is type(getattr(model, part))
    np.testing.assert_array_equal(
        loaded.reconstruct(x, condition=condition), model.reconstruct(x, condition=condition)
    )
    score = probae.anomaly_scores  # -log p(x) with a density, the reconstruction otherwise
    np.testing.assert_array_equal(
        score(loaded, x, condition=condition, seed=3), score(model, x, condition=condition, seed=3)
    )
    return loaded


D = 5  # the width of curve_data's examples


def curve_data(n=200, seed=0):
    """Points near a 1-D curve in 5-D, plus noise."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 1))
    x = np.c_[t, t**2, np.sin(t), -t, 0.5 * t] + 0.05 * rng.normal(size=(n, D))
    return x.astype(np.float32)
