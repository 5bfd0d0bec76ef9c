"""Lossless compression of MNIST: probae's bits-back stream against the usual codecs.

On the full test sets (10,000 images each), counting every byte written:

- binarized MNIST (the fixed binarization, ``binarized_mnist.npz``), coded by the
  IWAE-trained N(0, I)-prior model of ``benchmarks/nll_binarized_mnist.py``
  (``benchmarks/checkpoints/nll_binarized_mnist/iwae5/best.keras``);
- 8-bit MNIST (``mnist.npz`` x_test, integers 0..255), coded by the beta-binomial VAE of
  ``benchmarks/train_mnist_8bit.py`` (``--weights``).

For each: bits/dim of ``probae.compress``'s stream (header, ANS words and checksum: the
whole ``bytes``), checked to decode to the same images; the model's -ELBO and -log p(x)
(importance sampling, ``--k`` samples) beside it; gzip, bz2 and lzma (strongest
settings) on the images' bytes (uint8, one byte per pixel; for binary images also
``np.packbits``, 8 pixels per byte); PNG (Pillow, ``optimize=True``; 1-bit for binary
images) and lossless WebP (``method=6``), each per image (the sum of 10,000 files; and
that sum without the formats' container bytes: PNG's IDAT payloads, WebP's VP8L payload)
and as one mosaic image of all the digits (one container). Speed: images per second of
``compress`` and ``decompress`` beside PNG's and WebP's per-image encode and decode on
the same CPU, and the stream's one-time bits-back start-up cost (``initial_bits``) and
header bytes.

Examples:
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 nice -n 10 python \
        benchmarks/compression.py --data binarized
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 nice -n 10 python \
        benchmarks/compression.py --data 8bit --weights benchmarks/runs/mnist8/model.weights.h5
    # the rows other than probae's stream, on all 10,000 images
    python benchmarks/compression.py --data 8bit --no-stream
    # quick check on 200 images of each
    python benchmarks/compression.py --n 200 --k 10
"""

import argparse
import bz2
import gzip
import io
import json
import lzma
import math
import os
import pathlib
import platform
import struct
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = pathlib.Path(os.environ.get("PROBAE_DATA_DIR", REPO.parent / "shared" / "datasets"))
BINARIZED_MODEL = (
    REPO / "benchmarks" / "checkpoints" / "nll_binarized_mnist" / "iwae5" / "best.keras"
)
EIGHT_BIT_WEIGHTS = REPO / "benchmarks" / "runs" / "mnist8" / "model.weights.h5"

# Published bits/dim on the same test sets (Townsend et al. 2019, BB-ANS, tables 2-3;
# Kingma et al. 2019, Bit-Swap, table 2).
PUBLISHED = {
    "binarized": [
        ("BB-ANS (published)", 0.19),
        ("bz2 (BB-ANS paper)", 0.25),
        ("PNG (BB-ANS paper)", 0.78),
    ],
    "8bit": [
        ("BB-ANS (published)", 1.41),
        ("Bit-Swap (published)", 1.29),
        ("bz2 (BB-ANS paper)", 1.42),
    ],
}


def load_images(which, n, offset=0):
    """[n, 28, 28] uint8 test images: binary {0, 1} or 8-bit 0..255."""
    if which == "binarized":
        with np.load(DATA / "binarized_mnist.npz") as d:
            x = d["test"]
    else:
        with np.load(DATA / "mnist.npz") as d:
            x = d["x_test"]
    x = np.asarray(x, np.uint8).reshape(-1, 28, 28)[offset:]
    return x[:n] if n else x


# --------------------------------------------------------------------------- image formats
def _png_idat_bytes(data):
    """The bytes of a PNG's IDAT chunk payloads (the compressed pixels, no container)."""
    pos, total = 8, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            total += length
        pos += 12 + length
    return total


def _webp_payload_bytes(data):
    """The bytes of a WebP file's image chunk payload (VP8L / VP8), no RIFF container."""
    pos, total = 12, 0
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if tag in (b"VP8L", b"VP8 "):
            total += length
        pos += 8 + length + (length & 1)
    return total


def _image(arr, binary):
    from PIL import Image

    if binary:  # a 1-bit image (mode "1"), from 0/255 grey levels
        return Image.fromarray((arr * 255).astype(np.uint8)).convert("1")
    return Image.fromarray(arr)


def _encode(img, fmt):
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG", optimize=True)
    else:
        img.save(buf, format="WEBP", lossless=True, quality=100, method=6)
    return buf.getvalue()


