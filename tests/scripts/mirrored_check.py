"""Run in a subprocess by tests/test_distributed.py: one CPU split into two logical devices.

Trains the same model from the same initial weights on the same batches once on one device
and once under ``tf.distribute.MirroredStrategy`` over the two devices, and prints a JSON
summary (largest weight difference, epoch logs of both, seeds drawn by the replicas).
The encoder is a point mass, so no sampling noise enters the comparison; the prior is a
learned mixture and beta is annealed by a callback, so both are exercised.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import probae  # noqa: E402


def make(deterministic=True):
    enc_cls = probae.DeterministicEncoder if deterministic else probae.GaussianEncoder
    encoder = enc_cls(3, hidden_units=(16,), activation="tanh")
    decoder = probae.BernoulliDecoder(hidden_units=(16,), activation="tanh")
    prior = probae.MixtureOfGaussiansPrior(2)
    return probae.ProbabilisticAutoencoder(
        encoder, decoder, prior=prior, beta=0.5, input_shape=(20,)
    )


class Anneal(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta = 0.5 + 0.25 * epoch


def train(model, x):
    model.compile(keras.optimizers.SGD(0.05))
    hist = model.fit(x, batch_size=64, epochs=3, shuffle=False, verbose=0, callbacks=[Anneal()])
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def main():
    rng = np.random.default_rng(0)
    x = (rng.random((256, 20)) > 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    single = make()
    w0 = [w.copy() for w in single.get_weights()]
    logs_single = train(single, x)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        multi = make()
        multi.set_weights(w0)
    logs_multi = train(multi, x)
    eval_single = single.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    eval_multi = multi.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    diffs = [
        float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), multi.get_weights())
    ]
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(w0, single.get_weights())]

    # A VAE (sampled codes) under the strategy: trains, and the replicas draw different noise.
    with strategy.scope():
        vae = make(deterministic=False)
    vae_logs = train(vae, x)
    seeds = strategy.experimental_local_results(strategy.run(lambda: vae._next_seed()))
    print(
        "RESULT "
        + json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "max_weight_diff": max(diffs),
                "max_weight_moved": max(moved),
                "logs_single": logs_single,
                "logs_multi": logs_multi,
                "beta_multi": multi.beta,
                "eval_single": {k: float(v) for k, v in eval_single.items()},
                "eval_multi": {k: float(v) for k, v in eval_multi.items()},
                "vae_logs": vae_logs,
                "replica_seeds": [s.numpy().tolist() for s in seeds],
            }
        )
    )


if __name__ == "__main__":
    main()
