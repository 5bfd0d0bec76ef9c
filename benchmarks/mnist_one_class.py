"""One-class MNIST (or Fashion-MNIST): each class normal in turn, the others anomalous.

For each digit, ``probae.AnomalyDetector(architecture="mlp")`` is fitted on that digit's
training images only (its image defaults otherwise: latent 16, a Gaussian decoder with
fixed scale 0.1, about 10,000 training steps for the MLP, scored by -log p(x); the MLP
beat the detector's default CNN on these small digits) and scores the 10,000 test images;
AUROC per digit and the mean (published VAE figures reach a mean of about 0.97; Abati et
al. 2019, table 1). IsolationForest (scikit-learn's defaults, ``random_state=seed``) on
the flattened pixels of the same training images scores the same test images beside it.

``--dataset fashion`` runs one-class Fashion-MNIST on ``fashion_partial.npz`` (the 8
labelled classes 0, 1, 3, 4, 5, 7, 8, 9, each normal in turn; the pooled file split by
``probae.datasets.load_fashion_mnist``, 1/7 of it as the test part, seed 0; the rows
labelled -1, classes 2 and 6, are left out of the test part).

    nice -n 10 python benchmarks/mnist_one_class.py
    nice -n 10 python benchmarks/mnist_one_class.py --dataset fashion --epochs 10 --test 2000
    nice -n 10 python benchmarks/mnist_one_class.py --digits 8 2 --likelihood bernoulli --epochs 10
    nice -n 10 python benchmarks/mnist_one_class.py --digits 8 --architecture conv --epochs 30
    nice -n 10 python benchmarks/mnist_one_class.py --n-models 3      # an ensemble of 3
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

    from sklearn.ensemble import IsolationForest

    if args.dataset == "fashion":
        (x_train, y_train), (x_test, y_test) = probae.datasets.load_fashion_mnist(data_dir)
        labelled = y_test >= 0
        x_test, y_test = x_test[labelled], y_test[labelled]
        classes = args.digits or [0, 1, 3, 4, 5, 7, 8, 9]
    else:
        (x_train, y_train), (x_test, y_test) = probae.datasets.load_mnist(data_dir)
        classes = args.digits or list(range(10))
    if args.test < len(x_test):
        keep = np.random.default_rng(0).permutation(len(x_test))[: args.test]
        x_test, y_test = x_test[keep], y_test[keep]
    print(f"{len(x_test)} test images")
    print("| class | n train | AUROC | fit + score s | IForest AUROC |")
    print("|---|---|---|---|---|")
    aucs, forest_aucs = [], []
    for digit in classes:
        start = time.perf_counter()
        det = probae.AnomalyDetector(
            architecture=args.architecture,
            likelihood=args.likelihood,
            epochs=args.epochs,
            num_samples=args.num_samples,
            method=args.method,
            n_models=args.n_models,
            random_state=args.seed,
        ).fit(x_train[y_train == digit])
        score = -det.score_samples(x_test)
        auc = roc_auc_score(y_test != digit, score)
        seconds = time.perf_counter() - start
        normal = x_train[y_train == digit].reshape(int(np.sum(y_train == digit)), -1)
        forest = IsolationForest(random_state=args.seed).fit(normal)
        forest_auc = roc_auc_score(
            y_test != digit, -forest.score_samples(x_test.reshape(len(x_test), -1))
        )
        aucs.append(auc)
        forest_aucs.append(forest_auc)
        print(
            f"| {digit} | {len(normal)} | {auc:.4f} | {seconds:.0f} | {forest_auc:.4f} |",
            flush=True,
        )
    print(f"| **mean** | | {np.mean(aucs):.4f} | | {np.mean(forest_aucs):.4f} |")


def _epochs(value):
    return value if value == "auto" else int(value)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "fashion"],
        help="fashion: fashion_partial.npz",
    )
    parser.add_argument(
        "--digits", type=int, nargs="+", default=None, help="normal classes (default: all)"
    )
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
    parser.add_argument(
        "--n-models",
        type=int,
        default=1,
        help="AnomalyDetector(n_models=...): an ensemble of models with seeds seed, seed + 1, ...",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        default=str(REPO.parent / "shared" / "datasets"),
        help="directory of mnist.npz / fashion_partial.npz (else PROBAE_DATA_DIR)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
