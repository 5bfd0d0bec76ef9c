"""The cost of checking a tf.data.Dataset's batches as they stream into ``fit``.

``fit`` maps ``probae.inputs.check_dataset`` over a dataset: per batch, a finiteness test
and the decoder's support bounds (a few reductions). This times one epoch of the
784-200-200-50 MLP VAE on binarized MNIST (batch 100), the same compiled model trained by
Keras' ``fit`` on the dataset with the check mapped over it and without it (so nothing
else differs), and prints the ratio. Epochs alternate; medians of ``--reps``.

    python benchmarks/stream_validation.py --examples 20000 --reps 5
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "datasets"
)
if "PROBAE_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["PROBAE_DATA_DIR"] = os.path.abspath(_SHARED)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import probae  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=20000)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    x = probae.datasets.load_binarized_mnist()[0][: args.examples]
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(100).prefetch(2)
    model = probae.VAE((784,), 50, hidden_units=(200, 200), activation="tanh")
    model.compile(keras.optimizers.Adam(1e-3))
    checked = probae.inputs.check_dataset(model, dataset)
    feeds = {"checked": checked, "unchecked": dataset}
    for data in feeds.values():  # trace
        keras.Model.fit(model, data, epochs=1, verbose=0, shuffle=False)
    times = {name: [] for name in feeds}
    for _ in range(args.reps):
        for name, data in feeds.items():
            start = time.perf_counter()
            keras.Model.fit(model, data, epochs=1, verbose=0, shuffle=False)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:10s} {v:.3f} s per epoch ({args.examples / v:.0f} examples/s)")
    print(f"checked / unchecked time: {med['checked'] / med['unchecked']:.3f}")


if __name__ == "__main__":
    main()
