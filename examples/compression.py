"""Compression: a trained VAE as a lossless codec (bits-back ANS) and a lossy one.

Trains a small VAE on binarized MNIST (or loads a saved model with --model), codes the
test images with ``probae.compress`` (bits-back coding: the stream approaches the
model's negative ELBO), checks that ``probae.decompress`` gives every pixel back, and
prints the stream's size beside the model's -ELBO and generic codecs on the same images
(gzip, bz2 and lzma of the packed bits, one 1-bit PNG per image). Then the lossy mode
(the posterior mean quantised with a step, coded under the prior, decoded to the
likelihood's mean) at several steps against JPEG and WebP (Pillow) at several qualities:
a rate-distortion figure, with the image formats' sizes counted as files and as their
entropy-coded data alone (JPEG's scan data; WebP's VP8 bitstream without the RIFF
container).

    python examples/compression.py                    # trains for 10 epochs, about 3 min
    python examples/compression.py \\
        --model benchmarks/checkpoints/nll_binarized_mnist/iwae5/best.keras \\
        --out docs/images/compression                 # the figure in the README
"""

try:  # first: _shared imports TensorFlow with its start-up messages kept off the terminal
    from examples import _shared
except ImportError:  # run as a script
    import _shared

import bz2
import gzip
import io
import lzma
import math
import os
import time

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import probae
from probae import compression


def jpeg_scan_bytes(data):
    """Bytes of a baseline JPEG's entropy-coded scan data: everything after the SOS
    segment's header up to the EOI marker (tables, frame and scan headers excluded)."""
    pos = 2  # after SOI
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("not a JPEG marker")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan
            return len(data) - (pos + 2 + length) - 2  # minus the EOI marker
        pos += 2 + length
    raise ValueError("no scan in the JPEG")


