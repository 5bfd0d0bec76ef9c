"""``AnomalyDetector``: a scikit-learn outlier detector scoring by likelihood.

It follows scikit-learn's outlier-detector conventions (as ``IsolationForest`` does):
``fit(X, sample_weight=...)``, ``score_samples`` (higher = more normal),
``decision_function`` (``score_samples - offset_``, negative for outliers), ``predict``
(+1 inlier, -1 outlier), ``fit_predict``, ``contamination``, ``get_params`` /
``set_params`` / ``sklearn.base.clone``, and it runs in a ``Pipeline``. PyOD's names are
documented aliases (see the class doc).
"""

import contextlib
import hashlib
import json
import math
import numbers
import os
import re
import tempfile
import zipfile
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probae import anomaly, graphs, saving
from probae.anomaly import METHODS, default_method
from probae.callbacks import NonFiniteLossError
from probae.decoders import GaussianDecoder, StudentTDecoder
from probae.missing import marginalize_missing
from probae.model import ProbabilisticAutoencoder
from probae.presets import VAE
from probae.seeds import keras_seed
from probae.tables import CONTINUOUS, HANDLE_UNKNOWN, TablePreprocessor, is_dataframe

__all__ = ["AnomalyDetector"]

TABULAR_LIKELIHOODS = CONTINUOUS
# Floor on the decoder's scales, in standard deviations of the training data: no column is
# claimed to be predictable to better than a tenth of its spread, so columns that the
# model reconstructs almost exactly cannot dominate the score.
_MIN_SCALE = 0.1
# Images (likelihood="auto"): a Gaussian decoder with this fixed scale, as a fraction of the
# training images' value range (0.1 for pixels in [0, 1]). Measured on one-class MNIST
# (BENCHMARKS.md): it beats the Bernoulli cross-entropy on grey levels (whose per-pixel
# cost depends on how much ink an image has) and learned per-pixel scales (which shrink on
# the always-black border and down-weight the strokes); AUROC barely moves for scales
# between 0.02 and 0.3.
_IMAGE_SCALE = 0.1
# Gradient steps of epochs="auto": tabular data trains briefly (contaminated training
# data); an MLP on images long (one-class MNIST AUROC still rises from 1,000 to 10,000
# steps); the CNN scored the same after 10 and 30 epochs (about 940 and 2,800 steps).
_AUTO_STEPS = {"tabular": 400, "mlp_image": 10_000, "conv_image": 1_000}
# Tabular defaults (chosen on the ADBench files of BENCHMARKS.md, see there): the decoder,
# the KL weight of the VAE and the trimmed fraction (the steps: _AUTO_STEPS). Heavy tails,
# a KL weight above 1, short training and trimming keep the model from fitting the
# anomalies that contaminate its training data.
_TABULAR_LIKELIHOOD = "student_t"
# The tabular encoder's MLP of hidden_units="auto"; its decoder keeps the decoders' own
# default widths (128, 256), wider than the encoder's mirror: the setting every tabular
# figure of BENCHMARKS.md was measured with.
_TABULAR_ENCODER_UNITS = (64, 32)
_TABULAR_BETA = 2.0
# Fraction of the training rows dropped half-way through training (trim_fraction="auto").
_TABULAR_TRIM = 0.2
# Importance samples of a table's scores (num_samples=None): 10 ranked the dev files'
# rows as 100 did (BENCHMARKS.md, issue 18) at a tenth of the cost.
_TABULAR_SAMPLES = 10
# Training rows (at most) on which the mean log-probability of each column's entries is
# measured (the calibration of rows with missing entries, ``entry_log_prob_``), and the
# most rows scored for it in all: one copy of every row per column, so wide tables use
# fewer rows (at least _MIN_CALIBRATION_ROWS). Without the cap, the calibration of a
# 512-column table scored 131,000 rows, most of the detector's time.
_CALIBRATION_ROWS = 256
_CALIBRATION_BUDGET = 4096
_MIN_CALIBRATION_ROWS = 8
_FITTED = (
    "mean_",
    "scale_",
    "constant_columns_",
    "offset_",
    "n_features_in_",
    "method_",
    "input_shape_",
    "table_",
    "entry_log_prob_",
    "train_scores_",
    "feature_names_in_",
)
PROBA_METHODS = ("linear", "unify")
_FITTED_VALUE = object()  # "use the fitted attribute" (a default argument)


def _combine(parts):
    """The ensemble's score: the mean of its models' scores (log-likelihoods)."""
    return parts[0] if len(parts) == 1 else np.mean(np.stack(parts), axis=0)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_text(X):
    """Whether X is a table to read column by column (strings, objects, records)."""
    if is_dataframe(X):
        return True
    if isinstance(X, np.ndarray):
        return X.dtype.names is not None or X.dtype.kind in "USO"
    if isinstance(X, (list, tuple)):
        try:
            return np.asarray(X).dtype.kind in "USO"
        except ValueError:  # ragged rows
            return True
    return False


