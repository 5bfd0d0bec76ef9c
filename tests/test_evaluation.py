"""probae.evaluate_likelihood against closed forms on a linear-Gaussian model."""

import math

import numpy as np
import pytest
import tensorflow as tf
from linear_gaussian_model import make

import probae

N = 400
D, LATENT = 6, 3


class LG:
    """The linear-Gaussian model of ``linear_gaussian_model.make`` and its closed forms."""

    def __init__(self):
        self.model, self.log_likelihood = make(latent_dim=LATENT, data_dim=D, dead_units=1)
        self.p = self.model.linear_gaussian
        self.D = D

    def elbo_terms(self, x):
        """Exact E_q log p(x|z), KL(q || p) and ELBO per example."""
        W, b, s, var = self.p["W"], self.p["b"], self.p["noise"], self.p["q_scale"] ** 2
        x = np.asarray(x, np.float64)
        mu = (x - b) @ self.p["A"].T
        resid = x - mu @ W.T - b
        trace = np.sum((W**2) @ var)  # tr(W diag(var) W^T)
        reconstruction = (
            -0.5 * (np.sum(resid**2, 1) + trace) / s**2
            - D * math.log(s)
            - 0.5 * D * math.log(2 * math.pi)
        )
        kl = 0.5 * (np.sum(var) + np.sum(mu**2, 1) - LATENT - np.sum(np.log(var)))
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def unit_variances(self):
        """Var over p(x) of E_q[z_j|x] = diag(A cov_x A^T)."""
        A = self.p["A"]
        return np.diag(A @ self.p["cov_x"] @ A.T)


@pytest.fixture(scope="module")
def lg():
    return LG()


@pytest.fixture(scope="module")
def x(lg):
    return lg.model.sample_data(N)


@pytest.fixture(scope="module")
def result(lg, x):
    return probae.evaluate_likelihood(lg.model, x, num_samples=2000, seed=0)


def test_matches_exact_log_likelihood_within_standard_errors(lg, x, result):
    exact = lg.log_likelihood(x)
    pe = result["per_example"]
    # The criterion: within the reported standard error over examples.
    assert abs(result["log_likelihood"] - exact.mean()) < result["stderr"]
    # Much tighter: the estimator's own Monte Carlo error (bounded weights: the IS bias,
    # about relvar / 2k, is far below it). 4 standard errors of the mean.
    assert abs(result["log_likelihood"] - exact.mean()) < 4 * result["mc_stderr"] + 1e-3
    # Per example, the reported Monte Carlo standard error is calibrated: z-scores ~ N(0, 1).
    z = (pe["log_likelihood"] - exact) / pe["mc_stderr"]
    assert abs(z.mean()) < 4 / math.sqrt(N)
    assert 0.8 < z.std() < 1.2
    assert 1 < result["effective_sample_size"] <= 2000


def test_elbo_terms_match_closed_form(lg, x, result):
    closed = lg.elbo_terms(x)
    pe = result["per_example"]
    # The KL is analytic: exact up to float32.
    np.testing.assert_allclose(pe["kl"], closed["kl"], rtol=1e-4, atol=1e-4)
    # The reconstruction is a 2000-sample mean: 4 standard errors from the sample size.
    diff = pe["reconstruction"] - closed["reconstruction"]
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(N) + 1e-3
    np.testing.assert_allclose(pe["elbo"], pe["reconstruction"] - pe["kl"], rtol=1e-6)
    assert result["elbo"] == pytest.approx(pe["elbo"].mean())


def test_elbo_below_iwae_below_log_likelihood_and_monotone_in_k(lg, x):
    exact = lg.log_likelihood(x)
    elbo = lg.elbo_terms(x)["elbo"]
    estimates = {
        k: probae.evaluate_likelihood(lg.model, x, num_samples=k, seed=10 + k)["per_example"][
            "log_likelihood"
        ]
        for k in (1, 5, 50, 500)
    }
    # IWAE_1 is the single-sample ELBO: unbiased for the closed form.
    d1 = estimates[1] - elbo
    assert abs(d1.mean()) < 4 * d1.std() / math.sqrt(N)
    # ELBO < IWAE_5 < IWAE_50, in expectation: the paired differences are positive by
    # more than 4 standard errors (here they are about 85 and 10 standard errors).
    chain = [elbo, estimates[5], estimates[50]]
    for lower, upper in zip(chain, chain[1:]):
        gap = upper - lower
        assert gap.mean() > 4 * gap.std() / math.sqrt(N)
    # IWAE_50 <= IWAE_500 <= log p(x): the remaining gaps are a few hundredths of a nat,
    # too small to resolve with N examples; no violation larger than 4 standard errors.
    chain = [estimates[50], estimates[500], exact]
    for lower, upper in zip(chain, chain[1:]):
        gap = upper - lower
        assert gap.mean() > -4 * gap.std() / math.sqrt(N)
    assert estimates[500].mean() < exact.mean()


def test_bits_per_dim(result, lg):
    pe = result["per_example"]
    np.testing.assert_allclose(pe["bits_per_dim"], -pe["log_likelihood"] / (lg.D * math.log(2)))
    assert result["bits_per_dim"] == pytest.approx(-result["log_likelihood"] / (lg.D * math.log(2)))


def test_active_units(lg, x, result):
    # W's last column is zero: that unit's posterior mean is constant (inactive).
    assert result["active_units"] == 2
    expected = lg.unit_variances()
    np.testing.assert_allclose(result["unit_variances"][:2], expected[:2], rtol=0.25)
    assert result["unit_variances"][2] < 1e-10
    few = probae.evaluate_likelihood(lg.model, x[:50], num_samples=2, active_threshold=10.0)
    assert few["active_units"] == 0


