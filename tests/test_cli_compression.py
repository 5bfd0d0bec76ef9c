"""`probae compress` and `probae decompress`: files in, stream out, the same files back."""

import numpy as np
import pytest
from PIL import Image

import probae
from probae.cli import main
from tests.helpers import fit, seeded


@pytest.fixture(scope="module")
def setup(binarized, tmp_path_factory):
    x, xt = binarized
    model = seeded(lambda: probae.VAE((784,), 4, hidden_units=(32,)))
    model.compile("adam")
    fit(model, x[:1000], epochs=1)
    folder = tmp_path_factory.mktemp("codec")
    model.save(folder / "model.keras")
    other = seeded(lambda: probae.VAE((784,), 4, hidden_units=(32,)), seed=3)
    other.save(folder / "other.keras")
    return folder, xt[:40].astype(np.uint8)


def _run(*argv):
    return main([str(a) for a in argv])


def test_npy_and_npz_round_trip(setup, capsys):
    folder, x = setup
    np.save(folder / "x.npy", x)
    assert _run("compress", folder / "model.keras", folder / "x.npy", folder / "x.pbae") == 0
    out = capsys.readouterr().out
    assert "wrote 40 examples of shape (784,)" in out and "bits/dim (lossless" in out
    size = (folder / "x.pbae").stat().st_size
    assert f"{size} bytes" in out
    assert _run("decompress", folder / "model.keras", folder / "x.pbae", folder / "y.npy") == 0
    y = np.load(folder / "y.npy")
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, x)
    # .npz in (array x, images 28 x 28: reshaped to the model's 784), .npz out
    np.savez(folder / "x.npz", x=x.reshape(-1, 28, 28))
    assert _run("compress", folder / "model.keras", folder / "x.npz", folder / "z.pbae") == 0
    assert _run("decompress", folder / "model.keras", folder / "z.pbae", folder / "z.npz") == 0
    with np.load(folder / "z.npz") as f:
        np.testing.assert_array_equal(f["x"], x)


def test_png_round_trip(setup):
    folder, x = setup
    Image.fromarray((x[0].reshape(28, 28) * 255).astype(np.uint8)).save(folder / "d.png")
    assert _run("compress", folder / "model.keras", folder / "d.png", folder / "d.pbae") == 0
    assert _run("decompress", folder / "model.keras", folder / "d.pbae", folder / "e.png") == 0
    with Image.open(folder / "e.png") as image:
        np.testing.assert_array_equal(np.asarray(image), x[0].reshape(28, 28) * 255)


def test_png_round_trip_of_8bit_pixels(tmp_path, mnist):
    model = seeded(lambda: probae.VAE((784,), 2, likelihood="beta_binomial", hidden_units=(8,)))
    model.save(tmp_path / "m8.keras")
    pixels = np.round(mnist[2][0].reshape(28, 28) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    assert _run("compress", tmp_path / "m8.keras", tmp_path / "g.png", tmp_path / "g.pbae") == 0
    assert _run("decompress", tmp_path / "m8.keras", tmp_path / "g.pbae", tmp_path / "h.png") == 0
    with Image.open(tmp_path / "h.png") as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_lossy(setup):
    folder, x = setup
    np.save(folder / "x.npy", x)
    args = ["compress", folder / "model.keras", folder / "x.npy", folder / "l.pbae"]
    assert _run(*args, "--lossy", "--step", "1.0") == 0
    assert _run("decompress", folder / "model.keras", folder / "l.pbae", folder / "l.npy") == 0
    y = np.load(folder / "l.npy")
    assert y.dtype == np.float32 and y.shape == x.shape
    assert 0.0 <= y.min() and y.max() <= 1.0  # Bernoulli means
    assert (folder / "l.pbae").stat().st_size < (folder / "x.npy").stat().st_size / 10


def _error(capsys, *argv):
    assert _run(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("probae: error: ")
    return err


def test_errors_exit_2_with_one_line(setup, capsys):
    folder, x = setup
    model = folder / "model.keras"
    np.save(folder / "x.npy", x)
    np.save(folder / "grey.npy", x * 0.5)
    assert "integers in 0..1" in _error(
        capsys, "compress", model, folder / "grey.npy", folder / "g.pbae"
    )
    (folder / "x.txt").write_text("1 2 3")
    assert "INPUT must end in" in _error(
        capsys, "compress", model, folder / "x.txt", folder / "t.pbae"
    )
    assert "--batch-size" in _error(
        capsys, "compress", model, folder / "x.npy", folder / "b.pbae", "--batch-size", "0"
    )
    assert _run("compress", model, folder / "x.npy", folder / "x.pbae") == 0
    assert "different model" in _error(
        capsys, "decompress", folder / "other.keras", folder / "x.pbae", folder / "o.npy"
    )
    assert "a PNG holds one image" in _error(
        capsys, "decompress", model, folder / "x.pbae", folder / "o.png"
    )
    data = bytearray((folder / "x.pbae").read_bytes())
    data[100] ^= 1
    (folder / "bad.pbae").write_bytes(bytes(data))
    assert "corrupted" in _error(capsys, "decompress", model, folder / "bad.pbae", folder / "o.npy")
    assert "No such file" in _error(
        capsys, "decompress", model, folder / "missing.pbae", folder / "o.npy"
    )
