"""One-class anomaly detection on MNIST: train on one digit, flag the others.

A VAE trained only on the "normal" digit (default 0) scores every test image with
``probae.anomaly_scores(model, x, method="log_likelihood")``: minus the importance-sampled
log p(x) (k samples, common random numbers with a fixed seed, so the scores are
reproducible). The script prints the AUROC (the normal digit against the nine others),
and saves the score histograms with the ROC curve and the per-pixel anomaly maps of the
three most normal and three most anomalous test images: ``anomaly_scores(...,
method="reconstruction", per_feature=True)``, minus the decoder's log p(x_i | z) of each
pixel at the encoder's mean code, which sums to the image's reconstruction score.

    python examples/anomaly_mnist.py --normal-class 0      # a couple of minutes on a CPU
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
    data = _shared.load(args, binarize=True, labels=True)
    if data is None:
        return 2
    (x_train, y_train), (x_test, y_test) = data
    x_normal = x_train[y_train == args.normal_class]
    print(f"training on {len(x_normal)} images of digit {args.normal_class}")

    model = probae.VAE(
        x_train.shape[1:], latent_dim=args.latent_dim, architecture="mlp", hidden_units=(256, 128)
    )
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x_normal, epochs=args.epochs, batch_size=64, verbose=args.verbose)

    x_eval, y_eval = x_test[: args.test_examples], y_test[: args.test_examples]
    scores = probae.anomaly_scores(
        model, x_eval, method="log_likelihood", seed=0, num_samples=args.num_samples
    )
    is_normal = y_eval == args.normal_class
    os.makedirs(args.out, exist_ok=True)
    plotting.plot_anomaly_scores(
        scores[is_normal],
        scores[~is_normal],
        labels=(f"digit {args.normal_class} (normal)", "other digits"),
        title=f"one-class MNIST, trained on digit {args.normal_class}: importance-sampled "
        f"-log p(x), k = {args.num_samples}",
        score_label="-log p(x), nats (higher = more anomalous)",
        path=os.path.join(args.out, "scores_roc.png"),
    )
    auroc = float(roc_auc_score(~is_normal, scores))
    print(
        f"AUROC, digit {args.normal_class} against the rest: {auroc:.3f} "
        f"({is_normal.sum()} normal, {(~is_normal).sum()} anomalous test images)"
    )

    order = np.argsort(scores)
    shown = np.concatenate([order[:3], order[-3:]])  # 3 most normal, 3 most anomalous
    pixel_scores = probae.anomaly_scores(
        model, x_eval[shown], method="reconstruction", per_feature=True
    )
    plotting.plot_anomaly_map(
        x_eval[shown],
        pixel_scores,
        n=6,
        scores=scores[shown],
        pixel_label="-log p(x_i | z) of each pixel, nats (higher = more anomalous)",
        title=f"the 3 most normal (left) and 3 most anomalous (right) of {len(x_eval)} test "
        "images, by -log p(x)",
        path=os.path.join(args.out, "anomaly_maps.png"),
    )
    print(f"figures saved in {args.out}/")
    return {
        "auroc": auroc,
        "scores": scores,
        "pixel_scores": pixel_scores,
        "shown": x_eval[shown],
        "model": model,
    }


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=20, out="out/anomaly_mnist")
    p.add_argument("--normal-class", type=int, default=0, choices=range(10))
    p.add_argument("--latent-dim", type=int, default=8, help="size of the code")
    p.add_argument("--num-samples", type=int, default=100, help="importance samples k")
    p.add_argument("--test-examples", type=int, default=2000, help="test images scored")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
