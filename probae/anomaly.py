"""Likelihood-based anomaly scores for any trained ``ProbabilisticAutoencoder``.

Higher means more anomalous; every score is minus a log-probability (in nats), so scores
of different examples are comparable and per-feature contributions add up to the total.
The scores come from the estimator every evaluation in probae uses
(``probae.estimators.estimate``).

Sampling uses common random numbers (``shared_noise``): every example gets the same k
standard-normal draws eps_1..eps_k, with z_k = mu(x) + sigma(x) * eps_k for Gaussian
posteriors (``probae.posteriors.sample``). Each example's estimate is exactly the usual
one, but it no longer depends on which other examples share its batch (scores are
invariant to batching and ordering), the same seed gives identical scores, and the Monte
Carlo noise is correlated across examples, which makes their ranking steadier than
independent draws would.
"""

import math
import zlib
from typing import Any

import numpy as np
import tensorflow as tf

from probae import estimators, inputs
from probae._validation import as_float_array, check_positive_int, check_seed
from probae.model import ProbabilisticAutoencoder

__all__ = ["anomaly_scores", "complexity", "default_method", "METHODS"]

METHODS = (
    "log_likelihood",
    "elbo",
    "reconstruction_probability",
    "reconstruction",
    "likelihood_ratio",
)
PER_FEATURE_METHODS = ("reconstruction", "reconstruction_probability")
_DEFAULT_SAMPLES = {"log_likelihood": 100, "elbo": 10, "reconstruction_probability": 10}


