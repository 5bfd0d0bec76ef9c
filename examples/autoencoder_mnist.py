"""The classic dense autoencoder (784-64-784, Adam, binary cross-entropy) as a probae model.

A deterministic autoencoder is the degenerate case of a probabilistic one: the encoder
is a point mass at the code (tfd.VectorDeterministic), the decoder a Bernoulli per pixel,
and with KL weight 0 the loss is minus the reconstruction log-likelihood, which is exactly
the binary cross-entropy summed over the 784 pixels. The script checks that identity
against keras.losses.binary_crossentropy and saves the original-and-reconstruction figure.

    python examples/autoencoder_mnist.py            # about a minute on a laptop CPU
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import os

import keras
import numpy as np

import probae
from probae import plotting


def main(args):
    keras.utils.set_random_seed(args.seed)
    data = _shared.load(args)
    if data is None:
        return 2
    (x_train, _), (x_test, _) = data
    image_shape = x_train.shape[1:]  # to draw the flat vectors as images
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    d = x_train.shape[1]

    # Encoder 784 -> 64 (ReLU code, a point mass); decoder 64 -> 784 logits (Bernoulli).
    model = probae.Autoencoder(
        (d,),
        latent_dim=args.latent_dim,
        likelihood="bernoulli",
        architecture="mlp",
        hidden_units=(),
        code_activation="relu",
    )
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(
        x_train, epochs=args.epochs, batch_size=256, validation_data=x_test, verbose=args.verbose
    )

    recon = model.reconstruct(x_test)
    bce = float(np.mean(keras.losses.binary_crossentropy(x_test, recon)))
    log_lik = float(
        model.evaluate(x_test, batch_size=256, verbose=0, return_dict=True)["reconstruction"]
    )
    print(f"test binary cross-entropy (Keras, mean per pixel): {bce:.4f}")
    print(f"minus reconstruction log-likelihood / {d}:       {-log_lik / d:.4f}")

    os.makedirs(args.out, exist_ok=True)
    plotting.plot_reconstructions(
        x_test[:10],
        recon[:10],
        image_shape=image_shape,
        path=os.path.join(args.out, "reconstructions.png"),
    )
    print(f"figure saved in {args.out}/reconstructions.png")
    return {"bce": bce, "reconstruction_log_likelihood": log_lik}


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=10, out="out/autoencoder_mnist")
    p.add_argument("--latent-dim", type=int, default=64, help="size of the code")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
