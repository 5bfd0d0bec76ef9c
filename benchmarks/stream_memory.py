"""Peak memory of training from ``.npy`` shards on disk against loading the array.

Writes ``--rows`` random binary 784-pixel images (float32: rows * 3136 bytes) as shards,
then in two fresh processes trains a small VAE for one epoch:

* ``stream``: ``probae.data.from_npy_shards(directory, 100)`` (reads blocks of rows);
* ``memory``: the same data loaded into one NumPy array and passed to ``fit``.

Each process reports its peak resident memory (``ru_maxrss``) before and after the
epoch. The streaming run's growth stays far below the data's size.

    python benchmarks/stream_memory.py --rows 100000     # 314 MB of data
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(mode, directory, steps):
    import numpy as np

    sys.path.insert(0, REPO)
    import keras

    import probae

    keras.utils.set_random_seed(0)
    model = probae.VAE((784,), 20, hidden_units=(128,), activation="tanh")
    model.compile("adam")
    model.fit(np.zeros((200, 784), np.float32), batch_size=100, verbose=0)  # warm up TF
    before = peak_mb()
    t0 = time.perf_counter()
    if mode == "stream":
        data = probae.data.from_npy_shards(directory, 100, shuffle_buffer=10_000, seed=0)
        hist = model.fit(data, epochs=1, verbose=0, steps_per_epoch=steps)
    else:
        files = sorted(f for f in os.listdir(directory) if f.endswith(".npy"))
        x = np.concatenate([np.load(os.path.join(directory, f)) for f in files])
        hist = model.fit(x, batch_size=100, epochs=1, verbose=0, steps_per_epoch=steps)
    print(
        "RESULT "
        + json.dumps(
            {
                "mode": mode,
                "peak_before_mb": before,
                "peak_after_mb": peak_mb(),
                "growth_mb": peak_mb() - before,
                "seconds": time.perf_counter() - t0,
                "loss": hist.history["loss"][-1],
            }
        ),
        flush=True,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rows-per-shard", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=None, help="steps of the epoch (default: all)")
    p.add_argument("--dir", default=None, help="where to write the shards (default: a temp dir)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.steps)

    import numpy as np

    directory = args.dir or tempfile.mkdtemp(prefix="probae-shards-")
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, start in enumerate(range(0, args.rows, args.rows_per_shard)):
        rows = min(args.rows_per_shard, args.rows - start)
        np.save(
            os.path.join(directory, f"shard-{i:05d}.npy"),
            (rng.random((rows, 784)) < 0.13).astype(np.float32),
        )
    size_mb = (
        sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)) / 2**20
    )
    print(f"data on disk: {args.rows} x 784 float32 = {size_mb:.0f} MB in {directory}")
    results = {"data_mb": size_mb}
    for mode in ("stream", "memory"):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, directory]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        res = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        results[mode] = res
        print(
            f"{mode:7s}: peak RSS {res['peak_before_mb']:.0f} MB after warm-up -> "
            f"{res['peak_after_mb']:.0f} MB after the epoch (growth {res['growth_mb']:.0f} MB, "
            f"{res['seconds']:.0f} s)"
        )
    print(json.dumps(results))
    if not args.dir:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
