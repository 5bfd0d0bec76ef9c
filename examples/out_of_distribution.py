"""Out-of-distribution detection: a VAE trained on Fashion-MNIST, tested on MNIST digits.

A likelihood model should give a lower log p(x) to images unlike its training data, so
minus log p(x) is an out-of-distribution score. It is not a safe one: Nalisnick et al.
(2019, "Do deep generative models know what they don't know?") found deep generative
models trained on grey-level Fashion-MNIST giving *higher* likelihood to MNIST, whose
images are simpler. With binarised images and this VAE the score works, but imperfectly:
at the default settings Fashion-MNIST test images get about 0.23 bits per pixel, MNIST
about 0.34, and the AUROC is about 0.79 (measured once, seed 0, on the local copy of
Fashion-MNIST that holds 8 of its 10 classes). Swap the roles with
--train mnist. The script prints both likelihoods (bits per pixel) and the AUROC and
saves the histograms with the ROC curve.

    python examples/out_of_distribution.py                 # a few minutes on a laptop CPU
    python examples/out_of_distribution.py --train mnist
"""

import os

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

import probae
from probae import plotting

try:
    from examples import _shared
except ImportError:  # run as a script
    import _shared


def main(args):
    keras.utils.set_random_seed(args.seed)
    other = "mnist" if args.train == "fashion_mnist" else "fashion_mnist"
    args.dataset = args.train
    inside = _shared.load(args, binarize=True, offline_hint=False)
    if inside is None:
        return 2
    args.dataset = other
    outside = _shared.load(args, binarize=True, offline_hint=False)
    if outside is None:
        return 2
    (x_train, _), (x_in, _) = inside
    (_, _), (x_out, _) = outside
    x_in, x_out = x_in[: args.test_examples], x_out[: args.test_examples]

    model = probae.VAE(x_train.shape[1:], latent_dim=args.latent_dim, architecture="mlp",
                       hidden_units=(256, 128))
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x_train, epochs=args.epochs, batch_size=128, verbose=args.verbose)

    ll_in = model.log_likelihood(x_in, num_samples=args.num_samples, seed=0)
    ll_out = model.log_likelihood(x_out, num_samples=args.num_samples, seed=0)
    bits = 784 * np.log(2.0)
    auroc = float(roc_auc_score(np.r_[np.zeros(len(ll_in)), np.ones(len(ll_out))],
                                -np.r_[ll_in, ll_out]))
    print(f"trained on {args.train}: {-ll_in.mean() / bits:.3f} bits/pixel on its test set, "
          f"{-ll_out.mean() / bits:.3f} bits/pixel on {other}")
    print(f"AUROC of minus log p(x), {other} as the anomalies: {auroc:.3f}")
    os.makedirs(args.out, exist_ok=True)
    plotting.plot_anomaly_scores(-ll_in, -ll_out, labels=(f"{args.train} (in)", f"{other} (out)"),
                                 path=os.path.join(args.out, "scores_roc.png"))
    print(f"figure saved in {args.out}/scores_roc.png")
    return {"auroc": auroc, "log_likelihood_in": float(ll_in.mean()),
            "log_likelihood_out": float(ll_out.mean())}


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=10, out="out/out_of_distribution", dataset=None)
    p.add_argument("--train", default="fashion_mnist", choices=("fashion_mnist", "mnist"),
                   help="training data; the other dataset is the out-of-distribution one")
    p.add_argument("--latent-dim", type=int, default=16, help="size of the code")
    p.add_argument("--num-samples", type=int, default=100, help="importance samples k")
    p.add_argument("--test-examples", type=int, default=2000, help="images scored per set")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
