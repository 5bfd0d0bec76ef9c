"""beta schedules (probae.callbacks): closed-form values, what fit logs, what training uses."""

import numpy as np
import pytest

import probae
from probae.callbacks import CyclicalBetaSchedule, LinearBetaWarmup


def _data(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, d)) < 0.3).astype("float32")


def _tiny_vae(**kwargs):
    return probae.VAE((12,), 2, hidden_units=(8,), **kwargs)


def test_linear_warmup_values():
    schedule = LinearBetaWarmup(4, start=0.0, end=1.0)
    assert [schedule.value(t) for t in range(7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    schedule = LinearBetaWarmup(2, start=2.0, end=1.0)
    assert [schedule.value(t) for t in range(4)] == [2.0, 1.5, 1.0, 1.0]


def test_cyclical_values():
    schedule = CyclicalBetaSchedule(4, ratio=0.5)
    assert [schedule.value(t) for t in range(9)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0]
    schedule = CyclicalBetaSchedule(5, ratio=1.0, end=2.0)
    np.testing.assert_allclose([schedule.value(t) for t in range(6)], [0, 0.4, 0.8, 1.2, 1.6, 0])


def test_epoch_warmup_is_logged_and_used():
    """History's beta follows the schedule, and each epoch's loss is -rec + beta * kl with
    that beta: the training step really read the variable the callback set."""
    model = _tiny_vae()
    schedule = LinearBetaWarmup(4)
    history = model.fit(_data(), epochs=6, batch_size=50, verbose=0, callbacks=[schedule])
    h = history.history
    np.testing.assert_allclose(h["beta"], [0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    expected_loss = -np.array(h["reconstruction"]) + np.array(h["beta"]) * np.array(h["kl"])
    np.testing.assert_allclose(h["loss"], expected_loss, rtol=1e-4, atol=1e-3)
    assert model.beta == 1.0
    assert [t for t, _ in schedule.betas] == list(range(6))


def test_step_cyclical_schedule_follows_optimizer_steps():
    model = _tiny_vae()
    schedule = CyclicalBetaSchedule(3, ratio=0.5, per="step")
    steps_per_epoch = 4  # 200 examples, batch 50
    history = model.fit(_data(), epochs=3, batch_size=50, verbose=0, callbacks=[schedule])
    steps = [t for t, _ in schedule.betas]
    assert steps == list(range(3 * steps_per_epoch))
    np.testing.assert_allclose([b for _, b in schedule.betas], [schedule.value(t) for t in steps])
    last = [schedule.value(steps_per_epoch * (e + 1) - 1) for e in range(3)]
    np.testing.assert_allclose(history.history["beta"], last)
    # A second fit continues counting steps (the schedule keeps its phase).
    model.fit(_data(), epochs=1, batch_size=50, verbose=0, callbacks=[schedule])
    assert schedule.betas[-1][0] == 4 * steps_per_epoch - 1


@pytest.mark.parametrize(
    "make, error, argument",
    [
        (lambda: LinearBetaWarmup(0), ValueError, "warmup"),
        (lambda: LinearBetaWarmup(3, start=-1.0), ValueError, "start"),
        (lambda: LinearBetaWarmup(3, end=float("nan")), ValueError, "end"),
        (lambda: LinearBetaWarmup(3, per="batch"), ValueError, "per"),
        (lambda: CyclicalBetaSchedule(0), ValueError, "period"),
        (lambda: CyclicalBetaSchedule(4, ratio=0.0), ValueError, "ratio"),
        (lambda: CyclicalBetaSchedule(4, ratio=1.5), ValueError, "ratio"),
        (lambda: CyclicalBetaSchedule(4, end="1"), TypeError, "end"),
    ],
)
def test_bad_schedules(make, error, argument):
    with pytest.raises(error, match=argument):
        make()


def test_schedule_rejects_iwae_model():
    model = probae.IWAE((12,), 2, hidden_units=(8,))
    with pytest.raises(ValueError, match="objective"):
        model.fit(_data(), epochs=1, verbose=0, callbacks=[LinearBetaWarmup(2)])


def test_negative_beta_rejected():
    with pytest.raises(ValueError, match="beta"):
        probae.BetaVAE((12,), 2, beta=-1.0)
    model = _tiny_vae()
    with pytest.raises(ValueError, match="beta"):
        model.beta = -0.5