def _decode(data):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def image_format(x, binary, fmt):
    """Per-image files, their payloads without container, a mosaic, and speeds."""
    t0 = time.perf_counter()
    files = [_encode(_image(im, binary), fmt) for im in x]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = [np.asarray(_decode(f).convert("L")) for f in files]
    t_dec = time.perf_counter() - t0
    scale = 255 if binary else 1
    assert all(np.array_equal(d, im * scale) for d, im in zip(decoded, x)), fmt
    payload = _png_idat_bytes if fmt == "PNG" else _webp_payload_bytes
    cols = 100
    rows = math.ceil(len(x) / cols)
    grid = np.zeros((rows * cols, 28, 28), np.uint8)
    grid[: len(x)] = x
    grid = grid.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    mosaic = _encode(_image(grid, binary), fmt)
    return {
        "per_image_bytes": sum(len(f) for f in files),
        "per_image_payload_bytes": sum(payload(f) for f in files),
        "mosaic_bytes": len(mosaic),
        "encode_images_per_s": len(x) / t_enc,
        "decode_images_per_s": len(x) / t_dec,
    }


def generic_codecs(x, binary):
    """gzip, bz2 and lzma on the images' bytes (and on packed bits for binary images)."""
    raw = np.ascontiguousarray(x, np.uint8).tobytes()
    inputs = {"uint8": raw}
    if binary:
        inputs["packbits"] = np.packbits(x.reshape(len(x), -1), axis=None).tobytes()
    out = {}
    for layout, data in inputs.items():
        out[f"gzip -9 ({layout})"] = len(gzip.compress(data, compresslevel=9, mtime=0))
        out[f"bz2 -9 ({layout})"] = len(bz2.compress(data, compresslevel=9))
        out[f"lzma -9e ({layout})"] = len(
            lzma.compress(data, preset=9 | lzma.PRESET_EXTREME, format=lzma.FORMAT_XZ)
        )
    return out


# --------------------------------------------------------------------------- probae
def load_model(which, args):
    import probae

    if which == "binarized":
        return probae.load_model(args.binarized_model, compile=False)
    from train_mnist_8bit import load_trained

    return load_trained(args.weights)


def probae_stream(model, flat, batch_size):
    import probae
    from probae.compression import stream_info

    t0 = time.perf_counter()
    data = probae.compress(model, flat, batch_size=batch_size)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = probae.decompress(model, data)
    t_dec = time.perf_counter() - t0
    exact = bool(np.array_equal(back, flat)) and back.dtype == flat.dtype
    if not exact:
        raise SystemExit("error: the stream did not decode to the images it coded")
    info = stream_info(data)
    return {
        "bytes": len(data),
        "header_bytes": info["header_bytes"],
        "initial_bits": info["initial_bits"],
        "latent_bits": info["latent_bits"],
        "batch_size": batch_size,
        "exact": exact,
        "encode_images_per_s": len(flat) / t_enc,
        "decode_images_per_s": len(flat) / t_dec,
        "encode_s": t_enc,
        "decode_s": t_dec,
    }


def model_bounds(model, flat, k):
    import probae

    t0 = time.perf_counter()
    r = probae.evaluate_likelihood(model, flat, num_samples=k, seed=0, verbose=0)
    return {
        "elbo_nats": r["elbo"],
        "log_likelihood_nats": r["log_likelihood"],
        "stderr_nats": r["stderr"],
        "k": k,
        "seconds": time.perf_counter() - t0,
    }


def run(which, args):
    x = load_images(which, args.n, args.offset)
    binary = which == "binarized"
    n, dims = len(x), x[0].size
    flat = x.reshape(n, -1)
    model = load_model(which, args)
    path = args.binarized_model if binary else args.weights
    result = {"data": which, "n": n, "offset": args.offset, "dims": dims, "model_file": str(path)}
    result["model_file_bytes"] = pathlib.Path(path).stat().st_size
    if not args.no_stream:
        print(f"[{which}] {n} images: probae stream ...", flush=True)
        result["probae"] = probae_stream(model, flat, args.batch_size)
    print(f"[{which}] model bounds (k={args.k}) ...", flush=True)
    result["model"] = model_bounds(model, flat, args.k)
    print(f"[{which}] generic codecs, PNG, WebP ...", flush=True)
    result["generic"] = generic_codecs(x, binary)
    result["PNG"] = image_format(x, binary, "PNG")
    result["WebP"] = image_format(x, binary, "WEBP")
    return result


# --------------------------------------------------------------------------- tables
def bpd(nbytes, n, dims):
    return 8.0 * nbytes / (n * dims)


