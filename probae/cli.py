"""The ``probae`` command line: train, evaluate, score and sample.

    probae train vae mnist --epochs 10 --out runs/vae      # model.keras, metrics.json, PNGs
    probae train vae mnist --epochs 10 --out runs/vae --resume   # after an interruption
    probae train denoising_autoencoder mnist --corruption 0.3 --out runs/dae
    probae train sparse_autoencoder mnist --sparsity 0.05 --out runs/sae
    probae evaluate runs/vae/model.keras mnist              # log p(x), bits/dim, ELBO parts
    probae score runs/vae/model.keras data.csv --out scores.csv [--method elbo]
    probae sample runs/vae/model.keras --n 64 --out samples.png
    probae compress runs/vae/model.keras digits.npy digits.pbae   # bits-back coding
    probae decompress runs/vae/model.keras digits.pbae digits.npy  # the same array back

Data is a dataset name (mnist, binarized_mnist, fashion_mnist, digits) or a .npy, .npz
(array ``x`` or ``X``, optional labels ``y``) or .csv file (one example per row, an
optional header; read with pandas). A CSV is a table: ``probae train`` preprocesses it as
``probae.AnomalyDetector`` does (``probae.TablePreprocessor``: continuous columns
standardised, booleans and two-valued columns Bernoulli, string columns categorical,
empty cells missing), saves that preprocessing as table.json beside model.keras, and
``evaluate`` / ``score`` apply it to their data. A table with missing cells or
non-continuous columns gets ``probae.tabular_model`` (one likelihood per column, missing
cells marginalised). Mistakes in the input (a missing file, an unknown preset, data of the
wrong shape) end with exit code 2 and a one-line message.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["main", "PRESETS"]

# Preset names accepted by ``probae train``; each maps to a factory of ``probae.presets``.
PRESETS = {
    "autoencoder": "Autoencoder",
    "vae": "VAE",
    "beta_vae": "BetaVAE",
    "iwae": "IWAE",
    "sparse_autoencoder": "SparseAutoencoder",
    "denoising_autoencoder": "DenoisingAutoencoder",
}
# ConditionalVAE is not a preset here: every command would need the condition of each
# example (labels at train, evaluate, score and sample time), which the data specs lack.

_EXIT_USAGE = 2
# Written beside model.keras by `probae train` on a CSV: the table's preprocessing
# (probae.TablePreprocessor), applied to the data of `probae evaluate` and `probae score`.
TABLE_FILE = "table.json"
# probae.anomaly.METHODS, spelled out so that `probae --help` does not import TensorFlow.
SCORE_METHODS = (
    "log_likelihood",
    "elbo",
    "reconstruction_probability",
    "reconstruction",
    "likelihood_ratio",
)


class CommandError(Exception):
    """A mistake in the user's input; reported in one line with exit code 2."""


