"""probae.graphs: traced functions shared by models of one configuration.

A detector fitted on a warm template (a second fit of the same configuration) must give
bitwise what a fit in a fresh process gives, and the template must never leak state
between fits or into a model after an error."""

import numpy as np
import pytest

import probae
from probae import graphs


@pytest.fixture(autouse=True)
def _empty_cache():
    graphs.clear()
    yield
    graphs.clear()


def _data(seed, n, d=5):
    return np.random.default_rng(seed).normal(size=(n, d))


def _state(det):
    model = det.model_
    return [np.asarray(v) for v in list(model.variables) + list(model.optimizer.variables)]


def test_warm_fit_equals_cold_fit_bitwise():
    test = _data(9, 40)
    probae.AnomalyDetector(random_state=3).fit(_data(1, 200))  # makes the template
    assert graphs.size() == 1
    warm = probae.AnomalyDetector(random_state=4).fit(_data(2, 150))
    warm_scores = warm.score_samples(test)
    graphs.clear()
    cold = probae.AnomalyDetector(random_state=4).fit(_data(2, 150))
    np.testing.assert_array_equal(warm_scores, cold.score_samples(test))
    assert warm.offset_ == cold.offset_
    np.testing.assert_array_equal(warm.train_scores_, cold.train_scores_)
    for a, b in zip(_state(warm), _state(cold), strict=True):
        np.testing.assert_array_equal(a, b)  # weights, seeds, Adam moments, iterations


def test_second_fit_of_a_configuration_does_not_trace_again():
    first = probae.AnomalyDetector(random_state=0).fit(_data(1, 120))
    probae.AnomalyDetector(random_state=1).fit(_data(2, 90))
    with graphs.shared(first.model_) as (runner, functions):
        assert runner is not first.model_
        # both fits train on batches of 64 rows (96 and 72 rows after trimming)
        assert [key for key in functions if key[0] == "train"] == [("train", False, 64)]
        assert functions[("train", False, 64)].experimental_get_tracing_count() == 1
    assert graphs.size() == 1


def test_structure_key_ignores_seeds_and_names_only():
    def model(**kwargs):
        return probae.AnomalyDetector(epochs=1, **kwargs).fit(_data(0, 40, kwargs.pop("d", 5)))

    base = graphs.structure_key(model(random_state=0).model_)
    assert graphs.structure_key(model(random_state=7).model_) == base
    for kwargs in (
        {"beta": 1.0},
        {"hidden_units": (16, 8)},
        {"likelihood": "gaussian"},
        {"learning_rate": 1e-2},
        {"latent_dim": 3},
    ):
        assert graphs.structure_key(model(random_state=0, **kwargs).model_) != base, kwargs
    other_width = probae.AnomalyDetector(epochs=1).fit(_data(0, 40, 6)).model_
    assert graphs.structure_key(other_width) != base


def test_busy_template_falls_back_to_the_model_itself():
    det = probae.AnomalyDetector(random_state=0).fit(_data(1, 120))
    test = _data(5, 30)
    expected = det.score_samples(test)
    with graphs.shared(det.model_) as (runner, _):
        assert runner is not det.model_
        # another user of the same configuration (another thread) meanwhile
        np.testing.assert_array_equal(det.score_samples(test), expected)
        with graphs.shared(det.model_) as (inner, _):
            assert inner is det.model_


def test_error_inside_leaves_the_model_untouched_and_releases_the_template():
    det = probae.AnomalyDetector(random_state=0).fit(_data(1, 120))
    before = [np.asarray(v) for v in det.model_.variables]
    with pytest.raises(RuntimeError, match="boom"):
        with graphs.shared(det.model_) as (runner, _):
            for v in runner.trainable_variables:
                v.assign(v * 0.0 + 1.0)
            raise RuntimeError("boom")
    for a, v in zip(before, det.model_.variables, strict=True):
        np.testing.assert_array_equal(a, np.asarray(v))
    with graphs.shared(det.model_) as (runner, _):
        assert runner is not det.model_  # the template is free again
        for a, v in zip(before, runner.variables, strict=True):
            np.testing.assert_array_equal(a, np.asarray(v))  # and holds this model's state


def test_least_recently_used_template_is_dropped(monkeypatch):
    monkeypatch.setattr(graphs, "MAX_TEMPLATES", 1)
    probae.AnomalyDetector(epochs=1).fit(_data(0, 40, 5))
    probae.AnomalyDetector(epochs=1).fit(_data(0, 40, 6))
    assert graphs.size() == 1


def test_users_models_and_images_do_not_share():
    def build(input_shape):
        return probae.VAE(input_shape, 2, likelihood="gaussian", hidden_units=(8,), seed=0)

    probae.AnomalyDetector(model=build, epochs=1).fit(_data(0, 40))
    images = np.random.default_rng(0).uniform(size=(16, 8, 8))
    probae.AnomalyDetector(epochs=1, architecture="mlp", hidden_units=(8,)).fit(images)
    assert graphs.size() == 0


def test_unbuilt_or_uncompiled_model_is_not_shareable():
    model = probae.VAE((4,), 2, hidden_units=(8,), likelihood="gaussian", seed=0)
    assert not graphs.shareable(model)
    with graphs.shared(model) as (runner, functions):
        assert runner is model and functions == {}
    assert graphs.size() == 0
