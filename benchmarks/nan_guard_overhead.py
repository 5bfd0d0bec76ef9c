"""Cost of probae's NaN guard (``StopOnNaN``, on by default in ``fit``) per training step.

Trains the same VAE for the same steps with ``stop_on_nan=True`` and ``False``,
alternating the two several times (so machine load affects both alike), and reports the
median and the minimum time per step of each (wall clock and this process's CPU time) and
their ratios; on a shared machine the minimum is the steadier figure. Data: random binary 784-vectors.

    python benchmarks/nan_guard_overhead.py --steps 200 --repeats 5 --batch-size 100
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import probae


def main(args):
    rng = np.random.default_rng(0)
    x = (rng.random((args.steps * args.batch_size, args.dim)) < 0.3).astype("float32")
    model = probae.VAE((args.dim,), 16, hidden_units=(args.hidden,))
    model.fit(x[: 2 * args.batch_size], batch_size=args.batch_size, verbose=0)  # trace once
    wall = {True: [], False: []}
    cpu = {True: [], False: []}
    for _ in range(args.repeats):
        for guard in (False, True):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(x, batch_size=args.batch_size, epochs=1, verbose=0, stop_on_nan=guard)
            wall[guard].append((time.perf_counter() - start) / args.steps * 1e3)
            cpu[guard].append((time.process_time() - start_cpu) / args.steps * 1e3)
    print(
        f"{args.steps} steps per fit, batch {args.batch_size}, {args.dim}-{args.hidden}-16 VAE, "
        f"{args.repeats} alternating repeats; ms per step"
    )
    for label, t in (("wall", wall), ("cpu", cpu)):
        for stat in (np.median, np.min):
            off, on = stat(t[False]), stat(t[True])
            print(
                f"{label} {stat.__name__:6s}: guard off {off:.3f}, on {on:.3f}, ratio {on / off:.3f}"
            )
    guard = probae.StopOnNaN()
    guard.set_model(model)
    logs = {"loss": 1.0, "elbo": -1.0}
    start = time.perf_counter()
    for i in range(100_000):
        guard.on_train_batch_end(i, logs)
    print(f"the check itself: {(time.perf_counter() - start) / 100_000 * 1e6:.2f} us per step")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=200)
    main(parser.parse_args())