# ---------------------------------------------------------------------- data
def _read_file(path):
    """Returns (x, y or None) from a .npy, .npz or .csv file."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return np.load(path, allow_pickle=False), None
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            x_key = next((k for k in ("x", "X", "x_test", "data") if k in keys), None)
            if x_key is None:
                if len(keys) != 1:
                    raise CommandError(
                        f"{path} must hold an array named x or X (labels optional as y). "
                        f"Found: {keys}"
                    )
                x_key = keys[0]
            y = f["y"] if "y" in keys else None
            return f[x_key], y
    if ext == ".csv":
        return _read_csv(path), None
    raise CommandError(f"data file must end in .npy, .npz or .csv. Received: {path}")


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_csv(path):
    """A CSV file as a pandas DataFrame (numbers, strings, empty cells as missing).

    Lines starting with "#" at the top are skipped. The first row is a header when, in a
    column whose other cells are numbers, it is not a number; or, when no column holds
    numbers, when none of its cells occurs again in its column.
    """
    import pandas as pd

    with open(path) as f:
        skip = 0
        for line in f:
            if not line.startswith("#"):
                break
            skip += 1
    try:
        head = pd.read_csv(
            path,
            header=None,
            dtype=str,
            skiprows=skip,
            nrows=200,
            skipinitialspace=True,
            keep_default_na=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CommandError(
            f"{path} is not a readable CSV file: {str(err).strip().splitlines()[0]}"
        ) from None
    first, rest = head.iloc[0], head.iloc[1:]
    numeric = [
        j
        for j in range(head.shape[1])
        if len(rest) and all(_is_number(v) or not v.strip() for v in rest.iloc[:, j])
    ]
    if numeric:
        header = any(not _is_number(first.iloc[j]) and first.iloc[j].strip() for j in numeric)
    else:
        header = all(
            first.iloc[j].strip() and first.iloc[j] not in set(rest.iloc[:, j])
            for j in range(head.shape[1])
        )
    try:
        return pd.read_csv(path, header=0 if header else None, skiprows=skip, skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as err:
        raise CommandError(
            f"{path} is not a readable CSV file: {str(err).strip().splitlines()[0]}"
        ) from None


def _is_table(x):
    from probae.tables import is_dataframe

    return is_dataframe(x)


def _fit_table(x_train, x_test, args):
    """A CSV's training and test rows -> (float32 arrays, the fitted TablePreprocessor):
    ``probae.TablePreprocessor``, the preprocessing of ``AnomalyDetector`` (column types,
    standardisation, vocabularies; missing cells stay NaN)."""
    from probae.tables import TablePreprocessor

    continuous = "student_t" if args.likelihood == "student_t" else "gaussian"
    overrides = {}
    for item in args.column_type or ():
        name, sep, kind = item.rpartition("=")
        if not sep or not name:
            raise CommandError(
                f"--column-type must be NAME=TYPE (for example city=categorical). Received: {item!r}"
            )
        overrides[name] = int(kind) if kind.isdigit() else kind
    table = TablePreprocessor(column_types=overrides or None, continuous=continuous).fit(x_train)
    if not table.kept_.any():
        raise CommandError(f"{args.data} has no column with more than one value: nothing to model")
    return table.transform(x_train), table.transform(x_test), table


def _table_model(spec, table, args):
    """``probae.tabular_model``: the preset with one likelihood per column that
    marginalises missing cells."""
    from probae.tables import tabular_model

    options = {"latent_dim": args.latent_dim, "hidden_units": (256, 128)}
    for name in ("beta", "sparsity", "corruption"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    try:
        return tabular_model(table, spec, **options)
    except TypeError as err:
        raise CommandError(f"invalid options for preset {spec!r}: {err}") from None


def _load_table(model_path):
    """The preprocessing saved beside a model trained on a CSV (table.json), or None."""
    from probae.tables import TablePreprocessor

    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), TABLE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return TablePreprocessor.from_config(json.load(f))


def _model_input(x, table, source):
    """Data for a loaded model: through its table preprocessing when it has one."""
    if table is not None:
        return table.transform(x)
    if _is_table(x):
        return _as_examples(x.to_numpy(), source)
    return x


def _as_examples(x, source):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise CommandError(f"{source} must hold numbers. Received an array of dtype {x.dtype}")
    if x.ndim == 1:
        raise CommandError(
            f"{source} must hold one example per row (2 or more dimensions). Received shape "
            f"{x.shape}"
        )
    x = x.astype(np.float32)
    top = x.max(initial=0.0)
    if x.ndim >= 3 and 1.0 < top <= 255.0 and np.all(x == np.round(x)):
        x = x / 255.0  # 0-255 images
    return x


def load_data(spec, data_dir=None, split="train", binarize=False, max_examples=None, seed=0):
    """Loads ``spec`` (a dataset name or a file) for a command.

    Args:
        spec: a name of ``probae.datasets.DATASETS`` or a path to a .npy/.npz/.csv file.
        data_dir: local dataset directory.
        split: "train" returns ``(x_train, x_test, y_test)`` (a file is split 90/10 with
            ``seed``); "test" returns ``(x, y)``, the test split of a named dataset or the
            whole file.
        binarize: threshold the values at 0.5.
        max_examples: keep at most this many examples of each part.
        seed: seed of a file's split.

    Raises:
        CommandError: unknown name or unreadable file.
        FileNotFoundError: a file that does not exist.
    """
    from probae import datasets

    if spec in datasets.DATASETS:
        (x_train, _), (x_test, y_test) = datasets.load_dataset(spec, data_dir)
    elif os.path.splitext(spec)[1] or os.sep in spec:
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"data file not found: {spec}")
        x, y = _read_file(spec)
        if not _is_table(x):
            x = _as_examples(x, spec)
        elif binarize:
            raise CommandError(f"--binarize applies to arrays, not to the table {spec}")
        if split == "test":
            x_train, x_test, y_test = None, x, y
        else:
            order = np.random.default_rng(seed).permutation(len(x))
            n_test = max(1, len(x) // 10) if len(x) > 1 else 0
            if _is_table(x):
                x_train, x_test = x.iloc[order[n_test:]], x.iloc[order[:n_test]]
            else:
                x_train, x_test = x[order[n_test:]], x[order[:n_test]]
            y_test = None if y is None else np.asarray(y)[order[:n_test]]
    else:
        raise CommandError(
            f"data must be one of {datasets.DATASETS} or a .npy/.npz/.csv file. Received: {spec!r}"
        )

    def prep(a):
        if a is None:
            return None
        a = a[:max_examples]
        return (a > 0.5).astype(np.float32) if binarize else a

    y_test = None if y_test is None else np.asarray(y_test)[:max_examples]
    if split == "test":
        return prep(x_test), y_test
    return prep(x_train), prep(x_test), y_test


def _match_model(x, model, source):
    """Reshapes x to the model's example shape when the sizes agree, else raises."""
    shape = tuple(model.event_shape)
    if tuple(x.shape[1:]) == shape:
        return x
    if int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return x.reshape(len(x), *shape)
    raise CommandError(
        f"{source} has examples of shape {tuple(x.shape[1:])} but the model expects {shape}"
    )


