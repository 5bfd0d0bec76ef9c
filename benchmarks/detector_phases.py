"""Where an ``AnomalyDetector`` table fit spends its time: building, training, scoring.

For each named ADBench file (same split as ``anomaly_adbench.py``) and each seed, fits
``probae.AnomalyDetector(random_state=seed)`` on the training part and scores the test
part on one thread, and prints the seconds spent in building the models
(``_make_model``), in the training calls (``_train_steps``: the traced loop of Adam
steps, plus its tracing and instantiation on a configuration's first fit), in the
scorings (``_score``: trimming, training scores, test scores, plus the scoring
function's tracing on a first fit) and the rest (preprocessing, copying state in and out
of the shared template). Seeds after the first reuse the traced functions of the same
configuration (``probae.graphs``) when the kept columns are the same; the difference
between a first (cold) and a later (warm) fit is the tracing.

    python benchmarks/detector_phases.py wine MVTec-AD_cable --seeds 0 1 2
"""

import argparse
import glob
import os
import sys
import time

for _name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ[_name] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import anomaly_adbench as ab  # noqa: E402

PHASES = {"_make_model": "build", "_train_steps": "train", "_score": "score"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="parts of ADBench file names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    import probae
    from probae import detector

    ab._configure_frameworks(1, False)
    seconds = {}

    def timed(function, label):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start

        return wrapper

    for name, label in PHASES.items():
        setattr(
            detector.AnomalyDetector, name, timed(getattr(detector.AnomalyDetector, name), label)
        )
    ab._warm_up(["probae:default"])
    paths = sorted(glob.glob(str(ab.SHARED / "adbench*" / "*.npz")))
    print("| file | seed | total s | build | train | score | other |")
    print("|---|---|---|---|---|---|---|")
    for part in args.files:
        matches = [p for p in paths if part in ab.dataset_name(p)]
        if len(matches) != 1:
            raise SystemExit(f"{part!r} names {len(matches)} files, not one")
        for seed in args.seeds:
            X_train, X_test, _, _ = ab.split(matches[0], seed)
            seconds.clear()
            start = time.perf_counter()
            probae.AnomalyDetector(random_state=seed).fit(X_train).score_samples(X_test)
            total = time.perf_counter() - start
            row = [seconds.get(label, 0.0) for label in PHASES.values()]
            cells = " | ".join(f"{v:.2f}" for v in [total, *row, total - sum(row)])
            print(f"| {ab.dataset_name(matches[0])} | {seed} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
