"""Quickstart: a variational autoencoder on MNIST in about 30 lines.

Trains a VAE with a 2-D code, reports the test ELBO and the importance-sampled
log-likelihood, and saves reconstructions, prior samples, the learned 2-D manifold and
the training curves as PNGs.

    python examples/quickstart.py                     # MNIST, about 3 minutes on 2 CPU cores
    python examples/quickstart.py --dataset digits    # 8 x 8 digits bundled with scikit-learn
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import argparse
import os
import sys

import keras

import probae
from probae import plotting


def main(args):
    keras.utils.set_random_seed(args.seed)
    data = _shared.load_dataset(args)  # None after a one-line message (no data, bad flags)
    if data is None:
        return 2
    (x_train, _), (x_test, _) = data
    # Binary pixels make the Bernoulli decoder a proper likelihood.
    x_train = (x_train[: args.max_examples] > 0.5).astype("float32")
    x_test = (x_test[: args.max_examples] > 0.5).astype("float32")

    model = probae.VAE(
        x_train.shape[1:],
        latent_dim=args.latent_dim,
        likelihood="bernoulli",
        architecture="mlp",
        hidden_units=(256, 128),
    )
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit(
        x_train, epochs=args.epochs, batch_size=128, validation_data=x_test, verbose=args.verbose
    )

    elbo = model.elbo(x_test).mean()
    log_px = model.log_likelihood(
        x_test[:1000], num_samples=args.num_samples, seed=0, verbose=args.verbose
    ).mean()
    print(
        f"test ELBO {elbo:.2f} nats; log p(x) {log_px:.2f} nats "
        f"(importance sampling, k={args.num_samples}, first 1000 test images)"
    )

    os.makedirs(args.out, exist_ok=True)
    plotting.plot_reconstructions(
        x_test[:10],
        model.reconstruct(x_test[:10]),
        path=os.path.join(args.out, "reconstructions.png"),
    )
    plotting.plot_samples(model, n=32, ncols=8, path=os.path.join(args.out, "samples.png"))
    if model.latent_dim == 2:
        plotting.plot_manifold(model, n=15, path=os.path.join(args.out, "manifold.png"))
    plotting.plot_history(history, path=os.path.join(args.out, "training.png"))
    print(f"figures saved in {args.out}/")
    return {"elbo": float(elbo), "log_likelihood": float(log_px)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--out", default="out/quickstart", help="output directory for the PNGs")
    parser.add_argument("--dataset", default="mnist", choices=probae.datasets.DATASETS)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory holding the dataset files (default: $PROBAE_DATA_DIR, else download)",
    )
    parser.add_argument("--latent-dim", type=int, default=2, help="size of the code (default 2)")
    parser.add_argument(
        "--num-samples",
        type=int,
        default=500,
        help="importance samples k for log p(x) (default 500)",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="use only this many training and test examples (for quick runs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = main(parse_args())
    sys.exit(result if isinstance(result, int) else 0)
