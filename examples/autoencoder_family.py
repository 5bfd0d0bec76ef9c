"""The autoencoder family side by side: vanilla, sparse, denoising, convolutional and a VAE.

All five are the one probae model with different parts (see the table in
docs/guide/models.md, "The autoencoder family, as configurations"): a
point-mass encoder for the four autoencoders (plus a sparsity penalty on sigmoid codes,
masking noise on the input in training, or convolutional networks), a Gaussian encoder
and the ELBO for the VAE. They train on the same binarised images for the same epochs
with the same code size and a Bernoulli decoder, so their test reconstruction
log-likelihoods, log p(x | z = mean of q(z|x)) in nats, are comparable. The script
prints a table of that, the parameter count and the training time, and saves one figure:
the test inputs in the top row, each model's reconstructions below.

The VAE and the sparse autoencoder reconstruct worse by design: their objectives trade
reconstruction for a regular (VAE) or sparse code. The denoising autoencoder is trained
on corrupted inputs and evaluated on clean ones.

    python examples/autoencoder_family.py                   # MNIST, a few minutes on a laptop CPU
    python examples/autoencoder_family.py --dataset digits  # 8 x 8 digits, offline, seconds
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import os
import time

import keras
import numpy as np

import probae
from probae import plotting


def family(input_shape, latent_dim, hidden_units):
    """The five models, by display name. Only the configuration differs."""
    dense = {"architecture": "mlp", "hidden_units": hidden_units, "likelihood": "bernoulli"}
    return {
        "vanilla": lambda: probae.Autoencoder(input_shape, latent_dim, **dense),
        "sparse": lambda: probae.SparseAutoencoder(input_shape, latent_dim, sparsity=0.05, **dense),
        "denoising": lambda: probae.DenoisingAutoencoder(
            input_shape, latent_dim, corruption=0.25, **dense
        ),
        "convolutional": lambda: probae.Autoencoder(
            input_shape,
            latent_dim,
            likelihood="bernoulli",
            architecture="conv",
            filters=(16, 32),
            hidden_units=(hidden_units[-1],),
        ),
        "VAE": lambda: probae.VAE(input_shape, latent_dim, **dense),
    }


def reconstruction_log_likelihood(model, x):
    """log p(x | z) per example at z = the posterior's point estimate (minus probae's
    "reconstruction" anomaly score, computed by the library's one estimator)."""
    return -probae.anomaly_scores(model, x, method="reconstruction")


def main(args):
    keras.utils.set_random_seed(args.seed)
    data = _shared.load(args, binarize=True)  # images H x W x 1, binary pixels
    if data is None:
        return 2
    (x_train, _), (x_test, _) = data
    shape = x_train.shape[1:]
    print(
        f"{len(x_train)} training and {len(x_test)} test images of shape {shape}, "
        f"{args.epochs} epochs each, code size {args.latent_dim}"
    )

    rows, reconstructions = [], {}
    for name, build in family(shape, args.latent_dim, tuple(args.hidden_units)).items():
        keras.utils.set_random_seed(args.seed)
        model = build()
        model.compile(keras.optimizers.Adam(args.learning_rate))
        print(f"training {name}", flush=True)
        start = time.perf_counter()
        model.fit(x_train, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose)
        seconds = time.perf_counter() - start
        log_lik = float(np.mean(reconstruction_log_likelihood(model, x_test)))
        rows.append(
            {
                "model": name,
                "reconstruction_log_likelihood": log_lik,
                "parameters": int(model.count_params()),
                "seconds": seconds,
            }
        )
        reconstructions[name] = model.reconstruct(x_test[: args.columns])

    print()
    print(f"{'model':<14} {'test log p(x|z) (nats)':>23} {'parameters':>11} {'train time (s)':>15}")
    for r in rows:
        print(
            f"{r['model']:<14} {r['reconstruction_log_likelihood']:>23.2f} "
            f"{r['parameters']:>11,} {r['seconds']:>15.1f}"
        )

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "reconstructions.png")
    n = min(args.columns, len(x_test))
    plotting.plot_images(
        np.concatenate([x_test[:n], *reconstructions.values()]),
        ncols=n,
        row_labels=["input", *reconstructions],
        path=path,
    )
    print(f"figure saved in {path}")
    return rows


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=5, out="out/autoencoder_family")
    p.add_argument("--latent-dim", type=int, default=32, help="code size of every model")
    p.add_argument(
        "--hidden-units",
        type=int,
        nargs="+",
        default=[256, 128],
        help="dense layers of the MLP encoders (mirrored in the decoders)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--columns", type=int, default=10, help="test images in the figure")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
