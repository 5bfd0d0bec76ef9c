"""Code penalties (probae.penalties) against their closed forms."""

import numpy as np

import probae


def test_sparsity_penalty_closed_form():
    rng = np.random.default_rng(0)
    codes = rng.uniform(0.01, 0.9, size=(32, 5)).astype("float32")
    rho, a, b = 0.1, 2.0, 0.3
    rho_hat = codes.mean(0)
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    expected = a * kl + b * np.abs(codes).sum(1)
    got = probae.SparsityPenalty(rho, kl_weight=a, l1_weight=b)(codes).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Zero exactly when every unit's mean activation is rho (and no L1 term).
    at_target = np.full((4, 3), rho, dtype="float32")
    assert abs(float(probae.SparsityPenalty(rho)(at_target)[0])) < 1e-6
