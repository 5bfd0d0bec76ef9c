"""Command-line options and data loading shared by the examples (no model logic here)."""

import argparse
import sys

from probae.startup import import_tensorflow_quietly

# Each example imports this module before Keras: TensorFlow's start-up messages (absl,
# oneDNN, cudart_stub, cuInit) stay off the terminal unless PROBAE_TF_LOGS=1.
import_tensorflow_quietly()

import probae  # noqa: E402
from probae.datasets import DatasetNotFoundError  # noqa: E402


def parser(doc, epochs, out, dataset="mnist"):
    """An argparse parser with the options every example has."""
    p = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=epochs, help="training epochs")
    p.add_argument("--out", default=out, help="output directory for figures")
    if dataset is not None:
        p.add_argument(
            "--dataset",
            default=dataset,
            choices=probae.datasets.DATASETS,
            help="digits (8 x 8, bundled with scikit-learn) works offline",
        )
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory holding the dataset files (default: $PROBAE_DATA_DIR, else download)",
    )
    p.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="use only this many training and test examples (quick runs)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output")
    return p


def error(message):
    """Prints a user error in one line on stderr; returns the exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def check_flags(args):
    """A one-line message for counts that must be positive (--epochs, --max-examples, ...),
    or None when they are."""
    for name in ("epochs", "max_examples", "workers", "batch_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be a positive integer. Received: {value}"
    return None


def load_dataset(args, flatten=False, offline_hint=True):
    """``probae.datasets.load_dataset(args.dataset, args.data_dir)`` or None after a
    one-line message: no local copy and no download, or a wrong --data-dir /
    $PROBAE_DATA_DIR (the message names the flag), or a damaged file."""
    problem = check_flags(args)
    if problem:
        error(problem)
        return None
    try:
        return probae.datasets.load_dataset(args.dataset, args.data_dir, flatten)
    except (DatasetNotFoundError, ValueError) as err:
        hint = " Or run offline with --dataset digits." if offline_hint else ""
        message = str(err).replace("pass data_dir=...", "pass --data-dir DIR")
        message = message.replace("data_dir must", "--data-dir must").replace(
            "data_dir=", "--data-dir "
        )
        error(f"{message}{hint}")
        return None


def load(args, flatten=False, binarize=False, labels=False, offline_hint=True):
    """Returns ``(x_train, y_train), (x_test, y_test)`` or None after a one-line message.

    ``labels=True``: the example needs labels (binarized_mnist has none).
    ``offline_hint``: the message suggests ``--dataset digits``.
    """
    if labels and args.dataset == "binarized_mnist":
        print(
            "error: this example needs labels, which binarized_mnist lacks: use --dataset "
            "mnist (binarised here) or digits.",
            file=sys.stderr,
        )
        return None
    data = load_dataset(args, flatten, offline_hint)
    if data is None:
        return None
    (x, y), (xt, yt) = data
    n = args.max_examples
    if binarize:
        x, xt = (x > 0.5).astype("float32"), (xt > 0.5).astype("float32")
    y = None if y is None else y[:n]
    yt = None if yt is None else yt[:n]
    return (x[:n], y), (xt[:n], yt)


def run(main, parse_args):
    """Runs ``main(parse_args())`` and exits with 2 when it returns 2."""
    result = main(parse_args())
    sys.exit(result if isinstance(result, int) else 0)
