"""Throughput: probae's ``fit`` against a hand-written TensorFlow loop (and PyTorch).

Two models on binarized MNIST, batch 100, Adam (learning rate 1e-3):

* ``mlp``: the VAE of Kingma and Welling / Burda et al., 784-200-200-50 with tanh, a
  Gaussian encoder and a Bernoulli decoder.
* ``conv``: probae's default convolutional VAE for 28 x 28 x 1 images (two strided 3 x 3
  convolutions with 32 and 64 channels, a dense layer of 256, latent 16, the mirror image
  with transposed convolutions, relu), Bernoulli decoder.

Each is trained through ``probae``'s ``fit`` and through a hand-written ``tf.function``
loop of the same maths (raw variables, ``tf.nn`` ops, an in-memory tensor sliced into
shuffled batches), with and without XLA (``jit_compile=True``), and optionally through a
plain PyTorch loop (``pip install probae[bench]``). Contestants run interleaved, one epoch
each per repetition, so a slow spell on a shared machine hits all of them; the medians of
examples per second and the ratios are printed at the end. The importance-sampling
estimator ``model.log_likelihood`` is timed against a hand-written estimator in the same
way.

    python benchmarks/throughput.py                      # full run (minutes)
    python benchmarks/throughput.py --steps 100 --reps 3 --models mlp --no-torch  # quick
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "datasets")
if "PROBAE_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["PROBAE_DATA_DIR"] = os.path.abspath(_SHARED)

import numpy as np  # noqa: E402

BATCH = 100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,conv", help="comma-separated: mlp, conv")
    p.add_argument("--steps", type=int, default=None,
                   help="steps (batches of 100) per timed epoch; default: the full 50,000 images")
    p.add_argument("--conv-steps", type=int, default=None,
                   help="steps per timed epoch for the conv model (default: --steps)")
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median reported)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for TF and torch")
    p.add_argument("--xla", default="both", choices=["off", "on", "both"])
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    p.add_argument("--no-ll", action="store_true", help="skip the log_likelihood benchmark")
    p.add_argument("--ll-examples", type=int, default=500)
    p.add_argument("--ll-samples", type=int, default=1000)
    p.add_argument("--spe", type=int, default=1,
                   help="also time fit compiled with this explicit steps_per_execution "
                        "(default 1: Keras' per-batch loop; 0: skip). probae's default is "
                        "'auto' (10 when every callback supports it)")
    p.add_argument("--json", default=None, help="write the results to this file")
    return p.parse_args(argv)


# ---------------------------------------------------------------------- TensorFlow side
def setup_tf(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def glorot(tf, shape, rng):
    fan_in, fan_out = (shape[0], shape[1]) if len(shape) == 2 else (
        shape[0] * shape[1] * shape[2], shape[0] * shape[1] * shape[3])
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.Variable(rng.uniform(-limit, limit, size=shape).astype(np.float32))


class HandMLP:
    """784-200-200-50 tanh VAE with raw variables and tf.nn ops."""

    def __init__(self, tf, rng, latent=50, hidden=200, dim=784):
        self.tf = tf
        sizes_e = [(dim, hidden), (hidden, hidden), (hidden, 2 * latent)]
        sizes_d = [(latent, hidden), (hidden, hidden), (hidden, dim)]
        self.enc = [(glorot(tf, s, rng), tf.Variable(tf.zeros([s[1]]))) for s in sizes_e]
        self.dec = [(glorot(tf, s, rng), tf.Variable(tf.zeros([s[1]]))) for s in sizes_d]
        self.variables = [v for pair in self.enc + self.dec for v in pair]

    def _mlp(self, h, layers):
        tf = self.tf
        for i, (w, b) in enumerate(layers):
            h = tf.matmul(h, w) + b
            if i < len(layers) - 1:
                h = tf.tanh(h)
        return h

    def encode(self, x):
        return self._mlp(x, self.enc)

    def decode_logits(self, z):
        return self._mlp(z, self.dec)


class HandConv:
    """probae's default conv VAE for 28x28x1 (relu), with raw variables and tf.nn ops."""

    def __init__(self, tf, rng, latent=16):
        self.tf = tf
        v = lambda shape: glorot(tf, shape, rng)  # noqa: E731
        zeros = lambda n: tf.Variable(tf.zeros([n]))  # noqa: E731
        self.c1, self.c1b = v((3, 3, 1, 32)), zeros(32)
        self.c2, self.c2b = v((3, 3, 32, 64)), zeros(64)
        self.e1, self.e1b = v((7 * 7 * 64, 256)), zeros(256)
        self.e2, self.e2b = v((256, 2 * latent)), zeros(2 * latent)
        self.d1, self.d1b = v((latent, 256)), zeros(256)
        self.d2, self.d2b = v((256, 7 * 7 * 64)), zeros(7 * 7 * 64)
        # conv2d_transpose filters are [h, w, out, in].
        self.t1, self.t1b = v((3, 3, 64, 64)), zeros(64)
        self.t2, self.t2b = v((3, 3, 32, 64)), zeros(32)
        self.h, self.hb = v((3, 3, 32, 1)), zeros(1)
        self.variables = [self.c1, self.c1b, self.c2, self.c2b, self.e1, self.e1b, self.e2,
                          self.e2b, self.d1, self.d1b, self.d2, self.d2b, self.t1, self.t1b,
                          self.t2, self.t2b, self.h, self.hb]

    def encode(self, x):
        tf = self.tf
        h = tf.nn.relu(tf.nn.conv2d(x, self.c1, 2, "SAME") + self.c1b)
        h = tf.nn.relu(tf.nn.conv2d(h, self.c2, 2, "SAME") + self.c2b)
        h = tf.reshape(h, [tf.shape(h)[0], -1])
        h = tf.nn.relu(tf.matmul(h, self.e1) + self.e1b)
        return tf.matmul(h, self.e2) + self.e2b

    def decode_logits(self, z):
        tf = self.tf
        n = tf.shape(z)[0]
        h = tf.nn.relu(tf.matmul(z, self.d1) + self.d1b)
        h = tf.nn.relu(tf.matmul(h, self.d2) + self.d2b)
        h = tf.reshape(h, [n, 7, 7, 64])
        h = tf.nn.relu(tf.nn.conv2d_transpose(h, self.t1, [n, 14, 14, 64], 2, "SAME") + self.t1b)
        h = tf.nn.relu(tf.nn.conv2d_transpose(h, self.t2, [n, 28, 28, 32], 2, "SAME") + self.t2b)
        return tf.nn.conv2d(h, self.h, 1, "SAME") + self.hb


