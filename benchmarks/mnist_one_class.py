"""One-class MNIST: each digit normal in turn, the nine others anomalous.

For each digit, ``probae.AnomalyDetector(architecture="mlp")`` is fitted on that digit's
training images only (its image defaults otherwise: latent 16, a Gaussian decoder with
fixed scale 0.1, about 10,000 training steps for the MLP, scored by -log p(x); the MLP
beat the detector's default CNN on these small digits) and scores the 10,000 test images;
AUROC per digit and the mean (published VAE figures reach a mean of about 0.97; Abati et
al. 2019, table 1).

    nice -n 10 python benchmarks/mnist_one_class.py
    nice -n 10 python benchmarks/mnist_one_class.py --digits 8 2 --likelihood bernoulli --epochs 10
    nice -n 10 python benchmarks/mnist_one_class.py --digits 8 --architecture conv --epochs 30
"""

import argparse
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(args):
    from sklearn.metrics import roc_auc_score

    import probae

    data_dir = args.data_dir if os.path.isdir(args.data_dir) else None

    (x_train, y_train), (x_test, y_test) = probae.datasets.load_mnist(data_dir)
    if args.test < len(x_test):
        keep = np.random.default_rng(0).permutation(len(x_test))[: args.test]
        x_test, y_test = x_test[keep], y_test[keep]
    print("| digit | AUROC | fit + score s |")
    print("|---|---|---|")
    aucs = []
    for digit in args.digits:
        start = time.perf_counter()
        det = probae.AnomalyDetector(
            architecture=args.architecture,
            likelihood=args.likelihood,
            epochs=args.epochs,
            num_samples=args.num_samples,
            method=args.method,
            random_state=args.seed,
        ).fit(x_train[y_train == digit])
        score = -det.score_samples(x_test)
        auc = roc_auc_score(y_test != digit, score)
        aucs.append(auc)
        print(f"| {digit} | {auc:.4f} | {time.perf_counter() - start:.0f} |", flush=True)
    print(f"| **mean** | {np.mean(aucs):.4f} | |")


def _epochs(value):
    return value if value == "auto" else int(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument(
        "--architecture",
        default="mlp",
        choices=["auto", "mlp", "conv"],
        help="default mlp: on MNIST it beat the detector's default CNN (see BENCHMARKS.md)",
    )
    parser.add_argument(
        "--likelihood",
        default="auto",
        choices=["auto", "gaussian", "bernoulli", "student_t"],
        help="auto: the detector's image default (Gaussian, fixed scale 0.1)",
    )
    parser.add_argument(
        "--epochs",
        type=_epochs,
        default="auto",
        help="'auto' (the detector's rule: about 10,000 steps with the MLP, 100 epochs here; "
        "1,000 with the CNN) or an integer",
    )
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--method", default=None)
    parser.add_argument("--test", type=int, default=10000, help="test images scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        default=str(REPO.parent / "shared" / "datasets"),
        help="directory of mnist.npz / fashion_partial.npz (else PROBAE_DATA_DIR)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
