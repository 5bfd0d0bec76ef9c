"""Autoencoder-family comparisons on binarized MNIST, larger than the tests run.

  conv:   a convolutional VAE vs an MLP VAE of similar parameter count, same epochs.
  priors: the same MLP VAE with a standard normal, a mixture-of-Gaussians and a VampPrior.

Reports the test ELBO (mean over test images, nats; 10 samples for the learned priors'
Monte Carlo KL) and its paired standard error against the baseline. Example:

  python benchmarks/autoencoder_family.py --what conv priors --train 10000 --epochs 10 \
      --data-dir ../shared/datasets
"""

import argparse
import json
import time

import keras
import numpy as np

import probae


def _size(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _run(name, model, x, xt, args, image=False):
    if image:
        x, xt = x.reshape(-1, 28, 28, 1), xt.reshape(-1, 28, 28, 1)
    keras.utils.set_random_seed(args.seed)
    start = time.time()
    model.fit(x, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    seconds = time.time() - start
    elbo = model.elbo(xt, num_samples=10, seed=0)
    print(
        json.dumps(
            {
                "model": name,
                "parameters": _size(model),
                "train_seconds": round(seconds, 1),
                "test_elbo": round(float(elbo.mean()), 2),
            }
        ),
        flush=True,
    )
    return elbo


def _compare(results, baseline):
    for name, elbo in results.items():
        if name != baseline:
            gain = elbo - results[baseline]
            print(
                f"  {name} - {baseline}: {gain.mean():+.2f} +- {gain.std() / np.sqrt(len(gain)):.2f} nats"
            )


def main(args):
    x, _, xt = probae.datasets.load_binarized_mnist(data_dir=args.data_dir)
    x, xt = x[: args.train], xt[: args.test]
    print(
        f"binarized MNIST: {len(x)} train, {len(xt)} test, {args.epochs} epochs, batch {args.batch_size}"
    )
    if "conv" in args.what:
        results = {
            "conv VAE": _run(
                "conv VAE",
                probae.VAE((28, 28, 1), args.latent_dim, architecture="conv", hidden_units=(128,)),
                x,
                xt,
                args,
                image=True,
            ),
            "MLP VAE": _run(
                "MLP VAE", probae.VAE((784,), args.latent_dim, hidden_units=(400, 400)), x, xt, args
            ),
        }
        _compare(results, "MLP VAE")
    if "priors" in args.what:
        priors = {
            "standard normal": None,
            "mixture of Gaussians (10)": probae.MixtureOfGaussiansPrior(10),
            f"VampPrior ({args.pseudo_inputs})": probae.VampPrior(
                args.pseudo_inputs, pseudo_input_range=(0, 1)
            ),
        }
        results = {
            name: _run(name, probae.VAE((784,), args.latent_dim, prior=prior), x, xt, args)
            for name, prior in priors.items()
        }
        _compare(results, "standard normal")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--what", nargs="+", choices=("conv", "priors"), default=["conv", "priors"])
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--pseudo-inputs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory of binarized_mnist.npz (default: $PROBAE_DATA_DIR)",
    )
    main(parser.parse_args())
