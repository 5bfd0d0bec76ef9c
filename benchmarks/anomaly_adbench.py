"""Unsupervised anomaly detection on ADBench files: probae candidates vs IsolationForest and PyOD.

ADBench's protocol (Han et al. 2022), for every ``.npz`` file (keys X, y; y = 1 for an
anomaly) in the data directories: a 70/30 stratified split, the training part subsampled
to at most 20,000 rows, a ``StandardScaler`` fitted on the training part and applied to
both parts, every detector fitted on the (contaminated) training part without labels, and
AUROC and average precision on the test part, for each seed. In the same process and on
the same splits:

- probae's ``AnomalyDetector`` under each named candidate setting (``--candidates``; the
  names map to keyword arguments in ``CANDIDATES``; ``default`` is the library's defaults),
- ``sklearn.ensemble.IsolationForest`` (defaults, ``random_state=seed``),
- PyOD's ``AutoEncoder`` and ``VAE`` (defaults, ``random_state=seed``, ``device="cpu"``
  unless a CUDA device is visible; PyOD is imported only when asked for).

Every detector runs on ``--threads`` threads (1 by default): TensorFlow's intra- and
inter-op pools, torch's pools and the OpenMP/BLAS pools are all set to the same number
before any of them is imported. ``--jobs N`` runs N files at once in separate worker
processes (each with ``--threads`` threads); every method of a file runs in the same
worker, one after the other, so their times are comparable.

The report gives per file and mean AUROC, AP and seconds per fit + score, and the
leave-one-dataset-out (LOO) figure: for each file, the candidate with the best mean AUROC
over the *other* files is scored on this file; the LOO figure is the mean of those. It
measures how well choosing defaults by this benchmark generalises to a file not used to
choose them.

``--json PATH`` writes every raw result (file, seed, method, AUROC, AP, seconds) as it
arrives; ``--load PATH ...`` reads earlier results, and only the (file, seed, method)
entries missing from them are run, so a later run can add candidates or seeds cheaply:

    python benchmarks/anomaly_adbench.py --jobs 2 --seeds 0 --json adbench.json
    python benchmarks/anomaly_adbench.py --jobs 2 --seeds 0 --load adbench.json \\
        --candidates default,trim20,beta1,gaussian --json adbench2.json

The default data directories are ../shared/datasets/adbench (8 tables) and
../shared/datasets/adbench_embeddings (11 embedding sets): the 19 dev files of issue 18.
"""

import argparse
import glob
import json
import os
import pathlib
import re
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"

# Named candidate settings: AnomalyDetector keyword arguments (random_state is the seed).
CANDIDATES = {
    "default": {},
    "trim10": {"trim_fraction": 0.1},
    "trim20": {"trim_fraction": 0.2},
    "k100": {"num_samples": 100},
    "trim0": {"trim_fraction": 0.0},
    "beta1": {"beta": 1.0},
    "beta4": {"beta": 4.0},
    "gaussian": {"likelihood": "gaussian"},
    "steps2x": {"epochs": 40},
    # the defaults, with probae.graphs.clear() before each fit: no traced function of an
    # earlier fit of the same configuration in the worker (every fit pays its tracing)
    "cold": {},
    # the defaults with fewer Adam steps for epochs="auto" (400 in the library)
    "steps100": {},
    "steps200": {},
}
COLD = {"cold"}
# Candidates that change a module-level default of probae.detector for their fit.
AUTO_STEPS = {"steps100": 100, "steps200": 200}
BASELINES = ("iforest", "pyod_ae", "pyod_vae")
MAX_TRAIN = 20_000


def dataset_name(path):
    return re.sub(r"^\d+_", "", pathlib.Path(path).stem)


def set_threads(threads):
    """Sets the thread pools of every library used, before any of them is imported."""
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _configure_frameworks(threads, need_torch):
    """Sets every thread pool and imports the libraries, so that no timed fit pays an import."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process: the env vars hold
        pass
    if need_torch:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass
        import pyod.models.auto_encoder
        import pyod.models.vae  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import probae  # noqa: F401


def split(path, seed):
    """The protocol's split for one file and seed: scaled (X_train, X_test, y_test)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    with np.load(path) as f:
        X, y = np.asarray(f["X"], np.float64), np.asarray(f["y"]).astype(int)
    X_train, X_test, _, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    if len(X_train) > MAX_TRAIN:
        rows = np.random.default_rng(seed).choice(len(X_train), MAX_TRAIN, replace=False)
        X_train = X_train[np.sort(rows)]
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_test, X.shape


