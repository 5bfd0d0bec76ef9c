"""A training process for tests/test_callbacks.py (run as a subprocess, killed with SIGKILL).

    python tests/resume_worker.py OUT_DIR [--backup DIR] [--block-at-step N]
        [--block-during-save PATH]

Trains a small VAE on fixed synthetic binary data with ``probae.set_seed(7)``,
``shuffle=False`` (``--shuffle``: True) and, with ``--backup``, ``probae.BackupAndRestore`` every 2 steps. With
``--block-at-step N`` it writes OUT_DIR/blocked after the backup of global step N and
waits there to be killed. At the end it writes OUT_DIR/result.npz (weights, ELBO and
log-likelihood estimates) and OUT_DIR/model.keras; with ``--block-during-save PATH`` it
then saves to PATH again, writes OUT_DIR/saving half-way through and waits to be killed.
"""

import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import probae

EPOCHS, BATCH, N = 3, 16, 96  # 6 steps per epoch, 18 in all


def data():
    rng = np.random.default_rng(0)
    protos = rng.random((4, 12)) < 0.5
    x = protos[rng.integers(0, 4, N)] ^ (rng.random((N, 12)) < 0.1)
    return x.astype("float32")


class Block(keras.callbacks.Callback):
    def __init__(self, step, marker):
        super().__init__()
        self.step, self.marker, self.seen = step, marker, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            pathlib.Path(self.marker).write_text(str(os.getpid()))
            time.sleep(600)  # the parent sends SIGKILL now


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--backup")
    parser.add_argument("--block-at-step", type=int)
    parser.add_argument("--block-during-save")
    parser.add_argument("--shuffle", action="store_true")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    probae.set_seed(7)
    x = data()
    model = probae.VAE((12,), 2, hidden_units=(16,))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    callbacks = []
    if args.backup:
        callbacks.append(probae.BackupAndRestore(args.backup, save_freq=2))
    if args.block_at_step:
        callbacks.append(Block(args.block_at_step, out / "blocked"))
    history = model.fit(
        x, epochs=EPOCHS, batch_size=BATCH, shuffle=args.shuffle, verbose=0, callbacks=callbacks
    )
    np.savez(
        out / "result.npz",
        *[w for w in model.get_weights()],
        elbo=model.elbo(x[:32], num_samples=4, seed=3),
        log_likelihood=model.log_likelihood(x[:32], num_samples=50, seed=3),
        epochs_run=len(history.history["loss"]),
    )
    model.save(out / "model.keras")
    if args.block_during_save:
        from keras.src.saving import saving_lib

        original = saving_lib._save_state

        def slow_save_state(*a, **k):
            original(*a, **k)
            if k.get("inner_path", a[3] if len(a) > 3 else None) == "":
                pathlib.Path(out / "saving").write_text(str(os.getpid()))
                time.sleep(600)  # killed half-way: the weights are in the archive, not closed

        saving_lib._save_state = slow_save_state
        model.save(args.block_during_save)


if __name__ == "__main__":
    main()