def _is_image(shape):
    shape = tuple(shape)
    if len(shape) == 3 and shape[-1] in (1, 3):
        return True
    # A flat vector is a signal or a table row, whatever its length (never a square image).
    return len(shape) == 2


# ---------------------------------------------------------------------- models
def _load_model(path):
    """Loads a saved model (``probae.load_model``: safe mode, clear errors)."""
    import probae

    return probae.load_model(path)


def _build_model(spec, input_shape, args):
    """A model from a preset name or a config JSON (a preset with options, or a saved
    Keras model config as written by ``probae train`` in config.json)."""
    import keras

    from probae import presets

    if spec in PRESETS:
        factory = getattr(presets, PRESETS[spec])
        options = {}
    elif spec.endswith(".json") or os.sep in spec:
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"config file not found: {spec}")
        with open(spec) as f:
            try:
                config = json.load(f)
            except json.JSONDecodeError as err:
                raise CommandError(f"{spec} is not valid JSON: {err}") from None
        if isinstance(config, dict) and "class_name" in config:
            model = keras.saving.deserialize_keras_object(config)
            from probae.model import ProbabilisticAutoencoder

            if not isinstance(model, ProbabilisticAutoencoder):
                raise CommandError(
                    f"{spec} holds a {type(model).__name__}, not a probae model: give a preset "
                    'name, a preset JSON ({"preset": ...}) or the config.json of a probae run'
                )
            if model.event_shape is not None and tuple(model.event_shape) != tuple(input_shape):
                raise CommandError(
                    f"the data has examples of shape {tuple(input_shape)} but the config in "
                    f"{spec} expects {tuple(model.event_shape)}"
                )
            if not model.built:
                model.build((None, *input_shape))
            return model
        if not isinstance(config, dict) or config.get("preset") not in PRESETS:
            raise CommandError(
                f'{spec} must be a saved model config or {{"preset": one of '
                f"{tuple(PRESETS)}, ...options}}. Received preset="
                f"{config.get('preset') if isinstance(config, dict) else config!r}"
            )
        options = dict(config)
        factory = getattr(presets, PRESETS[options.pop("preset")])
    else:
        raise CommandError(
            f"unknown preset {spec!r}: use one of {tuple(PRESETS)} or a config .json file"
        )
    options.setdefault("latent_dim", args.latent_dim)
    options.setdefault("architecture", args.architecture)
    if args.likelihood is not None:
        options["likelihood"] = args.likelihood
    if args.beta is not None:
        options["beta"] = args.beta
    if args.sparsity is not None:
        if factory is not presets.SparseAutoencoder:
            raise CommandError(
                f"--sparsity applies to the sparse_autoencoder preset only. Received: {spec!r}"
            )
        options["sparsity"] = args.sparsity
    if args.corruption is not None:
        options["corruption"] = args.corruption  # masking-noise rate; any preset
    options.setdefault("hidden_units", (256, 128))
    try:
        return factory(input_shape, **options)
    except TypeError as err:
        raise CommandError(f"invalid options for preset {spec!r}: {err}") from None


