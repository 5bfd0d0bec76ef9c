"""Tabular anomaly detection on a DataFrame with string columns and missing cells.

An ADBench table (or an offline one) is made into what real tables look like: a pandas
DataFrame with named columns, ``--categorical`` of them turned into strings ("low",
"mid", "high" by tertile) and ``--missing`` of all cells removed at random. probae's
``AnomalyDetector`` is fitted on it as it is, without labels, on a 70/30 stratified
split's training part, which still holds its anomalies (ADBench's unsupervised protocol):
no scaler, encoder or imputer: the detector types the columns (string columns
categorical), standardises the numbers and marginalises the missing cells. On the test
part the script prints AUROC and average precision, with IsolationForest (after mean /
most-frequent imputation and ordinal codes) for reference, and saves the score
histograms with the ROC curve and the detector's own chart of the per-feature
contributions (minus log p of each column given the code) of the most anomalous test
rows (``AnomalyDetector.plot_contributions``).

Data: an ADBench .npz (keys X, y; y = 1 for an anomaly) from --data-dir or
$PROBAE_DATA_DIR/adbench (default 6_cardio.npz), or --dataset breast_cancer (scikit-learn's
bundled Wisconsin diagnostic data, malignant as the anomalies, subsampled to 10%) or
--dataset synthetic, both offline.

    python examples/anomaly_tabular.py                        # cardio, under a minute
    python examples/anomaly_tabular.py --dataset breast_cancer   # works offline
    python examples/anomaly_tabular.py --missing 0 --categorical 0   # the numeric table
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import os
import sys

import keras
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import probae
from probae import plotting

OFFLINE = ("breast_cancer", "synthetic")


def load_table(args):
    """Returns ``(X, y, feature_names, name)`` or None after a one-line message."""
    rng = np.random.default_rng(args.seed)
    if args.data == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        X, y = bunch.data, (bunch.target == 0).astype(int)  # malignant = anomaly
        keep = np.flatnonzero(y == 0)
        keep = np.r_[keep, rng.choice(np.flatnonzero(y == 1), len(keep) // 9, replace=False)]
        return X[keep], y[keep], list(bunch.feature_names), "breast_cancer"
    if args.data == "synthetic":
        # Normal rows on a 2-D plane in 10-D; anomalies off it.
        n, d = 2000, 10
        mixing = rng.normal(size=(2, d))
        X = rng.normal(size=(n, 2)) @ mixing + 0.1 * rng.normal(size=(n, d))
        y = np.zeros(n, int)
        y[: n // 20] = 1
        X[y == 1] = rng.normal(size=(n // 20, d)) * X.std(axis=0)
        return X, y, [f"x{i}" for i in range(d)], "synthetic"
    data_dir = args.data_dir or os.environ.get("PROBAE_DATA_DIR")
    candidates = [args.data] if os.path.isabs(args.data) else []
    if data_dir:
        candidates += [
            os.path.join(data_dir, args.data),
            os.path.join(data_dir, "adbench", args.data),
        ]
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
        print(
            f"error: {args.data} was not found (looked in --data-dir / PROBAE_DATA_DIR and its "
            "adbench/ folder): pass --data-dir DIR, or run offline with --dataset breast_cancer "
            "or --dataset synthetic.",
            file=sys.stderr,
        )
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            X, y = f["X"].astype(np.float64), f["y"].astype(int)
    except (OSError, ValueError, KeyError) as err:
        print(
            f"error: {path} is not an ADBench .npz file with arrays X and y ({err})",
            file=sys.stderr,
        )
        return None
    return X, y, [f"feature {i}" for i in range(X.shape[1])], os.path.basename(path)


def as_dataframe(X, names, categorical, missing, seed):
    """The table as users have it: named columns, some of them strings, some cells empty."""
    df = pd.DataFrame(X, columns=[str(n) for n in names])
    for name in df.columns[:categorical]:
        tertile = np.minimum(
            3 * df[name].rank(method="first").to_numpy() // (len(df) + 1), 2
        ).astype(int)
        df[name] = np.array(["low", "mid", "high"])[tertile]
    if missing > 0:
        df = df.mask(np.random.default_rng(seed + 1).random(df.shape) < missing)
    return df


def isolation_forest(seed, strings):
    """IsolationForest after imputation (mean; most frequent) and ordinal codes."""
    encode = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    )
    prepare = ColumnTransformer([("strings", encode, strings)], remainder=SimpleImputer())
    return make_pipeline(prepare, IsolationForest(random_state=seed))


def main(args):
    keras.utils.set_random_seed(args.seed)
    problem = _shared.check_flags(args)
    if problem:
        return _shared.error(problem)
    table = load_table(args)
    if table is None:
        return 2
    X, y, names, name = table
    n = args.max_examples
    if n is not None and n < len(X):
        X, _, y, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=args.seed)
    df = as_dataframe(X, names, args.categorical, args.missing, args.seed)
    X_train, X_test, y_train, y_test = train_test_split(
        df, y, test_size=0.3, stratify=y, random_state=args.seed
    )
    strings = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    print(
        f"{name}: {len(df)} rows, {df.shape[1]} columns ({len(strings)} of strings), "
        f"{df.isna().to_numpy().mean():.0%} of cells missing, {y.mean():.1%} anomalies; "
        f"training on {len(X_train)} rows without their labels"
    )

    epochs = "auto" if args.epochs is None else args.epochs
    detector = probae.AnomalyDetector(epochs=epochs, random_state=args.seed, verbose=args.verbose)
    detector.fit(X_train)  # the DataFrame as it is: strings, missing cells and all
    scores = probae.anomaly_scores(detector, X_test)  # higher = more anomalous
    forest = isolation_forest(args.seed, strings).fit(X_train)
    forest_scores = -forest.score_samples(X_test)

    result = {
        "auroc": float(roc_auc_score(y_test, scores)),
        "average_precision": float(average_precision_score(y_test, scores)),
        "iforest_auroc": float(roc_auc_score(y_test, forest_scores)),
        "iforest_average_precision": float(average_precision_score(y_test, forest_scores)),
    }
    print(f"{'':24s}{'AUROC':>8s}{'avg prec':>10s}")
    print(
        f"{'probae AnomalyDetector':24s}{result['auroc']:8.3f}{result['average_precision']:10.3f}"
    )
    print(
        f"{'imputed IsolationForest':24s}{result['iforest_auroc']:8.3f}"
        f"{result['iforest_average_precision']:10.3f}"
    )
    flagged = detector.predict(X_test) == -1
    print(
        f"predict flags {flagged.sum()} of {len(X_test)} test rows "
        f"({(flagged & (y_test == 1)).sum()} of them true anomalies, of {y_test.sum()})"
    )

    os.makedirs(args.out, exist_ok=True)
    plotting.plot_anomaly_scores(
        scores[y_test == 0],
        scores[y_test == 1],
        title=f"AnomalyDetector on {name} (test part)",
        score_label="-log p(observed cells), nats (higher = more anomalous)",
        path=os.path.join(args.out, "scores_roc.png"),
    )
    contributions = detector.score_features(X_test)  # a DataFrame: X_test's columns and index
    print("most anomalous test rows (label, score, the three columns contributing most):")
    for r in np.argsort(-scores)[: args.top]:
        row = contributions.iloc[r].dropna().sort_values(ascending=False)[:3]
        parts = ", ".join(f"{c} {v:.1f}" for c, v in row.items())
        print(f"  row {X_test.index[r]:5d}  y={y_test[r]}  score {scores[r]:8.1f}  {parts}")
    detector.plot_contributions(
        X_test, n=args.top, path=os.path.join(args.out, "contributions.png")
    )
    print(f"figures saved in {args.out}/")
    # A missing cell contributes nothing to a row's score (its term is 0; NaN in the chart).
    result.update(scores=scores, y_test=y_test, contributions=contributions.fillna(0.0).to_numpy())
    return result


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=None, out="out/anomaly_tabular", dataset=None)
    p._option_string_actions[
        "--epochs"
    ].help = "training epochs; None: the detector's 'auto' (about 400 gradient steps)"
    p.add_argument(
        "--dataset",
        "--data",
        dest="data",
        default="6_cardio.npz",
        help=f"an ADBench .npz file name (in --data-dir) or path, or one of {OFFLINE} (offline)",
    )
    p.add_argument("--top", type=int, default=4, help="anomalies whose contributions are shown")
    p.add_argument(
        "--categorical",
        type=int,
        default=2,
        help="how many columns become strings (low / mid / high)",
    )
    p.add_argument("--missing", type=float, default=0.1, help="fraction of cells removed at random")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