def table(result):
    n, dims = result["n"], result["dims"]
    nats = n * dims * math.log(2)
    p, m = result.get("probae"), result["model"]
    neg_elbo = -m["elbo_nats"] * n / nats
    neg_ll = -m["log_likelihood_nats"] * n / nats
    rows = []
    if p is not None:
        rows.append(
            (
                "**probae bits-back stream (all bytes)**",
                f"**{bpd(p['bytes'], n, dims):.4f}**",
                p["bytes"],
            )
        )
    rows += [
        (f"model -ELBO (k={m['k']} estimate)", f"{neg_elbo:.4f}", ""),
        (f"model -log p(x) (IS, k={m['k']})", f"{neg_ll:.4f}", ""),
    ]
    for name, nbytes in result["generic"].items():
        rows.append((name, f"{bpd(nbytes, n, dims):.4f}", nbytes))
    for fmt in ("PNG", "WebP"):
        r = result[fmt]
        rows.append(
            (
                f"{fmt}, one file per image",
                f"{bpd(r['per_image_bytes'], n, dims):.4f}",
                r["per_image_bytes"],
            )
        )
        rows.append(
            (
                f"{fmt}, per image, without container",
                f"{bpd(r['per_image_payload_bytes'], n, dims):.4f}",
                r["per_image_payload_bytes"],
            )
        )
        rows.append(
            (
                f"{fmt}, one mosaic of all images",
                f"{bpd(r['mosaic_bytes'], n, dims):.4f}",
                r["mosaic_bytes"],
            )
        )
    for name, value in PUBLISHED[result["data"]]:
        rows.append((name, f"{value:.2f}", "published"))
    lines = [
        f"{result['data']} MNIST, {n} test images ({dims} pixels each); model "
        f"{result['model_file']} ({result['model_file_bytes']:,} bytes, not counted)",
        "",
        "| coder | bits/dim | bytes |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {a} | {b} | {c:,} |" if isinstance(c, int) else f"| {a} | {b} | {c} |"
        for a, b, c in rows
    ]
    speed = [
        "",
        "| speed (images/s) | encode | decode |",
        "|---|---:|---:|",
    ]
    if p is not None:
        gap = 100.0 * (bpd(p["bytes"], n, dims) / neg_elbo - 1.0)
        lines += [
            "",
            f"Stream vs the model's -ELBO: {gap:+.2f}%. Header {p['header_bytes']} bytes; "
            f"bits-back start-up cost (initial bits, once per stream) {p['initial_bits']} bits "
            f"({p['initial_bits'] / (n * dims):.5f} bits/dim over these {n} images); "
            f"latent_bits={p['latent_bits']}, batch_size={p['batch_size']}; round trip exact: "
            f"{p['exact']}.",
        ]
        speed.append(
            f"| probae compress / decompress | {p['encode_images_per_s']:.1f} | "
            f"{p['decode_images_per_s']:.1f} |"
        )
    for fmt, label in (
        ("PNG", "PNG (Pillow, per image)"),
        ("WebP", "WebP lossless (Pillow, per image)"),
    ):
        r = result[fmt]
        speed.append(
            f"| {label} | {r['encode_images_per_s']:.0f} | {r['decode_images_per_s']:.0f} |"
        )
    lines += speed
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["binarized", "8bit", "both"], default="both")
    parser.add_argument("--n", type=int, default=0, help="test images (0: all 10,000)")
    parser.add_argument(
        "--offset", type=int, default=0, help="first test image (to code the set in parts)"
    )
    parser.add_argument("--k", type=int, default=100, help="importance samples for the bounds")
    parser.add_argument("--batch-size", type=int, default=100, help="compress's batch_size")
    parser.add_argument("--binarized-model", default=str(BINARIZED_MODEL))
    parser.add_argument("--weights", default=str(EIGHT_BIT_WEIGHTS), help="8-bit model weights")
    parser.add_argument(
        "--no-stream", action="store_true", help="leave out probae's stream (the other rows only)"
    )
    parser.add_argument("--out", default="benchmarks/runs/compression", help="JSON results folder")
    args = parser.parse_args(argv)
    if args.n < 0 or args.offset < 0 or args.k < 1 or args.batch_size < 1:
        parser.error("--n and --offset must be >= 0, --k and --batch-size >= 1")
    which = ["binarized", "8bit"] if args.data == "both" else [args.data]
    for path, flag in ((args.binarized_model, "binarized"), (args.weights, "8bit")):
        if flag in which and not pathlib.Path(path).exists():
            parser.error(f"the {flag} model {path} does not exist")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for w in which:
        result = run(w, args)
        result["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} CPUs, TF threads "
            + os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
        )
        result["command"] = "python benchmarks/compression.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        tag = "_no_stream" if args.no_stream else ""
        (out / f"{w}_{args.offset}+{result['n']}{tag}.json").write_text(
            json.dumps(result, indent=1)
        )
        print(table(result), flush=True)
        print()


if __name__ == "__main__":
    main()
