"""Test negative log-likelihood on binarized MNIST, beside published figures.

Trains a one-stochastic-layer model (784-H-H-d, default 200-200-50 tanh, as in Burda et
al. 2016) on the fixed binarization of Larochelle and Murray (50,000 train / 10,000
valid / 10,000 test), keeps the checkpoint with the best validation ELBO, and reports
the test NLL estimated with ``probae.evaluate_likelihood`` (k importance samples,
default 5000) with its standard error. Training backs up every epoch into
``--run-dir``/backup with the library's ``probae.BackupAndRestore`` (weights, optimizer
state, sampling seed, epoch), so a run stopped by ``--until`` or by a crash resumes where
it stopped with ``--resume``; the learning rate follows Keras' ``LearningRateScheduler``
and the ELBO-trained models' KL warm-up ``probae.callbacks.LinearBetaWarmup``, both by
epoch index, so a resumed run continues its schedules.

Models (``--model``): ``vae`` (ELBO) and ``iwae`` (``--k`` samples) with one stochastic
layer; ``iaf``, the same networks with an inverse autoregressive flow posterior
(``probae.IAFEncoder``: ``--flows`` steps of MADE layers ``--flow-hidden``, context
``--context``), trained with the ELBO; ``hvae``, two stochastic layers
(``probae.HierarchicalVAE``, z1 of ``--latent`` and z2 of ``--latent2`` dimensions; the
prior flag sets the top prior p(z2)), trained with the ELBO.

It also times a hand-written ``tf.function`` importance-sampling estimator of the same
maths on the same network and images, and prints probae's speed ratio.

Examples:
    # the long run (in the background, resumable)
    nice -n 19 python benchmarks/nll_binarized_mnist.py --model vae --epochs 1000 \
        --until 15:10 --resume --run-dir runs/nll/vae --no-eval
    # evaluate the best checkpoint of that run and write BENCHMARKS.md
    python benchmarks/nll_binarized_mnist.py --model vae --epochs 0 --resume \
        --run-dir runs/nll/vae --eval-k 5000 --write-benchmarks

``--init-from PATH`` starts a run from the encoder and decoder of a saved model (for
example a VampPrior run from the committed IWAE checkpoint); the table counts both runs'
epochs. When the saved model has the same prior (a fine-tune with another objective, say
``--k 50`` from a k = 5 run), its prior weights and Adam state carry over too.

Priors: ``--prior standard`` (N(0, I)), ``--prior mog`` (``MixtureOfGaussiansPrior``,
``--components``), ``--prior vamp`` (``probae.VampPrior`` with ``--components``
pseudo-inputs in [0, 1]); ``make_prior`` is the one place to add a prior. The speed
comparison runs for the N(0, I) prior only (the hand-written estimator assumes it).
"""

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "PROBAE_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "datasets").is_dir():
    os.environ["PROBAE_DATA_DIR"] = str(REPO.parent / "shared" / "datasets")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import probae  # noqa: E402
from probae.presets import make_decoder  # noqa: E402

PUBLISHED = [
    ("VAE", "Rezende and Mohamed 2015", 89.9),
    ("IWAE k=50", "Burda et al. 2016, appendix", 87.1),
    ("VAE", "pythae's reproduction", 89.78),
    ("IWAE", "pythae's reproduction", 86.82),
    ("VampPrior", "pythae's reproduction", 85.79),
    ("VampPrior", "Tomczak and Welling 2018", 85.57),
]
SECTION = "## Test NLL on binarized MNIST (issue 4)"


# ---------------------------------------------------------------------------- model
def make_prior(args):
    """The prior named by ``--prior``: the hook where new priors are added."""
    if args.prior == "standard":
        return None
    if args.prior == "mog":
        return probae.MixtureOfGaussiansPrior(num_components=args.components)
    if args.prior == "vamp":
        return probae.VampPrior(num_pseudo_inputs=args.components, pseudo_input_range=(0.0, 1.0))
    raise SystemExit(f"unknown --prior {args.prior!r}")


