"""Missing values on the ADBench tables: marginalised (probae) against imputed (IsolationForest).

For every ``.npz`` file (keys X, y; y = 1 for an anomaly) in a directory, seed and rate
r in {0, 0.1, 0.3}: a fraction r of all entries of X is removed completely at random
(MCAR, NaN), then ADBench's protocol runs on the damaged table (70/30 stratified split,
fit on the contaminated training part without labels, AUROC on the test part):

- ``probae.AnomalyDetector()`` with its defaults, which marginalises the missing entries
  (log p(x_obs), calibrated per missing entry; nothing is imputed);
- ``make_pipeline(SimpleImputer(), IsolationForest(random_state=seed))``: mean
  imputation, then the forest.

Both run in the same process on the same damaged splits. The drop is AUROC(r = 0) minus
AUROC(r), averaged over the files.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 nice -n 10 python benchmarks/anomaly_missing.py
    python benchmarks/anomaly_missing.py --data-dir DIR --seeds 0 1 2 --rates 0 0.1 0.3
"""

import argparse
import glob
import os
import pathlib
import re
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def dataset_name(path):
    return re.sub(r"^\d+_", "", pathlib.Path(path).stem)


def damage(X, rate, seed):
    """X with a fraction ``rate`` of its entries set to NaN, completely at random."""
    X = np.array(X, np.float64)
    if rate > 0:
        X[np.random.default_rng(1000 + seed).random(X.shape) < rate] = np.nan
    return X


def evaluate(path, seeds, rates):
    """{(method, rate): [AUROC per seed]} for one file."""
    from sklearn.ensemble import IsolationForest
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    import probae

    with np.load(path) as f:
        X, y = np.asarray(f["X"], np.float64), np.asarray(f["y"]).astype(int)
    out = {}
    for seed in seeds:
        for rate in rates:
            Xr = damage(X, rate, seed)
            X_train, X_test, _, y_test = train_test_split(
                Xr, y, test_size=0.3, stratify=y, random_state=seed
            )
            det = probae.AnomalyDetector(random_state=seed).fit(X_train)
            out.setdefault(("probae", rate), []).append(
                roc_auc_score(y_test, -det.score_samples(X_test))
            )
            forest = make_pipeline(SimpleImputer(), IsolationForest(random_state=seed)).fit(X_train)
            out.setdefault(("iforest", rate), []).append(
                roc_auc_score(y_test, -forest.score_samples(X_test))
            )
    return X.shape, out


def main(args):
    files = sorted(glob.glob(os.path.join(args.data_dir, "*.npz")))
    if args.only:
        files = [f for f in files if dataset_name(f).lower() in {o.lower() for o in args.only}]
    if not files:
        raise SystemExit(f"no .npz files in {args.data_dir}")
    rates = args.rates
    cols = [f"{m} {int(100 * r)}%" for m in ("probae", "SimpleImputer+IForest") for r in rates]
    print("| dataset | n x d | " + " | ".join(cols) + " |")
    print("|" + "---|" * (2 + len(cols)))
    means = {}
    start = time.perf_counter()
    for path in files:
        shape, out = evaluate(path, args.seeds, rates)
        cells = []
        for method in ("probae", "iforest"):
            for r in rates:
                auc = 100 * np.mean(out[(method, r)])
                means.setdefault((method, r), []).append(auc)
                cells.append(f"{auc:.2f}")
        print(
            f"| {dataset_name(path)} | {shape[0]} x {shape[1]} | " + " | ".join(cells) + " |",
            flush=True,
        )
    mean = {k: float(np.mean(v)) for k, v in means.items()}
    print(
        f"| **mean** ({len(files)} files) | | "
        + " | ".join(f"{mean[(m, r)]:.2f}" for m in ("probae", "iforest") for r in rates)
        + " |"
    )
    print()
    for r in rates[1:]:
        drops = {m: mean[(m, rates[0])] - mean[(m, r)] for m in ("probae", "iforest")}
        print(
            f"mean AUROC drop at {int(100 * r)}% missing: probae {drops['probae']:.2f}, "
            f"SimpleImputer+IsolationForest {drops['iforest']:.2f}"
        )
    print(f"seeds {args.seeds}; {time.perf_counter() - start:.0f} s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "datasets" / "adbench"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    p.add_argument("--only", nargs="*", default=None, help="dataset names (without the number)")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