def _default_likelihood(x):
    return "bernoulli" if float(x.min()) >= 0.0 and float(x.max()) <= 1.0 else "gaussian"


def _evaluate(model, x, num_samples, verbose):
    """Test metrics: ``probae.evaluate_likelihood`` for a model with a density, the
    reconstruction term (``model.evaluate``) for a point-mass encoder, which has no
    bound on log p(x)."""
    from probae import evaluate_likelihood

    if not model.has_density:
        logs = model.evaluate(x, verbose=0, return_dict=True)
        return {"examples": int(len(x)), "reconstruction": float(logs["reconstruction"])}
    result = evaluate_likelihood(model, x, num_samples=num_samples, seed=0, verbose=verbose)
    metrics = {
        key: result[key]
        for key in (
            "log_likelihood",
            "stderr",
            "bits_per_dim",
            "elbo",
            "reconstruction",
            "kl",
            "num_samples",
        )
    }
    return {"examples": int(len(x)), **metrics}


def _save_plots(model, x_test, y_test, history, out):
    from probae import plotting

    files = []
    if history is not None and history.history.get("loss"):
        plotting.plot_history(history, path=os.path.join(out, "training.png"))
        files.append("training.png")
    if _is_image(model.event_shape):
        n = min(10, len(x_test))
        plotting.plot_reconstructions(
            x_test[:n],
            model.reconstruct(x_test[:n], verbose=0),
            path=os.path.join(out, "reconstructions.png"),
        )
        files.append("reconstructions.png")
        if model.prior is not None:  # a point-mass encoder has no prior to sample from
            plotting.plot_samples(model, n=32, ncols=8, path=os.path.join(out, "samples.png"))
            files.append("samples.png")
        if model.latent_dim == 2:
            plotting.plot_manifold(model, path=os.path.join(out, "manifold.png"))
            files.append("manifold.png")
    complete = ~np.isnan(x_test.reshape(len(x_test), -1)).any(
        axis=1
    )  # the plot takes complete rows
    if complete.sum() > 2:
        plotting.plot_latent_scatter(
            model,
            x_test[complete],
            None if y_test is None else y_test[complete],
            path=os.path.join(out, "latent.png"),
        )
        files.append("latent.png")
    return files


