"""Out-of-distribution detection: a VAE trained on Fashion-MNIST, tested on MNIST digits.

A likelihood model should give a lower log p(x) to images unlike its training data, so
minus log p(x) is an out-of-distribution score. It is not a safe one: Nalisnick et al.
(2019, "Do deep generative models know what they don't know?") found deep generative
models trained on Fashion-MNIST giving *higher* likelihood to MNIST, whose images are
simpler (mostly black background). The script measures two scores on held-out images of
both sets, with the other dataset as the anomalies:

- raw: ``probae.anomaly_scores(model, x, method="log_likelihood")`` = -log p(x)
  (importance-sampled, k samples);
- corrected: ``method="likelihood_ratio", background="complexity"`` = -log p(x) - L(x),
  with L(x) the deflate-compressed length of the image in nats (Serra et al. 2020): a
  likelihood ratio against a universal model of image complexity, which divides out how
  simple an image is.

It prints both AUROCs and saves a figure for each (score histograms and ROC curve). The
images are grey-level under a Bernoulli decoder (as in BENCHMARKS.md); --binarize
thresholds them at 0.5. The measured figures are in BENCHMARKS.md ("Out-of-distribution",
benchmarks/anomaly_ood_fashion_mnist.py, the same comparison): raw AUROC 0.365 (below
0.5: MNIST looks *more* normal), corrected 0.994. Swap the roles with --train mnist.

    python examples/out_of_distribution.py                 # a few minutes on a laptop CPU
    python examples/out_of_distribution.py --train mnist
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import os

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

import probae
from probae import plotting


def main(args):
    keras.utils.set_random_seed(args.seed)
    other = "mnist" if args.train == "fashion_mnist" else "fashion_mnist"
    args.dataset = args.train
    inside = _shared.load(args, binarize=args.binarize, offline_hint=False)
    if inside is None:
        return 2
    args.dataset = other
    outside = _shared.load(args, binarize=args.binarize, offline_hint=False)
    if outside is None:
        return 2
    (x_train, _), (x_in, _) = inside
    (_, _), (x_out, _) = outside
    x_in, x_out = x_in[: args.test_examples], x_out[: args.test_examples]

    model = probae.VAE(
        x_train.shape[1:],
        latent_dim=args.latent_dim,
        architecture="mlp",
        likelihood="bernoulli",
        hidden_units=(256, 128),
    )
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x_train, epochs=args.epochs, batch_size=128, verbose=args.verbose)

    x_eval = np.concatenate([x_in, x_out])
    is_out = np.r_[np.zeros(len(x_in)), np.ones(len(x_out))]
    kwargs = dict(seed=0, num_samples=args.num_samples)
    raw = probae.anomaly_scores(model, x_eval, method="log_likelihood", **kwargs)
    ratio = probae.anomaly_scores(
        model, x_eval, method="likelihood_ratio", background="complexity", **kwargs
    )
    auroc, auroc_ratio = (float(roc_auc_score(is_out, s)) for s in (raw, ratio))
    bits = np.prod(x_train.shape[1:]) * np.log(2.0)
    n_in = len(x_in)
    print(
        f"trained on {args.train}: -log p(x) {raw[:n_in].mean() / bits:.3f} bits/pixel on its "
        f"test set, {raw[n_in:].mean() / bits:.3f} bits/pixel on {other}"
    )
    print(f"AUROC, {other} as the anomalies:")
    print(f"  raw -log p(x)                                 {auroc:.3f}")
    print(f"  likelihood ratio against complexity (Serra)   {auroc_ratio:.3f}")
    os.makedirs(args.out, exist_ok=True)
    labels = (f"{args.train} (in)", f"{other} (out)")
    plotting.plot_anomaly_scores(
        raw[:n_in],
        raw[n_in:],
        labels=labels,
        title=f"raw score: -log p(x) under the {args.train} VAE",
        score_label="-log p(x), nats (higher = more anomalous)",
        path=os.path.join(args.out, "scores_roc.png"),
    )
    plotting.plot_anomaly_scores(
        ratio[:n_in],
        ratio[n_in:],
        labels=labels,
        title="likelihood ratio against image complexity (Serra et al. 2020): -log p(x) - L(x)",
        score_label="-log p(x) - L(x), nats (higher = more anomalous)",
        path=os.path.join(args.out, "likelihood_ratio_roc.png"),
    )
    print(f"figures saved in {args.out}/: scores_roc.png (raw), likelihood_ratio_roc.png")
    return {
        "auroc": auroc,
        "auroc_likelihood_ratio": auroc_ratio,
        "log_likelihood_in": float(-raw[:n_in].mean()),
        "log_likelihood_out": float(-raw[n_in:].mean()),
    }


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=10, out="out/out_of_distribution", dataset=None)
    p.add_argument(
        "--train",
        default="fashion_mnist",
        choices=("fashion_mnist", "mnist"),
        help="training data; the other dataset is the out-of-distribution one",
    )
    p.add_argument("--binarize", action="store_true", help="threshold the images at 0.5")
    p.add_argument("--latent-dim", type=int, default=16, help="size of the code")
    p.add_argument("--num-samples", type=int, default=100, help="importance samples k")
    p.add_argument("--test-examples", type=int, default=2000, help="images scored per set")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