def complexity(x, levels=256):
    """The compressed length of each example, in nats: a universal background model.

    Every example is quantised to ``levels`` levels between its batch's minimum and
    maximum (8 bits by default; images in [0, 1] map 1.0 to 255) and compressed with
    deflate (zlib level 9, the compressor inside PNG). The length L(x) in bits is minus
    log2 of a universal model's probability of x, so -log p(x) - L(x) ln 2 is the
    likelihood ratio against it: Serra et al. (2020)'s complexity-corrected score.

    Args:
        x: array ``[n, ...]``; one example per row.
        levels: quantisation levels, 2..256.

    Returns:
        float64 NumPy array ``[n]``, nats.

    References: Serra et al. 2020, Input complexity and out-of-distribution detection
    with likelihood-based generative models.
    """
    arr = as_float_array(x, "x")
    if (
        isinstance(levels, bool)
        or not isinstance(levels, (int, np.integer))
        or not 2 <= levels <= 256
    ):
        raise ValueError(f"levels must be an integer in [2, 256]. Received: levels={levels!r}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    span = hi - lo if hi > lo else 1.0
    q = np.round((arr - lo) / span * (levels - 1)).astype(np.uint8)
    return np.array(
        [8.0 * len(zlib.compress(row.tobytes(), 9)) * math.log(2.0) for row in q],
        dtype=np.float64,
    )


def _padded_batches(x, condition, batch_size):
    """``(x, condition)`` batches of arrays already validated, in order, the last one
    padded with copies of its last example to ``batch_size`` examples: the traced scoring
    function then sees one shape, and a later call on another number of examples does not
    trace it again (about a second on a CPU). Every example's score is unchanged (common
    random numbers: scores do not depend on the batch); drop the padding's scores (the
    rows after ``len(x)``)."""
    for xb, cb in inputs.array_batches(x, condition, batch_size):
        pad = batch_size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
            if cb is not None:
                cb = np.concatenate([cb, np.repeat(cb[-1:], pad, axis=0)])
        yield xb, cb


def default_method(model):
    """ "log_likelihood" for a model with a density, "reconstruction" for point masses."""
    return "log_likelihood" if model.has_density else "reconstruction"


def anomaly_scores(
    model: Any,
    x: Any,
    method: str | None = None,
    seed: int | None = None,
    num_samples: int | None = None,
    per_feature: bool = False,
    background: Any = None,
    condition: Any = None,
    batch_size: int = 256,
    verbose: int | str = "auto",
) -> np.ndarray:
    """Anomaly scores of a trained model: higher means more anomalous, one per example.

    Methods (all in nats, all minus a log-probability):

    - "log_likelihood": -log p(x), the importance-sampling estimate with k =
      ``num_samples`` (default 100) draws from q(z|x) (the IWAE bound; biased low by
      O(1/k), so the score is biased high). The default for probabilistic encoders.
    - "elbo": -ELBO(x) = -(E_q[log p(x|z)] - KL(q(z|x) || p(z))), E_q from k samples
      (default 10), the KL analytic where possible. An upper bound on -log p(x).
    - "reconstruction_probability": -E_q[log p(x|z)] over k (default 10) posterior
      samples (An and Cho 2015), which ignores the KL term.
    - "reconstruction": -log p(x | decoder(E[q(z|x)])), no sampling. For a deterministic
      autoencoder with a unit-scale Gaussian decoder it is half the squared error plus
      d/2 log(2 pi). The default for point-mass encoders.
    - "likelihood_ratio": -(log p(x) - log p_background(x)): corrects likelihoods
      dominated by low-level statistics (the out-of-distribution failure of Nalisnick et
      al. 2019: a model of Fashion-MNIST gives MNIST digits higher likelihood) by
      dividing out a ``background`` model of those statistics. ``background`` is either
      a second ``ProbabilisticAutoencoder`` on the same input shape (Ren et al. 2019;
      log p by importance sampling with the same seed) or "complexity": a universal
      compressor, log p_background(x) = -L(x) with L the deflate length (``complexity``),
      which is Serra et al. (2020)'s complexity-corrected score -log p(x) - L(x).

    Args:
        model: a trained ``ProbabilisticAutoencoder``, or a fitted
            ``probae.AnomalyDetector`` (then x is raw data, preprocessed as the detector
            was trained: ``AnomalyDetector.anomaly_scores``, equal to
            ``-detector.score_samples(X)``).
        x: data ``[n, *event_shape]``, or a ``tf.data.Dataset`` of ``x`` or
            ``(x, condition)`` batches (not with ``background="complexity"``).
        method: one of ``METHODS``, or None for the default (see above).
        seed: int seed; the same seed gives identical scores, and scores do not depend on
            the batching (common random numbers, see the module doc). None draws fresh
            randomness.
        num_samples: k for the sampling methods (ignored by "reconstruction").
        per_feature: return ``[n, *event_shape]`` contributions, minus log p of each
            feature (pixel, column) given z, summing to the example's score; only for
            "reconstruction" and "reconstruction_probability".
        background: the background of "likelihood_ratio": a model or "complexity".
        condition: the condition of a conditional model (``[n, *condition_shape]``).
        batch_size: examples per network call (reduced automatically so that one call
            holds at most ``probae.estimators.MAX_ELEMENTS`` decoder outputs).
        verbose: "auto" (a progress bar, Keras' convention), 0, 1 or 2.

    Returns:
        A float32 NumPy array ``[n]`` (or ``[n, *event_shape]`` with ``per_feature``).

    Raises:
        TypeError: ``model`` or ``background`` is not a ``ProbabilisticAutoencoder``.
        ValueError: an unknown method, bad arguments, a method that needs a probabilistic
            encoder on a deterministic one, or invalid data (NaN, wrong shape, outside the
            decoder's support).

    References: Burda et al. 2016 (importance sampling); An and Cho 2015, Variational
    autoencoder based anomaly detection using reconstruction probability; Nalisnick et
    al. 2019, Do deep generative models know what they don't know?; Ren et al. 2019,
    Likelihood ratios for out-of-distribution detection; Serra et al. 2020, Input
    complexity and out-of-distribution detection with likelihood-based generative models.
    """
    if not isinstance(model, ProbabilisticAutoencoder) and callable(
        getattr(model, "anomaly_scores", None)
    ):
        # A fitted probae.AnomalyDetector: its raw data are preprocessed as in training.
        return model.anomaly_scores(
            x,
            method=method,
            seed=seed,
            num_samples=num_samples,
            per_feature=per_feature,
            **({} if background is None else {"background": background}),
            **({} if condition is None else {"condition": condition}),
            batch_size=batch_size,
            verbose=verbose,
        )
    if not isinstance(model, ProbabilisticAutoencoder):
        raise TypeError(
            "model must be a trained probae.ProbabilisticAutoencoder or a fitted "
            f"probae.AnomalyDetector. Received: model={type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "model is not built, so it was never trained: its scores would come from random "
            "weights. Train it (model.fit) or load a trained one first."
        )
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be None or one of {METHODS}. Received: method={method!r}")
    if not isinstance(per_feature, (bool, np.bool_)):
        raise TypeError(f"per_feature must be True or False. Received: per_feature={per_feature!r}")
    seed = check_seed(seed)
    batch_size = check_positive_int(batch_size, "batch_size")
    num_samples = check_positive_int(num_samples, "num_samples", allow_none=True)
    streamed = isinstance(x, tf.data.Dataset)
    c = condition
    if not streamed:
        x, c = model.check_inputs(x, condition)
    elif not model.built:
        raise ValueError("model must be trained (built) before scoring a tf.data.Dataset.")
    if method is None:
        method = default_method(model)
    if per_feature and method not in PER_FEATURE_METHODS:
        raise ValueError(
            f"per_feature=True needs method in {PER_FEATURE_METHODS}: the KL term of "
            f"{method!r} does not split over features. Received: method={method!r}"
        )
    if method == "likelihood_ratio":
        if isinstance(background, str) and background == "complexity":
            if streamed:
                raise ValueError(
                    "background='complexity' needs x as an array (it compresses each "
                    "example). Received: a tf.data.Dataset"
                )
            base = anomaly_scores(
                model,
                x,
                "log_likelihood",
                seed=seed,
                num_samples=num_samples,
                condition=condition,
                batch_size=batch_size,
                verbose=verbose,
            )
            return (base - complexity(x)).astype(np.float32)
        if not isinstance(background, ProbabilisticAutoencoder):
            raise TypeError(
                "background must be 'complexity' or a trained probae.ProbabilisticAutoencoder "
                f"with method='likelihood_ratio'. Received: background={background!r}"
            )
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        kwargs: dict[str, Any] = dict(
            seed=seed, num_samples=num_samples, batch_size=batch_size, verbose=verbose
        )
        return anomaly_scores(model, x, "log_likelihood", condition=condition, **kwargs) - (
            anomaly_scores(background, x, "log_likelihood", condition=condition, **kwargs)
        )
    if background is not None:
        raise ValueError(
            "background is used only with method='likelihood_ratio'. "
            f"Received: method={method!r} and a background model"
        )
    if method in ("log_likelihood", "elbo") and not model.has_density:
        raise ValueError(
            f"method={method!r} needs a probabilistic encoder (q(z|x) with a density) and a "
            "prior; this model's encoder is a point mass. Use method='reconstruction'."
        )
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    point = method == "reconstruction"
    k = 1 if point else (num_samples or _DEFAULT_SAMPLES[method])
    batch_size = estimators.plan(np.prod(model.event_shape), k, batch_size, shared_noise=True)[0]
    if streamed:  # validated batch by batch as it streams
        batches, total = inputs.batches(model, x, c, batch_size)
    else:  # validated once above; the last batch is padded (_padded_batches)
        batches, total = _padded_batches(x, c, batch_size), -(-len(x) // batch_size) * batch_size
    terms = estimators.estimate(
        model,
        batches,
        k,
        seed=seed,
        shared_noise=True,
        per_feature=bool(per_feature),
        point=point,
        total=total,
        verbose=verbose,
    )
    if not streamed:
        terms = {key: value[: len(x)] for key, value in terms.items()}
    if per_feature:
        return -terms["reconstruction_per_feature"].astype(np.float32)
    key = {
        "reconstruction": "reconstruction",
        "reconstruction_probability": "reconstruction",
        "elbo": "elbo",
        "log_likelihood": "log_likelihood",
    }[method]
    return -terms[key].astype(np.float32)