def make_model(args):
    if args.model == "hvae":
        model = probae.HierarchicalVAE(
            (784,),
            latent_dims=(args.latent, args.latent2 or args.latent),
            likelihood="bernoulli",
            prior=make_prior(args),
            architecture="mlp",
            hidden_units=tuple(args.hidden),
            activation=args.activation,
            seed=args.seed,
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr))
        return model
    common = dict(
        input_shape=(784,),
        latent_dim=args.latent,
        likelihood="bernoulli",
        prior=make_prior(args),
        architecture="mlp",
        hidden_units=tuple(args.hidden),
        activation=args.activation,
        seed=args.seed,
    )
    if args.model == "vae":
        model = probae.VAE(num_samples=1, beta=1.0, **common)
    elif args.model == "iaf":
        encoder = probae.IAFEncoder(
            args.latent,
            num_flows=args.flows,
            flow_hidden_units=tuple(args.flow_hidden),
            context_units=args.context,
            architecture="mlp",
            hidden_units=tuple(args.hidden),
            activation=args.activation,
        )
        decoder = make_decoder(
            "bernoulli",
            (784,),
            architecture="mlp",
            hidden_units=tuple(args.hidden),
            activation=args.activation,
        )
        model = probae.ProbabilisticAutoencoder(
            encoder,
            decoder,
            prior=common["prior"],
            objective=probae.ELBO(),
            input_shape=(784,),
            seed=args.seed,
        )
    else:
        model = probae.VAE(objective=probae.IWAE(num_samples=args.k), **common)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.lr))
    return model


def warm_start(model, path, x_train, seed):
    """Starts ``model`` from the encoder and decoder of the saved model at ``path`` (same
    networks). A prior of the same kind and shape as the saved one (for example a VampPrior
    run fine-tuned with a larger k) starts from its weights, and Adam from its state.
    Otherwise a VampPrior's pseudo-inputs start at training images: at the paper's
    near-constant initial values all K components would be the posterior of one blank
    image, far from every code the trained encoder emits. Returns the number of epochs
    behind the saved model (its state.json's epochs plus those of the runs it started
    from), or None."""
    path = pathlib.Path(path)
    source = probae.load_model(path)
    model(x_train[:2])  # build

    def shapes(layer):
        return [tuple(v.shape) for v in layer.weights]

    for part in ("encoder", "decoder"):
        ours, theirs = getattr(model, part), getattr(source, part)
        if shapes(ours) != shapes(theirs):
            raise SystemExit(
                f"--init-from {path}: its {part} has weights of shapes {shapes(theirs)}, this model's "
                f"{shapes(ours)}: use the same --hidden, --latent and --activation."
            )
        ours.set_weights(theirs.get_weights())
    ours, theirs = model.prior, source.prior
    if type(ours) is type(theirs) and ours.weights and shapes(ours) == shapes(theirs):
        ours.set_weights(theirs.get_weights())
        copy_optimizer_state(model, source)
    elif isinstance(ours, probae.VampPrior):
        ours.initialize_from(x_train, seed=seed)
    state_path = path.parent / "state.json"
    if state_path.exists():
        saved = json.loads(state_path.read_text())
        return saved.get("epochs", 0) + (saved.get("init_from_epochs") or 0)
    return None


def copy_optimizer_state(model, source):
    """Continues the saved model's Adam moments and step count when every variable matches
    (a fine-tune of the same model with another objective, such as a larger k): a fresh
    Adam's first bias-corrected steps move every weight by about the learning rate, a jolt
    that a converged model does not recover from in a few epochs."""
    if getattr(source, "optimizer", None) is None or not source.optimizer.built:
        # committed checkpoints hold weights only (benchmarks/checkpoints/README.md)
        return
    model.optimizer.build(model.trainable_variables)
    ours, theirs = model.optimizer.variables, source.optimizer.variables
    if [v.shape for v in ours] != [v.shape for v in theirs]:
        return
    for mine, saved in zip(ours, theirs):
        mine.assign(saved)
    print(
        f"continued the saved Adam state ({int(model.optimizer.iterations.numpy())} steps)",
        flush=True,
    )


