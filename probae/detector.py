"""``AnomalyDetector``: a scikit-learn outlier detector scoring by likelihood.

It follows scikit-learn's outlier-detector conventions (as ``IsolationForest`` does):
``fit(X)``, ``score_samples`` (higher = more normal), ``decision_function``
(``score_samples - offset_``, negative for outliers), ``predict`` (+1 inlier, -1
outlier), ``fit_predict``, ``contamination``, ``get_params`` / ``set_params`` /
``sklearn.base.clone``, and it runs in a ``Pipeline``.
"""

import json
import numbers
import os
import tempfile
import zipfile

import keras
import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probae.anomaly import METHODS, anomaly_scores, default_method
from probae.decoders import GaussianDecoder, MixedDecoder, StudentTDecoder
from probae.model import ProbabilisticAutoencoder
from probae.presets import VAE

__all__ = ["AnomalyDetector"]

TABULAR_LIKELIHOODS = ("gaussian", "student_t")
# Standardised values are clipped to this range before scoring, so that an absurd test
# value gives a very large but finite score (never inf or NaN).
_CLIP = 1e4
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
_TABULAR_BETA = 2.0
# Fraction of the training rows dropped half-way through training (trim_fraction="auto").
_TABULAR_TRIM = 0.1
# With epochs="auto", tiny tables are repeated within an epoch so that the steps take at
# most this many Keras epochs (the per-epoch overhead dominates otherwise).
_MAX_AUTO_EPOCHS = 20
_FITTED = ("mean_", "scale_", "constant_columns_", "offset_", "n_features_in_", "method_", "input_shape_")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class AnomalyDetector(OutlierMixin, BaseEstimator):
    """Unsupervised anomaly detection with a probabilistic autoencoder.

    ``fit`` trains a model on (possibly contaminated) data X without labels;
    ``score_samples`` is its log-likelihood estimate, so low values are anomalies.

    Data: a 2-D array is tabular: every column is standardised with the training mean
    and standard deviation (``standardize=True``), columns constant in the training data
    are dropped (they carry no information; their test values are ignored), and
    standardised values are clipped to +-1e4. A 4-D array ``(n, height, width,
    channels)`` (or 3-D ``(n, height, width)``) is images, used as they are. NaN or inf
    in X raise ``ValueError``; fitting needs at least 2 rows.

    Model: unless ``model`` is given, a VAE with an MLP for tabular data and a CNN for
    images. The training data are contaminated by the anomalies to be found, so the tabular
    defaults keep the model from fitting them: a Student-t decoder (5 degrees of freedom:
    a wild value pulls the fit less than under a Gaussian), a KL weight of 2, about 400
    Adam steps, and a trimmed second half of training (``trim_fraction``). These defaults
    were chosen on the eight ADBench files of BENCHMARKS.md (and one synthetic table).
    Tabular decoders' learned per-feature scales are floored at 0.1 (standardised
    units). Tabular likelihood: "student_t" (heavy tails, the default), "gaussian"
    (learned per-feature scale), or ``column_types`` for mixed data (see
    ``probae.MixedDecoder``; only the continuous columns are standardised). Images: by
    default a Gaussian decoder with a fixed scale of 0.1 times the training images' value
    range (0.1 for pixels in [0, 1]): on one-class MNIST it scores far better than a
    Bernoulli decoder on grey levels (whose per-pixel cost depends on how much ink an
    image has) or a learned per-pixel scale. For small grey-scale images such as MNIST,
    ``architecture="mlp"`` (flattened pixels, about 10,000 training steps) can do better
    still than the CNN: BENCHMARKS.md ("One-class MNIST") has both, measured with
    benchmarks/mnist_one_class.py.

    Args:
        model: None (choose from the data), a ``ProbabilisticAutoencoder`` whose
            configuration is copied (``fit`` trains a fresh copy with new weights; the
            instance passed is never modified), or a callable ``input_shape -> model``.
        method: the score (see ``probae.anomaly_scores``); None: "log_likelihood" for a
            probabilistic encoder, "reconstruction" for a deterministic one.
        contamination: "auto" or the expected fraction of outliers in (0, 0.5]. A
            fraction sets ``offset_`` to that quantile of the training scores; "auto"
            sets it to median - 3 * 1.4826 * MAD of the training scores (a robust
            three-sigma rule).
        likelihood: "auto", "gaussian", "student_t" or "bernoulli" (images). For tables,
            "auto" is "student_t"; for images, the fixed-scale Gaussian above, and
            "gaussian" a learned per-pixel scale.
        column_types: None, or one type per column for mixed tabular data.
        latent_dim: code size, or "auto" (tabular: min(8, max(2, d // 4)); images: 16).
        hidden_units: widths of the MLP, or "auto" (tabular: (64, 32); images: (256,
            128)).
        architecture: "auto" (tabular: an MLP; images: a CNN), "mlp" or "conv" (images
            only).
        epochs: training epochs, or "auto". Tabular data: about 400 Adam steps (short
            training keeps the model from memorising the anomalies that contaminate the
            training data; at least two passes over the data; the rows of a small table
            are repeated within an epoch, so that it takes at most 20 epochs). Images:
            about 1,000 steps with the CNN and 10,000 with an MLP, between 10 and 100
            epochs.
        beta: the KL weight of the default VAE (``probae.BetaVAE``), or "auto" (2 for
            tabular data, 1 for images). Not used when ``model`` is given.
        trim_fraction: tabular data: after the first half of the training epochs, this
            fraction of the training rows, those the half-trained model scores as most
            anomalous, is dropped for the second half (a trimmed likelihood: the
            anomalies that contaminate the training data pull the model less), also for
            a ``model`` given; "auto": 0.1; 0 turns it off. Images are never trimmed.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        num_samples: k for the score (None: the method's default).
        standardize: standardise tabular columns.
        random_state: int seed of the model's initialisation, training and scores
            (``fit`` calls ``keras.utils.set_random_seed``), or None.
        verbose: Keras' verbosity in ``fit``.

    Attributes:
        model_: the trained ``ProbabilisticAutoencoder``.
        offset_: threshold on ``score_samples``.
        method_: the score used.
        mean_, scale_: standardisation of the columns (zero and one where not applied).
        constant_columns_: boolean mask of the columns dropped as constant.
        n_features_in_: ``X.shape[1]`` as scikit-learn defines it (columns; an image's
            height).
    """

    def __init__(
        self,
        model=None,
        method=None,
        contamination="auto",
        likelihood="auto",
        column_types=None,
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
        random_state=0,
        verbose=0,
    ):
        self.model = model
        self.method = method
        self.contamination = contamination
        self.likelihood = likelihood
        self.column_types = column_types
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
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if self.method is not None and self.method not in METHODS[:-1]:
            raise ValueError(
                f"method must be None or one of {METHODS[:-1]}. Received: method={self.method!r}"
            )
        c = self.contamination
        if not (c == "auto" if isinstance(c, str) else isinstance(c, numbers.Real) and 0 < c <= 0.5):
            raise ValueError(
                f"contamination must be 'auto' or a number in (0, 0.5]. Received: contamination={c!r}"
            )
        if self.likelihood not in ("auto", "bernoulli") + TABULAR_LIKELIHOODS:
            raise ValueError(
                "likelihood must be 'auto', 'gaussian', 'student_t' or 'bernoulli'. "
                f"Received: likelihood={self.likelihood!r}"
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
            isinstance(b, numbers.Real) and not isinstance(b, (bool, str)) and np.isfinite(b) and b >= 0
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
        if not (isinstance(lr, numbers.Real) and not isinstance(lr, bool) and np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate must be a number > 0. Received: learning_rate={lr!r}")
        if self.num_samples is not None and not (_is_int(self.num_samples) and self.num_samples > 0):
            raise ValueError(
                f"num_samples must be None or a positive integer. Received: num_samples={self.num_samples!r}"
            )
        if self.random_state is not None and not (_is_int(self.random_state) and self.random_state >= 0):
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

    def _validate(self, X, reset):
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float64, ensure_min_samples=1)
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim not in (2, 4):
            raise ValueError(
                "X must be a 2-D table (n_samples, n_features) or images (n, height, width"
                f"[, channels]). Received: X with shape {X.shape}"
            )
        return X

    def _continuous_mask(self, d):
        if self.column_types is None:
            return np.ones(d, bool)
        types = list(self.column_types)
        if len(types) != d:
            raise ValueError(
                f"column_types must have one entry per column ({d}). "
                f"Received: {len(types)} entries"
            )
        return np.array([t in TABULAR_LIKELIHOODS for t in types])

    def _transform(self, X):
        """Validated X -> the model's float32 input."""
        if X.ndim == 4:
            return X.astype(np.float32)
        Z = (X - self.mean_) / self.scale_
        Z = np.clip(Z, -_CLIP, _CLIP)
        return Z[:, ~self.constant_columns_].astype(np.float32)

    # ------------------------------------------------------------------ model
    def _tabular_decoder(self, d_kept, kept):
        if self.column_types is not None:
            types = [t for t, k in zip(self.column_types, kept) if k]
            return MixedDecoder(types, event_shape=(d_kept,), min_scale=_MIN_SCALE)
        likelihood = _TABULAR_LIKELIHOOD if self.likelihood == "auto" else self.likelihood
        if likelihood == "bernoulli":
            raise ValueError(
                "likelihood='bernoulli' is for images with values in [0, 1]; use "
                "column_types=['bernoulli', ...] for binary columns of a table."
            )
        cls = StudentTDecoder if likelihood == "student_t" else GaussianDecoder
        return cls(event_shape=(d_kept,), scale="per_feature", min_scale=_MIN_SCALE)

    def _make_model(self, input_shape, x):
        if isinstance(self.model, ProbabilisticAutoencoder):
            config = self.model.get_config()
            return type(self.model).from_config(config)
        if callable(self.model):
            model = self.model(input_shape)
            if not isinstance(model, ProbabilisticAutoencoder):
                raise TypeError(
                    "model(input_shape) must return a probae.ProbabilisticAutoencoder. "
                    f"Received: {type(model).__name__}"
                )
            return model
        seed = self.random_state
        if len(input_shape) == 3:
            latent = 16 if self.latent_dim == "auto" else self.latent_dim
            architecture = "conv" if self.architecture == "auto" else self.architecture
            kwargs = {} if self.hidden_units == "auto" else {"hidden_units": tuple(self.hidden_units)}
            net = {"event_shape": input_shape, "architecture": architecture}
            if kwargs:
                net["hidden_units"] = tuple(reversed(kwargs["hidden_units"]))
            likelihood = self.likelihood
            if likelihood == "auto":
                span = float(x.max() - x.min())
                likelihood = GaussianDecoder(scale=_IMAGE_SCALE * (span if span > 0 else 1.0), **net)
            elif likelihood == "student_t":
                likelihood = StudentTDecoder(**net)
            if self.beta != "auto":
                kwargs["beta"] = float(self.beta)
            return VAE(input_shape, latent, likelihood=likelihood, architecture=architecture,
                       seed=seed, **kwargs)
        d = input_shape[0]
        latent = min(8, max(2, d // 4)) if self.latent_dim == "auto" else self.latent_dim
        hidden = (64, 32) if self.hidden_units == "auto" else tuple(self.hidden_units)
        decoder = self._tabular_decoder(d, ~self.constant_columns_)
        beta = _TABULAR_BETA if self.beta == "auto" else float(self.beta)
        return VAE(input_shape, latent, likelihood=decoder, hidden_units=hidden,
                   architecture=self.architecture, seed=seed, beta=beta)

    def _image_epochs(self, n):
        """Epochs for n images: ``epochs="auto"`` means about ``_AUTO_STEPS`` Adam steps of
        the image network (tables use ``_tabular_schedule``), within 10..100 epochs."""
        if self.epochs != "auto":
            return self.epochs
        steps_per_epoch = max(1, -(-n // self.batch_size))
        steps = _AUTO_STEPS["mlp_image" if self.architecture == "mlp" else "conv_image"]
        return int(np.clip(round(steps / steps_per_epoch), 10, 100))

    def _tabular_schedule(self, n, batch):
        """(repeats, epochs) for a table of n rows: ``epochs="auto"`` means about
        ``_AUTO_STEPS["tabular"]`` Adam steps (at least two passes over the data, one before
        and one after trimming), with the rows of a small table repeated within an epoch so
        that it takes at most ``_MAX_AUTO_EPOCHS`` epochs."""
        if self.epochs != "auto":
            return 1, self.epochs
        steps_per_epoch = -(-n // batch)
        steps = max(_AUTO_STEPS["tabular"], 2 * steps_per_epoch)
        repeats = max(1, -(-steps // (_MAX_AUTO_EPOCHS * steps_per_epoch)))
        steps_per_epoch = -(-(repeats * n) // batch)
        return repeats, max(1, round(steps / steps_per_epoch))

    def _trim(self):
        return _TABULAR_TRIM if self.trim_fraction == "auto" else float(self.trim_fraction)

    def _fit_table(self, model, Z, batch):
        """Trains on a table: the first half of the epochs on all rows, then (with
        ``trim_fraction > 0`` and at least 2 epochs) the second half without the training
        rows that the half-trained model scores as most anomalous."""
        repeats, epochs = self._tabular_schedule(len(Z), batch)
        n_drop = int(self._trim() * len(Z))
        first = epochs // 2 if n_drop > 0 and len(Z) - n_drop >= 2 and epochs >= 2 else epochs
        kwargs = dict(batch_size=batch, shuffle=True, verbose=self.verbose)
        if first > 0:
            model.fit(np.tile(Z, (repeats, 1)), epochs=first, **kwargs)
        if first < epochs:
            method = default_method(model) if self.method is None else self.method
            scores = -self._score(Z, model, method)  # anomaly scores, NaN as the most anomalous
            kept = Z[np.sort(np.argsort(scores, kind="stable")[: len(Z) - n_drop])]
            batch = min(batch, len(kept))
            model.fit(np.tile(kept, (repeats, 1)), epochs=epochs - first, **{**kwargs, "batch_size": batch})

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None):
        """Trains the model on X (labels are ignored) and sets ``offset_``.

        Args:
            X: ``(n_samples, n_features)`` table or ``(n, height, width[, channels])``
                images; n_samples >= 2, finite values.
            y: ignored.

        Returns:
            self.

        Raises:
            ValueError: invalid parameters, NaN or inf in X, fewer than 2 samples, only
                constant columns.
        """
        self._check_params()
        X = self._validate(X, reset=True)
        if X.shape[0] < 2:
            raise ValueError(
                f"AnomalyDetector needs at least 2 samples to fit. Received: n_samples = "
                f"{X.shape[0]} (1 sample)"
            )
        if X.ndim == 2:
            d = X.shape[1]
            continuous = self._continuous_mask(d)
            std = X.std(axis=0)
            self.constant_columns_ = np.asarray(std <= 1e-12 * np.maximum(1.0, np.abs(X).max(axis=0)))
            if self.constant_columns_.all():
                raise ValueError(
                    "X has no non-constant column: every feature takes a single value in the "
                    "training data, so there is nothing to model."
                )
            use = continuous & bool(self.standardize)
            self.mean_ = np.where(use, X.mean(axis=0), 0.0)
            self.scale_ = np.where(use & ~self.constant_columns_, std, 1.0)
            self.scale_ = np.where(self.scale_ > 0, self.scale_, 1.0)
        else:
            self.constant_columns_ = np.zeros(0, bool)
            self.mean_ = np.zeros(0)
            self.scale_ = np.ones(0)
        Z = self._transform(X)
        self.input_shape_ = tuple(Z.shape[1:])
        if self.random_state is not None:
            keras.utils.set_random_seed(self.random_state)
        model = self._make_model(self.input_shape_, Z)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        batch = min(self.batch_size, len(Z))
        if X.ndim == 2:
            self._fit_table(model, Z, batch)
        else:
            model.fit(Z, epochs=self._image_epochs(len(Z)), batch_size=batch, shuffle=True,
                      verbose=self.verbose)
        self.model_ = model
        self.method_ = default_method(model) if self.method is None else self.method
        scores = self._score(Z)
        if self.contamination == "auto":
            median = np.median(scores)
            mad = np.median(np.abs(scores - median))
            self.offset_ = float(median - 3 * 1.4826 * mad)
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _score(self, Z, model=None, method=None):
        """Minus the anomaly scores of Z (NaN as -inf) under ``model`` and ``method``
        (default: the fitted ``model_`` and ``method_``)."""
        model = self.model_ if model is None else model
        method = self.method_ if method is None else method
        seed = 0 if self.random_state is None else self.random_state
        s = -anomaly_scores(model, Z, method=method, seed=seed, num_samples=self.num_samples)
        return np.nan_to_num(s.astype(np.float64), nan=-np.inf)

    def score_samples(self, X):
        """Log-likelihood-type score per example: higher means more normal.

        Minus ``probae.anomaly_scores(model_, X, method_)`` on the standardised data.
        """
        check_is_fitted(self, "model_")
        return self._score(self._transform(self._validate(X, reset=False)))

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers, -1 for outliers (``decision_function(X) < 0``)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def score_features(self, X):
        """Per-feature anomaly contributions ``[n, n_kept_features]`` (higher = more anomalous).

        Minus log p of each (standardised) feature given the code, from
        ``anomaly_scores(..., method="reconstruction", per_feature=True)``; columns dropped
        as constant get 0.
        """
        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        per = anomaly_scores(self.model_, self._transform(X), method="reconstruction", per_feature=True)
        if X.ndim == 2:
            full = np.zeros(X.shape, np.float32)
            full[:, ~self.constant_columns_] = per
            return full
        return per

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
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

    def save(self, path):
        """Saves the detector to one zip file, without pickle.

        The file holds ``params.json`` (the constructor parameters and fitted scalars and
        arrays, as JSON) and the model in Keras' ``.keras`` format (``model.keras``, and
        ``model_param.keras`` for a model passed as the ``model`` parameter).

        Args:
            path: file path (for example "detector.zip").
        """
        params, model_param, fitted = self._state()
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path, "w") as zf:
            zf.writestr("params.json", json.dumps({"params": params, "fitted": fitted}))
            for name, model in (("model.keras", getattr(self, "model_", None)), ("model_param.keras", model_param)):
                if model is not None:
                    file = os.path.join(tmp, name)
                    model.save(file)
                    zf.write(file, name)

    @classmethod
    def load(cls, path):
        """Loads a detector written by ``save``; it scores exactly as the saved one."""
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as zf:
            state = json.loads(zf.read("params.json"))
            names = zf.namelist()
            models = {}
            for name in ("model.keras", "model_param.keras"):
                if name in names:
                    zf.extract(name, tmp)
                    models[name] = keras.models.load_model(os.path.join(tmp, name))
        params = state["params"]
        if isinstance(params.get("hidden_units"), list):  # JSON has no tuples
            params["hidden_units"] = tuple(params["hidden_units"])
        det = cls(model=models.get("model_param.keras"), **params)
        for key, value in state["fitted"].items():
            if key in ("mean_", "scale_"):
                value = np.asarray(value, np.float64)
            elif key == "constant_columns_":
                value = np.asarray(value, bool)
            elif key == "input_shape_":
                value = tuple(value)
            setattr(det, key, value)
        if "model.keras" in models:
            det.model_ = models["model.keras"]
        return det

    def __getstate__(self):
        state = dict(self.__dict__)
        for key in ("model_", "model"):
            value = state.get(key)
            if isinstance(value, ProbabilisticAutoencoder):
                state[key] = _ModelBytes(value)
        return state

    def __setstate__(self, state):
        for key in ("model_", "model"):
            if isinstance(state.get(key), _ModelBytes):
                state[key] = state[key].load()
        self.__dict__.update(state)


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
            return keras.models.load_model(file)

