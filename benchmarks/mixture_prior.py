"""Speed of learned mixture priors: probae's ``DiagonalGaussianMixture`` against TFP's
generic ``tfd.MixtureSameFamily`` and a hand-written ``tf.function`` of the same maths.

The VampPrior (K = 500 pseudo-inputs) and the mixture-of-Gaussians prior evaluate
log p(z) for every code of a batch against every component. TFP's generic mixture
broadcasts to [codes, K, d]; probae's computes the same sum of squares with two matrix
products in float64 (see ``probae.distributions.DiagonalGaussianMixture``). Two measurements,
contestants interleaved, medians of ``--reps``:

1. log p(z) and its gradient for 500 codes (an IWAE-5 batch of 100), K = 500, d = 50;
2. ``fit`` of the IWAE-5 VampPrior model of ``benchmarks/nll_binarized_mnist.py``
   (784-200-200-50 tanh, 500 pseudo-inputs) for ``--steps`` batches of 100 binarized
   MNIST images, with probae's mixture and with TFP's generic one swapped in.

    python benchmarks/mixture_prior.py                 # about 2 minutes on 2 CPU cores
    python benchmarks/mixture_prior.py --steps 50 --reps 3
"""

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)
_SHARED = os.path.join(_REPO, "..", "shared", "datasets")
if "PROBAE_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["PROBAE_DATA_DIR"] = os.path.abspath(_SHARED)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

import probae  # noqa: E402

tfd = tfp.distributions


def handwritten_log_prob(z, loc, scale):
    """log (1/K) sum_k N(z; loc_k, diag(scale_k^2)), written out with tf ops (float64
    matrix products, as probae's)."""
    inv_var = tf.cast(tf.math.reciprocal(tf.square(scale)), tf.float64)
    m = tf.cast(loc, tf.float64)
    flat = tf.cast(tf.reshape(z, [-1, z.shape[-1]]), tf.float64)
    quadratic = (
        tf.matmul(tf.square(flat), inv_var, transpose_b=True)
        - 2.0 * tf.matmul(flat, m * inv_var, transpose_b=True)
        + tf.reduce_sum(tf.square(m) * inv_var, -1)
    )
    log_norm = -tf.reduce_sum(tf.math.log(tf.cast(scale, tf.float64)), -1) - 0.5 * z.shape[
        -1
    ] * math.log(2 * math.pi)
    out = tf.reduce_logsumexp(log_norm - 0.5 * quadratic, -1) - math.log(loc.shape[0])
    return tf.reshape(tf.cast(out, z.dtype), tf.shape(z)[:-1])


def time_log_prob(reps, calls):
    rng = np.random.default_rng(0)
    k, d = 500, 50
    loc = tf.Variable(rng.normal(size=(k, d)).astype("float32"))
    scale = tf.Variable(np.exp(rng.normal(size=(k, d)) * 0.5 - 1).astype("float32"))
    z = tf.constant(rng.normal(size=(5, 100, d)).astype("float32"))

    def mixture(cls):
        return lambda: cls(
            tfd.Categorical(logits=tf.zeros([k])), tfd.MultivariateNormalDiag(loc, scale)
        ).log_prob(z)

    contestants = {
        "TFP MixtureSameFamily": mixture(tfd.MixtureSameFamily),
        "probae DiagonalGaussianMixture": mixture(probae.distributions.DiagonalGaussianMixture),
        "hand-written tf.function": lambda: handwritten_log_prob(z, loc, scale),
    }
    steps = {}
    for name, f in contestants.items():

        def step(f=f):
            with tf.GradientTape() as tape:
                total = tf.reduce_sum(f())
            return total, tape.gradient(total, [loc, scale])

        steps[name] = tf.function(step)
        steps[name]()  # trace
    values = {name: float(s()[0]) for name, s in steps.items()}
    times = {name: [] for name in steps}
    for _ in range(reps):
        for name, s in steps.items():
            t = time.perf_counter()
            for _ in range(calls):
                s()
            times[name].append((time.perf_counter() - t) / calls * 1000)
    print(f"\nlog p(z) + gradient, 500 codes, K = 500, d = 50 (median of {reps} x {calls} calls):")
    for name in steps:
        print(
            f"  {name:32s} {statistics.median(times[name]):7.2f} ms   (sum of log p = {values[name]:.2f})"
        )
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"  probae / hand-written = {med['probae DiagonalGaussianMixture'] / med['hand-written tf.function']:.2f}; "
        f"TFP generic / probae = {med['TFP MixtureSameFamily'] / med['probae DiagonalGaussianMixture']:.1f}"
    )


class GenericVampPrior(probae.VampPrior):
    """probae's VampPrior with TFP's generic mixture: the slow reference."""

    def distribution(self, encoder=None):
        fast = super().distribution(encoder)
        return tfd.MixtureSameFamily(fast.mixture_distribution, fast.components_distribution)


def time_fit(steps, reps):
    x = probae.datasets.load_binarized_mnist()[0][: steps * 100]
    models = {}
    for name, prior_cls in (
        ("probae mixture", probae.VampPrior),
        ("TFP generic mixture", GenericVampPrior),
    ):
        keras.utils.set_random_seed(0)
        model = probae.VAE(
            objective=probae.IWAE(num_samples=5),
            input_shape=(784,),
            latent_dim=50,
            likelihood="bernoulli",
            prior=prior_cls(num_pseudo_inputs=500, pseudo_input_range=(0.0, 1.0)),
            architecture="mlp",
            hidden_units=(200, 200),
            activation="tanh",
            seed=0,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(x[:1000], batch_size=100, epochs=1, verbose=0)  # trace
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(reps):
        for name, model in models.items():
            t = time.perf_counter()
            model.fit(x, batch_size=100, epochs=1, verbose=0)
            times[name].append(len(x) / (time.perf_counter() - t))
    print(
        f"\nfit, IWAE-5 with a 500-pseudo-input VampPrior, 784-200-200-50, {steps} batches of 100 "
        f"(median of {reps}):"
    )
    for name, t in times.items():
        print(f"  {name:22s} {statistics.median(t):8.0f} examples/s")
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"  speed-up = {med['probae mixture'] / med['TFP generic mixture']:.2f}x")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--calls", type=int, default=20, help="log_prob calls per repetition")
    p.add_argument("--steps", type=int, default=100, help="fit: batches per repetition")
    p.add_argument("--threads", type=int, default=None, help="TF intra-op threads (default: TF's)")
    args = p.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    print(f"TensorFlow {tf.__version__}, TFP {tfp.__version__}, {os.cpu_count()} CPUs")
    time_log_prob(args.reps, args.calls)
    if args.steps:
        time_fit(args.steps, args.reps)


if __name__ == "__main__":
    main()
