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
plain PyTorch loop (``pip install probae[bench]``).

No contestant is handicapped: each runs under the threading settings that suit it best on
this machine, chosen in a short selection phase among

* TensorFlow contestants: every pair of intra-op and inter-op thread counts from 1 and
  ``--threads`` (or ``--tf-threads``). TensorFlow fixes its thread pools once per process,
  so each pair gets a process of its own, which holds all the TensorFlow contestants.
* PyTorch: 1 and ``--threads`` threads (``torch.set_num_threads`` and
  ``set_num_interop_threads``), each with ``OMP_WAIT_POLICY`` unset (OpenMP's default:
  idle threads spin briefly, then sleep), ``PASSIVE`` (they sleep at once) and ``ACTIVE``
  (they spin) (or ``--torch-settings``). OpenMP reads the variable when it loads, so each
  setting gets a process of its own that sets it before importing torch.

Every setting runs in its own spawned process (TensorFlow and torch never share one: their
thread pools slow each other down), and a process is stopped (SIGSTOP) whenever it is not
running an epoch, so an idle contestant takes no CPU from the one being timed (an
``ACTIVE`` process would spin its idle threads). The selection phase times
``--select-reps`` epochs of every (contestant, setting) pair; the setting with the most
examples per wall-clock second (median) wins. The timed phase then runs each contestant
under its winning setting for ``--reps`` epochs. In both phases the contestants run
interleaved, one epoch each per repetition, so a slow spell on a shared machine hits all
of them. The table, the ratios and ``--json`` give the timed phase's medians of examples
per second and per CPU second (all threads of the contestant's process), each
contestant's winning setting, and the throughput of every setting tried.

The importance-sampling estimator ``model.log_likelihood`` is timed against a
hand-written estimator in the same way, in the main process (both with ``--threads``
intra- and inter-op threads: one setting, the same for both).

    python benchmarks/throughput.py --steps 200 --conv-steps 50 --ll-examples 200  # ~10-15 min
    python benchmarks/throughput.py --steps 30 --reps 2 --models mlp --xla off --no-ll  # quick

(the first on 2 idle cores; without ``--steps`` an epoch is all 50,000 images: much longer)
"""

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import textwrap
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "datasets"
)
if "PROBAE_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["PROBAE_DATA_DIR"] = os.path.abspath(_SHARED)

import numpy as np  # noqa: E402

BATCH = 100
WAITS = ("default", "PASSIVE", "ACTIVE")  # OMP_WAIT_POLICY; "default": unset


def _pairs(second):
    """An argparse type: comma-separated ``A:B`` items as [(int(A), second(B)), ...]."""

    def parse(text):
        try:
            return [(int(a), second(b)) for a, b in (item.split(":") for item in text.split(","))]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None

    return parse


def _wait_policy(name):
    if name not in WAITS:
        raise ValueError(f"wait policy {name!r} is not one of {', '.join(WAITS)}")
    return name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,conv", help="comma-separated: mlp, conv")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps (batches of 100) per timed epoch; default: the full 50,000 images",
    )
    p.add_argument(
        "--conv-steps",
        type=int,
        default=None,
        help="steps per timed epoch for the conv model (default: --steps)",
    )
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median reported)")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="the most threads a contestant may use: settings with 1 and with this many are tried",
    )
    p.add_argument(
        "--tf-threads",
        type=_pairs(int),
        default=None,
        help="comma-separated INTRA:INTER thread counts tried for the TensorFlow "
        "contestants (default: every pair of 1 and --threads)",
    )
    p.add_argument(
        "--torch-settings",
        type=_pairs(_wait_policy),
        default=None,
        help="comma-separated THREADS:WAIT settings tried for the PyTorch loop, WAIT "
        "one of default (OMP_WAIT_POLICY unset), PASSIVE, ACTIVE (default: "
        "1 and --threads threads, each with the three)",
    )
    p.add_argument(
        "--select-reps",
        type=int,
        default=3,
        help="interleaved epochs per setting in the selection phase (median used)",
    )
    p.add_argument("--xla", default="both", choices=["off", "on", "both"])
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    p.add_argument("--no-ll", action="store_true", help="skip the log_likelihood benchmark")
    p.add_argument("--ll-examples", type=int, default=500)
    p.add_argument("--ll-samples", type=int, default=1000)
    p.add_argument(
        "--spe",
        type=int,
        default=1,
        help="also time fit compiled with this explicit steps_per_execution "
        "(default 1: Keras' per-batch loop; 0: skip). probae's default is "
        "'auto' (10 when every callback supports it)",
    )
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    counts = sorted({1, args.threads})
    if args.tf_threads is None:
        args.tf_threads = [(intra, inter) for intra in counts for inter in counts]
    if args.torch_settings is None:
        args.torch_settings = [(threads, wait) for threads in counts for wait in WAITS]
    return args


# ---------------------------------------------------------------------- TensorFlow side
def setup_tf(intra, inter):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    return tf


def glorot(tf, shape, rng):
    fan_in, fan_out = (
        (shape[0], shape[1])
        if len(shape) == 2
        else (shape[0] * shape[1] * shape[2], shape[0] * shape[1] * shape[3])
    )
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
        v = lambda shape: glorot(tf, shape, rng)
        zeros = lambda n: tf.Variable(tf.zeros([n]))
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
        self.variables = [
            self.c1,
            self.c1b,
            self.c2,
            self.c2b,
            self.e1,
            self.e1b,
            self.e2,
            self.e2b,
            self.d1,
            self.d1b,
            self.d2,
            self.d2b,
            self.t1,
            self.t1b,
            self.t2,
            self.t2b,
            self.h,
            self.hb,
        ]

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
            self.model = probae.VAE(
                (28, 28, 1),
                16,
                architecture="conv",
                hidden_units=(256,),
                filters=(32, 64),
                activation="relu",
            )
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
    """A plain PyTorch loop of the same maths (CPU), run in a worker process of its own."""

    def __init__(self, kind, x, threads, seed=0):
        import torch
        from torch import nn

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        if kind == "mlp":
            self.enc = nn.Sequential(
                nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 100)
            )
            self.dec = nn.Sequential(
                nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784)
            )
            self.data = torch.from_numpy(x)
        else:
            self.enc = nn.Sequential(
                nn.Conv2d(1, 32, 3, 2, 1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, 2, 1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(7 * 7 * 64, 256),
                nn.ReLU(),
                nn.Linear(256, 32),
            )
            self.dec = nn.Sequential(
                nn.Linear(16, 256),
                nn.ReLU(),
                nn.Linear(256, 7 * 7 * 64),
                nn.ReLU(),
                nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 64, 3, 2, 1, output_padding=1),
                nn.ReLU(),
                nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 1, 3, 1, 1),
            )
            self.data = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        params = list(self.enc.parameters()) + list(self.dec.parameters())
        self.opt = torch.optim.Adam(params, lr=1e-3)

    def epoch(self, steps):
        torch, F = self.torch, self.torch.nn.functional
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(self.data))[: steps * BATCH].view(steps, BATCH)
        for idx in perm:
            xb = self.data[idx]
            loc, raw = self.enc(xb).chunk(2, dim=-1)
            scale = F.softplus(raw) + 1e-4
            z = loc + scale * torch.randn_like(loc)
            logits = self.dec(z)
            log_px = (
                -F.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1).sum(-1)
            )
            kl = (0.5 * (loc**2 + scale**2) - scale.log() - 0.5).sum(-1)
            loss = -(log_px - kl).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t0, time.process_time() - c0


# ---------------------------------------------------------------------- worker processes
def load_x(path, kind):
    x = np.load(path)
    return x if kind == "mlp" else x.reshape(-1, 28, 28, 1)


def build_tf(path, kind, intra, inter, jits, spe):
    """The TensorFlow contestants, under one intra-/inter-op thread setting."""
    tf = setup_tf(intra, inter)
    x = load_x(path, kind)
    contestants = {}
    for jit in jits:
        tag = "xla" if jit else "graph"
        contestants[f"probae fit ({tag})"] = ProbaeTrainer(tf, kind, x, jit)
        contestants[f"tf loop ({tag})"] = HandTrainer(tf, kind, x, jit)
    if spe > 0:
        contestants[f"probae fit (graph, spe={spe})"] = ProbaeTrainer(
            tf, kind, x, False, steps_per_execution=spe
        )
    return contestants


def build_torch(path, kind, threads):
    return {"torch loop": TorchTrainer(kind, load_x(path, kind), threads)}


class Worker:
    """A spawned process holding the contestants of one setting.

    ``env`` goes into the child's ``os.environ`` before it imports anything (None unsets a
    variable); ``build(*args)`` then returns ``{name: trainer}`` there. ``call(name,
    attr, *args)`` returns ``trainer.attr(*args)``, or the attribute itself if it is not
    callable. Between calls the process is stopped (SIGSTOP, where the platform has it), so
    it takes no CPU from the contestant being timed.
    """

    def __init__(self, env, build, *args):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, env, build, args), daemon=True)
        self.proc.start()

    def _signal(self, name):
        sig = getattr(signal, name, None)
        if sig is not None and self.proc.is_alive():
            os.kill(self.proc.pid, sig)

    def _recv(self):
        out = self.conn.recv()
        self._signal("SIGSTOP")
        if isinstance(out, Exception):
            raise out
        return out

    def ready(self):
        """Waits until the child has built its contestants; returns their names."""
        return self._recv()

    def call(self, name, attr, *args):
        self._signal("SIGCONT")
        self.conn.send((name, attr, args))
        return self._recv()

    def close(self):
        if self.conn.closed:
            return
        self._signal("SIGCONT")
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.conn.close()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


def _serve(conn, env, build, args):
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        trainers = build(*args)
        conn.send(list(trainers))
        while (msg := conn.recv()) is not None:
            name, attr, call_args = msg
            value = getattr(trainers[name], attr)
            conn.send(value(*call_args) if callable(value) else value)
    except Exception:  # reported to the parent, with the child's traceback
        conn.send(RuntimeError(traceback.format_exc()))


def start_workers(stack, path, kind, args, jits, use_torch):
    """One worker per setting; returns ``{contestant: {setting: worker}}``."""
    workers = {}
    for intra, inter in args.tf_threads:
        workers[f"intra={intra} inter={inter}"] = Worker(
            {}, build_tf, path, kind, intra, inter, jits, args.spe
        )
    for threads, wait in args.torch_settings if use_torch else []:
        workers[f"threads={threads} wait={wait}"] = Worker(
            {"OMP_WAIT_POLICY": None if wait == "default" else wait},
            build_torch,
            path,
            kind,
            threads,
        )
    for worker in workers.values():
        stack.callback(worker.close)
    options = {}
    for setting, worker in workers.items():  # they start up side by side
        for name in worker.ready():
            options.setdefault(name, {})[setting] = worker
    return options


# ---------------------------------------------------------------------- likelihood
class HandLogLikelihood:
    """Hand-written importance sampling, chunked like probae's (same batch and chunk)."""

    def __init__(self, tf, model, batch, chunk, k, jit):
        self.tf = tf
        self.batch, self.chunk, self.k = batch, chunk, k
        enc, dec = model.encoder, model.decoder
        # Reuse probae's trained weights so both estimators compute the same numbers.
        weights = [
            tf.constant(v.numpy())
            for v in enc.network.weights + enc.head.weights + dec.network.weights + dec.head.weights
        ]
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
            log_px = -tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=tf.tile(xb, [self.chunk, 1]), logits=logits
                ),
                -1,
            )
            log_pz = -0.5 * tf.reduce_sum(tf.square(z) + log2pi, -1)
            log_qz = -tf.reduce_sum(0.5 * tf.square(eps) + 0.5 * log2pi + tf.math.log(scale), -1)
            return tf.reduce_logsumexp(tf.reshape(log_px, [self.chunk, -1]) + log_pz - log_qz, 0)

        self.fn = tf.function(chunk_log_w, jit_compile=jit)

    def __call__(self, x, seed=0):
        tf = self.tf
        out = []
        n_chunks = math.ceil(self.k / self.chunk)
        for b, start in enumerate(range(0, len(x), self.batch)):
            xb = tf.constant(x[start : start + self.batch])
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
        line = f"rep {r + 1}/{reps}: " + ", ".join(
            f"{n} {times[n][-1][0]:.2f}s" for n in contestants
        )
        print(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="      "), flush=True)
    return times


