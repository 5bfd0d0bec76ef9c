"""Runs scikit-learn's full ``check_estimator`` on ``probae.AnomalyDetector`` (tiny model).

    nice -n 10 python benchmarks/sklearn_check_estimator.py

Prints every check with passed / skipped / failed (and why). The tests run the subset
that defines an outlier detector's contract (tests/test_anomaly.py::test_sklearn_checks).
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main():
    from sklearn.utils.estimator_checks import check_estimator

    import probae

    start = time.perf_counter()
    results = check_estimator(
        probae.AnomalyDetector(epochs=2, hidden_units=(16, 8), latent_dim=2, num_samples=5),
        on_fail=None,
    )
    for r in results:
        why = (
            "" if r["status"] == "passed" else f"  {str(r.get('exception')).splitlines()[0][:200]}"
        )
        print(f"{r['check_name']}: {r['status']}{why}")
    counts = {s: sum(r["status"] == s for r in results) for s in ("passed", "skipped", "failed")}
    print(counts, f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
