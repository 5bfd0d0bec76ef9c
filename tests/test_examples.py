"""Smoke tests: every example runs in-process through main() on tiny settings."""

import importlib.util
import os
import sys

import matplotlib.image
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")
TINY = ["--dataset", "digits", "--epochs", "1", "--max-examples", "300", "--verbose", "0"]


def _load(name):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_pngs(folder, names):
    for name in names:
        image = matplotlib.image.imread(os.path.join(folder, name))
        assert np.var(image[..., :3]) > 1e-3, f"{name} is blank"


def test_quickstart(tmp_path):
    quickstart = _load("quickstart")
    out = str(tmp_path / "q")
    result = quickstart.main(quickstart.parse_args(TINY + ["--out", out, "--num-samples", "10"]))
    # Binarised 8 x 8 digits: an untrained Bernoulli decoder gives 64 log 2 = 44.4 nats.
    assert -44.4 < result["elbo"] < -5.0
    assert result["elbo"] - 0.5 <= result["log_likelihood"] < -5.0
    _check_pngs(out, ["reconstructions.png", "samples.png", "manifold.png", "training.png"])


def test_autoencoder_mnist_loss_is_binary_cross_entropy(tmp_path):
    example = _load("autoencoder_mnist")
    out = str(tmp_path / "ae")
    result = example.main(example.parse_args(TINY + ["--out", out, "--latent-dim", "8"]))
    # The degenerate case: minus the Bernoulli log-likelihood is the summed BCE.
    assert result["bce"] == pytest.approx(-result["reconstruction_log_likelihood"] / 64, rel=1e-3)
    assert 0.05 < result["bce"] < np.log(2.0) + 0.05
    _check_pngs(out, ["reconstructions.png"])


def test_beta_vae(tmp_path):
    example = _load("beta_vae")
    out = str(tmp_path / "b")
    rows = example.main(example.parse_args(
        TINY + ["--out", out, "--betas", "1", "50", "--latent-dim", "3"]))
    assert [r["beta"] for r in rows] == [1.0, 50.0]
    for r in rows:
        assert r["elbo"] == pytest.approx(r["reconstruction"] - r["kl"], abs=1e-3)
    assert rows[1]["kl"] < rows[0]["kl"]  # a heavy KL weight squeezes the code
    _check_pngs(out, ["traversals_beta1.png", "traversals_beta50.png"])


@pytest.mark.parametrize("name", ["quickstart", "autoencoder_mnist", "beta_vae"])
def test_offline_message_names_the_fix(name, tmp_path, capsys, monkeypatch):
    import probae.datasets

    def unavailable(*args, **kwargs):
        raise probae.datasets.DatasetNotFoundError(
            "MNIST was not found locally and could not be downloaded (URLError). Put 'mnist.npz' "
            "in a directory and pass data_dir=... or set PROBAE_DATA_DIR."
        )

    monkeypatch.setattr(probae.datasets, "load_dataset", unavailable)
    example = _load(name)
    assert example.main(example.parse_args(["--out", str(tmp_path)])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--data-dir" in err and "PROBAE_DATA_DIR" in err and "--dataset digits" in err


@pytest.mark.parametrize("name", ["quickstart", "autoencoder_mnist", "beta_vae"])
def test_help(name, capsys):
    example = _load(name)
    with pytest.raises(SystemExit) as info:
        example.parse_args(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--epochs" in text and "--out" in text and "--dataset" in text