# ---------------------------------------------------------------------- commands
def _train(args):
    import keras

    import probae

    backup = os.path.join(args.out, "backup")
    if os.path.isdir(backup) and not args.resume:
        raise CommandError(
            f"{backup} holds an interrupted run: add --resume to continue it, or delete it"
        )
    if args.resume and not os.path.isdir(backup):
        raise CommandError(f"nothing to resume: {backup} does not exist")
    probae.set_seed(args.seed, deterministic=False)
    x_train, x_test, y_test = load_data(
        args.data, args.data_dir, "train", args.binarize, args.max_examples, args.seed
    )
    if not len(x_train) or not len(x_test):
        raise CommandError(
            f"{args.data} has {len(x_train) + len(x_test)} example(s): probae train needs at "
            "least 2 (one tenth is held out to evaluate the model)"
        )
    table = None
    if _is_table(x_train):  # a CSV: standardised, typed and coded as AnomalyDetector does
        x_train, x_test, table = _fit_table(x_train, x_test, args)
    if (
        table is not None
        and args.model in PRESETS
        and (np.isnan(x_train).any() or set(table.decoder_types_) != {"gaussian"})
    ):
        model = _table_model(args.model, table, args)
    else:
        if args.likelihood is None and args.model in PRESETS:
            args.likelihood = _default_likelihood(x_train)
        model = _build_model(args.model, x_train.shape[1:], args)
    model.compile(keras.optimizers.Adam(args.learning_rate))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(keras.saving.serialize_keras_object(model), f, indent=1)
    table_file = os.path.join(args.out, TABLE_FILE)
    if table is not None:
        with open(table_file, "w") as f:
            json.dump(table.get_config(), f, indent=1)
    elif os.path.exists(table_file):
        os.remove(table_file)
    print(
        f"training {model.name} on {args.data}: {len(x_train)} examples of shape "
        f"{tuple(x_train.shape[1:])}, {args.epochs} epochs",
        flush=True,
    )
    start = time.time()
    history = model.fit(
        x_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=x_test if len(x_test) else None,
        callbacks=[probae.BackupAndRestore(backup)],
        verbose=args.verbose,
    )
    seconds = time.time() - start
    model.save(os.path.join(args.out, "model.keras"))
    print(f"evaluating on {len(x_test)} held-out examples (k={args.num_samples})", flush=True)
    metrics = {
        "model": args.model,
        "data": args.data,
        "epochs": args.epochs,
        "initial_epoch": int(history.epoch[0]) if history.epoch else args.epochs,
        "train_seconds": seconds,
        "test": _evaluate(model, x_test, args.num_samples, args.verbose) if len(x_test) else None,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    metrics["plots"] = _save_plots(model, x_test, y_test, history, args.out)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    if metrics["test"]:
        _print_metrics(metrics["test"])
    print(f"saved model.keras, metrics.json and {len(metrics['plots'])} plots in {args.out}")
    return 0


def _print_metrics(m):
    if "log_likelihood" not in m:
        print(f"  reconstruction {m['reconstruction']:10.3f} nats (log p(x|z) at the code)")
        return
    print(f"  log p(x)       {m['log_likelihood']:10.3f} nats  (k={m['num_samples']})")
    print(f"  bits/dim       {m['bits_per_dim']:10.4f}")
    print(f"  ELBO           {m['elbo']:10.3f} nats")
    print(f"  reconstruction {m['reconstruction']:10.3f} nats")
    print(f"  KL             {m['kl']:10.3f} nats")


def _evaluate_command(args):
    model = _load_model(args.model)
    x, _ = load_data(args.data, args.data_dir, "test", args.binarize, args.max_examples)
    x = _match_model(_model_input(x, _load_table(args.model), args.data), model, args.data)
    metrics = _evaluate(model, x, args.num_samples, args.verbose)
    print(f"{args.data}: {metrics['examples']} examples")
    _print_metrics(metrics)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=1)
    return 0


