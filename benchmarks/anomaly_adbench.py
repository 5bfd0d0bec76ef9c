"""Unsupervised tabular anomaly detection on ADBench datasets: probae vs IsolationForest.

ADBench's protocol (Han et al. 2022): for every ``.npz`` file (keys X, y; y = 1 for an
anomaly) in a directory, a 70/30 stratified split, the detector fitted on the
(contaminated) training part without labels, AUROC and average precision on the test
part, for seeds 0, 1, 2. ``sklearn.ensemble.IsolationForest`` runs in the same process on
the same splits. Every detector uses its defaults: nothing is tuned per dataset.

    nice -n 10 python benchmarks/anomaly_adbench.py            # ../shared/datasets/adbench
    nice -n 10 python benchmarks/anomaly_adbench.py --data-dir DIR --seeds 0 1 2

Published PyOD-VAE AUROCs (unsupervised setting, Livernoche et al. 2024, DTE repository
README) are printed beside the results where the dataset name matches.
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

PYOD_VAE = {
    "cardio": 95.00,
    "thyroid": 95.56,
    "satellite": 75.55,
    "breastw": 92.80,
    "pima": 67.03,
    "ionosphere": 78.55,
}


def dataset_name(path):
    return re.sub(r"^\d+_", "", pathlib.Path(path).stem)


def evaluate(path, seeds, detector_kwargs):
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    import probae

    with np.load(path) as f:
        X, y = np.asarray(f["X"], np.float64), np.asarray(f["y"]).astype(int)
    rows = []
    for seed in seeds:
        X_train, X_test, _, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed
        )
        result = {}
        start = time.perf_counter()
        det = probae.AnomalyDetector(random_state=seed, **detector_kwargs).fit(X_train)
        score = -det.score_samples(X_test)
        result["probae"] = (
            roc_auc_score(y_test, score),
            average_precision_score(y_test, score),
            time.perf_counter() - start,
        )
        start = time.perf_counter()
        forest = IsolationForest(random_state=seed).fit(X_train)
        score = -forest.score_samples(X_test)
        result["iforest"] = (
            roc_auc_score(y_test, score),
            average_precision_score(y_test, score),
            time.perf_counter() - start,
        )
        rows.append(result)
    return X.shape, rows


def main(args):
    files = sorted(glob.glob(os.path.join(args.data_dir, "*.npz")))
    if args.only:
        files = [f for f in files if dataset_name(f).lower() in {o.lower() for o in args.only}]
    if not files:
        raise SystemExit(f"no .npz files in {args.data_dir}")
    kwargs = {}
    if args.likelihood:
        kwargs["likelihood"] = args.likelihood
    if args.method:
        kwargs["method"] = args.method
    if args.beta is not None:
        kwargs["beta"] = args.beta
    if args.trim_fraction is not None:
        kwargs["trim_fraction"] = args.trim_fraction
    header = (
        "| dataset | n x d | probae AUROC | IForest AUROC | probae AP | IForest AP | "
        "PyOD-VAE AUROC (published) | probae s/fit |"
    )
    print(header)
    print("|" + "---|" * 8)
    means = {"probae": [], "iforest": [], "ap_probae": [], "ap_iforest": []}
    published = []  # (probae, iforest, PyOD-VAE) AUROCs where a published figure exists
    for path in files:
        name = dataset_name(path)
        shape, rows = evaluate(path, args.seeds, kwargs)
        auc = {k: np.array([r[k][0] for r in rows]) * 100 for k in ("probae", "iforest")}
        ap = {k: np.array([r[k][1] for r in rows]) * 100 for k in ("probae", "iforest")}
        secs = np.mean([r["probae"][2] for r in rows])
        means["probae"].append(auc["probae"].mean())
        means["iforest"].append(auc["iforest"].mean())
        means["ap_probae"].append(ap["probae"].mean())
        means["ap_iforest"].append(ap["iforest"].mean())
        pub = PYOD_VAE.get(name.lower())
        if pub is not None:
            published.append((auc["probae"].mean(), auc["iforest"].mean(), pub))
        print(
            f"| {name} | {shape[0]} x {shape[1]} | {auc['probae'].mean():.2f} +- {auc['probae'].std():.2f} "
            f"| {auc['iforest'].mean():.2f} +- {auc['iforest'].std():.2f} "
            f"| {ap['probae'].mean():.2f} | {ap['iforest'].mean():.2f} "
            f"| {'' if pub is None else f'{pub:.2f}'} | {secs:.1f} |",
            flush=True,
        )
    print(
        f"| **mean** ({len(files)} datasets) | | {np.mean(means['probae']):.2f} | "
        f"{np.mean(means['iforest']):.2f} | {np.mean(means['ap_probae']):.2f} | "
        f"{np.mean(means['ap_iforest']):.2f} | | |"
    )
    if published:
        p = np.mean(published, axis=0)
        print(
            f"\nOn the {len(published)} datasets with published PyOD-VAE figures, mean AUROC: "
            f"probae {p[0]:.2f}, IsolationForest {p[1]:.2f}, PyOD-VAE {p[2]:.2f} (published)"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", default=str(REPO.parent / "shared" / "datasets" / "adbench"),
        help="directory of .npz files with keys X and y",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    parser.add_argument("--likelihood", default=None, help="AnomalyDetector likelihood")
    parser.add_argument("--method", default=None, help="AnomalyDetector method")
    parser.add_argument("--beta", type=float, default=None, help="AnomalyDetector beta")
    parser.add_argument("--trim-fraction", type=float, default=None, help="AnomalyDetector trim_fraction")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
