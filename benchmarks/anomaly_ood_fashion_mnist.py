"""Out-of-distribution detection: a VAE of Fashion-MNIST scores MNIST digits.

Raw likelihood ranks the out-of-distribution MNIST digits as *more* normal than held-out
Fashion-MNIST images (AUROC well below 0.5; Nalisnick et al. 2019): simple images with
many dark pixels are likely under any image model. The corrected score divides out a
background model of that simplicity, ``anomaly_scores(method="likelihood_ratio",
background="complexity")`` (Serra et al. 2020: minus log-likelihood minus the deflate
length of the image), or optionally a background VAE trained on perturbed Fashion images
(Ren et al. 2019, ``--background-model``).

    nice -n 10 python benchmarks/anomaly_ood_fashion_mnist.py
    nice -n 10 python benchmarks/anomaly_ood_fashion_mnist.py --train 20000 --epochs 20

Positives (label 1) are MNIST test digits, negatives held-out Fashion-MNIST images.
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
    import keras
    from sklearn.metrics import roc_auc_score

    import probae

    data_dir = args.data_dir if os.path.isdir(args.data_dir) else None

    (xf_train, _), (xf_test, _) = probae.datasets.load_fashion_mnist(data_dir)
    (_, _), (xm_test, _) = probae.datasets.load_mnist(data_dir)
    rng = np.random.default_rng(args.seed)
    xf_train = xf_train[rng.permutation(len(xf_train))[: args.train]]
    xf_test = xf_test[rng.permutation(len(xf_test))[: args.test]]
    xm_test = xm_test[rng.permutation(len(xm_test))[: args.test]]
    x_eval = np.concatenate([xf_test, xm_test])
    is_ood = np.r_[np.zeros(len(xf_test)), np.ones(len(xm_test))]

    def train(x, seed):
        keras.utils.set_random_seed(seed)
        model = probae.VAE(
            (28, 28, 1),
            args.latent_dim,
            likelihood="bernoulli",
            architecture=args.architecture,
            seed=seed,
        )
        model.fit(x, epochs=args.epochs, batch_size=128, verbose=0)
        return model

    start = time.perf_counter()
    model = train(xf_train, args.seed)
    print(f"trained on {len(xf_train)} Fashion-MNIST images in {time.perf_counter() - start:.0f} s")
    rows = []
    kwargs = dict(seed=args.seed, num_samples=args.num_samples)
    start = time.perf_counter()
    raw = probae.anomaly_scores(model, x_eval, method="log_likelihood", **kwargs)
    rows.append(("-log p(x) (raw likelihood)", roc_auc_score(is_ood, raw)))
    rows.append(
        (
            "-ELBO",
            roc_auc_score(is_ood, probae.anomaly_scores(model, x_eval, method="elbo", **kwargs)),
        )
    )
    corrected = probae.anomaly_scores(
        model, x_eval, method="likelihood_ratio", background="complexity", **kwargs
    )
    rows.append(
        ("likelihood ratio vs complexity (Serra et al. 2020)", roc_auc_score(is_ood, corrected))
    )
    if args.background_model:
        noisy = xf_train.copy()
        mask = rng.random(noisy.shape) < 0.2
        noisy[mask] = rng.random(int(mask.sum()))
        background = train(noisy, args.seed + 1)
        ratio = probae.anomaly_scores(
            model, x_eval, method="likelihood_ratio", background=background, **kwargs
        )
        rows.append(
            (
                "likelihood ratio vs perturbed-data VAE (Ren et al. 2019)",
                roc_auc_score(is_ood, ratio),
            )
        )
    print(f"scored {len(x_eval)} images in {time.perf_counter() - start:.0f} s")
    print("| score (MNIST = out-of-distribution) | AUROC |")
    print("|---|---|")
    for name, auc in rows:
        print(f"| {name} | {auc:.3f} |")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=10000, help="Fashion-MNIST training images")
    parser.add_argument("--test", type=int, default=2000, help="test images of each data set")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--architecture", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--background-model", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        default=str(REPO.parent / "shared" / "datasets"),
        help="directory of mnist.npz / fashion_partial.npz (else PROBAE_DATA_DIR)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