def webp_bitstream_bytes(data):
    """Bytes of a simple lossy WebP's VP8 bitstream: the file minus the RIFF header (12
    bytes) and the VP8 chunk header (8 bytes)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or data[12:16] != b"VP8 ":
        raise ValueError("not a simple lossy WebP")
    return len(data) - 20


def image_codec(images, fmt, quality):
    """(file bits, entropy-coded bits, decoded images in [0, 1]) of one file per image."""
    files, data, decoded = 0, 0, []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, fmt, quality=quality)
        raw = buffer.getvalue()
        files += 8 * len(raw)
        data += 8 * (jpeg_scan_bytes(raw) if fmt == "JPEG" else webp_bitstream_bytes(raw))
        with Image.open(io.BytesIO(raw)) as back:
            decoded.append(np.asarray(back.convert("L"), np.float32) / 255.0)
    return files, data, np.stack(decoded)


def png_bits(images):
    """Bits of one 1-bit PNG file per image."""
    total = 0
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image > 0).convert("1").save(buffer, "PNG", optimize=True)
        total += 8 * len(buffer.getvalue())
    return total


def main(args):
    keras.utils.set_random_seed(args.seed)
    data = _shared.load(args, flatten=True, binarize=True)
    if data is None:
        return 2
    (x_train, _), (x_test, _) = data
    if not 1 <= args.latent_bits <= 16:
        return _shared.error(f"--latent-bits must be in 1..16. Received: {args.latent_bits}")
    if args.n is not None:
        if args.n < 1:
            return _shared.error(f"--n must be a positive integer. Received: {args.n}")
        x_test = x_test[: args.n]
    x = x_test.astype(np.uint8)
    n, dims = x.shape
    side = math.isqrt(dims)

    if args.model:
        model = probae.load_model(args.model, compile=False)
    else:
        model = probae.VAE(
            x_train.shape[1:], args.latent_dim, hidden_units=(256, 128), activation="tanh"
        )
        model.compile(keras.optimizers.Adam(1e-3))
        model.fit(x_train, epochs=args.epochs, batch_size=100, verbose=args.verbose)

    # Lossless: bits-back coding, and the round trip.
    start = time.perf_counter()
    stream = probae.compress(model, x, batch_size=args.batch_size, latent_bits=args.latent_bits)
    compress_s = time.perf_counter() - start
    start = time.perf_counter()
    back = probae.decompress(model, stream)
    decompress_s = time.perf_counter() - start
    exact = bool(np.array_equal(back, x))
    info = compression.stream_info(stream)
    elbo = model.elbo(x.astype(np.float32), num_samples=args.num_samples, seed=0, verbose=0)
    neg_elbo = -float(np.sum(elbo)) / math.log(2) / x.size

    packed = np.packbits(x).tobytes()
    images = (x.reshape(n, side, side) * 255).astype(np.uint8)
    rows = [
        ("probae bits-back stream", 8 * len(stream), "header, initial bits and payload"),
        ("  model -ELBO", neg_elbo * x.size, f"{args.num_samples} samples per image"),
        ("gzip -9", 8 * len(gzip.compress(packed, 9)), "packed bits, one file"),
        ("bz2 -9", 8 * len(bz2.compress(packed, 9)), "packed bits, one file"),
        ("lzma", 8 * len(lzma.compress(packed)), "packed bits, one file"),
        ("PNG (1 bit)", png_bits(images), "one file per image"),
    ]
    print(f"\n{n} test images of {dims} binary pixels; round trip exact: {exact}")
    print(f"{'codec':26s} {'bits/dim':>9s} {'bytes':>10s}  note")
    for name, bits, note in rows:
        print(f"{name:26s} {bits / x.size:9.4f} {bits / 8:10.0f}  {note}")
    print(
        f"stream / -ELBO = {8 * len(stream) / (neg_elbo * x.size):.4f}; initial bits "
        f"{info['initial_bits']}, header {info['header_bytes']} bytes; compress "
        f"{n / compress_s:.0f} images/s, decompress {n / decompress_s:.0f} images/s"
    )
    if not exact:
        return _shared.error("the decompressed images differ from the originals")

    # Lossy: rate-distortion against JPEG and WebP (mean squared error on [0, 1] pixels).
    curves = {"probae lossy": []}
    for step in args.steps:
        data = probae.compress(model, x, lossy=True, step=step, batch_size=args.batch_size)
        y = probae.decompress(model, data)
        curves["probae lossy"].append((8 * len(data) / n, float(np.mean((y - x) ** 2))))
    for fmt in ("JPEG", "WEBP"):
        files, payload = [], []
        for quality in args.qualities:
            file_bits, data_bits, y = image_codec(images, fmt, quality)
            mse = float(np.mean((y.reshape(n, dims) - x) ** 2))
            files.append((file_bits / n, mse))
            payload.append((data_bits / n, mse))
        name = "WebP" if fmt == "WEBP" else fmt
        curves[f"{name} file"] = files
        curves[f"{name} data only"] = payload
    print(f"\n{'lossy codec':22s} bits/image and mean squared error")
    for name, points in curves.items():
        print(f"{name:22s} " + "  ".join(f"{r:7.1f}:{d:.4f}" for r, d in points))

    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {
        "probae lossy": ("C0", "-", "o"),
        "JPEG file": ("C1", "-", "s"),
        "JPEG data only": ("C1", "--", "s"),
        "WebP file": ("C2", "-", "^"),
        "WebP data only": ("C2", "--", "^"),
    }
    for name, points in curves.items():
        color, line, marker = styles[name]
        rate, mse = zip(*points)
        ax.plot(rate, mse, color=color, linestyle=line, marker=marker, label=name)
    lossless = 8 * len(stream) / n
    ax.axvline(lossless, color="k", linestyle=":", linewidth=1)
    ax.annotate(
        f"probae lossless\n{lossless:.0f} bits/image",
        (lossless, 0.5),
        xycoords=("data", "axes fraction"),
        xytext=(4, 0),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bits per image (28 x 28 binary)" if side == 28 else "bits per image")
    ax.set_ylabel("mean squared error per pixel")
    ax.set_title(
        f"Lossy coding of {n} binarized MNIST test images\n"
        "probae: one stream (header included); JPEG / WebP: one file per image",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "rate_distortion.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nfigure saved to {path}")
    return {
        "exact": exact,
        "stream_bits_per_dim": 8 * len(stream) / x.size,
        "neg_elbo_bits_per_dim": neg_elbo,
        "initial_bits": info["initial_bits"],
        "header_bytes": info["header_bytes"],
        "codecs": {name: bits / x.size for name, bits, _ in rows},
        "curves": curves,
    }


def parse_args(argv=None):
    p = _shared.parser(__doc__, epochs=10, out="out/compression", dataset="binarized_mnist")
    p.add_argument("--model", default=None, help="a saved model (.keras) instead of training")
    p.add_argument("--latent-dim", type=int, default=32, help="code size of the trained model")
    p.add_argument("--n", type=int, default=None, help="code only the first N test images")
    p.add_argument("--batch-size", type=int, default=100, help="images per coding block")
    p.add_argument("--num-samples", type=int, default=10, help="samples per image for -ELBO")
    p.add_argument(
        "--latent-bits", type=int, default=8, help="lossless: 2**B buckets per latent dimension"
    )
    p.add_argument(
        "--steps",
        type=float,
        nargs="+",
        default=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
        help="lossy quantisation steps (prior standard deviations)",
    )
    p.add_argument(
        "--qualities",
        type=int,
        nargs="+",
        default=[1, 5, 10, 25, 50, 75, 95],
        help="JPEG and WebP quality settings",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    _shared.run(main, parse_args)
