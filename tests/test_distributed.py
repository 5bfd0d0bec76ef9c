"""tf.distribute: MirroredStrategy on two logical CPUs, MultiWorkerMirroredStrategy on localhost.

Both run in subprocesses: logical devices and a multi-worker cluster cannot be undone
inside a process.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=300):
    env = dict(
        os.environ,
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def mirrored():
    out = _run([os.path.join(REPO, "tests", "scripts", "mirrored_check.py")])
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_mirrored_training_matches_one_device(mirrored):
    assert mirrored["replicas"] == 2
    # Training moved the weights by up to ~0.5; the two-replica run ends within float32
    # round-off of the one-device run (12 SGD steps; a loss summed instead of averaged
    # over the global batch would double every step and differ by ~1e-1).
    assert mirrored["max_weight_moved"] > 1e-2
    assert mirrored["max_weight_diff"] < 1e-5
    # epoch metrics are reduced over both replicas: the same numbers as on one device
    for key in ("loss", "elbo", "reconstruction", "kl"):
        np.testing.assert_allclose(
            mirrored["logs_multi"][key], mirrored["logs_single"][key], rtol=1e-5
        )
    # evaluate() (test_step under the strategy) reduces over replicas too
    for key in ("loss", "elbo", "reconstruction", "kl"):
        assert mirrored["eval_multi"][key] == pytest.approx(mirrored["eval_single"][key], rel=1e-5)
    # the beta schedule set from a callback reached the replicated variable
    assert mirrored["beta_multi"] == pytest.approx(1.0)
    # the loss includes beta: with beta rising from 0.5 to 1.0, loss -> -elbo at the last epoch
    assert mirrored["logs_multi"]["loss"][-1] == pytest.approx(
        -mirrored["logs_multi"]["elbo"][-1], rel=1e-5
    )
    assert mirrored["logs_multi"]["loss"][0] < -mirrored["logs_multi"]["elbo"][0]


def test_mirrored_vae_replicas_draw_different_noise(mirrored):
    seeds = mirrored["replica_seeds"]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert np.all(np.isfinite(mirrored["vae_logs"]["elbo"]))
    assert mirrored["vae_logs"]["loss"][-1] < mirrored["vae_logs"]["loss"][0]


def test_multiworker_example_trains_one_model_on_two_workers(tmp_path):
    out_dir = tmp_path / "mw"
    _run(
        [
            os.path.join(REPO, "examples", "distributed_multiworker.py"),
            "--workers",
            "2",
            "--epochs",
            "2",
            "--steps",
            "3",
            "--examples",
            "1200",
            "--output",
            str(out_dir),
        ]
    )
    with open(out_dir / "summary.json") as f:
        summary = json.load(f)
    assert summary["workers"] == 2
    assert summary["identical_weights_on_all_workers"] is True
    assert np.all(np.isfinite(summary["history"]["loss"]))
    assert summary["history"]["loss"][1] < summary["history"]["loss"][0]
    assert (out_dir / "model.keras").exists()