def fit_score(method, X_train, X_test, seed):
    """Fits one method on X_train; returns anomaly scores of X_test (higher = more anomalous)."""
    if method.startswith("probae:"):
        import probae
        import probae.detector

        name = method.split(":", 1)[1]
        if name in COLD:
            probae.graphs.clear()
        steps = dict(probae.detector._AUTO_STEPS)
        probae.detector._AUTO_STEPS["tabular"] = AUTO_STEPS.get(name, steps["tabular"])
        try:
            det = probae.AnomalyDetector(random_state=seed, **CANDIDATES[name]).fit(X_train)
        finally:
            probae.detector._AUTO_STEPS.update(steps)
        return -det.score_samples(X_test)
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return -IsolationForest(random_state=seed).fit(X_train).score_samples(X_test)
    if method in ("pyod_ae", "pyod_vae"):
        import torch

        if method == "pyod_ae":
            from pyod.models.auto_encoder import AutoEncoder as Model
        else:
            from pyod.models.vae import VAE as Model
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        det = Model(random_state=seed, device=device, verbose=0)
        det.fit(X_train)  # PyOD 2.0.5: the deep detectors' fit returns None
        return det.decision_function(X_test)
    raise ValueError(f"unknown method {method!r}")


_WARM = set()


def _warm_up(methods):
    """Fits each method once, untimed, on a tiny random table in this process, so that no
    method's first timed fit pays the one-off start-up of its framework (TensorFlow's or
    torch's runtime) for the others. Every timed fit builds its own model; probae's fits
    reuse the traced functions of an earlier fit of the same configuration in this worker
    (``probae.graphs``, as in any user's process), except the ``cold`` candidate's."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    for method in methods:
        if method not in _WARM:
            fit_score(method, X, X, 0)
            _WARM.add(method)


def run_file(path, seeds, methods, done, threads):
    """Runs the missing (seed, method) pairs of one file; returns a list of result records."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    name = dataset_name(path)
    if all((name, seed, m) in done for seed in seeds for m in methods):
        return []
    _configure_frameworks(threads, any(m.startswith("pyod") for m in methods))
    _warm_up(methods)
    records = []
    for seed in seeds:
        todo = [m for m in methods if (name, seed, m) not in done]
        if not todo:
            continue
        X_train, X_test, y_test, shape = split(path, seed)
        for method in todo:
            start = time.perf_counter()
            score = fit_score(method, X_train, X_test, seed)
            seconds = time.perf_counter() - start
            bad = ~np.isfinite(score)
            if bad.any():  # a detector's non-finite score ranks its row as most anomalous
                score = np.where(bad, np.nanmax(np.where(bad, -np.inf, score)) + 1, score)
            records.append(
                {
                    "file": name,
                    "n": int(shape[0]),
                    "d": int(shape[1]),
                    "seed": int(seed),
                    "method": method,
                    "auroc": float(roc_auc_score(y_test, score)),
                    "ap": float(average_precision_score(y_test, score)),
                    "seconds": seconds,
                }
            )
    return records


def _worker_init(threads):
    set_threads(threads)


def leave_one_out(auroc, files, candidates):
    """For each file, the candidate with the best mean AUROC over the other files."""
    chosen = {}
    for f in files:
        others = [g for g in files if g != f]
        chosen[f] = max(candidates, key=lambda c: np.mean([auroc[(g, c)] for g in others]))
    return chosen