def calibration_rows(n, d):
    """How many of n training rows calibrate the missing entries of d columns:
    at most 256, and about 4096 / (d + 1) (every row is scored once per column), but at
    least 8 (or n)."""
    return min(n, _CALIBRATION_ROWS, max(_MIN_CALIBRATION_ROWS, _CALIBRATION_BUDGET // (d + 1)))


def _build(model, d):
    """Builds a table model and its optimizer (``probae.graphs.shareable`` after this)."""
    if not model.built:
        model.build((None, d))
    model.optimizer.build(model.trainable_variables)


def _step_runner(model, d, weighted, batch=None):
    """One traced function that runs many training steps of ``model`` (its own
    ``train_step``: loss, gradients, Adam update, seeds) in a single call:
    ``train(Z, w, index)`` takes rows ``Z[index[i]]`` (weights ``w[index[i]]``) for step i
    and returns the mean loss. Traced once for any number of steps and rows (and, through
    ``probae.graphs``, once per configuration), where ``keras.Model.fit`` traced again for
    each call and ran Python per batch. ``model`` and its optimizer are built (``_build``).

    ``batch``: the number of rows of every step, or None for any. A known batch size makes
    every shape in the step static, so TensorFlow drops the shape arithmetic from the
    graph (1,103 operations per step instead of 1,472 for a 21-column table): a small
    table's first fit takes 0.25-0.5 s less (BENCHMARKS.md, issue 18 part 4), with the
    same numbers."""

    def step(i, loss, Z, w, index):
        x = tf.gather(Z, index[i])
        data = (x, None, tf.gather(w, index[i])) if weighted else (x,)
        loss = tf.cast(model.train_step(data)["loss"], tf.float32)
        return i + 1, loss, Z, w, index

    # Not converted by AutoGraph (as keras.Model.fit's step): an explicit while loop.
    @tf.function(
        input_signature=(
            tf.TensorSpec([None, d], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, batch], tf.int32),
        ),
        autograph=False,
    )
    def train(Z, w, index):
        steps = tf.shape(index)[0]
        _, loss, *_ = tf.while_loop(
            lambda i, *_: i < steps, step, (tf.constant(0), tf.constant(0.0), Z, w, index)
        )
        return loss  # the loss tracker's mean over the steps since reset_metrics

    return train


def _check_sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"sample_weight must be None or numbers, one per row. Received: {type(sample_weight).__name__}"
        ) from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(
            f"sample_weight must have one weight per row, shape ({n},). Received: shape {w.shape}"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(
            "sample_weight must hold finite numbers >= 0. Received: negative, NaN or inf weights"
        )
    if not np.sum(w) > 0:
        raise ValueError(
            "Sample weights must contain at least one non-zero number: sample_weight must have "
            "a positive sum. Received: all weights 0"
        )
    return w


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Unsupervised anomaly detection with a probabilistic autoencoder.

    ``fit`` trains a model on (possibly contaminated) data X without labels;
    ``score_samples`` is its log-likelihood estimate, so low values are anomalies.

    Tables: X is a pandas DataFrame, a NumPy array (numeric, string, object or
    structured) or a list of rows, with float, integer, boolean, categorical and string
    columns. ``probae.TablePreprocessor`` (one preprocessing, stored with the detector in
    ``table_``) chooses each column's likelihood from its dtype and values: booleans and
    two-valued columns are Bernoulli, string and categorical columns categorical over the
    categories seen in training, other numeric columns continuous (``likelihood``);
    ``column_types`` overrides it per column, by name. Continuous columns are
    standardised with the training mean and standard deviation (computed without
    overflow for values up to 1e308), clipped to +-1e4; columns with a single value in
    the training data are dropped (their test values are ignored).

    Missing entries (NaN, None, pandas NA) are **marginalised, not imputed**: the model's
    encoder is told which entries are missing and its likelihood is that of the observed
    entries, log p(x_obs) (``probae.marginalize_missing``; MIWAE, Mattei and Frellsen
    2019). A row missing some entries has a larger log p(x_obs) than the same row complete
    (it is asked to explain less), so ``score_samples`` adds, for each missing entry of
    column j, ``entry_log_prob_[j]``: the mean over (up to 256) training rows of
    log p(x_obs) - log p(x_obs without x_j), the log-probability an entry of that column
    typically has. The expected score of a normal row then does not depend on how many
    entries it misses (tests/test_missing.py shows it). **Unseen categories** at scoring
    time are scored as the column's rarest training category (``handle_unknown="rarest"``)
    or raise a ``ValueError`` naming the column (``handle_unknown="error"``). Infinite
    values raise.

    Images: a 4-D array ``(n, height, width, channels)`` (or 3-D ``(n, height, width)``),
    used as it is; NaN or inf raise ``ValueError``. Fitting needs at least 2 rows.

    Model: unless ``model`` is given, a VAE with an MLP for tabular data and a CNN for
    images. The training data are contaminated by the anomalies to be found, so the tabular
    defaults keep the model from fitting them: a Student-t likelihood for continuous
    columns (5 degrees of freedom: a wild value pulls the fit less than under a
    Gaussian), a KL weight of 2, 400 Adam steps, and a second half of training without
    the 20% of rows the half-trained model finds most anomalous (``trim_fraction``);
    tables are scored by the importance-sampled log-likelihood with k = 10. These defaults
    were chosen by the leave-one-dataset-out figure over the 19 ADBench dev files of
    BENCHMARKS.md (issue 18), where the detector's fit + scoring time is also measured
    against PyOD's AutoEncoder. Tabular decoders' learned per-feature scales are floored
    at 0.1 (standardised units). Images: by default a Gaussian decoder with a
    fixed scale of 0.1 times the training images' value range (0.1 for pixels in [0, 1]):
    on one-class MNIST it scores far better than a Bernoulli decoder on grey levels (whose
    per-pixel cost depends on how much ink an image has) or a learned per-pixel scale. For
    small grey-scale images such as MNIST, ``architecture="mlp"`` (flattened pixels, about
    10,000 training steps) can do better still than the CNN: BENCHMARKS.md ("One-class
    MNIST") has both, measured with benchmarks/mnist_one_class.py.

    PyOD's names (documented aliases): ``decision_scores_`` = minus ``score_samples`` of
    the training rows (higher = more abnormal); ``threshold_`` = ``-offset_``;
    ``labels_`` = 1 where ``decision_scores_ > threshold_`` (the training rows
    ``predict`` flags), else 0; PyOD's ``decision_function(X)`` (higher = more
    abnormal) is ``probae.anomaly_scores(detector, X)`` here, because scikit-learn's
    ``decision_function`` has the opposite sign: ``decision_function(X) = threshold_ -
    anomaly_scores(detector, X)``; ``predict_proba(X, method="linear" | "unify")`` as PyOD.

    Args:
        model: None (choose from the data), a ``ProbabilisticAutoencoder`` whose
            configuration is copied (``fit`` trains a fresh copy with new weights; the
            instance passed is never modified; with missing training entries the copy is
            made to marginalise them, ``probae.marginalize_missing``), or a callable
            ``input_shape -> model``. It reads the preprocessed table.
        method: the score (see ``probae.anomaly_scores``); None: "log_likelihood" for a
            probabilistic encoder, "reconstruction" for a deterministic one.
        contamination: "auto" or the expected fraction of outliers in (0, 0.5]. A
            fraction sets ``offset_`` to that quantile of the training scores; "auto"
            sets it to median - 3 * 1.4826 * MAD of the training scores (a robust
            three-sigma rule).
        likelihood: "auto", "gaussian", "student_t" or "bernoulli" (images). For tables,
            the likelihood of continuous columns ("auto": "student_t"); for images,
            "auto" is the fixed-scale Gaussian above, and "gaussian" a learned per-pixel
            scale.
        column_types: None (from the data), a list with one type per column, or a dict
            ``{column name: type}``; a type is "auto", "gaussian", "student_t",
            "continuous", "bernoulli", "categorical" or an int K (codes 0..K-1).
        handle_unknown: "rarest" (unseen categories are scored as the column's rarest
            training category) or "error".
        latent_dim: code size, or "auto" (tabular: min(8, max(2, d // 4)); images: 16).
        hidden_units: widths of the encoder's MLP, the decoder's in reverse order, or
            "auto" (tabular: encoder (64, 32), decoder (128, 256); images: (256, 128)
            and its mirror).
        architecture: "auto" (tabular: an MLP; images: a CNN), "mlp" or "conv" (images
            only).
        epochs: training epochs (passes over the data), or "auto". Tabular data: 400
            Adam steps (short training keeps the model from memorising the anomalies that
            contaminate the training data), but at least two passes over the data; all
            the steps run in one traced TensorFlow call per half of training (before and
            after trimming), batches drawn as successive shuffled passes. Images: about
            1,000 steps with the CNN and 10,000 with an MLP, between 10 and 100 epochs
            (``keras.Model.fit``).
        beta: the KL weight of the default VAE (``probae.BetaVAE``), or "auto" (2 for
            tabular data, 1 for images). Not used when ``model`` is given.
        trim_fraction: tabular data: after the first half of the training epochs, this
            fraction of the training rows, those the half-trained model scores as most
            anomalous, is dropped for the second half (a trimmed likelihood: the
            anomalies that contaminate the training data pull the model less), also for
            a ``model`` given; "auto": 0.2; 0 turns it off. Images are never trimmed.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        num_samples: k for the score; None: 10 for tables (on the 19 ADBench dev files
            of BENCHMARKS.md, k = 10 ranked rows as k = 100 did, at a tenth of the cost),
            the method's default for images (100 for "log_likelihood").
        standardize: standardise continuous columns.
        n_models: how many models to train (seeds ``random_state``, ``random_state + 1``,
            ...); the score is then the mean of their log-likelihoods (of their scores,
            for other methods), log of the geometric mean of their densities. It ranked
            one-class Fashion-MNIST better than the log-likelihood of their mixture,
            log-mean-exp, which each row's best-fitting model dominates (BENCHMARKS.md).
            An ensemble costs n_models times the time and evens out the seed-to-seed
            spread of one model.
        random_state: int seed of the model's initialisation, training and scores, or
            None. A table fit leaves the global random generators as they were
            (``probae.seeds.keras_seed``); an image fit calls
            ``keras.utils.set_random_seed`` (Keras' shuffling draws from TensorFlow's
            global generator).
        verbose: Keras' verbosity in ``fit``.

    Attributes:
        model_: the trained ``ProbabilisticAutoencoder`` (it reads preprocessed rows:
            score raw data with ``probae.anomaly_scores(detector, X)``); with
            ``n_models > 1``, the first of ``models_``.
        models_: the list of the trained models (``n_models`` of them).
        preprocessor_: the fitted ``probae.TablePreprocessor`` (None for images).
        table_: its JSON state (what ``save`` stores).
        offset_: threshold on ``score_samples``.
        method_: the score used.
        entry_log_prob_: per kept column, the calibration of missing entries (above).
        mean_, scale_: standardisation of the columns (zero and one where not applied).
        constant_columns_: boolean mask of the columns dropped as constant.
        n_features_in_, feature_names_in_: as scikit-learn defines them.
        decision_scores_, threshold_, labels_: PyOD's names (above).
    """

    def __init__(
        self,
        model=None,
        method=None,
        contamination="auto",
        likelihood="auto",
        column_types=None,
        handle_unknown="rarest",
        latent_dim="auto",
        hidden_units="auto",
        architecture="auto",
        epochs="auto",
        beta="auto",
        trim_fraction="auto",
        batch_size=64,
        learning_rate=1e-3,
        num_samples=None,
        standardize=True,
        n_models=1,
        random_state=0,
        verbose=0,
    ):
        self.model = model
        self.method = method
        self.contamination = contamination
        self.likelihood = likelihood
        self.column_types = column_types
        self.handle_unknown = handle_unknown
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.architecture = architecture
        self.epochs = epochs
        self.beta = beta
        self.trim_fraction = trim_fraction
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.num_samples = num_samples
        self.standardize = standardize
        self.n_models = n_models
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if self.method is not None and self.method not in METHODS[:-1]:
            raise ValueError(
                f"method must be None or one of {METHODS[:-1]}. Received: method={self.method!r}"
            )
        c = self.contamination
        if not (
            c == "auto" if isinstance(c, str) else isinstance(c, numbers.Real) and 0 < c <= 0.5
        ):
            raise ValueError(
                f"contamination must be 'auto' or a number in (0, 0.5]. Received: contamination={c!r}"
            )
        if self.likelihood not in ("auto", "bernoulli") + TABULAR_LIKELIHOODS:
            raise ValueError(
                "likelihood must be 'auto', 'gaussian', 'student_t' or 'bernoulli'. "
                f"Received: likelihood={self.likelihood!r}"
            )
        if self.handle_unknown not in HANDLE_UNKNOWN:
            raise ValueError(
                f"handle_unknown must be one of {HANDLE_UNKNOWN}. Received: handle_unknown={self.handle_unknown!r}"
            )
        for name in ("latent_dim", "epochs"):
            value = getattr(self, name)
            if value != "auto" and not (_is_int(value) and value > 0):
                raise ValueError(
                    f"{name} must be 'auto' or a positive integer. Received: {name}={value!r}"
                )
        for name in ("batch_size",):
            value = getattr(self, name)
            if not (_is_int(value) and value > 0):
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        b = self.beta
        if b != "auto" and not (
            isinstance(b, numbers.Real)
            and not isinstance(b, (bool, str))
            and np.isfinite(b)
            and b >= 0
        ):
            raise ValueError(f"beta must be 'auto' or a number >= 0. Received: beta={b!r}")
        t = self.trim_fraction
        if t != "auto" and not (
            isinstance(t, numbers.Real) and not isinstance(t, (bool, str)) and 0 <= t < 0.5
        ):
            raise ValueError(
                f"trim_fraction must be 'auto' or a number in [0, 0.5). Received: trim_fraction={t!r}"
            )
        lr = self.learning_rate
        if not (
            isinstance(lr, numbers.Real) and not isinstance(lr, bool) and np.isfinite(lr) and lr > 0
        ):
            raise ValueError(f"learning_rate must be a number > 0. Received: learning_rate={lr!r}")
        if self.num_samples is not None and not (
            _is_int(self.num_samples) and self.num_samples > 0
        ):
            raise ValueError(
                f"num_samples must be None or a positive integer. Received: num_samples={self.num_samples!r}"
            )
        if not (_is_int(self.n_models) and self.n_models >= 1):
            raise ValueError(
                f"n_models must be a positive integer. Received: n_models={self.n_models!r}"
            )
        if self.random_state is not None and not (
            _is_int(self.random_state) and self.random_state >= 0
        ):
            raise ValueError(
                "random_state must be None or a non-negative integer. "
                f"Received: random_state={self.random_state!r}"
            )
        m = self.model
        if m is not None and not isinstance(m, ProbabilisticAutoencoder) and not callable(m):
            raise TypeError(
                "model must be None, a probae.ProbabilisticAutoencoder or a callable "
                f"input_shape -> model. Received: model={type(m).__name__}"
            )

    def _read(self, X, reset):
        """X -> ("table", the raw table) or ("images", a float64 array), validated with
        scikit-learn (feature count and names)."""
        if isinstance(X, tf.data.Dataset):
            raise TypeError(
                "X must be a table (a DataFrame, an array or a list of rows) or images (an "
                "array (n, height, width[, channels])) held in memory. Received: a "
                "tf.data.Dataset (to score a stream, train a probae model on it and call "
                "probae.anomaly_scores(model, dataset))"
            )
        if isinstance(X, np.ndarray) and X.dtype.names is not None:
            import pandas as pd

            X = pd.DataFrame(X)
        if _is_text(X):
            if not is_dataframe(X) and not isinstance(X, np.ndarray):
                try:
                    X = np.asarray(X)
                except ValueError:
                    X = np.asarray(X, dtype=object)
            if not is_dataframe(X) and X.ndim != 2:
                raise ValueError(
                    f"Expected 2D array, got {X.ndim}D array instead: X must be a table "
                    f"(n_samples, n_features). Received shape {X.shape}"
                )
            validate_data(self, X, reset=reset, skip_check_array=True)
            return "table", X
        X = validate_data(
            self,
            X,
            reset=reset,
            allow_nd=True,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            ensure_min_samples=1,
        )
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim not in (2, 4):
            raise ValueError(
                "X must be a 2-D table (n_samples, n_features) or images (n, height, width"
                f"[, channels]). Received: X with shape {X.shape}"
            )
        if X.ndim == 4:
            if np.isnan(X).any():
                raise ValueError(
                    "X as images must contain only finite values: missing pixels (NaN) are "
                    f"supported for tables only. Received: {int(np.isnan(X).sum())} NaN value(s)"
                )
            return "images", X
        return "table", X

    @property
    def preprocessor_(self):
        """The fitted ``probae.TablePreprocessor`` (None for images)."""
        check_is_fitted(self, "table_")
        return None if self.table_ is None else TablePreprocessor.from_config(self.table_)

    def _prepare(self, X):
        """Raw X -> the model's float32 input (NaN at missing entries)."""
        check_is_fitted(self, "model_")
        kind, X = self._read(X, reset=False)
        if (kind == "images") != (self.table_ is None):
            raise ValueError(
                f"X is {'images' if kind == 'images' else 'a table'} but the detector was "
                f"fitted on {'a table' if self.table_ is not None else 'images'}"
            )
        if kind == "images":
            return X.astype(np.float32)
        return self.preprocessor_.transform(X)

    # ------------------------------------------------------------------ model
    def _continuous_likelihood(self):
        if self.likelihood == "bernoulli":
            raise ValueError(
                "likelihood='bernoulli' is for images with values in [0, 1]; boolean and "
                "two-valued columns of a table are Bernoulli already (column_types="
                "{'name': 'bernoulli'} to force it)."
            )
        return _TABULAR_LIKELIHOOD if self.likelihood == "auto" else self.likelihood

    def _make_model(self, input_shape, x, table=None, seed=None):
        if isinstance(self.model, ProbabilisticAutoencoder):
            config = self.model.get_config()
            model = type(self.model).from_config(config)
            return marginalize_missing(model) if np.isnan(x).any() else model
        if callable(self.model):
            model = self.model(input_shape)
            if not isinstance(model, ProbabilisticAutoencoder):
                raise TypeError(
                    "model(input_shape) must return a probae.ProbabilisticAutoencoder. "
                    f"Received: {type(model).__name__}"
                )
            return marginalize_missing(model) if np.isnan(x).any() else model
        if len(input_shape) == 3:
            latent = 16 if self.latent_dim == "auto" else self.latent_dim
            architecture = "conv" if self.architecture == "auto" else self.architecture
            kwargs = (
                {} if self.hidden_units == "auto" else {"hidden_units": tuple(self.hidden_units)}
            )
            net = {"event_shape": input_shape, "architecture": architecture}
            if kwargs:
                net["hidden_units"] = tuple(reversed(kwargs["hidden_units"]))
            likelihood = self.likelihood
            if likelihood == "auto":
                span = float(x.max() - x.min())
                likelihood = GaussianDecoder(
                    scale=_IMAGE_SCALE * (span if span > 0 else 1.0), **net
                )
            elif likelihood == "student_t":
                likelihood = StudentTDecoder(**net)
            if self.beta != "auto":
                kwargs["beta"] = float(self.beta)
            return VAE(
                input_shape,
                latent,
                likelihood=likelihood,
                architecture=architecture,
                seed=seed,
                **kwargs,
            )
        d = input_shape[0]
        latent = min(8, max(2, d // 4)) if self.latent_dim == "auto" else self.latent_dim
        if self.hidden_units == "auto":
            hidden, decoder_net = _TABULAR_ENCODER_UNITS, {}
        else:
            hidden = tuple(self.hidden_units)
            decoder_net = {"hidden_units": tuple(reversed(hidden))}
        beta = _TABULAR_BETA if self.beta == "auto" else float(self.beta)
        model = VAE(
            input_shape,
            latent,
            likelihood=table.decoder(min_scale=_MIN_SCALE, **decoder_net),
            hidden_units=hidden,
            architecture=self.architecture,
            seed=seed,
            beta=beta,
        )
        return marginalize_missing(model)

    def _image_epochs(self, n):
        """Epochs for n images: ``epochs="auto"`` means about ``_AUTO_STEPS`` Adam steps of
        the image network (tables use ``_tabular_steps``), within 10..100 epochs."""
        if self.epochs != "auto":
            return self.epochs
        steps_per_epoch = max(1, -(-n // self.batch_size))
        steps = _AUTO_STEPS["mlp_image" if self.architecture == "mlp" else "conv_image"]
        return int(np.clip(round(steps / steps_per_epoch), 10, 100))

    def _tabular_steps(self, n, batch):
        """Adam steps for a table of n rows: ``epochs="auto"`` means
        ``_AUTO_STEPS["tabular"]`` steps, but at least two passes over the data (one before
        and one after trimming); an int ``epochs`` means that many passes,
        ``epochs * ceil(n / batch)`` steps."""
        steps_per_epoch = -(-n // batch)
        if self.epochs != "auto":
            return self.epochs * steps_per_epoch
        return max(_AUTO_STEPS["tabular"], 2 * steps_per_epoch)

    def _trim(self):
        return _TABULAR_TRIM if self.trim_fraction == "auto" else float(self.trim_fraction)

    def _graphs(self, model):
        """``probae.graphs.shared(model)`` for the models the detector builds for tables
        (their traced functions serve every later fit of the same configuration), else
        ``model`` itself with a fresh dict of functions."""
        if self.model is None and getattr(self, "table_", None) is not None:
            return graphs.shared(model)
        return contextlib.nullcontext((model, {}))

    def _fit_table(self, model, functions, Z, batch, weights, i):
        """Trains on a table: the first half of the steps on all rows, then (with
        ``trim_fraction > 0`` and at least 2 steps) the second half without the training
        rows that the half-trained model scores as most anomalous. ``functions``: where
        the traced training function of ``model`` is kept (``_graphs``); ``i``: which of
        the ``n_models`` it is (its seeds)."""
        steps = self._tabular_steps(len(Z), batch)
        n_drop = int(self._trim() * len(Z))
        first = steps // 2 if n_drop > 0 and len(Z) - n_drop >= 2 and steps >= 2 else steps
        # both halves' batch size when they share it (one trace with static shapes)
        static = batch if first == steps or len(Z) - n_drop >= batch else None
        key = ("train", weights is not None, static)
        if key not in functions:
            functions[key] = _step_runner(model, Z.shape[1], weights is not None, static)
        train = functions[key]
        rng = np.random.default_rng(self._member_seed(i))
        self._train_steps(model, train, Z, weights, first, batch, rng)
        if first < steps:
            method = default_method(model) if self.method is None else self.method
            score_seed = self._seed() + i  # as _each_member scores model i
            entry = (
                self._entry_log_prob(self._calibration_rows(Z), model, method, score_seed)
                if np.isnan(Z).any()
                else None
            )
            scores = -self._calibrated(
                Z, self._score(Z, model, method, score_seed), entry
            )  # NaN: most anomalous
            kept = np.sort(np.argsort(scores, kind="stable")[: len(Z) - n_drop])
            w = None if weights is None else weights[kept]
            self._train_steps(model, train, Z[kept], w, steps - first, min(batch, len(kept)), rng)

    def _train_steps(self, model, train, Z, weights, steps, batch, rng):
        """``steps`` Adam steps on batches of ``batch`` rows of Z, drawn as successive
        shuffled passes over Z (a pass carries over into the next), in one call of the
        traced ``train`` (``_step_runner``)."""
        if steps <= 0:
            return
        passes = -(-steps * batch // len(Z))
        order = np.concatenate([rng.permutation(len(Z)) for _ in range(passes)])
        index = order[: steps * batch].reshape(steps, batch).astype(np.int32)
        w = np.ones(len(Z), np.float32) if weights is None else weights.astype(np.float32)
        model.reset_metrics()
        loss = float(train(Z.astype(np.float32), w, index))
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"training diverged: the mean loss of the last {steps} steps is {loss}. Try a "
                "smaller learning_rate or standardize=True."
            )
        if self.verbose:
            print(f"{steps} steps of {batch} rows: mean loss {loss:.4f}")

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "AnomalyDetector":
        """Trains the model on X (labels are ignored) and sets ``offset_``.

        Args:
            X: a table (DataFrame, array or list of rows; missing entries allowed) or
                images ``(n, height, width[, channels])``; n_samples >= 2.
            y: ignored.
            sample_weight: None or one non-negative weight per row (as IsolationForest):
                the weighted rows' share of every training step's loss, and of the
                columns' means, standard deviations and category counts.

        Returns:
            self.

        Raises:
            ValueError: invalid parameters, inf in X, NaN in images, fewer than 2
                samples, only constant columns, invalid weights.
            TypeError: cells that are neither numbers, strings, booleans nor missing.
        """
        self._check_params()
        kind, X = self._read(X, reset=True)
        n = len(X)
        if n < 2:
            raise ValueError(
                f"AnomalyDetector needs at least 2 samples to fit. Received: n_samples = "
                f"{n} ({n} sample{'s' if n != 1 else ''})"
            )
        weights = _check_sample_weight(sample_weight, n)
        table = None
        if kind == "table":
            table = TablePreprocessor(
                column_types=self.column_types,
                continuous=self._continuous_likelihood(),
                standardize=bool(self.standardize),
                handle_unknown=self.handle_unknown,
            ).fit(X, sample_weight=weights)
            if not table.kept_.any():
                raise ValueError(
                    "X has no non-constant column: every feature takes a single value in the "
                    "training data, so there is nothing to model."
                )
            self.table_ = table.get_config()
            self.mean_, self.scale_, self.constant_columns_ = table.means_and_scales()
            Z = table.transform(X)
        else:
            self.table_ = None
            self.constant_columns_ = np.zeros(0, bool)
            self.mean_ = np.zeros(0)
            self.scale_ = np.ones(0)
            Z = X.astype(np.float32)
        self.input_shape_ = tuple(Z.shape[1:])
        batch = min(self.batch_size, len(Z))
        models = []
        for i in range(self.n_models):
            seed = self._member_seed(i)
            if seed is not None and kind == "images":
                keras.utils.set_random_seed(seed)  # Keras' shuffling draws from TensorFlow's
            with contextlib.nullcontext() if seed is None else keras_seed(seed):
                model = self._make_model(self.input_shape_, Z, table, seed)
            model.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
            if kind == "table":
                _build(model, Z.shape[1])
                with self._graphs(model) as (runner, functions):
                    self._fit_table(runner, functions, Z, batch, weights, i)
            else:
                model.fit(
                    Z,
                    sample_weight=weights,
                    epochs=self._image_epochs(len(Z)),
                    batch_size=batch,
                    shuffle=True,
                    verbose=self.verbose,
                )
            models.append(model)
        self.models_ = models
        self.model_ = models[0]
        self._fit_scores(Z, kind)
        scores = self.train_scores_
        if self.contamination == "auto":
            median = np.median(scores)
            mad = np.median(np.abs(scores - median))
            self.offset_ = float(median - 3 * 1.4826 * mad)
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _fit_scores(self, Z, kind):
        """Sets ``method_``, ``entry_log_prob_`` and ``train_scores_`` from the trained
        ``models_``."""
        model = self.model_
        self.method_ = default_method(model) if self.method is None else self.method
        if kind == "images" or not getattr(model.encoder, "allows_missing", False):
            self.entry_log_prob_ = None
        else:  # computed when first needed: scores of rows with missing entries, save
            self._entry_state = ("rows", self._calibration_rows(Z))
        self.train_scores_ = self._calibrated(Z, self._score(Z))

    @property
    def entry_log_prob_(self):
        """Per kept column, the calibration of a missing entry (``_entry_log_prob``),
        None for a model without missing entries. Computed at its first use (a scored row
        with a missing entry, ``save``, pickling, reading it) from the training rows that
        ``fit`` drew, so a detector that never meets a missing entry does not pay for it."""
        state = self.__dict__.get("_entry_state")
        if state is None:
            raise AttributeError("entry_log_prob_")
        kind, value = state
        if kind == "rows":
            value = self._entry_log_prob(value, None, self.method_).tolist()
            self._entry_state = ("value", value)
        return value

    @entry_log_prob_.setter
    def entry_log_prob_(self, value):
        self._entry_state = ("value", value)

    def _members(self):
        """The trained models (``models_``; a detector loaded from an older file: model_)."""
        return getattr(self, "models_", None) or [self.model_]

    def _each_member(self, score, seed):
        """``score(runner, seed + i)`` for each model i (on its shared template)."""
        out = []
        for i, member in enumerate(self._members()):
            with self._graphs(member) as (runner, _):
                out.append(score(runner, seed + i))
        return out

    def _num_samples(self):
        """k of the scores: ``num_samples``, or for tables (None) ``_TABULAR_SAMPLES``."""
        if self.num_samples is None and getattr(self, "table_", None) is not None:
            return _TABULAR_SAMPLES
        return self.num_samples

    def _seed(self):
        return 0 if self.random_state is None else self.random_state

    def _member_seed(self, i):
        """The training seed of model i: random_state + i, or None."""
        return None if self.random_state is None else self.random_state + i

    def _score(self, Z, model=None, method=None, seed=None):
        """Minus the anomaly scores of Z (NaN as -inf) under ``model`` and ``method``
        (default: the fitted ``models_``, their mixture, and ``method_``), without the
        calibration; ``seed``: the scores' seed (default: the detector's)."""
        seed = self._seed() if seed is None else seed
        if model is None:
            parts = self._each_member(lambda m, s: self._score(Z, m, method, s), seed)
            return _combine(parts)
        method = self.method_ if method is None else method
        s = -anomaly.anomaly_scores(
            model, Z, method=method, seed=seed, num_samples=self._num_samples(), verbose=0
        )
        return np.nan_to_num(s.astype(np.float64), nan=-np.inf)

    def _calibration_rows(self, Z):
        """The (``calibration_rows``) training rows that ``_entry_log_prob`` reads."""
        rng = np.random.default_rng(self._seed())
        m = calibration_rows(len(Z), Z.shape[1])
        return Z[np.sort(rng.choice(len(Z), m, replace=False))]

    def _entry_log_prob(self, rows, model, method, seed=None):
        """Per column j, the mean over ``rows`` observing x_j of score(x_obs) -
        score(x_obs without x_j): what an entry of column j typically adds (``model``
        None: the fitted models)."""
        d = rows.shape[1]
        parts, where = [rows], []
        for j in range(d):
            observed = ~np.isnan(rows[:, j])
            masked = rows[observed].copy()
            masked[:, j] = np.nan
            parts.append(masked)
            where.append(observed)
        scores = self._score(np.concatenate(parts), model, method, seed)
        base, start, out = scores[: len(rows)], len(rows), np.zeros(d)
        for j, observed in enumerate(where):
            diff = base[observed] - scores[start : start + observed.sum()]
            start += observed.sum()
            diff = diff[np.isfinite(diff)]
            out[j] = float(diff.mean()) if len(diff) else 0.0
        return out

    def _calibrated(self, Z, scores, entry_log_prob=_FITTED_VALUE):
        """``scores`` plus, per missing entry of column j, ``entry_log_prob[j]`` (default:
        the fitted ``entry_log_prob_``)."""
        if Z.ndim != 2 or not np.isnan(Z).any():
            return scores
        if entry_log_prob is _FITTED_VALUE:
            entry_log_prob = getattr(self, "entry_log_prob_", None)
        if entry_log_prob is None:
            return scores
        return scores + np.isnan(Z).astype(np.float64) @ np.asarray(entry_log_prob, np.float64)

    def anomaly_scores(
        self,
        X: Any,
        method: str | None = None,
        seed: int | None = None,
        num_samples: int | None = None,
        per_feature: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        """``probae.anomaly_scores`` of raw X under the detector's preprocessing and model.

        X is preprocessed exactly as in ``fit`` (column types, standardisation,
        vocabularies); the scores are ``probae.anomaly.anomaly_scores(model_, ...)`` of the
        result, higher = more anomalous. With the detector's own method (``method=None``)
        rows with missing entries get the calibration of ``score_samples``, so that the
        scores equal ``-score_samples(X)``.

        Args:
            X: raw data, as for ``fit``.
            method: None (``method_``) or a method of ``probae.anomaly_scores``.
            seed: None (the detector's ``random_state``, as ``score_samples``) or an int.
            num_samples: None (the detector's) or k.
            per_feature: per-column contributions (as ``score_features``, without column
                names).
            **kwargs: ``background``, ``batch_size`` of ``probae.anomaly_scores``.

        Returns:
            A float64 array ``[n]`` (``[n, n_features]`` with ``per_feature``).
        """
        Z = self._prepare(X)
        if per_feature:
            return self._per_feature(Z, method or "reconstruction", seed)
        own = method is None or method == self.method_
        seed = self._seed() if seed is None else seed
        num_samples = self._num_samples() if num_samples is None else num_samples
        kwargs.setdefault("verbose", 0)
        parts = self._each_member(
            lambda runner, member_seed: anomaly.anomaly_scores(
                runner,
                Z,
                method=method or self.method_,
                seed=member_seed,
                num_samples=num_samples,
                **kwargs,
            ).astype(np.float64),
            seed,
        )
        s = _combine(parts)
        return -self._calibrated(Z, -s) if own else s

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood-type score per example: higher means more normal.

        Minus ``probae.anomaly_scores(model_, preprocessed X, method_)``, plus the
        calibration of missing entries (the class doc); rows whose score is NaN get -inf.
        """
        Z = self._prepare(X)
        return self._calibrated(Z, self._score(Z))

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers (scikit-learn's sign;
        PyOD's decision_function is ``probae.anomaly_scores(detector, X)``)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers (``decision_function(X) < 0``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def _per_feature(self, Z, method="reconstruction", seed=None):
        parts = self._each_member(
            lambda runner, member_seed: anomaly.anomaly_scores(
                runner,
                Z,
                method=method,
                per_feature=True,
                seed=member_seed,
                num_samples=self._num_samples(),
                verbose=0,
            ).astype(np.float64),
            self._seed() if seed is None else seed,
        )
        per = _combine(parts)  # the models' mean contribution
        if Z.ndim != 2:
            return per
        per[np.isnan(Z)] = np.nan
        full = np.zeros((len(Z), len(self.constant_columns_)))
        full[:, ~self.constant_columns_] = per
        return full

    def score_features(self, X: Any) -> Any:  # an array, or a DataFrame for a DataFrame X
        """Per-feature anomaly contributions (higher = more anomalous).

        Minus log p of each preprocessed column given the code, from
        ``anomaly_scores(..., method="reconstruction", per_feature=True)``: a table gives
        ``[n, n_features]`` (a DataFrame with X's column names and index when X is a
        DataFrame), with 0 for columns dropped as constant and NaN for missing entries;
        images give per-pixel maps.
        """
        per = self._per_feature(self._prepare(X))
        if is_dataframe(X):
            import pandas as pd

            return pd.DataFrame(per, columns=X.columns, index=X.index)
        return per

    def plot_contributions(self, X, n=4, max_features=10, ax=None, path=None):
        """Draws the per-feature contributions of the ``n`` most anomalous rows of X.

        A heat map (``probae.plotting.plot_feature_contributions``): one row per anomaly
        (labelled with its position or DataFrame index and its anomaly score), one column
        per feature (the ``max_features`` contributing most), minus log p(x_j | z) in each
        cell, missing entries blank.

        Args:
            X: a table, as for ``fit``.
            n: how many of the most anomalous rows to show.
            max_features: how many features to show.
            ax: a Matplotlib Axes to draw on (None: a new figure).
            path: also save the figure there (PNG).

        Returns:
            The ``matplotlib.figure.Figure``.
        """
        from probae import plotting

        contributions = np.asarray(self.score_features(X), np.float64)
        if contributions.ndim != 2:
            raise ValueError(
                "plot_contributions draws tables; for images use probae.plotting.plot_anomaly_map "
                "with score_features(X)."
            )
        scores = -self.score_samples(X)
        names = (
            [str(c) for c in X.columns] if is_dataframe(X) else self.preprocessor_.feature_names_in_
        )
        labels = list(X.index) if is_dataframe(X) else list(range(len(scores)))
        return plotting.plot_feature_contributions(
            contributions,
            scores,
            feature_names=names,
            row_labels=labels,
            n=n,
            max_features=max_features,
            ax=ax,
            path=path,
        )

    # ------------------------------------------------------------------ PyOD's names
    @property
    def decision_scores_(self):
        """PyOD: the training rows' anomaly scores (minus ``score_samples``)."""
        check_is_fitted(self, "train_scores_")
        return -np.asarray(self.train_scores_, np.float64)

    @property
    def threshold_(self):
        """PyOD: the anomaly score above which a row is an outlier, ``-offset_``."""
        check_is_fitted(self, "offset_")
        return -float(self.offset_)

    @property
    def labels_(self):
        """PyOD: 1 for the training rows ``predict`` flags (decision_scores_ > threshold_)."""
        return (self.decision_scores_ > self.threshold_).astype(int)

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """PyOD's outlier probability: ``[n, 2]``, columns P(inlier), P(outlier).

        "linear": the anomaly score min-max scaled by the training scores
        (``decision_scores_``) and clipped to [0, 1]; "unify": erf((s - mean) / (std
        sqrt(2))) of the training scores' mean and standard deviation, clipped to [0, 1]
        (Kriegel et al. 2011, Interpreting and unifying outlier scores).

        Raises:
            ValueError: an unknown ``method``.
        """
        if method not in PROBA_METHODS:
            raise ValueError(f"method must be one of {PROBA_METHODS}. Received: method={method!r}")
        train = self.decision_scores_
        test = -self.score_samples(X)
        if method == "linear":
            span = train.max() - train.min()
            with np.errstate(invalid="ignore"):
                p = (test - train.min()) / (span if span > 0 else 1.0)
        else:
            std = train.std()
            erf = np.vectorize(math.erf, otypes=[np.float64])
            p = erf((test - train.mean()) / ((std if std > 0 else 1.0) * math.sqrt(2.0)))
        p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ persistence
    def _state(self):
        params = self.get_params(deep=False)
        model_param = params.pop("model")
        if model_param is not None and not isinstance(model_param, ProbabilisticAutoencoder):
            raise ValueError(
                "save supports model=None or a ProbabilisticAutoencoder, not a callable "
                "(a function cannot be stored without pickle)."
            )
        fitted = {}
        for key in _FITTED:
            if hasattr(self, key):
                value = getattr(self, key)
                fitted[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return params, model_param, fitted

    def save(self, path: str | os.PathLike) -> None:
        """Saves the detector to one zip file, without pickle, atomically.

        The file holds ``params.json`` (the constructor parameters and fitted scalars and
        arrays, as JSON, and a SHA-256 digest of every other member) and the model in
        Keras' ``.keras`` format (``model.keras``, ``model_1.keras``, ... for the other
        models of ``n_models > 1``, and ``model_param.keras`` for a model passed as the
        ``model`` parameter). It is written under a temporary name beside
        ``path`` and renamed over it (``probae.saving.replace_atomically``), so an
        interrupted save never leaves a corrupt file in place of a good one.

        Args:
            path: file path (for example "detector.zip"), or a URL that TensorFlow's file
                systems write (``gs://``, ``ram://``: written locally, then copied; the
                rename is atomic for local paths only).

        Raises:
            TypeError: ``path`` is not a path.
            ValueError: the ``model`` parameter is a callable, or the model's weights are
                NaN or infinite.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a file path (str or os.PathLike). Received: path={path!r}"
            )
        params, model_param, fitted = self._state()

        def write(tmp):
            with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(tmp, "w") as zf:
                digests = {}
                extra = getattr(self, "models_", [None])[1:]  # an ensemble's other models
                for name, model in (
                    ("model.keras", getattr(self, "model_", None)),
                    ("model_param.keras", model_param),
                    *((f"model_{i}.keras", m) for i, m in enumerate(extra, 1)),
                ):
                    if model is not None:
                        file = os.path.join(folder, name)
                        model.save(file)
                        with open(file, "rb") as f:
                            digests[name] = hashlib.sha256(f.read()).hexdigest()
                        zf.write(file, name)
                zf.writestr(
                    "params.json",
                    json.dumps(
                        {
                            "format": _ARCHIVE_FORMAT,
                            "params": params,
                            "fitted": fitted,
                            "sha256": digests,
                        }
                    ),
                )

        saving.replace_atomically(write, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AnomalyDetector":
        """Loads a detector written by ``save``; it scores exactly as the saved one.

        The models are read by ``probae.load_model`` (Keras' safe mode: no code in the
        file is run), and every parameter and fitted attribute is checked.

        Raises:
            TypeError: ``path`` is not a path.
            FileNotFoundError: no file at ``path``.
            InvalidModelFileError (a ValueError): the file is not a complete zip archive,
                is not a saved detector, was edited (a member's digest, an unknown
                parameter or attribute, a value of the wrong type or length), or holds a
                model that ``probae.load_model`` refuses.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"path must be a file path (str or os.PathLike). Received: path={path!r}"
            )
        path = os.fspath(path)
        if not saving.is_remote_path(path) and not os.path.exists(path):
            raise FileNotFoundError(f"path does not exist: no saved detector at path={path!r}")
        prefix = f"path={path!r} is not a loadable probae AnomalyDetector"
        models = {}
        try:
            with (
                tempfile.TemporaryDirectory() as tmp,
                saving.local_copy(path) as local,  # a URL (gs://, ram://): a local copy
                zipfile.ZipFile(local) as zf,
            ):
                names = set(zf.namelist())
                if "params.json" not in names:
                    raise saving.InvalidModelFileError(f"{prefix}: the archive has no params.json.")
                state = json.loads(zf.read("params.json"))
                if (
                    not isinstance(state, dict)
                    or not isinstance(state.get("params"), dict)
                    or (not isinstance(state.get("fitted"), dict))
                ):
                    raise saving.InvalidModelFileError(
                        f"{prefix}: its params.json holds no 'params' and 'fitted' tables."
                    )
                digests = state.get("sha256", {})
                members = sorted(n for n in names if re.fullmatch(r"model_[1-9][0-9]*\.keras", n))
                for name in ("model.keras", "model_param.keras", *members):
                    if name not in names:
                        continue
                    data = zf.read(name)
                    if name in digests and hashlib.sha256(data).hexdigest() != digests[name]:
                        raise saving.InvalidModelFileError(
                            f"{prefix}: {name} was changed after the detector was saved (its "
                            "SHA-256 digest differs from the one recorded)."
                        )
                    file = os.path.join(tmp, name)
                    with open(file, "wb") as f:
                        f.write(data)
                    try:
                        models[name] = saving.load_model(file)
                    except saving.InvalidModelFileError as err:
                        raise saving.InvalidModelFileError(
                            f"{prefix}: its {name} is refused: "
                            + str(err).split(" is not a loadable probae model", 1)[-1].lstrip(": ")
                        ) from None
        except zipfile.BadZipFile as err:
            raise saving.InvalidModelFileError(
                f"{prefix}: it is not a complete zip archive ({err}); the file may be truncated "
                "or of another format."
            ) from None
        except RecursionError:
            raise saving.InvalidModelFileError(
                f"{prefix}: its params.json is nested too deeply to read."
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise saving.InvalidModelFileError(
                f"{prefix}: its params.json is not valid JSON ({err})."
            ) from None
        params = dict(state["params"])
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise saving.InvalidModelFileError(
                f"{prefix}: unknown parameter(s) {unknown} in params.json."
            )
        if isinstance(params.get("hidden_units"), list):  # JSON has no tuples
            params["hidden_units"] = tuple(params["hidden_units"])
        try:
            det = cls(model=models.get("model_param.keras"), **params)
            det._check_params()
        except (TypeError, ValueError) as err:
            raise saving.InvalidModelFileError(
                f"{prefix}: a parameter in params.json is invalid: {err}"
            ) from None
        for key, value in state["fitted"].items():
            setattr(det, key, _fitted_value(prefix, key, value))
        if "model.keras" in models:
            det.model_ = models["model.keras"]
            extra = [f"model_{i}.keras" for i in range(1, det.n_models)]
            found = sorted(n for n in models if n not in ("model.keras", "model_param.keras"))
            if sorted(extra) != found:
                raise saving.InvalidModelFileError(
                    f"{prefix}: n_models={det.n_models} needs the models {['model.keras', *extra]}; "
                    f"the archive holds {['model.keras', *found]}."
                )
            det.models_ = [det.model_, *(models[n] for n in extra)]
        _check_fitted_state(prefix, det)
        return det

    def __getstate__(self):
        if "_entry_state" in self.__dict__:
            self.entry_log_prob_  # noqa: B018  (computed now: a pickle holds no training rows)
        state = dict(self.__dict__)
        for key in ("model_", "model"):
            value = state.get(key)
            if isinstance(value, ProbabilisticAutoencoder):
                state[key] = _ModelBytes(value)
        if "models_" in state:  # models_[0] is model_: stored once
            state["models_"] = [_ModelBytes(m) for m in state["models_"][1:]]
        return state

    def __setstate__(self, state):
        for key in ("model_", "model"):
            if isinstance(state.get(key), _ModelBytes):
                state[key] = state[key].load()
        if "models_" in state:
            state["models_"] = [state["model_"], *(m.load() for m in state["models_"])]
        self.__dict__.update(state)


_ARCHIVE_FORMAT = "probae.AnomalyDetector/1"


def _fitted_value(prefix, key, value):
    """A fitted attribute read from params.json, converted and checked."""

    def bad(expected):
        return saving.InvalidModelFileError(
            f"{prefix}: the fitted attribute {key} must be {expected}. Received: {str(value)[:80]}"
        )

    if key not in _FITTED:
        raise saving.InvalidModelFileError(
            f"{prefix}: unknown fitted attribute {key!r} in params.json."
        )
    if key in ("mean_", "scale_", "train_scores_"):
        try:
            array = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            raise bad("a list of numbers") from None
        if (
            array.ndim != 1
            or not np.all(np.isfinite(array))
            or (key == "scale_" and np.any(array <= 0))
        ):
            raise bad("a list of finite numbers" + (" > 0" if key == "scale_" else ""))
        return array
    if key == "constant_columns_":
        if not isinstance(value, list) or not all(isinstance(v, bool) for v in value):
            raise bad("a list of booleans")
        return np.asarray(value, bool)
    if key == "input_shape_":
        if not isinstance(value, list) or not value or not all(_is_int(v) and v > 0 for v in value):
            raise bad("a list of positive integers")
        return tuple(value)
    if key == "offset_":
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise bad("a finite number")
        return float(value)
    if key == "n_features_in_":
        if not _is_int(value) or value < 1:
            raise bad("a positive integer")
        return int(value)
    if key == "method_":
        if value not in METHODS:
            raise bad(f"one of {METHODS}")
        return value
    if key == "feature_names_in_":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return np.asarray(value, object)
    if key == "entry_log_prob_":
        if value is not None and (
            not isinstance(value, list)
            or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                for v in value
            )
        ):
            raise bad("null or a list of finite numbers")
        return value
    if key == "table_" and value is not None and not isinstance(value, dict):
        raise bad("null or a table description")
    return value


def _check_fitted_state(prefix, det):
    """Cross-checks the fitted attributes of a loaded detector (lengths, the model's shape)."""
    if not hasattr(det, "offset_"):
        return  # saved unfitted
    if not hasattr(det, "model_"):
        raise saving.InvalidModelFileError(
            f"{prefix}: the detector is fitted but the archive has no model.keras."
        )
    n = getattr(det, "n_features_in_", None)
    lengths = {
        k: len(getattr(det, k)) for k in ("mean_", "scale_", "constant_columns_") if hasattr(det, k)
    }
    for key, length in lengths.items():
        if length not in (0, n) or length != max(lengths.values()):
            raise saving.InvalidModelFileError(
                f"{prefix}: the fitted attribute {key} has {length} entries, where the detector "
                f"has n_features_in_={n} (the file was edited)."
            )
    shape = getattr(det, "input_shape_", None)
    for model in det.models_:
        if shape is not None and tuple(model.event_shape or ()) != tuple(shape):
            raise saving.InvalidModelFileError(
                f"{prefix}: input_shape_={shape} does not match the model's input shape "
                f"{model.event_shape} (the file was edited)."
            )
    if getattr(det, "table_", None) is not None:
        try:
            det.preprocessor_  # noqa: B018 (rebuilt from table_ to check it)
        except (TypeError, ValueError, KeyError) as err:
            raise saving.InvalidModelFileError(
                f"{prefix}: its table_ description is invalid: {err}"
            ) from None


class _ModelBytes:
    """A model stored as the bytes of its ``.keras`` file (pickling support)."""

    def __init__(self, model):
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, "m.keras")
            model.save(file)
            with open(file, "rb") as f:
                self.data = f.read()

    def load(self):
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, "m.keras")
            with open(file, "wb") as f:
                f.write(self.data)
            return saving.load_model(file)
