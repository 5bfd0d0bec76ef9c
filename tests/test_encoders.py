"""Encoders (probae.encoders)."""

import numpy as np
import pytest

import probae


@pytest.mark.parametrize("min_scale", [1e-4, 1e-2])
def test_gaussian_encoder_scale_is_floored_at_min_scale(min_scale):
    """A head output so negative that softplus underflows to 0 gives sigma = min_scale, and
    log q(z|x) and the KL to the prior stay finite."""
    encoder = probae.GaussianEncoder(3, min_scale=min_scale, hidden_units=(8,))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    encoder(x)
    encoder.head.kernel.assign(np.zeros(encoder.head.kernel.shape, "float32"))
    encoder.head.bias.assign(np.array([0.5, -1.0, 2.0] + [-1e4] * 3, "float32"))
    posterior = encoder(x)
    np.testing.assert_allclose(posterior.mean(), np.tile([0.5, -1.0, 2.0], (5, 1)))
    np.testing.assert_allclose(posterior.stddev(), np.full((5, 3), min_scale), rtol=1e-6)
    log_q = posterior.log_prob(posterior.mean()).numpy()
    expected = -3 * (np.log(min_scale) + 0.5 * np.log(2 * np.pi))  # the density's peak
    np.testing.assert_allclose(log_q, np.full(5, expected), rtol=1e-5)
    kl, analytic = probae.estimators.kl_divergence(
        posterior, probae.StandardNormalPrior(3).distribution()
    )
    assert analytic and np.all(np.isfinite(kl.numpy()))
    mean_sq = 0.5**2 + 1.0 + 2.0**2
    expected_kl = 0.5 * (3 * min_scale**2 + mean_sq - 3) - 3 * np.log(min_scale)
    np.testing.assert_allclose(kl.numpy(), np.full(5, expected_kl), rtol=1e-5)