def report(records, files, methods, seeds):
    by = {}
    for r in records:
        if r["file"] in files and r["method"] in methods and r["seed"] in seeds:
            by.setdefault((r["file"], r["method"]), []).append(r)
    complete = [f for f in files if all(len(by.get((f, m), [])) == len(seeds) for m in methods)]
    if len(complete) < len(files):
        print(f"incomplete files left out of the means: {sorted(set(files) - set(complete))}")
    files = complete
    if not files:
        return
    auroc = {k: 100 * np.mean([r["auroc"] for r in v]) for k, v in by.items()}
    ap = {k: 100 * np.mean([r["ap"] for r in v]) for k, v in by.items()}
    secs = {k: np.mean([r["seconds"] for r in v]) for k, v in by.items()}
    candidates = [m for m in methods if m.startswith("probae:")]
    chosen = (
        leave_one_out(auroc, files, candidates)
        if len(files) > 1
        else {f: candidates[0] for f in files}
    )
    short = {m: m.replace("probae:", "") for m in methods}
    print(f"\nseeds {seeds}; AUROC (%) on the test part, mean over seeds\n")
    print(
        "| file | n x d | " + " | ".join(short[m] for m in methods) + " | LOO choice | LOO AUROC |"
    )
    print("|" + "---|" * (len(methods) + 4))
    for f in files:
        n, d = by[(f, methods[0])][0]["n"], by[(f, methods[0])][0]["d"]
        print(
            f"| {f} | {n} x {d} | "
            + " | ".join(f"{auroc[(f, m)]:.2f}" for m in methods)
            + f" | {short[chosen[f]]} | {auroc[(f, chosen[f])]:.2f} |"
        )
    loo = np.mean([auroc[(f, chosen[f])] for f in files])
    print(
        f"| **mean AUROC** ({len(files)} files) | | "
        + " | ".join(f"{np.mean([auroc[(f, m)] for f in files]):.2f}" for m in methods)
        + f" | | {loo:.2f} |"
    )
    print(
        "| mean AP | | "
        + " | ".join(f"{np.mean([ap[(f, m)] for f in files]):.2f}" for m in methods)
        + " | | |"
    )
    print(
        "| mean s per fit + score | | "
        + " | ".join(f"{np.mean([secs[(f, m)] for f in files]):.2f}" for m in methods)
        + " | | |"
    )
    print(
        "| total s (sum over files) | | "
        + " | ".join(f"{np.sum([secs[(f, m)] for f in files]):.1f}" for m in methods)
        + " | | |"
    )
    print(f"\nAP (%) and seconds per fit + score, mean over seeds {seeds}\n")
    print("| file | " + " | ".join(f"{short[m]} AP | {short[m]} s" for m in methods) + " |")
    print("|" + "---|" * (2 * len(methods) + 1))
    for f in files:
        print(
            f"| {f} | "
            + " | ".join(f"{ap[(f, m)]:.2f} | {secs[(f, m)]:.1f}" for m in methods)
            + " |"
        )
    print(
        f"\nleave-one-dataset-out AUROC of the probae candidates {[short[c] for c in candidates]}: {loo:.2f}"
    )
    for m in methods:
        if not m.startswith("probae:"):
            wins = {c: sum(auroc[(f, c)] > auroc[(f, m)] for f in files) for c in candidates}
            print(
                f"files where each candidate beats {short[m]}: "
                + ", ".join(f"{short[c]} {w}/{len(files)}" for c, w in wins.items())
            )


def main(args):
    set_threads(args.threads)
    files = sorted(p for d in args.data_dir for p in glob.glob(os.path.join(d, "*.npz")))
    if args.only:
        wanted = {o.lower() for o in args.only}
        files = [f for f in files if dataset_name(f).lower() in wanted]
    if not files:
        raise SystemExit(f"no .npz files in {args.data_dir}")
    names = [c for c in args.candidates.split(",") if c]
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {sorted(CANDIDATES)}")
    baselines = [b for b in args.baselines.split(",") if b]
    methods = [f"probae:{c}" for c in names] + baselines
    records = []
    for path in args.load or []:
        with open(path) as f:
            records += json.load(f)["results"]
    done = {(r["file"], r["seed"], r["method"]) for r in records}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {"candidates": CANDIDATES, "threads": args.threads, "results": records},
                    f,
                    indent=1,
                )

    def arrived(new):
        records.extend(new)
        save()
        for r in new:
            print(
                f"{r['file']} seed {r['seed']} {r['method']}: AUROC {100 * r['auroc']:.2f} "
                f"({r['seconds']:.1f} s)",
                flush=True,
            )

    # Large files first, so that the workers finish at about the same time.
    order = sorted(files, key=lambda p: -os.path.getsize(p))
    if args.jobs > 1:
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            args.jobs, mp_context=ctx, initializer=_worker_init, initargs=(args.threads,)
        ) as pool:
            futures = {
                pool.submit(run_file, p, args.seeds, methods, done, args.threads): p for p in order
            }
            for fut in concurrent.futures.as_completed(futures):
                arrived(fut.result())
    else:
        for p in order:
            arrived(run_file(p, args.seeds, methods, done, args.threads))
    save()
    report(records, [dataset_name(f) for f in files], methods, args.seeds)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        nargs="+",
        default=[str(SHARED / "adbench"), str(SHARED / "adbench_embeddings")],
        help="directories of .npz files with keys X and y",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    parser.add_argument(
        "--candidates",
        default="default",
        help=f"comma-separated probae settings, from {sorted(CANDIDATES)}",
    )
    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help=f"comma-separated baselines, from {list(BASELINES)} (empty: none)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per detector (every library)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="files run at once, in worker processes"
    )
    parser.add_argument("--json", help="write all raw results here")
    parser.add_argument(
        "--load", nargs="*", help="raw results of earlier runs: only missing entries run"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