def hand_terms(tf, net, x, seed, k=1):
    """ELBO pieces of the hand-written model: (loc, scale, z, log p(x|z)) for k samples."""
    params = net.encode(x)
    loc, raw = tf.split(params, 2, axis=-1)
    scale = tf.nn.softplus(raw) + 1e-4
    eps = tf.random.stateless_normal(tf.concat([[k], tf.shape(loc)], 0), seed)
    z = loc + scale * eps  # [k, batch, d]
    logits = net.decode_logits(tf.reshape(z, [-1, tf.shape(loc)[-1]]))
    xt = tf.tile(x, [k] + [1] * (len(x.shape) - 1))
    log_px = -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=xt, logits=logits),
        axis=list(range(1, len(x.shape))),
    )
    return loc, scale, z, tf.reshape(log_px, [k, -1])


class HandTrainer:
    """A hand-written tf.function training loop over an in-memory tensor."""

    def __init__(self, tf, kind, x, jit, seed=0):
        import keras

        self.tf = tf
        rng = np.random.default_rng(seed)
        self.net = HandMLP(tf, rng) if kind == "mlp" else HandConv(tf, rng)
        self.opt = keras.optimizers.Adam(1e-3)
        self.opt.build(self.net.variables)
        self.x = tf.constant(x)
        self.n = len(x)
        self.seed = tf.Variable([seed, 0], dtype=tf.int64)

        def step(idx):
            xb = tf.gather(self.x, idx)
            s = tf.cast(self.seed.assign_add([0, 1]), tf.int32)
            with tf.GradientTape() as tape:
                loc, scale, _, log_px = hand_terms(tf, self.net, xb, s)
                kl = tf.reduce_sum(
                    0.5 * (tf.square(loc) + tf.square(scale)) - tf.math.log(scale) - 0.5, -1
                )
                elbo = log_px[0] - kl
                loss = -tf.reduce_mean(elbo)
            grads = tape.gradient(loss, self.net.variables)
            self.opt.apply(grads, self.net.variables)
            return loss

        self.step = tf.function(step, jit_compile=jit)

    def epoch(self, steps):
        tf = self.tf
        t0, c0 = time.perf_counter(), time.process_time()
        perm = tf.random.shuffle(tf.range(self.n))[: steps * BATCH]
        for idx in tf.reshape(perm, [steps, BATCH]):
            loss = self.step(idx)
        float(loss)  # wait for the last step
        return time.perf_counter() - t0, time.process_time() - c0


