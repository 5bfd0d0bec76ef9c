"""Trains the 8-bit MNIST model of the compression benchmark (beta-binomial likelihood).

A VAE on the 60,000 MNIST training images as integers 0..255 (no binarisation, no
scaling of the data): ``probae.BetaBinomialDecoder`` (``likelihood="beta_binomial"``),
latent size 40 as BB-ANS (Townsend et al. 2019, 1.41 bits/dim with one hidden layer of
100 units), with wider networks: the encoder is Rescaling(1/255), Dense 512, Dense 256
(relu), the decoder Dense 256, Dense 512 (relu) and a head giving both concentrations of
every pixel. Only the weights are written (``--out``, a ``.weights.h5`` file, 6 MB, no
optimizer state) with a JSON file of the settings beside it; ``build_model`` rebuilds the same model, so
``benchmarks/compression.py`` loads it with ``load_trained``.

Training stops after ``--epochs`` or at ``--minutes`` of wall-clock time (the end of the
epoch that passes it), whichever comes first, saving the weights after every epoch;
``--resume`` continues from the saved weights (a fresh Adam state, at ``--lr``).

Example (2 shared CPU cores, in the background):
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 nice -n 10 python \
        benchmarks/train_mnist_8bit.py --epochs 100 --minutes 24 \
        --out benchmarks/runs/mnist8/model.weights.h5
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import probae  # noqa: E402

DATA = (
    pathlib.Path(os.environ.get("PROBAE_DATA_DIR", REPO.parent / "shared" / "datasets"))
    / "mnist.npz"
)
SETTINGS = {
    "latent_dim": 40,
    "encoder_units": [512, 256],
    "decoder_units": [256, 512],
    "activation": "relu",
}


def build_model(settings=SETTINGS):
    """The benchmark's 8-bit MNIST VAE (784 integer pixels, beta-binomial decoder)."""
    encoder = keras.Sequential(
        [keras.layers.Rescaling(1.0 / 255.0)]
        + [
            keras.layers.Dense(u, activation=settings["activation"])
            for u in settings["encoder_units"]
        ]
    )
    decoder = probae.BetaBinomialDecoder(
        event_shape=(784,),
        hidden_units=tuple(settings["decoder_units"]),
        activation=settings["activation"],
    )
    model = probae.VAE(
        (784,), settings["latent_dim"], likelihood=decoder, encoder_network=encoder, head=True
    )
    model.build((None, 784))
    return model


def load_trained(path):
    """The model of ``build_model`` with the weights saved at ``path`` (its settings are
    read from the JSON file beside it when present)."""
    path = pathlib.Path(path)
    meta = path.with_suffix("").with_suffix(".json")
    settings = json.loads(meta.read_text())["settings"] if meta.exists() else SETTINGS
    model = build_model(settings)
    model.load_weights(str(path))
    return model


def save_weights_only(model, path):
    """Writes the model's weights without the optimizer's state (a third of the size of
    ``model.save_weights`` of a compiled model, which includes Adam's two moments)."""
    bare = build_model()
    bare.set_weights(model.get_weights())
    bare.save_weights(str(path))


def load_mnist(split):
    with np.load(DATA) as d:
        return d[f"x_{split}"].reshape(-1, 784)


class Deadline(keras.callbacks.Callback):
    """Stops training at the end of the epoch that passes ``seconds`` and saves the
    weights after every epoch."""

    def __init__(self, seconds, out, log):
        super().__init__()
        self.start = time.time()
        self.seconds = seconds
        self.out = out
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        save_weights_only(self.model, self.out)
        elapsed = time.time() - self.start
        self.log.append(
            {
                "epoch": len(self.log) + 1,
                "seconds": round(elapsed, 1),
                **{k: float(v) for k, v in (logs or {}).items()},
            }
        )
        if elapsed > self.seconds:
            self.model.stop_training = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=100, help="0: only re-save the weights")
    parser.add_argument("--minutes", type=float, default=24.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="benchmarks/runs/mnist8/model.weights.h5")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if not out.name.endswith(".weights.h5"):
        parser.error(f"--out must end in .weights.h5. Received: {args.out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = out.with_suffix("").with_suffix(".json")
    history = json.loads(meta.read_text())["history"] if args.resume and meta.exists() else []
    model = load_trained(out) if args.resume else build_model()
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    x = load_mnist("train")
    log = []
    start = time.time()
    if args.epochs > 0:
        model.fit(
            x,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=2,
            callbacks=[Deadline(args.minutes * 60, out, log)],
        )
    save_weights_only(model, out)  # also with --epochs 0: strips an older file's Adam state
    if not log:
        print(f"no epochs trained; weights (without optimizer state) in {out}")
        return
    leg = {"lr": args.lr, "batch_size": args.batch_size, "seconds": round(time.time() - start)}
    history.append({**leg, "epochs": log})
    meta.write_text(json.dumps({"settings": SETTINGS, "history": history}, indent=1))
    total = sum(len(h["epochs"]) for h in history)
    print(f"{total} epochs in all; weights in {out}; last train -ELBO {-log[-1]['elbo']:.1f} nats")


if __name__ == "__main__":
    main()