def medians(times, n):
    """Median examples per wall second and per CPU second."""
    return (
        {k: n / statistics.median(w for w, _ in t) for k, t in times.items()},
        {k: n / statistics.median(c for _, c in t) for k, t in times.items()},
    )


def machine():
    import tensorflow as tf

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
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


def choose_settings(options, steps, reps):
    """The selection phase: ``reps`` interleaved epochs of every (contestant, setting) pair.

    Returns ``{contestant: winning setting}`` (most examples per wall second, median) and
    ``{contestant: {setting: {examples_per_s, examples_per_cpu_s, seconds}}}`` for the
    contestants that had more than one setting to try.
    """
    pairs = {
        (name, setting): worker
        for name, by_setting in options.items()
        if len(by_setting) > 1
        for setting, worker in by_setting.items()
    }
    best = {name: next(iter(by_setting)) for name, by_setting in options.items()}
    if not pairs:
        return best, {}
    print(
        f"  selection: {reps} epochs of each of {len(pairs)} (contestant, setting) pairs",
        flush=True,
    )
    labelled = {f"{name} [{setting}]": (worker, name) for (name, setting), worker in pairs.items()}
    times = interleave(labelled, reps, lambda label, job: job[0].call(job[1], "epoch", steps))
    wall, cpu = medians(times, steps * BATCH)
    tried = {}
    for (name, setting), label in zip(pairs, labelled):
        tried.setdefault(name, {})[setting] = {
            "examples_per_s": wall[label],
            "examples_per_cpu_s": cpu[label],
            "seconds": times[label],
        }
    for name, by_setting in tried.items():
        best[name] = max(by_setting, key=lambda s: by_setting[s]["examples_per_s"])
    return best, tried


