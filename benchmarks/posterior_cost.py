"""Training cost of richer posteriors and deeper latents, beside the one-layer VAE.

Builds the models of ``benchmarks/nll_binarized_mnist.py`` (``make_model``, the same flags
and defaults: ``vae``, ``iaf``, ``hvae``) and times ``--steps`` training steps of each on
binarized MNIST batches of ``--batch-size``, after one traced warm-up call. The models take
turns ``--repeats`` times and the fastest turn of each counts (which damps the noise of a
shared machine); the time per epoch is that per-step time times the steps of one epoch
over the 50,000 training images. Prints one line per model and the ratio to the first.

Example (the numbers in BENCHMARKS.md, "Flow posteriors and two stochastic layers"):
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python benchmarks/posterior_cost.py \
        --models vae iaf hvae --hvae-latent 40 40
"""

import argparse
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "PROBAE_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "datasets").is_dir():
    os.environ["PROBAE_DATA_DIR"] = str(REPO.parent / "shared" / "datasets")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from nll_binarized_mnist import build_parser, make_model  # noqa: E402

import probae  # noqa: E402


def model_args(model, args):
    """The nll benchmark's flags for ``model`` (its defaults, with our overrides)."""
    argv = ["--model", model, "--batch-size", str(args.batch_size)]
    if model == "hvae":
        argv += ["--latent", str(args.hvae_latent[0]), "--latent2", str(args.hvae_latent[1])]
    return build_parser().parse_args(argv)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", default=["vae", "iaf", "hvae"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--hvae-latent", type=int, nargs=2, default=[40, 40])
    args = p.parse_args(argv)
    keras.utils.set_random_seed(0)
    x_train, _, _ = probae.datasets.load_binarized_mnist()
    steps_per_epoch = len(x_train) // args.batch_size
    data = tf.data.Dataset.from_tensor_slices(x_train[: args.steps * args.batch_size])
    data = data.batch(args.batch_size).cache()
    models = {}
    for name in args.models:
        model = make_model(model_args(name, args))
        model.fit(data.take(2), epochs=1, verbose=0)  # trace
        models[name] = model
    best = {name: np.inf for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            t = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            best[name] = min(best[name], (time.perf_counter() - t) / args.steps)
    first = next(iter(best))
    for name, seconds in best.items():
        params = sum(int(np.prod(v.shape)) for v in models[name].trainable_variables)
        print(
            f"{name}: {1000 * seconds:.1f} ms/step, {seconds * steps_per_epoch:.1f} s/epoch "
            f"({steps_per_epoch} steps of {args.batch_size}), {params} parameters, "
            f"{seconds / best[first]:.2f}x {first}",
            flush=True,
        )


if __name__ == "__main__":
    main()