def _score(args):
    model = _load_model(args.model)
    x, y = load_data(args.data, args.data_dir, "test", args.binarize, args.max_examples)
    x = _match_model(_model_input(x, _load_table(args.model), args.data), model, args.data)
    from probae.anomaly import anomaly_scores, default_method

    method = args.method or default_method(model)
    kwargs = dict(method=method, seed=args.seed, num_samples=args.num_samples, verbose=args.verbose)
    if method == "likelihood_ratio":
        # The complexity background quantises with the batch's range: score in one call.
        scores = anomaly_scores(model, x, background="complexity", **kwargs)
    else:
        scores = anomaly_scores(model, x, **kwargs)  # its own progress bar
    folder = os.path.dirname(args.out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(args.out, "w") as f:
        f.write("index,score" + (",label" if y is not None else "") + "\n")
        for i, s in enumerate(scores):
            f.write(f"{i},{s:.6f}" + (f",{y[i]}" if y is not None else "") + "\n")
    k = "" if method == "reconstruction" else f", k={args.num_samples or 'default'}"
    print(f"wrote {len(scores)} anomaly scores (method {method}{k}) to {args.out}")
    return 0


def _sample(args):
    from probae import plotting

    model = _load_model(args.model)
    samples = model.sample(args.n, seed=args.seed, mean=not args.draw)
    folder = os.path.dirname(args.out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if args.out.endswith(".npy"):
        np.save(args.out, samples)
    elif _is_image(model.event_shape):
        plotting.plot_images(samples, ncols=args.ncols, path=args.out)
    else:
        raise CommandError(
            f"the model's examples of shape {tuple(model.event_shape)} are not images: "
            "use --out FILE.npy"
        )
    print(f"wrote {args.n} samples to {args.out}")
    return 0


# ---------------------------------------------------------------------- codec
def _read_codec_input(path, model):
    """x for ``probae compress``: a .npy / .npz array of examples, or one PNG image (for a
    model of binary data, a black-and-white PNG's 0 and 255 become 0 and 1)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        from PIL import Image

        with Image.open(path) as image:
            x = np.asarray(image.convert("L") if image.mode in ("1", "P") else image)
        support = model.decoder.discrete_support
        if support == (0, 1) and np.all(np.isin(x, (0, 255))):
            x = (x // 255).astype(np.uint8)
        x = x[None]
    elif ext in (".npy", ".npz"):
        x = _read_file(path)[0]
    else:
        raise CommandError(f"INPUT must end in .npy, .npz or .png. Received: {path}")
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise CommandError(f"{path} must hold numbers. Received an array of dtype {x.dtype}")
    if x.ndim == len(model.event_shape) and x.shape != tuple(model.event_shape):
        x = x[None]  # one example without its batch axis
    return _match_model(x if x.ndim > 1 else x[None], model, path)


def _write_codec_output(path, x, model):
    """Writes decoded examples to .npy, .npz (array x) or .png (one image)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        np.save(path, x)
    elif ext == ".npz":
        np.savez(path, x=x)
    elif ext == ".png":
        from PIL import Image

        if len(x) != 1:
            raise CommandError(
                f"a PNG holds one image; the stream holds {len(x)}: use OUTPUT.npy or .npz"
            )
        image = np.asarray(x[0], np.float64)
        side = math.isqrt(image.size)
        if image.ndim == 1 and side * side == image.size:
            image = image.reshape(side, side)
        elif image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim != 2 and not (image.ndim == 3 and image.shape[-1] == 3):
            raise CommandError(
                f"examples of shape {tuple(x.shape[1:])} are not images: use OUTPUT.npy"
            )
        support = model.decoder.discrete_support
        if support == (0, 1) or (support is None and image.max() <= 1.0):
            image = image * 255.0  # binary data, and means of data in [0, 1]
        Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(path)
    else:
        raise CommandError(f"OUTPUT must end in .npy, .npz or .png. Received: {path}")


def _compress(args):
    from probae import compression

    model = _load_model(args.model)
    x = _read_codec_input(args.input, model)
    data = compression.compress(
        model,
        x,
        batch_size=args.batch_size,
        lossy=args.lossy,
        step=args.step,
        latent_bits=args.latent_bits,
    )
    with open(args.out, "wb") as f:
        f.write(data)
    info = compression.stream_info(data)
    dims = int(np.prod(x.shape))
    extra = (
        f"initial bits {info['initial_bits']}"
        if info["mode"] == "lossless"
        else f"step {info['step']:g}"
    )
    print(
        f"wrote {len(x)} examples of shape {tuple(x.shape[1:])} to {args.out}: {len(data)} "
        f"bytes, {8 * len(data) / dims:.4f} bits/dim ({info['mode']}; header "
        f"{info['header_bytes']} bytes, {extra})"
    )
    return 0


def _decompress(args):
    from probae import compression

    model = _load_model(args.model)
    with open(args.input, "rb") as f:
        data = f.read()
    x = compression.decompress(model, data)
    _write_codec_output(args.out, x, model)
    print(f"wrote {len(x)} examples of shape {tuple(x.shape[1:])} to {args.out}")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser():
    parser = argparse.ArgumentParser(
        prog="probae", description="Train, evaluate and use probabilistic autoencoders."
    )
    parser.add_argument(
        "--tf-logs",
        action="store_true",
        help="show TensorFlow's start-up messages (hidden by default; or set PROBAE_TF_LOGS=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_options(p):
        p.add_argument("--data-dir", default=None, help="local dataset directory")
        p.add_argument("--binarize", action="store_true", help="threshold values at 0.5")
        p.add_argument("--max-examples", type=int, default=None, help="use at most N examples")
        p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output")

    p = sub.add_parser("train", help="train a model and save it with metrics and plots")
    p.add_argument("model", help=f"a preset {tuple(PRESETS)} or a config .json")
    p.add_argument("data", help="dataset name or .npy/.npz/.csv file")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="probae_run", help="output directory (default probae_run)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument(
        "--likelihood",
        default=None,
        help="decoder likelihood (default: bernoulli for data in [0, 1], else gaussian)",
    )
    p.add_argument(
        "--architecture",
        default="mlp",
        choices=("auto", "mlp", "conv"),
        help="the default networks: mlp, conv, or auto (conv for images) (default mlp)",
    )
    p.add_argument("--beta", type=float, default=None, help="KL weight (VAE presets)")
    p.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help="target mean code activation in (0, 1) (sparse_autoencoder; default 0.05)",
    )
    p.add_argument(
        "--corruption",
        type=float,
        default=None,
        help="masking-noise rate in [0, 1) on the input in training (any preset: "
        "denoising_autoencoder defaults to 0.25; with vae, a denoising VAE)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument(
        "--column-type",
        action="append",
        metavar="NAME=TYPE",
        help="a CSV column's likelihood instead of the one read from its values: "
        "gaussian, student_t, bernoulli, categorical (repeat for more columns)",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=100,
        help="importance samples for the final log p(x) (default 100)",
    )
    p.add_argument("--seed", type=int, default=0)
    data_options(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="log-likelihood, bits/dim and ELBO parts")
    p.add_argument("model", help="a saved model (.keras)")
    p.add_argument("data", help="dataset name (its test split) or .npy/.npz/.csv file")
    p.add_argument("--num-samples", type=int, default=1000, help="importance samples k")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    data_options(p)
    p.set_defaults(func=_evaluate_command)

    p = sub.add_parser("score", help="anomaly scores (higher = more anomalous) to a CSV")
    p.add_argument("model", help="a saved model (.keras)")
    p.add_argument("data", help="dataset name (its test split) or .npy/.npz/.csv file")
    p.add_argument("--out", default="scores.csv", help="CSV file (default scores.csv)")
    p.add_argument(
        "--method",
        default=None,
        choices=SCORE_METHODS,
        help="the score (probae.anomaly_scores); default: log_likelihood (minus "
        "log p(x)), or reconstruction for a deterministic encoder; "
        "likelihood_ratio uses the complexity background",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="samples k of the sampling methods (default: the method's, 100 for log_likelihood)",
    )
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same scores")
    data_options(p)
    p.set_defaults(func=_score)

    p = sub.add_parser("sample", help="draw from the prior and save a PNG grid")
    p.add_argument("model", help="a saved model (.keras)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--ncols", type=int, default=8)
    p.add_argument("--out", default="samples.png", help="PNG (a grid) or .npy (the array)")
    p.add_argument("--draw", action="store_true", help="draw x ~ p(x|z) instead of its mean")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)

    p = sub.add_parser(
        "compress", help="code data into a stream with the model (bits-back, or --lossy)"
    )
    p.add_argument("model", help="a saved model (.keras)")
    p.add_argument("input", help=".npy / .npz array of examples, or one .png image")
    p.add_argument("out", metavar="output", help="the stream (a file; for example x.pbae)")
    p.add_argument("--batch-size", type=int, default=100, help="images per coding block")
    p.add_argument("--lossy", action="store_true", help="code the quantised posterior mean")
    p.add_argument(
        "--step",
        type=float,
        default=0.5,
        help="--lossy: quantisation step in prior standard deviations (default 0.5)",
    )
    p.add_argument(
        "--latent-bits",
        type=int,
        default=8,
        help="lossless: 2**B buckets of equal prior mass per latent dimension (default 8)",
    )
    p.set_defaults(func=_compress)

    p = sub.add_parser("decompress", help="decode a stream of `probae compress`")
    p.add_argument("model", help="the saved model (.keras) that wrote the stream")
    p.add_argument("input", help="the stream")
    p.add_argument("out", metavar="output", help=".npy, .npz (array x) or .png (one image)")
    p.set_defaults(func=_decompress)
    return parser


