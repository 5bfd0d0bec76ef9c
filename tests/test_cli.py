"""The probae command line, run in-process through main(argv) (and once as a process)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import matplotlib.image
import numpy as np
import pytest

from probae.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [
    "train",
    "vae",
    "digits",
    "--epochs",
    "3",
    "--max-examples",
    "600",
    "--latent-dim",
    "2",
    "--num-samples",
    "20",
    "--batch-size",
    "64",
    "--learning-rate",
    "3e-3",
    "--verbose",
    "0",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli") / "run")
    assert main(TRAIN + ["--out", out]) == 0
    return out


def test_train_writes_model_metrics_and_plots(run_dir):
    files = set(os.listdir(run_dir))
    assert {"model.keras", "metrics.json", "config.json", "training.png"} <= files
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    test = metrics["test"]
    assert metrics["initial_epoch"] == 0 and len(metrics["history"]["loss"]) == 3
    # 8 x 8 digits with 17 grey levels, Bernoulli decoder: an untrained model is near
    # 64 log 2 = 44 nats; a few epochs bring it well below.
    assert 5.0 < -test["log_likelihood"] < 44.0
    assert test["log_likelihood"] >= test["elbo"] - 0.5  # IWAE bound above the ELBO
    assert abs(test["elbo"] - (test["reconstruction"] - test["kl"])) < 1e-3
    assert test["kl"] > 0
    assert test["bits_per_dim"] == pytest.approx(-test["log_likelihood"] / (64 * np.log(2)))
    for name in metrics["plots"]:
        image = matplotlib.image.imread(os.path.join(run_dir, name))
        assert np.var(image[..., :3]) > 1e-3
    assert "manifold.png" in metrics["plots"]


def test_evaluate(run_dir, tmp_path, capsys):
    path = str(tmp_path / "eval.json")
    code = main(
        [
            "evaluate",
            os.path.join(run_dir, "model.keras"),
            "digits",
            "--num-samples",
            "50",
            "--verbose",
            "0",
            "--json",
            path,
        ]
    )
    assert code == 0
    assert "bits/dim" in capsys.readouterr().out
    with open(path) as f:
        m = json.load(f)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        trained = json.load(f)["test"]
    assert m["examples"] == 359  # the test split of the 1,797 digits
    # The ELBO's reconstruction term is the mean over the k importance samples: k = 50
    # here, 20 in training; they agree within Monte Carlo error.
    assert m["elbo"] == pytest.approx(trained["elbo"], abs=0.1)
    assert m["log_likelihood"] >= m["elbo"] - 0.5


def test_score_writes_one_row_per_input(run_dir, tmp_path):
    x = np.random.default_rng(0).uniform(size=(7, 64)).astype(np.float32)
    x[3] = 1.0  # an all-white image: far less likely than a digit
    data = str(tmp_path / "x.npy")
    np.save(data, x)
    out = str(tmp_path / "scores.csv")
    assert (
        main(
            [
                "score",
                os.path.join(run_dir, "model.keras"),
                data,
                "--out",
                out,
                "--num-samples",
                "10",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(7))
    scores = np.array([float(r["score"]) for r in rows])
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)
    assert np.argmax(scores) == 3


def test_score_csv_with_header_and_labels(run_dir, tmp_path):
    import probae

    (_, _), (xt, yt) = probae.datasets.load_digits(flatten=True)
    path = str(tmp_path / "digits.npz")
    np.savez(path, X=xt[:5], y=yt[:5])
    out = str(tmp_path / "s.csv")
    assert (
        main(
            [
                "score",
                os.path.join(run_dir, "model.keras"),
                path,
                "--out",
                out,
                "--num-samples",
                "5",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["label"]) for r in rows] == list(yt[:5])
    csv_path = str(tmp_path / "digits.csv")
    np.savetxt(
        csv_path, xt[:4], delimiter=",", header=",".join(f"p{i}" for i in range(64)), comments=""
    )
    assert (
        main(
            [
                "score",
                os.path.join(run_dir, "model.keras"),
                csv_path,
                "--out",
                out,
                "--num-samples",
                "5",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    with open(out) as f:
        assert len(list(csv.DictReader(f))) == 4


def test_sample_png_and_npy(run_dir, tmp_path):
    png = str(tmp_path / "s.png")
    assert main(["sample", os.path.join(run_dir, "model.keras"), "--n", "16", "--out", png]) == 0
    assert np.var(matplotlib.image.imread(png)[..., :3]) > 1e-3
    npy = str(tmp_path / "s.npy")
    assert main(["sample", os.path.join(run_dir, "model.keras"), "--n", "5", "--out", npy]) == 0
    samples = np.load(npy)
    assert samples.shape == (5, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 1


def test_models_from_saved_config_and_preset_json(run_dir, tmp_path):
    from probae.cli import _build_model, build_parser

    args = build_parser().parse_args(["train", "vae", "digits"])
    model = _build_model(os.path.join(run_dir, "config.json"), (8, 8, 1), args)
    assert model.latent_dim == 2 and model.event_shape == (8, 8, 1)
    assert type(model.decoder).__name__ == "BernoulliDecoder"
    spec = str(tmp_path / "ae.json")
    with open(spec, "w") as f:
        json.dump({"preset": "autoencoder", "latent_dim": 3, "hidden_units": [32]}, f)
    model = _build_model(spec, (8, 8, 1), args)
    assert type(model.encoder).__name__ == "DeterministicEncoder" and model.beta == 0.0
    assert model.latent_dim == 3
    with pytest.raises(Exception, match=r"expects \(8, 8, 1\)"):
        _build_model(os.path.join(run_dir, "config.json"), (28, 28, 1), args)


@pytest.fixture
def bad_files(tmp_path, run_dir):
    wrong = str(tmp_path / "wrong.npy")
    np.save(wrong, np.zeros((4, 10), np.float32))
    bad_json = str(tmp_path / "bad.json")
    with open(bad_json, "w") as f:
        json.dump({"preset": "nope"}, f)
    stale = str(tmp_path / "stale")
    os.makedirs(os.path.join(stale, "backup"))
    one = str(tmp_path / "one.npy")
    np.save(one, np.full((1, 64), 0.5, np.float32))
    layer = str(tmp_path / "layer.json")
    with open(layer, "w") as f:  # a plain Keras layer's config, as keras writes it
        json.dump(
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"units": 3},
                "registered_name": None,
            },
            f,
        )
    a_file = str(tmp_path / "a_file")
    open(a_file, "w").close()
    return {
        "model": os.path.join(run_dir, "model.keras"),
        "wrong": wrong,
        "json": bad_json,
        "stale": stale,
        "tmp": str(tmp_path),
        "one": one,
        "layer": layer,
        "file": a_file,
    }


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["evaluate", "{tmp}/missing.keras", "digits"], "missing.keras"),
        (["sample", "{wrong}"], "wrong.npy"),
        (["evaluate", "{model}", "{tmp}/missing.npy"], "data file not found"),
        (
            ["evaluate", "{model}", "{wrong}"],
            "examples of shape (10,) but the model expects (8, 8, 1)",
        ),
        (["evaluate", "{model}", "imagenet"], "data must be one of"),
        (["train", "nope", "digits", "--out", "{tmp}/x"], "unknown preset 'nope'"),
        (["train", "{json}", "digits", "--out", "{tmp}/x"], "Received preset='nope'"),
        (["train", "vae", "digits", "--out", "{tmp}/x", "--resume"], "nothing to resume"),
        (["train", "vae", "digits", "--out", "{stale}"], "--resume"),
        (["train", "vae", "digits", "--epochs", "0"], "--epochs must be a positive integer"),
        (["score", "{model}", "{tmp}/data.txt"], "data file not found"),
        (["sample", "{model}", "--n", "0"], "--n must be a positive integer"),
        # issue 17: refused before anything is written
        (
            ["train", "vae", "digits", "--out", "{tmp}/x", "--learning-rate", "nan"],
            "--learning-rate must be a finite number > 0. Received: nan",
        ),
        (
            ["train", "vae", "digits", "--out", "{tmp}/x", "--learning-rate", "-1"],
            "--learning-rate must be a finite number > 0. Received: -1.0",
        ),
        (["train", "vae", "digits", "--out", "{file}"], "--out must be a directory"),
        (["train", "vae", "{one}", "--out", "{tmp}/x"], "one.npy has 1 example"),
        (["train", "{layer}", "digits", "--out", "{tmp}/x"], "holds a Dense, not a probae model"),
        (["score", "{model}", "{wrong}", "--out", "{tmp}"], "--out must be a file"),
        (["sample", "{model}", "--out", "{tmp}"], "--out must be a file"),
        (["score", "{model}", "digits", "--out", "{tmp}/no/such/scores.csv"], "no/such"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(bad_files, capsys, argv, expected):
    argv = [a.format(**bad_files) for a in argv]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("probae: error:") and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    if argv[0] == "train" and "--out" in argv:  # nothing written for a failed run
        out = argv[argv.index("--out") + 1]
        assert not os.path.isdir(out) or "model.keras" not in os.listdir(out)


def test_resume_after_sigkill(run_dir, tmp_path):
    """Kill a real training process after its second epoch; --resume continues from there."""
    out = str(tmp_path / "killed")
    argv = [
        "train",
        "vae",
        "digits",
        "--epochs",
        "8",
        "--max-examples",
        "600",
        "--latent-dim",
        "2",
        "--num-samples",
        "5",
        "--batch-size",
        "64",
        "--learning-rate",
        "3e-3",
        "--verbose",
        "0",
        "--out",
        out,
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "probae.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meta = os.path.join(out, "backup", "probae_state.json")
    deadline = time.time() + 120
    epoch = -1
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                with open(meta) as f:
                    epoch = json.load(f)["epoch"]
            except (OSError, ValueError, KeyError):
                epoch = -1
            if epoch >= 2:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert epoch >= 2, "the training process did not write a backup in time"
    assert not os.path.exists(os.path.join(out, "model.keras"))
    assert main(argv + ["--resume"]) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    start = metrics["initial_epoch"]
    assert start >= 2
    assert len(metrics["history"]["loss"]) == 8 - start
    # Weights and optimizer were restored: the first resumed epoch beats a fresh run's first.
    with open(os.path.join(run_dir, "metrics.json")) as f:
        fresh_first = json.load(f)["history"]["loss"][0]
    assert metrics["history"]["loss"][0] < fresh_first - 2.0
    assert not os.path.exists(os.path.join(out, "backup"))  # removed once training ends


def test_train_on_a_tabular_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(200, 5)).astype(np.float32)
    path = str(tmp_path / "table.csv")
    np.savetxt(path, x, delimiter=",")
    out = str(tmp_path / "tab")
    assert (
        main(
            [
                "train",
                "vae",
                path,
                "--epochs",
                "2",
                "--latent-dim",
                "2",
                "--num-samples",
                "5",
                "--verbose",
                "0",
                "--out",
                out,
            ]
        )
        == 0
    )
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["test"]["examples"] == 20  # a 90/10 split of the file
    assert np.isfinite(metrics["test"]["log_likelihood"])
    assert metrics["plots"] == ["training.png", "latent.png"]  # no image plots for a table
    import keras

    model = keras.models.load_model(os.path.join(out, "model.keras"))
    assert type(model.decoder).__name__ == "GaussianDecoder"  # data outside [0, 1]
    code = main(["sample", os.path.join(out, "model.keras"), "--out", str(tmp_path / "s.png")])
    assert code == 2


@pytest.mark.parametrize(
    "preset, options, attribute",
    [
        ("sparse_autoencoder", ["--sparsity", "0.1"], "penalty"),
        ("denoising_autoencoder", ["--corruption", "0.4"], "corruption"),
    ],
)
def test_train_family_presets(preset, options, attribute, tmp_path):
    out = str(tmp_path / preset)
    argv = [
        "train",
        preset,
        "digits",
        "--epochs",
        "3",
        "--max-examples",
        "400",
        "--latent-dim",
        "8",
        "--num-samples",
        "5",
        "--verbose",
        "0",
        "--out",
        out,
        *options,
    ]
    assert main(argv) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    # Deterministic codes: KL weight 0, and the option reached the saved model.
    import probae

    model = probae.load_model(os.path.join(out, "model.keras"))
    assert type(model.encoder).__name__ == "DeterministicEncoder" and model.beta == 0.0
    part = getattr(model, attribute)
    value = float(options[1])
    if attribute == "penalty":
        assert part.sparsity == pytest.approx(value)
        assert "sparsity" in metrics["history"]  # fit logs the penalty
    else:
        assert part.rate == pytest.approx(value)
    # Bernoulli decoder on 8 x 8 grey digits: untrained about 64 log 2 = 44 nats; three
    # epochs reconstruct clearly better.
    assert -44.0 < metrics["test"]["reconstruction"] < -5.0
    assert metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["train", "vae", "digits", "--sparsity", "0.1"],
            "--sparsity applies to the sparse_autoencoder preset only",
        ),
        (["train", "sparse_autoencoder", "digits", "--sparsity", "1.5"], "sparsity must be"),
        (
            ["train", "denoising_autoencoder", "digits", "--corruption", "1.0"],
            "corruption must be a number in [0, 1)",
        ),
    ],
)
def test_family_option_errors(argv, expected, tmp_path, capsys):
    capsys.readouterr()
    assert main(argv + ["--out", str(tmp_path / "x"), "--epochs", "1", "--verbose", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("probae: error:") and expected in err and len(err.splitlines()) == 1


def _read_scores(path):
    with open(path) as f:
        return np.array([float(r["score"]) for r in csv.DictReader(f)])


def test_score_methods_match_the_library_and_the_seed(run_dir, tmp_path):
    import keras

    import probae
    from probae.cli import SCORE_METHODS

    assert SCORE_METHODS == probae.anomaly.METHODS
    (_, _), (xt, _) = probae.datasets.load_digits()
    data = str(tmp_path / "x.npy")
    np.save(data, xt[:40])
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    scores = {}
    for method in SCORE_METHODS:
        out = str(tmp_path / f"{method}.csv")
        assert (
            main(
                [
                    "score",
                    os.path.join(run_dir, "model.keras"),
                    data,
                    "--out",
                    out,
                    "--method",
                    method,
                    "--seed",
                    "7",
                    "--verbose",
                    "0",
                ]
            )
            == 0
        )
        scores[method] = _read_scores(out)
        assert scores[method].shape == (40,) and np.all(np.isfinite(scores[method])), method
        background = "complexity" if method == "likelihood_ratio" else None
        expected = probae.anomaly_scores(
            model, xt[:40], method=method, seed=7, background=background
        )
        np.testing.assert_allclose(scores[method], expected, rtol=1e-5, atol=1e-4)
    # -ELBO bounds -log p(x) from above (k=100 importance samples against 10 ELBO draws).
    assert scores["elbo"].mean() > scores["log_likelihood"].mean()
    # The default for a VAE is log_likelihood, and another seed gives other scores.
    out = str(tmp_path / "default.csv")
    assert (
        main(
            [
                "score",
                os.path.join(run_dir, "model.keras"),
                data,
                "--out",
                out,
                "--seed",
                "7",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(_read_scores(out), scores["log_likelihood"], rtol=1e-6)
    assert (
        main(
            [
                "score",
                os.path.join(run_dir, "model.keras"),
                data,
                "--out",
                out,
                "--seed",
                "8",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    assert not np.allclose(_read_scores(out), scores["log_likelihood"], rtol=1e-6)


def test_score_unknown_method_is_a_usage_error(run_dir, capsys):
    with pytest.raises(SystemExit) as info:
        main(["score", os.path.join(run_dir, "model.keras"), "digits", "--method", "mse"])
    assert info.value.code == 2
    assert "--method" in capsys.readouterr().err


def test_flat_signals_are_not_drawn_as_images(tmp_path):
    """A length-100 signal is not a 10 x 10 image: no image plots, and sample asks for .npy."""
    t = np.linspace(0, 1, 100)
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (200, 1))
    data = str(tmp_path / "signals.npy")
    np.save(data, (0.5 + 0.4 * np.sin(2 * np.pi * t + phase)).astype(np.float32))
    out = str(tmp_path / "run")
    assert (
        main(
            [
                "train",
                "vae",
                data,
                "--epochs",
                "1",
                "--latent-dim",
                "2",
                "--verbose",
                "0",
                "--out",
                out,
            ]
        )
        == 0
    )
    with open(os.path.join(out, "metrics.json")) as f:
        plots = json.load(f)["plots"]
    assert "training.png" in plots
    assert not {"reconstructions.png", "samples.png", "manifold.png"} & set(plots)
    assert main(["sample", os.path.join(out, "model.keras"), "--out", str(tmp_path / "s.png")]) == 2
