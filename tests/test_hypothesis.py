"""Property-based tests (hypothesis) of the training and scoring entry points (issue 17):
``fit``, ``predict`` and the ``AnomalyDetector`` driven with generated arrays of any small
shape, dtype and content (NaN, infinities, huge values, empty batches, wrong widths).

The property is the library's promise: either a documented error (``ValueError`` or
``TypeError``) whose message names the argument, or a finite result of the right shape.
Valid inputs must never raise. Models are tiny and examples few, to stay fast.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import probae

WIDTH = 3
_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))

# Values from ordinary to hostile: NaN, +-inf, float32 overflow, subnormals.
_VALUES = st.one_of(
    st.floats(-5, 5, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-40]),
)


def _arrays(dtypes=(np.float32, np.float64, np.int32)):
    return st.one_of(
        hnp.arrays(
            st.sampled_from(dtypes),
            st.tuples(st.integers(0, 5), st.sampled_from([WIDTH - 1, WIDTH, WIDTH + 1])),
            elements=st.integers(-100, 100),  # exact in every dtype: shapes and dtypes vary
        ),
        hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(WIDTH)), elements=_VALUES),
    )


def _valid(x):
    return (
        x.ndim == 2
        and x.shape[0] > 0
        and x.shape[1] == WIDTH
        and np.all(np.isfinite(x))
        and (np.all(np.abs(x) < 3e38))
    )


@pytest.fixture(scope="module")
def trained():
    model = probae.VAE((WIDTH,), 2, likelihood="gaussian", hidden_units=(4,))
    model.compile(steps_per_execution=1)
    model.fit(np.zeros((2, WIDTH), np.float32), epochs=1, verbose=0)  # builds the optimizer
    return model, model.get_weights(), [v.numpy() for v in model.optimizer.variables]


def _reset(trained):
    """Every example starts from the same weights and optimizer state (an example with data
    on a huge scale legitimately stops training with NaN weights)."""
    model, weights, slots = trained
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, slots):
        variable.assign(value)
    return model


@_SETTINGS
@given(x=_arrays(), batch_size=st.integers(1, 4))
def test_fit_trains_or_explains(trained, x, batch_size):
    model = _reset(trained)
    try:
        history = model.fit(x, epochs=1, batch_size=batch_size, verbose=0)
    except probae.NonFiniteLossError as err:  # documented: data on a very large scale
        assert _valid(x) and np.abs(x).max() > 1e6, str(err)
        return
    except (ValueError, TypeError) as err:
        assert "x" in str(err), str(err)
        assert not _valid(x), f"valid input refused: {err}"
        return
    assert _valid(x)
    assert np.isfinite(history.history["loss"][-1])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@_SETTINGS
@given(x=_arrays())
def test_predict_reconstructs_or_explains(trained, x):
    model = _reset(trained)
    try:
        out = model.predict(x, verbose=0)
    except (ValueError, TypeError) as err:
        assert "x" in str(err), str(err)
        assert not _valid(x), f"valid input refused: {err}"
        return
    assert _valid(x)
    assert out.shape == x.shape and np.all(np.isfinite(out))


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    X=hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 24), st.integers(1, 3)),
        elements=st.one_of(st.floats(-100, 100), st.sampled_from([np.nan, np.inf])),
    ),
    contamination=st.one_of(st.just("auto"), st.floats(0.01, 0.4)),
)
def test_detector_scores_or_explains(X, contamination):
    """NaN is a missing cell (allowed); inf, empty tables and columns without a second
    value are documented errors; otherwise every score is finite and predict is +-1."""
    detector = probae.AnomalyDetector(
        epochs=1, hidden_units=(4,), latent_dim=1, num_samples=2, contamination=contamination
    )
    try:
        detector.fit(X)
    except (ValueError, TypeError) as err:
        finite = X[np.isfinite(X)] if X.size else X
        has_inf = np.isinf(X).any()
        varying = X.shape[0] > 1 and any(len(np.unique(c[~np.isnan(c)])) > 1 for c in X.T)
        assert has_inf or X.shape[0] < 2 or not varying or finite.size == 0, f"refused: {err}"
        assert str(err)
        return
    scores = detector.score_samples(X)
    assert scores.shape == (len(X),) and np.all(np.isfinite(scores))
    assert set(np.unique(detector.predict(X))) <= {-1, 1}
