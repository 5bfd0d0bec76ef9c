"""A linear-Gaussian probae model whose log p(x) and ELBO are known in closed form.

    p(z) = N(0, I_d),  p(x|z) = N(W z + b, s^2 I_D)  =>  p(x) = N(b, W W^T + s^2 I_D)

The model is a real ``ProbabilisticAutoencoder`` (identity networks, Dense heads set to
the parameters below, a ``GaussianDecoder`` with fixed scale s), so estimators run through
the same code as any trained model. The encoder is q(z|x) = N(A (x - b) + shift,
diag(r^2)), where A (x - b) is the exact posterior mean and r is wider than the exact
posterior's spread by ``scale_factor``: the importance weights are then bounded, so the
importance-sampling estimate has finite variance, while q is not the exact posterior
(ELBO < IWAE_k < log p(x) strictly).

Reusable helper for the core objectives tests and the evaluation tests.
"""

import math

import keras
import numpy as np

from probae.decoders import GaussianDecoder
from probae.encoders import GaussianEncoder
from probae.model import ProbabilisticAutoencoder


class LinearGaussian:
    """The model, its parameters and closed forms.

    Args:
        data_dim: D.
        latent_dim: d.
        noise_scale: s, the decoder's fixed scale.
        scale_factor: r = scale_factor * sqrt(largest eigenvalue of the exact posterior
            covariance), per latent unit.
        mean_shift: constant added to q's mean (0: the exact posterior mean).
        dead_units: the last ``dead_units`` columns of W are zero (those latent units do
            not affect x, so their posterior mean is constant: inactive units).
        seed: seed of W and b.
    """

    def __init__(self, data_dim=6, latent_dim=3, noise_scale=0.7, scale_factor=1.3, mean_shift=0.0,
                 dead_units=0, seed=0):
        rng = np.random.default_rng(seed)
        D, d, s = data_dim, latent_dim, noise_scale
        W = rng.normal(size=(D, d))
        if dead_units:
            W[:, d - dead_units:] = 0.0
        b = rng.normal(size=D)
        self.W, self.b, self.s, self.D, self.d = W, b, s, D, d
        self.cov_x = W @ W.T + s**2 * np.eye(D)
        self.post_cov = np.linalg.inv(np.eye(d) + W.T @ W / s**2)
        self.A = self.post_cov @ W.T / s**2  # exact posterior mean = A (x - b)
        self.shift = np.full(d, float(mean_shift))
        self.q_scale = np.full(d, scale_factor * math.sqrt(np.linalg.eigvalsh(self.post_cov).max()))
        self.model = self._build()

    def _build(self):
        encoder = GaussianEncoder(self.d, network=keras.layers.Identity(), min_scale=1e-6)
        decoder = GaussianDecoder(event_shape=(self.D,), network=keras.layers.Identity(), scale=self.s)
        model = ProbabilisticAutoencoder(encoder, decoder, input_shape=(self.D,))
        raw = np.log(np.expm1(self.q_scale - encoder.min_scale))  # softplus^-1
        kernel = np.concatenate([self.A.T, np.zeros((self.D, self.d))], axis=1)
        bias = np.concatenate([self.shift - self.A @ self.b, raw])
        encoder.head.kernel.assign(kernel.astype("float32"))
        encoder.head.bias.assign(bias.astype("float32"))
        decoder.head.kernel.assign(self.W.T.astype("float32"))
        decoder.head.bias.assign(self.b.astype("float32"))
        return model

    def sample(self, n, seed=1):
        """n draws from p(x), float32 ``[n, D]``."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.d))
        return (z @ self.W.T + self.b + self.s * rng.normal(size=(n, self.D))).astype("float32")

    def log_likelihood(self, x):
        """Exact log p(x) per example, ``[n]`` float64."""
        diff = np.asarray(x, np.float64) - self.b
        _, logdet = np.linalg.slogdet(self.cov_x)
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(self.cov_x), diff)
        return -0.5 * (maha + logdet + self.D * math.log(2 * math.pi))

    def posterior_mean(self, x):
        """E_q[z|x] of the model's encoder, ``[n, d]``."""
        return (np.asarray(x, np.float64) - self.b) @ self.A.T + self.shift

    def elbo_terms(self, x):
        """Exact ELBO, E_q log p(x|z) and KL(q || p) per example (dict of ``[n]`` arrays)."""
        mu, var = self.posterior_mean(x), self.q_scale**2
        resid = np.asarray(x, np.float64) - mu @ self.W.T - self.b
        trace = np.sum((self.W**2) @ var)  # tr(W diag(var) W^T)
        reconstruction = (
            -0.5 * (np.sum(resid**2, axis=1) + trace) / self.s**2
            - self.D * math.log(self.s)
            - 0.5 * self.D * math.log(2 * math.pi)
        )
        kl = 0.5 * (np.sum(var) + np.sum(mu**2, axis=1) - self.d - np.sum(np.log(var)))
        return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}

    def unit_variances(self):
        """Var over p(x) of E_q[z_j|x], per unit: diag(A cov_x A^T)."""
        return np.diag(self.A @ self.cov_x @ self.A.T)
