"""A linear-Gaussian model whose log p(x) is known exactly, built from probae parts.

z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D), so p(x) = N(x; b, W W^T + s^2 I). The exact
posterior is N(A (x - b), S) with S = (I + W^T W / s^2)^-1 and A = S W^T / s^2; the
encoder here is diagonal (and its scales optionally inflated), so ELBO < log p(x) strictly
and importance sampling has something to close.
"""

import math

import keras
import numpy as np

import probae


def make(latent_dim=2, data_dim=5, noise=0.5, scale_inflation=1.5, seed=0, dead_units=0):
    """Returns ``(model, exact_log_prob)`` where ``exact_log_prob(x)`` is log p(x) in float64.

    ``dead_units``: the last columns of W are zero, so those latent units do not affect x
    (their posterior mean is constant: inactive units). ``model.linear_gaussian`` holds
    the parameters (W, b, noise, the encoder's A and scales) for other closed forms.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(data_dim, latent_dim))
    if dead_units:
        W[:, latent_dim - dead_units :] = 0.0
    b = rng.normal(size=data_dim)
    S = np.linalg.inv(np.eye(latent_dim) + W.T @ W / noise**2)
    A = S @ W.T / noise**2
    min_scale = 1e-4
    encoder = probae.GaussianEncoder(
        latent_dim, network=keras.layers.Identity(), min_scale=min_scale, head=True
    )
    decoder = probae.GaussianDecoder(
        event_shape=(data_dim,), network=keras.layers.Identity(), scale=noise, head=True
    )
    model = probae.ProbabilisticAutoencoder(encoder, decoder, input_shape=(data_dim,))
    sd = np.sqrt(np.diag(S)) * scale_inflation - min_scale
    raw = np.log(np.expm1(sd))
    kernel = np.concatenate([A.T, np.zeros((data_dim, latent_dim))], axis=1)
    bias = np.concatenate([-A @ b, raw])
    encoder.head.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    decoder.head.set_weights([W.T.astype(np.float32), b.astype(np.float32)])
    cov = W @ W.T + noise**2 * np.eye(data_dim)
    cov_inv = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(cov)

    def exact_log_prob(x):
        d = np.asarray(x, np.float64) - b
        return -0.5 * (
            np.einsum("ni,ij,nj->n", d, cov_inv, d) + logdet + data_dim * math.log(2 * math.pi)
        )

    def sample_data(n, data_seed=1):
        r = np.random.default_rng(data_seed)
        z = r.normal(size=(n, latent_dim))
        return (z @ W.T + b + noise * r.normal(size=(n, data_dim))).astype(np.float32)

    model.sample_data = sample_data
    model.linear_gaussian = {
        "W": W,
        "b": b,
        "noise": noise,
        "A": A,
        "q_scale": sd + min_scale,
        "cov_x": cov,
    }
    return model, exact_log_prob
