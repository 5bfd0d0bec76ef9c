"""Command-line options and data loading shared by the examples (no model logic here)."""

import argparse
import sys

import probae
from probae.datasets import DatasetNotFoundError


def parser(doc, epochs, out, dataset="mnist"):
    """An argparse parser with the options every example has."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=epochs, help="training epochs")
    p.add_argument("--out", default=out, help="output directory for figures")
    if dataset is not None:
        p.add_argument("--dataset", default=dataset, choices=probae.datasets.DATASETS,
                       help="digits (8 x 8, bundled with scikit-learn) works offline")
    p.add_argument("--data-dir", default=None,
                   help="directory holding the dataset files (default: $PROBAE_DATA_DIR, "
                        "else download)")
    p.add_argument("--max-examples", type=int, default=None,
                   help="use only this many training and test examples (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output")
    return p


def load(args, flatten=False, binarize=False, labels=False, offline_hint=True):
    """Returns ``(x_train, y_train), (x_test, y_test)`` or None after a one-line message.

    ``labels=True``: the example needs labels (binarized_mnist has none).
    ``offline_hint``: the message suggests ``--dataset digits``.
    """
    if labels and args.dataset == "binarized_mnist":
        print("error: this example needs labels, which binarized_mnist lacks: use --dataset "
              "mnist (binarised here) or digits.", file=sys.stderr)
        return None
    try:
        (x, y), (xt, yt) = probae.datasets.load_dataset(args.dataset, args.data_dir, flatten)
    except DatasetNotFoundError as err:
        hint = " Or run offline with --dataset digits." if offline_hint else ""
        print(f"error: {str(err).replace('pass data_dir=...', 'pass --data-dir DIR')}{hint}",
              file=sys.stderr)
        return None
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