def _check_out(args):
    """Refuses an --out that cannot be written before any work is done: train writes a
    directory, score and sample one file (in an existing directory)."""
    out = getattr(args, "out", None)
    if out is None:
        return
    if args.command == "train":
        if os.path.exists(out) and not os.path.isdir(out):
            raise CommandError(
                f"--out must be a directory (train writes model.keras, metrics.json and plots "
                f"in it). Received: {out}, an existing file"
            )
        return
    if os.path.isdir(out):
        raise CommandError(f"--out must be a file, not a directory. Received: {out}")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise CommandError(f"--out {out}: its directory {parent} does not exist")


def main(argv=None):
    """Runs the ``probae`` command line; returns the exit code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 for a mistake in the input (reported in one line on stderr).
    """
    args = build_parser().parse_args(argv)
    for name in (
        "epochs",
        "max_examples",
        "num_samples",
        "n",
        "batch_size",
        "latent_dim",
        "latent_bits",
    ):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(
                f"probae: error: --{name.replace('_', '-')} must be a positive integer. "
                f"Received: {value}",
                file=sys.stderr,
            )
            return _EXIT_USAGE
    rate = getattr(args, "learning_rate", None)
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        print(
            f"probae: error: --learning-rate must be a finite number > 0. Received: {rate}",
            file=sys.stderr,
        )
        return _EXIT_USAGE
    from probae.startup import import_tensorflow_quietly

    # Before any module that imports TensorFlow (probae.datasets does).
    import_tensorflow_quietly(show=True if args.tf_logs else None)
    from probae.datasets import DatasetNotFoundError

    try:
        _check_out(args)
        return args.func(args)
    except (CommandError, OSError, DatasetNotFoundError, ValueError, TypeError) as err:
        if os.environ.get("PROBAE_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        message = message.replace("pass data_dir=...", "pass --data-dir DIR")
        print(f"probae: error: {message}", file=sys.stderr)
        return _EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