class ProbaeTrainer:
    """probae's ``fit`` on the same data; the epoch is timed by a callback (wall and CPU).

    Each repetition is one ``fit(x, epochs=1)`` call. Its one-off set-up (input
    validation, Keras' data adapter) is timed separately as ``setup_s``: it is paid once
    per ``fit`` call, not per epoch.
    """

    def __init__(self, tf, kind, x, jit, seed=0, steps_per_execution=None):
        import keras

        import probae

        keras.utils.set_random_seed(seed)
        if kind == "mlp":
            self.model = probae.VAE((784,), 50, hidden_units=(200, 200), activation="tanh")
        else:
            self.model = probae.VAE((28, 28, 1), 16, architecture="conv", hidden_units=(256,),
                                    filters=(32, 64), activation="relu")
        compile_kwargs = {} if jit is None else {"jit_compile": jit}
        if steps_per_execution is not None:  # None: probae's default ("auto")
            compile_kwargs["steps_per_execution"] = steps_per_execution
        self.model.compile(keras.optimizers.Adam(1e-3), **compile_kwargs)
        self.jit = self.model.jit_compile
        self.x = x
        self.setup_s = []
        outer = self

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                outer.last = (time.perf_counter() - self.t[0], time.process_time() - self.t[1])

        self.timer = Timer()

    def epoch(self, steps):
        n = steps * BATCH
        t0 = time.perf_counter()
        self.model.fit(self.x[:n], batch_size=BATCH, epochs=1, verbose=0, callbacks=[self.timer])
        self.setup_s.append(time.perf_counter() - t0 - self.last[0])
        return self.last


class TorchTrainer:
    """A plain PyTorch loop of the same maths (CPU, the same thread count).

    It runs in its own process (spawned, without TensorFlow): torch's OpenMP threads and
    TensorFlow's thread pools in one process slow each other down by orders of magnitude
    on a busy machine.
    """

    def __init__(self, kind, x, threads, seed=0):
        import multiprocessing as mp
        import tempfile

        self._dir = tempfile.mkdtemp(prefix="probae-bench-")
        path = os.path.join(self._dir, "x.npy")
        np.save(path, x)
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_torch_worker, args=(child, kind, path, threads, seed),
                                daemon=True)
        self.proc.start()
        msg = self.conn.recv()
        if isinstance(msg, Exception):
            raise msg

    def epoch(self, steps):
        self.conn.send(steps)
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.proc.join(10)
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)


def _torch_worker(conn, kind, path, threads, seed):
    # Idle OpenMP threads sleep instead of spinning: on a shared machine spinning
    # threads starve each other (measured here: 2 threads ran 30x slower spinning).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
        from torch import nn

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        x = np.load(path)
        F = torch.nn.functional
        if kind == "mlp":
            enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200),
                                nn.Tanh(), nn.Linear(200, 100))
            dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200),
                                nn.Tanh(), nn.Linear(200, 784))
            data = torch.from_numpy(x)
        else:
            enc = nn.Sequential(
                nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                nn.Flatten(), nn.Linear(7 * 7 * 64, 256), nn.ReLU(), nn.Linear(256, 32))
            dec = nn.Sequential(
                nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 7 * 7 * 64), nn.ReLU(),
                nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 64, 3, 2, 1, output_padding=1), nn.ReLU(),
                nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                nn.Conv2d(32, 1, 3, 1, 1))
            data = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        params = list(enc.parameters()) + list(dec.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        conn.send("ready")
    except Exception as err:  # reported to the parent
        conn.send(err)
        return
    while True:
        steps = conn.recv()
        if steps is None:
            return
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(data))[: steps * BATCH].view(steps, BATCH)
        for idx in perm:
            xb = data[idx]
            loc, raw = enc(xb).chunk(2, dim=-1)
            scale = F.softplus(raw) + 1e-4
            z = loc + scale * torch.randn_like(loc)
            logits = dec(z)
            log_px = -F.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1).sum(-1)
            kl = (0.5 * (loc**2 + scale**2) - scale.log() - 0.5).sum(-1)
            loss = -(log_px - kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        conn.send((time.perf_counter() - t0, time.process_time() - c0))


# ---------------------------------------------------------------------- likelihood
class HandLogLikelihood:
    """Hand-written importance sampling, chunked like probae's (same batch and chunk)."""

    def __init__(self, tf, model, batch, chunk, k, jit):
        self.tf = tf
        self.batch, self.chunk, self.k = batch, chunk, k
        enc, dec = model.encoder, model.decoder
        # Reuse probae's trained weights so both estimators compute the same numbers.
        weights = [tf.constant(v.numpy()) for v in enc.network.weights + enc.head.weights
                   + dec.network.weights + dec.head.weights]
        self.enc_w, self.dec_w = weights[:6], weights[6:]
        log2pi = math.log(2 * math.pi)

        def mlp(h, ws):
            for i in range(0, len(ws), 2):
                h = tf.matmul(h, ws[i]) + ws[i + 1]
                if i < len(ws) - 2:
                    h = tf.tanh(h)
            return h

        def chunk_log_w(xb, seed):
            loc, raw = tf.split(mlp(xb, self.enc_w), 2, axis=-1)
            scale = tf.nn.softplus(raw) + 1e-4
            eps = tf.random.stateless_normal(tf.concat([[self.chunk], tf.shape(loc)], 0), seed)
            z = loc + scale * eps
            logits = mlp(tf.reshape(z, [-1, tf.shape(loc)[-1]]), self.dec_w)
            log_px = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.tile(xb, [self.chunk, 1]), logits=logits), -1)
            log_pz = -0.5 * tf.reduce_sum(tf.square(z) + log2pi, -1)
            log_qz = -tf.reduce_sum(0.5 * tf.square(eps) + 0.5 * log2pi + tf.math.log(scale), -1)
            return tf.reduce_logsumexp(tf.reshape(log_px, [self.chunk, -1]) + log_pz - log_qz, 0)

        self.fn = tf.function(chunk_log_w, jit_compile=jit)

    def __call__(self, x, seed=0):
        tf = self.tf
        out = []
        n_chunks = math.ceil(self.k / self.chunk)
        for b, start in enumerate(range(0, len(x), self.batch)):
            xb = tf.constant(x[start:start + self.batch])
            parts = [self.fn(xb, tf.constant([seed + b, c], tf.int32)) for c in range(n_chunks)]
            out.append(tf.reduce_logsumexp(tf.stack(parts), 0) - math.log(n_chunks * self.chunk))
        return tf.concat(out, 0).numpy()