def test_deterministic_under_a_seed(lg, x):
    a = probae.evaluate_likelihood(lg.model, x[:50], num_samples=30, seed=3)
    b = probae.evaluate_likelihood(lg.model, x[:50], num_samples=30, seed=3)
    c = probae.evaluate_likelihood(lg.model, x[:50], num_samples=30, seed=4)
    np.testing.assert_array_equal(
        a["per_example"]["log_likelihood"], b["per_example"]["log_likelihood"]
    )
    assert not np.array_equal(
        a["per_example"]["log_likelihood"], c["per_example"]["log_likelihood"]
    )


def test_chunking_does_not_change_the_estimate(lg, x):
    # k larger than one chunk of samples (tiny batches) and a batch size that does not
    # divide n: same estimator, other random draws; means agree within Monte Carlo error.
    a = probae.evaluate_likelihood(lg.model, x, num_samples=300, batch_size=7, seed=1)
    b = probae.evaluate_likelihood(lg.model, x, num_samples=300, batch_size=400, seed=2)
    gap = a["per_example"]["log_likelihood"] - b["per_example"]["log_likelihood"]
    assert abs(gap.mean()) < 4 * gap.std() / math.sqrt(N) + 1e-4
    assert a["num_examples"] == b["num_examples"] == N


def test_streaming_dataset_matches_arrays(lg, x, result):
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(N))).batch(64)
    streamed = probae.evaluate_likelihood(lg.model, ds, num_samples=2000, seed=5)
    assert streamed["num_examples"] == N
    np.testing.assert_allclose(
        streamed["unit_variances"], result["unit_variances"], rtol=1e-4, atol=1e-9
    )
    assert streamed["active_units"] == result["active_units"]
    np.testing.assert_allclose(
        streamed["per_example"]["kl"], result["per_example"]["kl"], rtol=1e-5
    )
    gap = streamed["per_example"]["log_likelihood"] - result["per_example"]["log_likelihood"]
    assert abs(gap.mean()) < 4 * gap.std() / math.sqrt(N) + 1e-4
    # Streaming a dataset of plain x batches works too.
    plain = probae.evaluate_likelihood(
        lg.model, tf.data.Dataset.from_tensor_slices(x[:10]).batch(4), num_samples=5
    )
    assert plain["num_examples"] == 10


def test_conditional_model_passes_the_condition():
    model = probae.VAE(
        (5,), 2, likelihood="gaussian", hidden_units=(8,), condition_shape=(3,), seed=0
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5)).astype("float32")
    c = np.eye(3, dtype="float32")[rng.integers(0, 3, 20)]
    res = probae.evaluate_likelihood(model, x, condition=c, num_samples=20, batch_size=8, seed=1)
    direct = model.log_likelihood(x, condition=c, num_samples=20, batch_size=8, seed=1)
    np.testing.assert_allclose(res["per_example"]["log_likelihood"], direct, rtol=1e-6)
    other = probae.evaluate_likelihood(
        model, x, condition=1 - c, num_samples=20, batch_size=8, seed=1
    )
    assert not np.allclose(other["per_example"]["log_likelihood"], direct)
    ds = tf.data.Dataset.from_tensor_slices((x, c)).batch(8)
    assert probae.evaluate_likelihood(model, ds, num_samples=20)["num_examples"] == 20
    with pytest.raises(ValueError, match="condition"):
        probae.evaluate_likelihood(model, x, num_samples=5)


def test_binary_data_bits_per_dim_and_support():
    model = probae.VAE((12,), 2, hidden_units=(8,), seed=0)
    x = (np.random.default_rng(0).random((30, 12)) > 0.5).astype("float32")
    res = probae.evaluate_likelihood(model, x, num_samples=10)
    # An untrained Bernoulli decoder sits near 1 bit per binary pixel.
    assert 0.7 < res["bits_per_dim"] < 1.5
    with pytest.raises(ValueError, match="x"):
        probae.evaluate_likelihood(model, x * 3, num_samples=10)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": -5}, ValueError, "num_samples"),
        ({"num_samples": 2.5}, ValueError, "num_samples"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": "big"}, ValueError, "batch_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"active_threshold": -0.1}, ValueError, "active_threshold"),
        ({"x": np.zeros((4, 5), "float32")}, ValueError, "x"),
        ({"x": np.zeros(6, "float32")}, ValueError, "x"),
        ({"x": np.full((4, 6), np.nan, "float32")}, ValueError, "x"),
        ({"x": np.zeros((0, 6), "float32")}, ValueError, "x"),
        ({"x": np.array([["a"] * 6])}, TypeError, "x"),
        ({"condition": np.zeros((4, 2))}, ValueError, "condition"),
        ({"model": "not a model"}, TypeError, "model"),
        (
            {"x": tf.data.Dataset.from_tensor_slices(np.zeros((0, 6), "float32")).batch(2)},
            ValueError,
            "x",
        ),
        (
            {"x": tf.data.Dataset.from_tensor_slices({"a": np.zeros((2, 6))}).batch(2)},
            TypeError,
            "x",
        ),
    ],
)
def test_bad_input(lg, kwargs, exc, name):
    args = {"model": lg.model, "x": np.zeros((4, 6), "float32"), "num_samples": 3}
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        probae.evaluate_likelihood(**args)


def test_progress_is_shown_by_default(capsys):
    """A long evaluation is never silent: Keras' progress bar under verbose="auto"."""
    model, _ = make()
    x = model.sample_data(30)
    probae.evaluate_likelihood(model, x, num_samples=5)
    assert "30/30" in capsys.readouterr().out
    probae.evaluate_likelihood(model, x, num_samples=5, verbose=0)
    assert capsys.readouterr().out == ""
