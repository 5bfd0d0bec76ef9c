"""Tables: the one preprocessing of tabular data (detector, presets, command line).

``TablePreprocessor`` learns from a training table (a pandas DataFrame, a NumPy array,
numeric, string, object or structured, or a list of rows), column by column:

- **the column's type**, from its dtype and values: booleans and numeric columns with
  exactly two values are "bernoulli"; string, object and pandas categorical columns are
  "categorical" over the categories seen in training; other numeric columns are
  continuous ("student_t" or "gaussian", the ``continuous`` argument). ``column_types``
  overrides the choice per column (by name or position);
- **its standardisation** (continuous columns): the training mean and standard deviation,
  computed on the column divided by its largest absolute value, so that a column of values
  near 1e300 neither overflows nor loses its spread; standardised values are clipped to
  +-1e4;
- **its vocabulary** (bernoulli and categorical columns): the values seen in training,
  sorted, coded 0..K-1, with their training counts;
- columns with a single observed value (or none) are dropped: they carry no information,
  and their values at scoring time are ignored.

Missing entries (NaN, None, pandas NA, an empty string in a NumPy string array) stay NaN
in the output: models from ``tabular_model`` and the ``AnomalyDetector`` marginalise them
(``probae.missing``). Infinite values raise a ``ValueError`` naming the column.

**Unseen categories** (a value of a bernoulli or categorical column that training never
saw): with ``handle_unknown="rarest"`` (the default) it is coded as the column's rarest
training category (the smallest training count; the first in vocabulary order among
ties), so it is scored at least as unusual as anything seen; ``handle_unknown="error"``
raises a ``ValueError`` naming the column and the values instead.

The fitted state is plain JSON (``get_config`` / ``from_config``), stored with a fitted
detector and next to a model trained by ``probae train`` on a CSV, so that every entry
point applies the same transformation.
"""

import numbers

import numpy as np

from probae.missing import (
    MaskedGaussianDecoder,
    MaskedMixedDecoder,
    MaskedStudentTDecoder,
    marginalize_missing,
)

__all__ = ["TablePreprocessor", "tabular_model", "is_dataframe", "CONTINUOUS", "CLIP"]

CONTINUOUS = ("student_t", "gaussian")
OVERRIDES = ("auto", "continuous", "bernoulli", "categorical") + CONTINUOUS
HANDLE_UNKNOWN = ("rarest", "error")
# Standardised values are clipped to this range, so that an absurd value gives a very
# large but finite score (never inf or NaN).
CLIP = 1e4
# A continuous column whose spread is below this fraction of its largest absolute value
# is constant.
_RELATIVE_TOLERANCE = 1e-12


def is_dataframe(x):
    """Whether x is a pandas DataFrame (without importing pandas)."""
    return (
        type(x).__module__.split(".")[0] == "pandas"
        and hasattr(x, "columns")
        and hasattr(x, "iloc")
    )


