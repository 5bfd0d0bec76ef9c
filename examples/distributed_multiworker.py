"""Synchronous data-parallel training of one probae VAE on several workers.

TensorFlow's ``MultiWorkerMirroredStrategy`` does the work: every worker holds a copy of
the model, takes its shard of every global batch, and the gradients are all-reduced
before each step, so all workers keep identical weights. Each worker learns its place in
the cluster from the ``TF_CONFIG`` environment variable.

On one machine (the default) this script is its own launcher: it starts ``--workers``
copies of itself on localhost (loopback ports only), each with its own ``TF_CONFIG``,
and waits for them:

    python examples/distributed_multiworker.py --workers 2 --epochs 2

On a cluster, run the same script once per machine with ``--worker`` and a ``TF_CONFIG``
naming all workers, for example on the second of two hosts:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 1}}' \
        python examples/distributed_multiworker.py --worker --epochs 10

Worker 0 is the chief: it writes the trained model and a summary to ``--out``. The data
is ``--dataset`` (default binarized_mnist) from ``--data-dir`` or ``$PROBAE_DATA_DIR``; the
launcher loads it first and stops with one line (exit code 2) when it is missing.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARED = os.path.join(_REPO, "..", "shared", "datasets")
if "PROBAE_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["PROBAE_DATA_DIR"] = os.path.abspath(_SHARED)

try:
    from examples import _shared
except ImportError:  # run as a script
    import _shared


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--workers", type=int, default=2, help="workers to start on localhost")
    p.add_argument(
        "--worker",
        action="store_true",
        help="run as one worker (reads TF_CONFIG) instead of launching workers",
    )
    p.add_argument("--epochs", type=int, default=2, help="training epochs")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: all data)")
    p.add_argument("--batch-size", type=int, default=100, help="global batch size")
    p.add_argument(
        "--dataset",
        default="binarized_mnist",
        choices=("mnist", "binarized_mnist", "fashion_mnist", "digits"),
        help="digits (8 x 8, bundled with scikit-learn) works offline",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory holding the dataset files (default: $PROBAE_DATA_DIR, else download)",
    )
    p.add_argument(
        "--max-examples",
        "--examples",
        dest="max_examples",
        type=int,
        default=10_000,
        help="training examples to use",
    )
    p.add_argument(
        "--out",
        "--output",
        dest="out",
        default="runs/multiworker",
        help="where the chief writes the model and summary.json",
    )
    p.add_argument("--timeout", type=float, default=600, help="launcher: seconds to wait")
    args = p.parse_args(argv)
    args.argv = argv
    return args


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def launch(args):
    """Starts ``args.workers`` copies of this script on localhost and waits for them.

    The data is loaded here first, so that a missing dataset or a wrong flag ends with
    one line and exit code 2 before any worker starts."""
    if _shared.load_dataset(args, flatten=True) is None:
        return 2
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(args.workers)]}
    argv = [a for a in args.argv if a != "--worker"]
    procs = []
    for index in range(args.workers):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        env["PYTHONPATH"] = _REPO + os.pathsep + env.get("PYTHONPATH", "")
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", *argv], env=env
            )
        )
    deadline = time.time() + args.timeout
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        raise SystemExit(f"workers did not finish within --timeout={args.timeout}s") from None
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    with open(os.path.join(args.out, "summary.json")) as f:
        summary = json.load(f)
    print(json.dumps(summary, indent=1))
    return summary


def run_worker(args):
    import hashlib

    import keras
    import numpy as np
    import tensorflow as tf

    import probae

    # Create the strategy first: it needs TF_CONFIG and must precede other TF work.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    index = int(task.get("index", 0))
    (x_train, _), (x_test, _) = probae.datasets.load_dataset(
        args.dataset, args.data_dir, flatten=True
    )
    x_train = x_train[: args.max_examples]
    # Every worker builds the same pipeline; tf.distribute gives each its shard of every
    # global batch (auto-sharding by data).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (
        tf.data.Dataset.from_tensor_slices(x_train)
        .shuffle(len(x_train), seed=0)
        .batch(args.batch_size, drop_remainder=True)
        .with_options(options)
    )
    keras.utils.set_random_seed(0)  # the same initial weights on every worker
    with strategy.scope():
        model = probae.VAE(x_train.shape[1:], 50, hidden_units=(200, 200), activation="tanh")
        model.compile(keras.optimizers.Adam(1e-3))
    hist = model.fit(
        dataset, epochs=args.epochs, steps_per_epoch=args.steps, verbose=2 if index == 0 else 0
    )
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"worker{index}.json"), "w") as f:
        json.dump({"weights_sha256": digest}, f)
    if index == 0:  # the chief writes the model and the summary
        model.save(os.path.join(args.out, "model.keras"))
        elbo = float(np.mean(model.elbo(x_test[:1000], seed=0)))
        # Wait briefly for the other workers' digests (they finish the same step together).
        digests = {}
        for _ in range(100):
            digests = {}
            for i in range(strategy.cluster_resolver.cluster_spec().num_tasks("worker")):
                path = os.path.join(args.out, f"worker{i}.json")
                if os.path.exists(path):
                    with open(path) as f:
                        digests[i] = json.load(f)["weights_sha256"]
            if len(digests) == strategy.num_replicas_in_sync:
                break
            time.sleep(0.1)
        summary = {
            "workers": strategy.num_replicas_in_sync,
            "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
            "test_elbo_1000": elbo,
            "identical_weights_on_all_workers": len(set(digests.values())) == 1
            and len(digests) == strategy.num_replicas_in_sync,
        }
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)


def main(args=None):
    if not isinstance(args, argparse.Namespace):
        args = parse_args(args)
    problem = _shared.check_flags(args)
    if problem:
        return _shared.error(problem)
    if args.worker:
        return run_worker(args)
    return launch(args)


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