def print_training(wall, cpu, best, tried, args):
    print(f"  {'':32s} {'setting':22s} {'ex/s':>9s} {'ex/cpu-s':>9s}   (medians of {args.reps})")
    for n in wall:
        print(f"  {n:32s} {best[n]:22s} {wall[n]:9.0f} {cpu[n]:9.0f}")
    if tried:
        print(f"  settings tried ({args.select_reps} epochs each, medians; * = chosen):")
    for n, by_setting in tried.items():
        for i, (setting, r) in enumerate(by_setting.items()):
            mark = "*" if setting == best[n] else " "
            print(
                f"  {n if i == 0 else '':32s}{mark}{setting:22s} {r['examples_per_s']:9.0f} "
                f"{r['examples_per_cpu_s']:9.0f}"
            )


def main(argv=None):
    args = parse_args(argv)
    tf = setup_tf(args.threads, args.threads)  # this process: log_likelihood only
    from probae import datasets

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in ("mlp", "conv"):
            raise SystemExit(f"--models: unknown model {m!r} (expected mlp, conv)")
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    use_torch = not args.no_torch
    if use_torch and importlib.util.find_spec("torch") is None:
        print("PyTorch not installed (pip install 'probae[bench]'): skipping the torch loop")
        use_torch = False

    x_train, _, x_test = datasets.load_binarized_mnist()
    results = {"machine": machine(), "args": vars(args), "train": {}, "ratios": {}}
    with tempfile.TemporaryDirectory(prefix="probae-bench-") as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, x_train)
        for kind in models:
            results["train"][kind], results["ratios"][kind] = bench_training(
                kind, path, x_train, tf, args, jits, use_torch
            )

    if not args.no_ll and "mlp" in models:
        results["log_likelihood"] = bench_log_likelihood(tf, x_train, x_test, args, jits)
        for k, v in results["log_likelihood"]["ratios"].items():
            results["ratios"].setdefault("log_likelihood", {})[k] = v

    results["machine"]["load_avg_end"] = os.getloadavg()
    print(
        "\n== ratios (examples/s, medians, each contestant under its best setting; "
        "> 1 means probae is faster) =="
    )
    for group, rs in results["ratios"].items():
        for name, r in rs.items():
            print(f"  {group:15s} {name:34s} {r:6.3f}")
    print(f"machine: {results['machine']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return results


def bench_training(kind, path, x_train, tf, args, jits, use_torch):
    """Selection and timed phases for one model; returns its results and its ratios."""
    steps = args.steps or len(x_train) // BATCH
    if kind == "conv" and args.conv_steps:
        steps = args.conv_steps
    print(f"\n== {kind} VAE: {steps} steps of {BATCH} per epoch, {args.reps} reps ==", flush=True)
    with contextlib.ExitStack() as stack:
        print("  starting a process per setting ...", flush=True)
        options = start_workers(stack, path, kind, args, jits, use_torch)
        print("  warm-up (tracing/compiling) ...", flush=True)
        for name, by_setting in options.items():
            for worker in by_setting.values():
                worker.call(name, "epoch", min(steps, 20))
        best, tried = choose_settings(options, steps, args.select_reps)
        for worker in {w for by_setting in options.values() for w in by_setting.values()}:
            if all(options[name].get(best[name]) is not worker for name in options):
                worker.close()  # no contestant chose this setting
        contestants = {name: (options[name][best[name]], name) for name in options}
        print("  timed phase, each contestant under its best setting", flush=True)
        times = interleave(
            contestants, args.reps, lambda name, job: job[0].call(job[1], "epoch", steps)
        )
        setup = {
            n: statistics.median(w.call(n, "setup_s"))
            for n, (w, _) in contestants.items()
            if n.startswith("probae fit")
        }
    wall, cpu = medians(times, steps * BATCH)
    x = x_train if kind == "mlp" else x_train.reshape(-1, 28, 28, 1)
    default_jit = ProbaeTrainer(tf, kind, x[:BATCH], None).jit
    train = {
        "examples_per_s": wall,
        "examples_per_cpu_s": cpu,
        "seconds": times,
        "setting": best,
        "settings_tried": tried,
        "fit_setup_s": setup,
        "default_jit_compile": default_jit,
    }
    print_training(wall, cpu, best, tried, args)
    print(
        "  probae fit set-up per call (excluded above): "
        + ", ".join(f"{n} {v:.2f}s" for n, v in setup.items())
    )
    print(f"  probae's default: jit_compile={default_jit}")
    ratios = {}
    for jit in jits:
        tag = "xla" if jit else "graph"
        for label, speed in (("wall", wall), ("cpu", cpu)):
            ratios[f"probae/tf ({tag}, {label})"] = (
                speed[f"probae fit ({tag})"] / speed[f"tf loop ({tag})"]
            )
    if args.spe > 0 and False in jits:
        for label, speed in (("wall", wall), ("cpu", cpu)):
            ratios[f"probae spe={args.spe}/tf (graph, {label})"] = (
                speed[f"probae fit (graph, spe={args.spe})"] / speed["tf loop (graph)"]
            )
    if use_torch:
        dtag = "xla" if default_jit and True in jits else "graph"
        for label, speed in (("wall", wall), ("cpu", cpu)):
            ratios[f"probae default/torch ({label})"] = (
                speed[f"probae fit ({dtag})"] / speed["torch loop"]
            )
            best_fit = max(v for n, v in speed.items() if n.startswith("probae fit"))
            ratios[f"probae best/torch ({label})"] = best_fit / speed["torch loop"]
    return train, ratios


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
            tf, model, batch, chunk, k, jit
        )
    est = {}

    def work(name, obj):
        est[name] = model.log_likelihood(x, num_samples=k, seed=1) if obj is None else obj(x, 1)

    work("probae log_likelihood", None)  # warm-up
    for obj in contestants.values():
        if obj is not None:
            obj(x[:batch], 1)
    times = interleave(contestants, args.reps, work)
    speed, cpu = medians(times, n)
    for name, v in speed.items():
        print(
            f"  {name:42s} {v:9.1f} ex/s {cpu[name]:9.1f} ex/cpu-s   mean estimate "
            f"{est[name].mean():.2f} nats"
        )
    ratios = {}
    for jit in jits:
        tag = "xla" if jit else "graph"
        for label, sp in (("wall", speed), ("cpu", cpu)):
            ratios[f"probae/hand-written ({tag}, {label})"] = (
                sp["probae log_likelihood"] / sp[f"hand-written ({tag})"]
            )
    return {
        "examples_per_s": speed,
        "examples_per_cpu_s": cpu,
        "seconds": times,
        "ratios": ratios,
        "mean_estimate": {name: float(e.mean()) for name, e in est.items()},
    }


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