def _is_missing(value):
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def _as_float(value):
    """float(value), or NaN for a value that is not a number (so it matches nothing)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _python(value):
    """A JSON-friendly Python scalar."""
    return value.item() if isinstance(value, np.generic) else value


class _Column:
    """One raw column: ``values`` (float64 with NaN, or object), ``missing``, ``hint``."""

    def __init__(self, name, values, missing, hint):
        self.name, self.values, self.missing, self.hint = name, values, missing, hint


def _object_column(name, values):
    """An object column as numbers when every observed value is a number, else strings."""
    values = np.asarray(values, dtype=object)
    missing = np.array([_is_missing(v) for v in values], bool)
    observed = values[~missing]
    for v in observed:
        if not isinstance(v, (str, bool, np.bool_, numbers.Number)):
            raise TypeError(
                f"column {name!r} holds a value of type {type(v).__name__}: every cell must "
                "be a number, a string, a boolean or missing (the argument must be a string "
                "or a real number)"
            )
    if len(observed) and all(isinstance(v, (bool, np.bool_)) for v in observed):
        return _Column(name, values, missing, "bool")
    if all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in observed):
        numeric = np.full(len(values), np.nan)
        numeric[~missing] = np.asarray(observed, dtype=np.float64)
        return _Column(name, numeric, missing, "numeric")
    return _Column(name, values, missing, "categorical")


def _string_column(name, values):
    """A NumPy string column: numbers when every non-empty cell parses as one."""
    values = np.asarray(values).astype(str)
    missing = np.isin(np.char.strip(values), ["", "nan", "NaN", "NA", "None"])
    try:
        numeric = np.where(missing, "nan", values).astype(np.float64)
    except ValueError:
        out = values.astype(object)
        out[missing] = None
        return _Column(name, out, missing, "categorical")
    return _Column(name, numeric, np.isnan(numeric), "numeric")


def _numeric_column(name, values):
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return _Column(name, values.astype(object), np.zeros(len(values), bool), "bool")
    if values.dtype.kind == "c":
        raise ValueError(f"column {name!r} holds complex numbers: Complex data not supported")
    values = values.astype(np.float64)
    return _Column(name, values, np.isnan(values), "numeric")


def _dataframe_columns(df):
    import pandas as pd

    columns = []
    for position, key in enumerate(df.columns):
        name = str(key)
        series = df.iloc[:, position]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values = series.astype(object).to_numpy().copy()
            missing = pd.isna(series).to_numpy()
            values[missing] = None
            columns.append(_Column(name, values, missing, "categorical"))
        elif pd.api.types.is_bool_dtype(dtype):
            missing = pd.isna(series).to_numpy()
            values = series.astype(object).to_numpy().copy()
            values[missing] = None
            columns.append(_Column(name, values, missing, "bool"))
        elif pd.api.types.is_numeric_dtype(dtype):
            if pd.api.types.is_complex_dtype(dtype):
                raise ValueError(
                    f"column {name!r} holds complex numbers: Complex data not supported"
                )
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            columns.append(_Column(name, values, np.isnan(values), "numeric"))
        elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(
            dtype
        ):
            raise TypeError(
                f"column {name!r} holds dates or durations ({dtype}): convert it to numbers "
                "(for example days since a reference date) or to strings first"
            )
        else:
            columns.append(_object_column(name, series.to_numpy(dtype=object)))
    return columns


def read_columns(X, name="X"):
    """The columns of a table: ``(names or None, [_Column])``.

    Raises:
        TypeError: cells that are neither numbers, strings, booleans nor missing.
        ValueError: not a 2-D table.
    """
    if is_dataframe(X):
        return [str(c) for c in X.columns], _dataframe_columns(X)
    if isinstance(X, np.ndarray) and X.dtype.names is not None:
        if X.ndim != 1:
            raise ValueError(
                f"{name} as a structured array must be 1-D (one record per row). Received shape {X.shape}"
            )
        names = list(X.dtype.names)
        return names, [_column_from_array(n, X[n]) for n in names]
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except ValueError:  # ragged rows, or mixed types numpy refuses
            X = np.asarray(X, dtype=object)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: {name} must be a table of shape "
            f"(n_samples, n_features). Received shape {X.shape}"
        )
    names = [f"x{j}" for j in range(X.shape[1])]
    return None, [_column_from_array(names[j], X[:, j]) for j in range(X.shape[1])]


def _column_from_array(name, values):
    kind = np.asarray(values).dtype.kind
    if kind in "US":
        return _string_column(name, values)
    if kind == "O":
        return _object_column(name, values)
    if kind in "biufc":
        return _numeric_column(name, values)
    raise TypeError(f"column {name!r} has the unsupported dtype {np.asarray(values).dtype}")


def _weighted_moments(values, weights):
    """Mean and standard deviation of finite values, scaled by their largest magnitude."""
    top = float(np.max(np.abs(values)))
    if top == 0.0:
        return 0.0, 0.0, 0.0
    scaled = values / top
    total = float(np.sum(weights))
    mean = float(np.sum(weights * scaled) / total)
    std = float(np.sqrt(np.sum(weights * (scaled - mean) ** 2) / total))
    return top, mean, std


def _check_override(value, where):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 2:
            raise ValueError(
                f"{where} must be an int K >= 2 (categorical codes 0..K-1). Received: {value!r}"
            )
        return int(value)
    if value not in OVERRIDES:
        raise ValueError(
            f"{where} must be one of {OVERRIDES} or an int K >= 2 (categorical codes 0..K-1). "
            f"Received: {value!r}"
        )
    return value


class TablePreprocessor:
    """Column typing, standardisation and category vocabularies of a table (module doc).

    Args:
        column_types: None (every type from the data), a list with one entry per column,
            or a dict mapping column names (or positions) to a type. A type is "auto",
            "gaussian", "student_t", "continuous" (the ``continuous`` likelihood),
            "bernoulli" (at most two values), "categorical" (the values seen in training)
            or an int K >= 2 (integer codes 0..K-1).
        continuous: the likelihood of continuous columns, "student_t" or "gaussian".
        standardize: standardise the continuous columns (otherwise they are used as they
            are, still clipped to +-1e4).
        handle_unknown: "rarest" or "error" (see the module doc).

    Attributes (after ``fit``):
        columns_: one dict per input column (name, kind, likelihood, center, scale,
            categories, counts, dropped).
        feature_names_in_: the column names (positional names "x0", "x1", ... for arrays
            without names).
        n_features_in_: the number of input columns.
    """

    def __init__(
        self, column_types=None, continuous="student_t", standardize=True, handle_unknown="rarest"
    ):
        if continuous not in CONTINUOUS:
            raise ValueError(
                f"continuous must be one of {CONTINUOUS}. Received: continuous={continuous!r}"
            )
        if handle_unknown not in HANDLE_UNKNOWN:
            raise ValueError(
                f"handle_unknown must be one of {HANDLE_UNKNOWN}. Received: handle_unknown={handle_unknown!r}"
            )
        if column_types is not None and (
            isinstance(column_types, str) or not hasattr(column_types, "__len__")
        ):
            raise ValueError(
                "column_types must be None, a list with one type per column or a dict "
                f"{{column name: type}}. Received: column_types={column_types!r}"
            )
        self.column_types = column_types
        self.continuous = continuous
        self.standardize = bool(standardize)
        self.handle_unknown = handle_unknown

    # ------------------------------------------------------------------ fitting
    def _overrides(self, names):
        if self.column_types is None:
            return ["auto"] * len(names)
        if isinstance(self.column_types, dict):
            out = ["auto"] * len(names)
            for key, value in self.column_types.items():
                if (
                    isinstance(key, numbers.Integral)
                    and not isinstance(key, bool)
                    and 0 <= key < len(names)
                ):
                    j = int(key)
                elif str(key) in names:
                    j = names.index(str(key))
                else:
                    raise ValueError(
                        f"column_types names a column {key!r} that the table does not have. "
                        f"Its columns: {names}"
                    )
                out[j] = _check_override(value, f"column_types[{key!r}]")
            return out
        types = list(self.column_types)
        if len(types) != len(names):
            raise ValueError(
                f"column_types must have one entry per column ({len(names)}). Received: "
                f"{len(types)} entries"
            )
        return [
            _check_override(t, f"column_types[{j}] (column {names[j]!r})")
            for j, t in enumerate(types)
        ]

    def fit(self, X, sample_weight=None):
        """Learns every column's type, standardisation and vocabulary from X.

        Args:
            X: the training table (n_samples, n_features).
            sample_weight: None or non-negative weights, one per row (weighted mean,
                standard deviation and category counts).

        Returns:
            self.

        Raises:
            ValueError, TypeError: an invalid table or override (naming the column).
        """
        names, columns = read_columns(X)
        n = len(columns[0].values) if columns else 0
        self.feature_names_in_ = names if names is not None else [c.name for c in columns]
        self.has_names_ = names is not None
        self.n_features_in_ = len(columns)
        weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
        self.columns_ = [
            self._fit_column(c, t, weights)
            for c, t in zip(columns, self._overrides(self.feature_names_in_))
        ]
        return self

    def _fit_column(self, column, override, weights):
        name = column.name
        observed = ~column.missing
        values = column.values[observed]
        w = weights[observed]
        if column.hint == "numeric" and len(values) and not np.all(np.isfinite(values)):
            raise ValueError(
                f"column {name!r} holds infinite values: only finite numbers or missing "
                "entries (NaN) are accepted"
            )
        spec = {
            "name": name,
            "kind": None,
            "likelihood": None,
            "center": 0.0,
            "scale": 1.0,
            "categories": None,
            "counts": None,
            "numeric": column.hint == "numeric",
            "dropped": False,
        }
        kind = override
        if override in ("continuous",) + CONTINUOUS:
            if column.hint != "numeric":
                raise ValueError(
                    f"column {name!r} was declared {override!r} but holds "
                    f"{'booleans' if column.hint == 'bool' else 'strings or categories'}"
                )
            kind = "continuous"
        elif override == "auto":
            distinct = len(np.unique(values.astype(str) if column.hint != "numeric" else values))
            if column.hint == "categorical":
                kind = "categorical"
            elif column.hint == "bool" or distinct == 2:
                kind = "bernoulli"
            else:
                kind = "continuous"
        elif override == "bernoulli" and len(np.unique(values.astype(str))) > 2:
            raise ValueError(
                f"column {name!r} was declared 'bernoulli' but holds "
                f"{len(np.unique(values.astype(str)))} distinct values (at most 2)"
            )
        spec["kind"] = "categorical" if isinstance(kind, int) else kind
        if spec["kind"] == "continuous":
            spec["likelihood"] = self.continuous if override in ("auto", "continuous") else override
            top, mean, std = _weighted_moments(values, w) if len(values) else (0.0, 0.0, 0.0)
            spec["dropped"] = bool(std <= _RELATIVE_TOLERANCE or not np.any(w > 0))
            if self.standardize and not spec["dropped"]:
                spec["center"], spec["scale"] = top * mean, top * std
            return spec
        if isinstance(kind, int):
            categories = [float(k) for k in range(kind)]
        elif column.hint == "numeric":
            categories = [float(v) for v in np.unique(values)]
        elif column.hint == "bool":
            categories = [False, True] if kind == "bernoulli" else sorted({bool(v) for v in values})
        else:
            categories = sorted({str(v) for v in values})
        codes = self._codes(spec | {"categories": categories}, values, raise_unknown=False)
        counts = np.bincount(
            codes[codes >= 0].astype(int), weights=w[codes >= 0], minlength=len(categories)
        )
        spec["dropped"] = bool(np.count_nonzero(counts) < 2)
        spec["categories"] = [_python(c) for c in categories]
        spec["counts"] = [float(c) for c in counts]
        return spec

    # ------------------------------------------------------------------ transforming
    def _codes(self, spec, values, raise_unknown=True):
        """Codes 0..K-1 of observed values; -1 for unseen ones."""
        categories = spec["categories"]
        if spec["numeric"]:
            lookup = {float(c): k for k, c in enumerate(categories)}
            keys = [_as_float(v) for v in values]
        elif categories and all(isinstance(c, bool) for c in categories):
            lookup = {c: k for k, c in enumerate(categories)}
            keys = [
                bool(v) if isinstance(v, (bool, np.bool_)) or _as_float(v) in (0.0, 1.0) else None
                for v in values
            ]
        else:
            lookup = {str(c): k for k, c in enumerate(categories)}
            keys = [str(v) for v in values]
        return np.array([lookup.get(k, -1) for k in keys], np.float64)

    def transform(self, X):
        """The model's input: float32 ``[n, n_kept_columns]``, NaN at missing entries.

        Continuous columns standardised and clipped to +-1e4; bernoulli and categorical
        columns as codes 0..K-1 (unseen values: see ``handle_unknown``); dropped columns
        left out.

        Raises:
            ValueError: a different number of columns (or names) than in training,
                infinite values, unseen categories with ``handle_unknown="error"``.
        """
        self._check_fitted()
        names, columns = read_columns(X)
        if len(columns) != self.n_features_in_:
            raise ValueError(
                f"X has {len(columns)} features, but the table was fitted with "
                f"{self.n_features_in_} features: {self.feature_names_in_}"
            )
        if names is not None and self.has_names_ and names != self.feature_names_in_:
            raise ValueError(
                f"X's columns {names} differ from the columns seen in training "
                f"{self.feature_names_in_}"
            )
        out = []
        for spec, column in zip(self.columns_, columns):
            if spec["dropped"]:
                continue
            out.append(self._transform_column(spec, column))
        n = len(columns[0].values) if columns else 0
        return np.stack(out, axis=1).astype(np.float32) if out else np.zeros((n, 0), np.float32)

    def _transform_column(self, spec, column):
        name = spec["name"]
        result = np.full(len(column.values), np.nan)
        observed = ~column.missing
        values = column.values[observed]
        if spec["kind"] == "continuous":
            if column.hint != "numeric":
                raise ValueError(
                    f"column {name!r} must hold numbers (it was continuous in training)"
                )
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"column {name!r} holds infinite values: only finite numbers or missing "
                    "entries (NaN) are accepted"
                )
            with np.errstate(over="ignore", invalid="ignore"):
                z = values / spec["scale"] - spec["center"] / spec["scale"]
            result[observed] = np.clip(z, -CLIP, CLIP)
            return result
        codes = self._codes(spec, values)
        unseen = codes < 0
        if np.any(unseen):
            if self.handle_unknown == "error":
                shown = sorted({str(v) for v in np.asarray(values, dtype=object)[unseen]})[:5]
                raise ValueError(
                    f"column {name!r} holds categories not seen in training: {shown}. Known: "
                    f"{spec['categories']} (handle_unknown='rarest' scores them as the rarest one)"
                )
            codes[unseen] = self.rarest_code(spec)
        result[observed] = codes
        return result

    @staticmethod
    def rarest_code(spec):
        """The code an unseen category gets: the smallest training count, first among ties."""
        return int(np.argmin(spec["counts"]))

    # ------------------------------------------------------------------ the model's side
    def _check_fitted(self):
        if not hasattr(self, "columns_"):
            raise ValueError("This TablePreprocessor is not fitted yet: call fit(X) first.")

    @property
    def kept_(self):
        """Boolean mask of the input columns the model sees (not dropped)."""
        self._check_fitted()
        return np.array([not s["dropped"] for s in self.columns_], bool)

    @property
    def kept_names_(self):
        """Names of the columns the model sees, in its order."""
        return [s["name"] for s in self.columns_ if not s["dropped"]]

    @property
    def decoder_types_(self):
        """The kept columns' types as ``probae.MixedDecoder`` reads them."""
        self._check_fitted()
        types = []
        for s in self.columns_:
            if s["dropped"]:
                continue
            if s["kind"] == "continuous":
                types.append(s["likelihood"])
            elif s["kind"] == "bernoulli" and len(s["categories"]) == 2:
                types.append("bernoulli")
            else:
                types.append(len(s["categories"]))
        return types

    def decoder(self, min_scale=1e-3, df=5.0, **kwargs):
        """A decoder for the kept columns that marginalises missing entries.

        All continuous with one likelihood: ``MaskedStudentTDecoder`` or
        ``MaskedGaussianDecoder`` (a learned scale per column); otherwise
        ``MaskedMixedDecoder`` with one likelihood per column.

        Args:
            min_scale: floor on the continuous columns' scales (standardised units).
            df: degrees of freedom of Student-t columns.
            **kwargs: the decoder's network options (``hidden_units``, ...).
        """
        types = self.decoder_types_
        if not types:
            raise ValueError(
                "the table has no non-constant column: every feature takes a single value in "
                "the training data, so there is nothing to model."
            )
        d = len(types)
        if len(set(types)) == 1 and types[0] == "student_t":
            return MaskedStudentTDecoder(
                event_shape=(d,), df=df, scale="per_feature", min_scale=min_scale, **kwargs
            )
        if len(set(types)) == 1 and types[0] == "gaussian":
            return MaskedGaussianDecoder(
                event_shape=(d,), scale="per_feature", min_scale=min_scale, **kwargs
            )
        return MaskedMixedDecoder(types, df=df, min_scale=min_scale, **kwargs)

    def means_and_scales(self):
        """``(mean, scale, dropped)`` arrays over the input columns: the continuous
        columns' standardisation (0 and 1 elsewhere) and the dropped-column mask."""
        self._check_fitted()
        mean = np.array([s["center"] for s in self.columns_], np.float64)
        scale = np.array([s["scale"] for s in self.columns_], np.float64)
        return mean, scale, ~self.kept_

    # ------------------------------------------------------------------ config
    def get_config(self):
        """The constructor arguments and the fitted state, as plain JSON types."""
        config = {
            "column_types": self.column_types
            if not isinstance(self.column_types, tuple)
            else list(self.column_types),
            "continuous": self.continuous,
            "standardize": self.standardize,
            "handle_unknown": self.handle_unknown,
        }
        if isinstance(config["column_types"], dict):
            config["column_types"] = {str(k): v for k, v in config["column_types"].items()}
        if hasattr(self, "columns_"):
            config["fitted"] = {
                "columns": self.columns_,
                "feature_names_in": list(self.feature_names_in_),
                "has_names": self.has_names_,
            }
        return config

    @classmethod
    def from_config(cls, config):
        """A preprocessor from ``get_config``'s output (fitted if the config was)."""
        config = dict(config)
        fitted = config.pop("fitted", None)
        column_types = config.get("column_types")
        if isinstance(column_types, list):
            config["column_types"] = list(column_types)
        obj = cls(**config)
        if fitted is not None:
            obj.columns_ = [dict(c) for c in fitted["columns"]]
            obj.feature_names_in_ = list(fitted["feature_names_in"])
            obj.has_names_ = bool(fitted["has_names"])
            obj.n_features_in_ = len(obj.columns_)
        return obj

    def __repr__(self):
        state = "fitted" if hasattr(self, "columns_") else "not fitted"
        return f"TablePreprocessor(continuous={self.continuous!r}, handle_unknown={self.handle_unknown!r}, {state})"