def learning_rate(epoch, args):
    """Learning rate of ``epoch`` (0-based) under ``--schedule``."""
    if args.schedule == "constant":
        return args.lr
    if args.schedule == "exponential":  # lr * decay ** (epoch / decay_epochs)
        return max(args.lr * args.decay ** (epoch / args.decay_epochs), args.min_lr)
    # cosine from lr to min_lr over --epochs
    t = min(epoch / max(args.epochs, 1), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------------------- training
class RunState(keras.callbacks.Callback):
    """Records every epoch in state.json, keeps best.keras on the validation objective,
    prints progress and stops at ``--until``. (Resuming is ``probae.BackupAndRestore``'s;
    the schedules are ``schedule_callbacks``'.)"""

    def __init__(self, args, state, deadline):
        super().__init__()
        self.args, self.state, self.deadline = args, state, deadline
        self.run_dir = pathlib.Path(args.run_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.time() - self._t0
        st = self.state
        st["epochs"] = epoch + 1
        st["train_seconds"] = st.get("train_seconds", 0.0) + seconds
        val = float(logs.get("val_elbo", -np.inf))
        # Selection on the validation objective: the ELBO (VAE) or the k-sample bound (IWAE).
        val_objective = val if self.args.model != "iwae" else -float(logs.get("val_loss", np.inf))
        improved = val_objective > st.get("best_val_objective", -np.inf)
        if improved:
            st["best_val_objective"], st["best_epoch"] = val_objective, epoch + 1
            self.model.save(self.run_dir / "best.keras")
        st.setdefault("history", []).append(
            {
                "epoch": epoch + 1,
                "seconds": round(seconds, 2),
                "elbo": float(logs.get("elbo", np.nan)),
                "val_elbo": val,
                "val_objective": val_objective,
                "lr": float(learning_rate(epoch, self.args)),
            }
        )
        (self.run_dir / "state.json").write_text(json.dumps(st, indent=1))
        print(
            f"epoch {epoch + 1}: {seconds:.1f} s, train elbo {logs.get('elbo', np.nan):.2f}, "
            f"valid elbo {val:.2f}, valid objective {val_objective:.2f}{' (best)' if improved else ''}, "
            f"lr {learning_rate(epoch, self.args):.2e}",
            flush=True,
        )
        if self.deadline is not None and time.time() > self.deadline:
            print("reached --until: stopping (resume with --resume)", flush=True)
            self.model.stop_training = True


def parse_until(text):
    if text is None:
        return None
    hour, minute = (int(v) for v in text.split(":"))
    now = datetime.datetime.now()
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when <= now:  # the next HH:MM: a run started at 22:00 with --until 01:30 stops tomorrow
        when += datetime.timedelta(days=1)
    return when.timestamp()


SCHEDULE_FLAGS = ("epochs", "lr", "schedule", "decay", "decay_epochs", "min_lr", "warmup")


def record_schedule_change(state, args):
    """A resumed run whose schedule flags differ from its stored ones trains on under the
    new ones: state.json keeps the change (epoch, old and new values) and the results row
    reports it."""
    changed = {
        flag: [state["args"].get(flag), getattr(args, flag)]
        for flag in SCHEDULE_FLAGS
        if state["args"].get(flag) != getattr(args, flag)
    }
    if changed:
        state.setdefault("schedule_changes", []).append(
            {"at_epoch": state["epochs"], "changed": changed}
        )
        state["args"].update({flag: new for flag, (_, new) in changed.items()})
        print(f"schedule changed {describe_changes(state)[-1]}", flush=True)


def describe_changes(state):
    return [
        f"at epoch {c['at_epoch']} "
        + ", ".join(
            f"--{f.replace('_', '-')} {old} -> {new}" for f, (old, new) in c["changed"].items()
        )
        for c in state.get("schedule_changes", [])
    ]


def schedule_callbacks(args):
    """The learning-rate schedule (Keras' ``LearningRateScheduler``) and, for the models
    trained with the ELBO (vae, iaf, hvae), the KL warm-up
    (``probae.callbacks.LinearBetaWarmup``): both read the epoch index, which
    ``probae.BackupAndRestore`` restores, so a resumed run continues them."""
    callbacks = [keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(epoch, args))]
    if args.model != "iwae" and args.warmup > 0:  # the ELBO-trained models
        callbacks.append(probae.callbacks.LinearBetaWarmup(args.warmup))
    return callbacks


def train(args, x_train, x_valid):
    run_dir = pathlib.Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    best, backup_dir = run_dir / "best.keras", run_dir / "backup"
    state = json.loads(state_path.read_text()) if args.resume and state_path.exists() else None
    if state is not None and state["epochs"] >= args.epochs and best.exists():
        # Nothing left to train: the best checkpoint is the model (committed checkpoints of
        # finished runs keep only best.keras and state.json).
        return probae.load_model(best), state
    if state is not None and state["epochs"] > 0 and not backup_dir.exists():
        raise SystemExit(
            f"--resume: {run_dir} has no backup/ (a run from before resuming moved to "
            "probae.BackupAndRestore): start it afresh without --resume."
        )
    if state is None:
        if backup_dir.exists():  # a fresh run never resumes another run's backup
            shutil.rmtree(backup_dir)
        state = {"args": vars(args), "epochs": 0, "train_seconds": 0.0}
    model = make_model(args)
    if state["epochs"] == 0 and args.init_from:
        state["init_from_epochs"] = warm_start(model, args.init_from, x_train, args.seed)
        print(
            f"started from the networks of {args.init_from} ({state['init_from_epochs']} epochs)",
            flush=True,
        )
    elif state["epochs"] > 0:
        print(f"resuming {run_dir} at epoch {state['epochs']} from its backup", flush=True)
        if state["epochs"] < args.epochs:
            record_schedule_change(state, args)
    if state["epochs"] < args.epochs:
        callbacks = [
            probae.BackupAndRestore(backup_dir, delete_checkpoint=False),
            *schedule_callbacks(args),
            RunState(args, state, parse_until(args.until)),
        ]
        model.fit(
            x_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_data=x_valid,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
    if best.exists():
        model = probae.load_model(best)
    return model, state


# ---------------------------------------------------------------------------- baseline
def handwritten_estimator(model, k, batch_size):
    """A hand-written ``tf.function`` IS estimator of log p(x) for a Bernoulli-decoder,
    Gaussian-encoder, N(0, I)-prior model, reading the model's Dense weights directly:
    the reference probae's evaluation is timed against. Each call takes ``batch_size``
    images with all k samples at once (1 image per call was the fastest of 1, 2 and 10
    here)."""
    enc = [layer for layer in model.encoder.network.layers if isinstance(layer, keras.layers.Dense)]
    dec = [layer for layer in model.decoder.network.layers if isinstance(layer, keras.layers.Dense)]
    enc_w = [(layer.kernel, layer.bias) for layer in enc] + [
        (model.encoder.head.kernel, model.encoder.head.bias)
    ]
    dec_w = [(layer.kernel, layer.bias) for layer in dec] + [
        (model.decoder.head.kernel, model.decoder.head.bias)
    ]
    act = keras.activations.get(model.encoder.activation)
    d = model.latent_dim
    min_scale = model.encoder.min_scale
    log2pi = math.log(2 * math.pi)

    @tf.function
    def estimate(x, seed):
        h = x
        for w, b in enc_w[:-1]:
            h = act(h @ w + b)
        params = h @ enc_w[-1][0] + enc_w[-1][1]
        mu, sigma = params[:, :d], tf.nn.softplus(params[:, d:]) + min_scale
        eps = tf.random.stateless_normal([k, tf.shape(x)[0], d], seed)
        z = mu + sigma * eps
        log_q = tf.reduce_sum(-0.5 * eps**2 - tf.math.log(sigma) - 0.5 * log2pi, -1)
        log_p = tf.reduce_sum(-0.5 * z**2 - 0.5 * log2pi, -1)
        h = tf.reshape(z, [-1, d])
        for w, b in dec_w[:-1]:
            h = act(h @ w + b)
        logits = tf.reshape(h @ dec_w[-1][0] + dec_w[-1][1], [k, -1, 784])
        log_px = -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(tf.broadcast_to(x, tf.shape(logits)), logits),
            -1,
        )
        return tf.reduce_logsumexp(log_px + log_p - log_q, 0) - math.log(k)

    def run(x):
        out = []
        for i in range(0, len(x), batch_size):
            out.append(estimate(tf.constant(x[i : i + batch_size]), tf.constant([i, 7])).numpy())
        return np.concatenate(out)

    return run


def time_comparison(model, x, k, baseline_batch, repeats=2):
    """Times probae.evaluate_likelihood and the hand-written estimator on the same x.

    The two alternate ``repeats`` times and the fastest of each counts, which damps the
    noise of a shared machine. Tracing is done before timing, for both."""
    reference = handwritten_estimator(model, k, baseline_batch)
    reference(x[:baseline_batch])  # trace
    probae.evaluate_likelihood(model, x[:100], num_samples=k, seed=0)  # trace (batches of 100)
    t_ref = t_probae = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ref = reference(x)
        t_ref = min(t_ref, time.perf_counter() - t)
        t = time.perf_counter()
        res = probae.evaluate_likelihood(model, x, num_samples=k, seed=0)
        t_probae = min(t_probae, time.perf_counter() - t)
    print(
        f"speed, k={k} on {len(x)} images: hand-written tf.function {t_ref:.1f} s "
        f"(NLL {-ref.mean():.2f}), probae.evaluate_likelihood {t_probae:.1f} s "
        f"(NLL {-res['log_likelihood']:.2f}, also ELBO, KL, active units); "
        f"ratio probae / hand-written = {t_probae / t_ref:.2f}",
        flush=True,
    )
    return t_ref, t_probae


# ---------------------------------------------------------------------------- report
def write_benchmarks(path, row):
    """Adds ``row`` to this benchmark's section of BENCHMARKS.md (creating it if needed)."""
    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    header = (
        f"{SECTION}\n\n"
        "Fixed binarization (Larochelle and Murray 2011), one stochastic layer, test NLL in nats "
        "(lower is better), estimated by importance sampling with `probae.evaluate_likelihood` "
        "(k samples per image, +- one standard error over images). Published figures are on the "
        "same data. Produced by `benchmarks/nll_binarized_mnist.py`.\n\n"
        "| model | test NLL (nats) | epochs | train wall time | evaluation | command | machine |\n"
        "|---|---|---|---|---|---|---|\n"
        + "".join(f"| {m} ({src}) | {v:.2f} | | | | published | |\n" for m, src, v in PUBLISHED)
    )
    if SECTION not in text:
        text = text.rstrip("\n") + "\n\n" + header
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    end = len(text) if end < 0 else end + 1
    section = text[start:end].rstrip("\n") + "\n" + row + "\n"
    text = text[:start] + section + ("\n" + text[end:] if end < len(text) else "")
    path.write_text(text)
    print(f"wrote a row to {path}", flush=True)


TRAIN_FLAGS = (
    "model",
    "k",
    "flows",
    "flow_hidden",
    "context",
    "latent2",
    "prior",
    "components",
    "hidden",
    "latent",
    "activation",
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "decay",
    "decay_epochs",
    "min_lr",
    "warmup",
    "seed",
    "init_from",
)


def training_command(args):
    """The command line that trained a run, rebuilt from its stored arguments."""
    parts = ["python benchmarks/nll_binarized_mnist.py"]
    for key in TRAIN_FLAGS:
        if key in args and args[key] is not None:
            value = args[key]
            value = " ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts) + " --resume [--until HH:MM]"


def build_parser():
    """The command line's flags (also read by benchmarks/posterior_cost.py)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=("vae", "iwae", "iaf", "hvae"), default="vae")
    p.add_argument("--k", type=int, default=5, help="IWAE training samples (5 or 50)")
    p.add_argument("--prior", choices=("standard", "mog", "vamp"), default="standard")
    p.add_argument("--components", type=int, default=500, help="mixture components / pseudo-inputs")
    p.add_argument("--hidden", type=int, nargs="+", default=[200, 200])
    p.add_argument("--latent", type=int, default=50, help="latent size (hvae: of z1)")
    p.add_argument("--latent2", type=int, default=None, help="hvae: size of z2 (default --latent)")
    p.add_argument("--flows", type=int, default=2, help="iaf: number of IAF steps")
    p.add_argument(
        "--flow-hidden", type=int, nargs="+", default=[320, 320], help="iaf: MADE hidden units"
    )
    p.add_argument("--context", type=int, default=64, help="iaf: width of the context h(x)")
    p.add_argument("--activation", default="tanh")
    p.add_argument(
        "--epochs", type=int, default=100, help="total epochs (a resumed run continues to it)"
    )
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--schedule", choices=("constant", "exponential", "cosine"), default="exponential"
    )
    p.add_argument(
        "--decay", type=float, default=0.5, help="exponential: factor per --decay-epochs"
    )
    p.add_argument("--decay-epochs", type=float, default=100.0)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument(
        "--warmup", type=int, default=0, help="vae, iaf, hvae: epochs of KL warm-up (0: none)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init-from",
        default=None,
        help="a saved model (.keras) whose encoder and decoder start this run (same networks)",
    )
    p.add_argument(
        "--run-dir", default=None, help="checkpoints (default runs/nll_binarized_mnist/<model>)"
    )
    p.add_argument("--resume", action="store_true", help="continue from --run-dir/last.keras")
    p.add_argument(
        "--until",
        default=None,
        help="HH:MM (machine clock, its next occurrence): stop training after the epoch running then",
    )
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--eval-k", type=int, default=5000)
    p.add_argument(
        "--eval-n", type=int, default=None, help="evaluate on the first n test images only"
    )
    p.add_argument("--eval-batch-size", type=int, default=None)
    p.add_argument(
        "--eval-minutes",
        type=float,
        default=None,
        help="evaluate the first n test images, n as large as fits this budget at the measured speed",
    )
    p.add_argument(
        "--time-n", type=int, default=200, help="images for the speed comparison (0: skip)"
    )
    p.add_argument(
        "--time-k", type=int, default=None, help="k of the speed comparison (default --eval-k)"
    )
    p.add_argument(
        "--baseline-images",
        type=int,
        default=1,
        help="images per call of the hand-written estimator (all k samples at once)",
    )
    p.add_argument("--write-benchmarks", nargs="?", const=str(REPO / "BENCHMARKS.md"), default=None)
    p.add_argument("--machine", default=None, help="machine description for the table")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.run_dir is None:
        args.run_dir = str(REPO / "runs" / "nll_binarized_mnist" / f"{args.model}_{args.prior}")
    command = "python benchmarks/nll_binarized_mnist.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )

    keras.utils.set_random_seed(args.seed)
    x_train, x_valid, x_test = probae.datasets.load_binarized_mnist()
    model, state = train(args, x_train, x_valid)
    trained = state["args"]  # the run's own flags: an evaluation call need not repeat them
    print(
        f"model: {trained['model']} prior={trained['prior']}, {state['epochs']} epochs in "
        f"{state['train_seconds'] / 60:.1f} min; best valid objective {state.get('best_val_objective', float('nan')):.2f} "
        f"at epoch {state.get('best_epoch')}",
        flush=True,
    )
    if args.no_eval:
        return
    t_ref = t_probae = None
    if args.time_n and (
        trained["prior"] != "standard"
        or trained["activation"] == "glu"
        or trained["model"] in ("iaf", "hvae")
    ):
        print(
            "speed comparison skipped: the hand-written estimator assumes one stochastic layer, "
            "a Gaussian posterior, the N(0, I) prior and ungated layers",
            flush=True,
        )
    elif args.time_n:
        t_ref, t_probae = time_comparison(
            model, x_test[: args.time_n], args.time_k or args.eval_k, args.baseline_images
        )
    eval_n = len(x_test) if args.eval_n is None else args.eval_n
    if args.eval_minutes is not None and t_probae is not None:
        # As many test images as the measured speed allows in the budget (multiples of 500).
        per_image = t_probae / args.time_n * args.eval_k / (args.time_k or args.eval_k)
        affordable = int(args.eval_minutes * 60 / per_image) // 500 * 500
        eval_n = max(500, min(eval_n, affordable))
        print(f"--eval-minutes {args.eval_minutes}: evaluating {eval_n} test images", flush=True)
    x_eval = x_test[:eval_n]
    t = time.perf_counter()
    res = probae.evaluate_likelihood(
        model,
        x_eval,
        num_samples=args.eval_k,
        batch_size=args.eval_batch_size,
        seed=args.seed,
        verbose=1,
    )
    eval_seconds = time.perf_counter() - t
    nll = -res["log_likelihood"]
    print(
        f"test NLL {nll:.2f} +- {res['stderr']:.2f} nats (k={args.eval_k}, {len(x_eval)} images, "
        f"{eval_seconds / 60:.1f} min); ELBO {res['elbo']:.2f} = reconstruction {res['reconstruction']:.2f} "
        f"- KL {res['kl']:.2f}; {res['active_units']} active units; {res['bits_per_dim']:.4f} bits/dim",
        flush=True,
    )
    if args.write_benchmarks:
        machine = args.machine or f"{platform.machine()} CPU, {os.cpu_count()} cores"
        name = f"probae {trained['model'].upper()}" + (
            f" k={trained['k']}" if trained["model"] == "iwae" else ""
        )
        if trained["model"] == "iaf":
            name += (
                f" ({trained['flows']} steps, MADE {'-'.join(map(str, trained['flow_hidden']))}, "
                f"context {trained['context']})"
            )
        if trained["model"] == "hvae":
            name += f" (z2 of {trained.get('latent2') or trained['latent']})"
        name += (
            f", prior {trained['prior']}, {'-'.join(map(str, trained['hidden']))}-{trained['latent']} "
            f"{trained['activation']}"
        )
        before = ""
        if trained.get("init_from"):
            before = f", after {state.get('init_from_epochs')} epochs of {trained['init_from']}"
        before += "".join(f"; schedule changed {text}" for text in describe_changes(state))
        speed = (
            "" if t_ref is None else f"; IS speed probae / hand-written = {t_probae / t_ref:.2f}"
        )
        row = (
            f"| {name} | **{nll:.2f} +- {res['stderr']:.2f}** | {state['epochs']} (best valid at "
            f"{state.get('best_epoch')}){before} | {state['train_seconds'] / 60:.0f} min | k={args.eval_k} on "
            f"{len(x_eval)} test images, {eval_seconds / 60:.1f} min{speed} | train: "
            f"`{training_command(state['args'])}`; evaluate: `{command}` | {machine} |"
        )
        write_benchmarks(args.write_benchmarks, row)


if __name__ == "__main__":
    main()