# ---------------------------------------------------------------------- driver
def interleave(contestants, reps, work):
    """Runs ``work(name, obj)`` for every contestant, ``reps`` rounds.

    ``work`` returns (wall seconds, CPU seconds) of the timed part, or None to time the
    whole call. Returns ``{name: [(wall, cpu), ...]}``.
    """
    times = {name: [] for name in contestants}
    for r in range(reps):
        for name, obj in contestants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = work(name, obj)
            times[name].append(out or (time.perf_counter() - t0, time.process_time() - c0))
        print(f"  rep {r + 1}/{reps}: " + ", ".join(
            f"{n} {times[n][-1][0]:.2f}s" for n in contestants), flush=True)
    return times


def medians(times, n):
    """Median examples per wall second and per CPU second."""
    return ({k: n / statistics.median(w for w, _ in t) for k, t in times.items()},
            {k: n / statistics.median(c for _, c in t) for k, t in times.items()})


def machine():
    import tensorflow as tf

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "tensorflow": tf.__version__}
    try:
        import keras
        info["keras"] = keras.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    info["load_avg_start"] = os.getloadavg()
    return info


def main(argv=None):
    args = parse_args(argv)
    tf = setup_tf(args.threads)
    from probae import datasets

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in ("mlp", "conv"):
            raise SystemExit(f"--models: unknown model {m!r} (expected mlp, conv)")
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch not installed (pip install 'probae[bench]'): skipping the torch loop")
            use_torch = False

    x_train, _, x_test = datasets.load_binarized_mnist()
    results = {"machine": machine(), "args": vars(args), "train": {}, "ratios": {}}
    for kind in models:
        steps = args.steps or len(x_train) // BATCH
        if kind == "conv" and args.conv_steps:
            steps = args.conv_steps
        x = x_train if kind == "mlp" else x_train.reshape(-1, 28, 28, 1)
        print(f"\n== {kind} VAE: {steps} steps of {BATCH} per epoch, {args.reps} reps ==", flush=True)
        contestants = {}
        for jit in jits:
            tag = "xla" if jit else "graph"
            contestants[f"probae fit ({tag})"] = ProbaeTrainer(tf, kind, x, jit)
            contestants[f"tf loop ({tag})"] = HandTrainer(tf, kind, x, jit)
        if args.spe > 0:
            contestants[f"probae fit (graph, spe={args.spe})"] = ProbaeTrainer(
                tf, kind, x, False, steps_per_execution=args.spe)
        default_jit = ProbaeTrainer(tf, kind, x[:BATCH], None).jit
        if use_torch:
            contestants["torch loop"] = TorchTrainer(kind, x, args.threads)
        print("  warm-up (tracing/compiling) ...", flush=True)
        for obj in contestants.values():
            obj.epoch(min(steps, 20))
        times = interleave(contestants, args.reps, lambda name, obj: obj.epoch(steps))
        wall, cpu = medians(times, steps * BATCH)
        setup = {n: statistics.median(o.setup_s) for n, o in contestants.items()
                 if isinstance(o, ProbaeTrainer)}
        results["train"][kind] = {"examples_per_s": wall, "examples_per_cpu_s": cpu,
                                  "seconds": times, "fit_setup_s": setup,
                                  "default_jit_compile": default_jit}
        print(f"  {'':42s} {'ex/s':>9s} {'ex/cpu-s':>9s}   (medians of {args.reps})")
        for n in wall:
            print(f"  {n:42s} {wall[n]:9.0f} {cpu[n]:9.0f}")
        print(f"  probae fit set-up per call (excluded above): "
              + ", ".join(f"{n} {v:.2f}s" for n, v in setup.items()))
        print(f"  probae's default: jit_compile={default_jit}")
        ratios = results["ratios"].setdefault(kind, {})
        for jit in jits:
            tag = "xla" if jit else "graph"
            for label, speed in (("wall", wall), ("cpu", cpu)):
                ratios[f"probae/tf ({tag}, {label})"] = (
                    speed[f"probae fit ({tag})"] / speed[f"tf loop ({tag})"])
        if args.spe > 0 and False in jits:
            for label, speed in (("wall", wall), ("cpu", cpu)):
                ratios[f"probae spe={args.spe}/tf (graph, {label})"] = (
                    speed[f"probae fit (graph, spe={args.spe})"] / speed["tf loop (graph)"])
        if use_torch:
            dtag = "xla" if default_jit and True in jits else "graph"
            for label, speed in (("wall", wall), ("cpu", cpu)):
                ratios[f"probae default/torch ({label})"] = (
                    speed[f"probae fit ({dtag})"] / speed["torch loop"])
                best = max(v for n, v in speed.items() if n.startswith("probae fit"))
                ratios[f"probae best/torch ({label})"] = best / speed["torch loop"]
            contestants["torch loop"].close()

    if not args.no_ll and "mlp" in models:
        results["log_likelihood"] = bench_log_likelihood(tf, x_train, x_test, args, jits)
        for k, v in results["log_likelihood"]["ratios"].items():
            results["ratios"].setdefault("log_likelihood", {})[k] = v

    results["machine"]["load_avg_end"] = os.getloadavg()
    print("\n== ratios (examples/s, medians; > 1 means probae is faster) ==")
    for group, rs in results["ratios"].items():
        for name, r in rs.items():
            print(f"  {group:15s} {name:34s} {r:6.3f}")
    print(f"machine: {results['machine']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return results


def bench_log_likelihood(tf, x_train, x_test, args, jits):
    import keras

    import probae

    k, n = args.ll_samples, args.ll_examples
    print(f"\n== log_likelihood: k = {k} on {n} test images, {args.reps} reps ==", flush=True)
    keras.utils.set_random_seed(0)
    model = probae.VAE((784,), 50, hidden_units=(200, 200), activation="tanh")
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x_train[:5000], batch_size=BATCH, epochs=1, verbose=0)
    x = x_test[:n]
    batch = min(100, n)
    chunk = max(1, min(k, 2**23 // (784 * batch)))  # probae's default chunking
    contestants = {"probae log_likelihood": None}
    for jit in jits:
        contestants[f"hand-written ({'xla' if jit else 'graph'})"] = HandLogLikelihood(
            tf, model, batch, chunk, k, jit)
    est = {}

    def work(name, obj):
        est[name] = model.log_likelihood(x, num_samples=k, seed=1) if obj is None else obj(x, 1)

    work("probae log_likelihood", None)  # warm-up
    for name, obj in contestants.items():
        if obj is not None:
            obj(x[:batch], 1)
    times = interleave(contestants, args.reps, work)
    speed, cpu = medians(times, n)
    for name, v in speed.items():
        print(f"  {name:42s} {v:9.1f} ex/s {cpu[name]:9.1f} ex/cpu-s   mean estimate "
              f"{est[name].mean():.2f} nats")
    ratios = {}
    for jit in jits:
        tag = "xla" if jit else "graph"
        for label, sp in (("wall", speed), ("cpu", cpu)):
            ratios[f"probae/hand-written ({tag}, {label})"] = (
                sp["probae log_likelihood"] / sp[f"hand-written ({tag})"])
    return {"examples_per_s": speed, "examples_per_cpu_s": cpu, "seconds": times, "ratios": ratios,
            "mean_estimate": {name: float(e.mean()) for name, e in est.items()}}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