def tabular_model(table, preset="vae", latent_dim=None, min_scale=1e-3, **preset_kwargs):
    """A preset for a table: one likelihood per column, missing entries marginalised.

    The documented tabular entry point of ``probae.presets``: the preset named by
    ``preset`` is built with the decoder of a fitted ``TablePreprocessor``
    (``table.decoder()``: Student-t or Gaussian columns, Bernoulli and categorical
    columns) and then made to marginalise missing entries (``probae.marginalize_missing``).
    Train and score it on ``table.transform(X)``::

        table = probae.TablePreprocessor().fit(df)
        model = probae.tabular_model(table, "vae", latent_dim=4)
        model.fit(table.transform(df), epochs=20)
        probae.anomaly_scores(model, table.transform(new_df))

    Args:
        table: a fitted ``TablePreprocessor``.
        preset: "vae", "beta_vae", "autoencoder", "denoising_autoencoder",
            "sparse_autoencoder", or a preset function of ``probae.presets``.
        latent_dim: code size (None: min(8, max(2, d // 4)) for d kept columns).
        min_scale: floor on the continuous columns' scales (standardised units).
        **preset_kwargs: the preset's other arguments (``hidden_units``, ``beta``, ...).

    Returns:
        An unfitted ``probae.ProbabilisticAutoencoder`` for ``(d,)`` inputs.

    Raises:
        TypeError: ``table`` is not a fitted ``TablePreprocessor`` or ``preset`` unknown.
        ValueError: ``likelihood`` given (it comes from the table).
    """
    from probae import presets

    if not isinstance(table, TablePreprocessor):
        raise TypeError(
            f"table must be a fitted probae.TablePreprocessor. Received: table={type(table).__name__}"
        )
    table._check_fitted()
    names = {
        "vae": "VAE",
        "beta_vae": "BetaVAE",
        "autoencoder": "Autoencoder",
        "denoising_autoencoder": "DenoisingAutoencoder",
        "sparse_autoencoder": "SparseAutoencoder",
    }
    if isinstance(preset, str):
        if preset not in names:
            raise TypeError(
                f"preset must be one of {tuple(names)} or a preset function. Received: preset={preset!r}"
            )
        factory = getattr(presets, names[preset])
    elif callable(preset):
        factory = preset
    else:
        raise TypeError(
            f"preset must be one of {tuple(names)} or a preset function. Received: preset={preset!r}"
        )
    if "likelihood" in preset_kwargs:
        raise ValueError(
            "likelihood comes from the table (one per column): set it per column with "
            "TablePreprocessor(column_types=..., continuous=...) instead."
        )
    decoder_kwargs = {}
    if preset_kwargs.get("hidden_units") is not None:
        decoder_kwargs["hidden_units"] = tuple(reversed(tuple(preset_kwargs["hidden_units"])))
    decoder = table.decoder(min_scale=min_scale, **decoder_kwargs)
    d = decoder.event_shape[0]
    if latent_dim is None:
        latent_dim = min(8, max(2, d // 4))
    model = factory((d,), latent_dim, likelihood=decoder, **preset_kwargs)
    return marginalize_missing(model)
