"""A conditional VAE: digits generated on demand, one row per digit.

The encoder sees (x, c) and the decoder (z, c), where c is the one-hot label; the model
maximises the ELBO of p(x given c). Generating with c fixed to a digit and z drawn from
the prior gives that digit in varying styles: each column shares one z, so a column keeps
its style (slant, thickness) across the ten digits.

    python examples/conditional_vae.py               # a few minutes on a laptop CPU
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
    data = _shared.load(args, binarize=True, labels=True)
    if data is None:
        return 2
    (x_train, y_train), (x_test, y_test) = data
    classes = 10
    c_train = keras.utils.to_categorical(y_train, classes)
    c_test = keras.utils.to_categorical(y_test, classes)

    model = probae.ProbabilisticAutoencoder(
        encoder=probae.GaussianEncoder(
            args.latent_dim, architecture="mlp", hidden_units=(256, 128)
        ),
        decoder=probae.BernoulliDecoder(architecture="mlp", hidden_units=(128, 256)),
        condition_shape=(classes,),
        input_shape=x_train.shape[1:],
        name="conditional_vae",
    )
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(
        x_train,
        c_train,
        epochs=args.epochs,
        batch_size=128,
        validation_data=(x_test, c_test),
        verbose=args.verbose,
    )
    elbo = float(model.elbo(x_test, condition=c_test).mean())
    print(f"test ELBO of p(x given label): {elbo:.2f} nats")

    # One row per digit, one column per shared z from the prior.
    z = model.prior.distribution(model.encoder).sample(args.columns, seed=[args.seed, 1])
    z = np.tile(np.asarray(z), (classes, 1))
    c = np.repeat(np.eye(classes, dtype="float32"), args.columns, axis=0)
    images = model.decode(z, condition=c).mean()
    os.makedirs(args.out, exist_ok=True)
    plotting.plot_images(
        images,
        ncols=args.columns,
        row_labels=range(classes),
        path=os.path.join(args.out, "digits_by_row.png"),
    )
    print(f"figure saved in {args.out}/digits_by_row.png")
    return {"elbo": elbo, "images": np.asarray(images)}


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=10, out="out/conditional_vae")
    p.add_argument("--latent-dim", type=int, default=8, help="size of the code")
    p.add_argument("--columns", type=int, default=10, help="styles (columns) in the grid")
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
