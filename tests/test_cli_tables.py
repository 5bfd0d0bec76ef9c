"""The command line on CSV tables: headers, string columns, missing cells, and the same
preprocessing as AnomalyDetector (probae.TablePreprocessor) at train, evaluate and score."""

import csv
import json
import os

import numpy as np
import pandas as pd
import pytest

import probae
from probae.cli import main


def customers(n=300, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    df = pd.DataFrame(
        {
            "spend": 1e4 * (z[:, 0] + 0.2 * rng.normal(size=n)) + 5e4,
            "visits": 100 * (z[:, 1] + 0.2 * rng.normal(size=n)),
            "basket": 1e3 * (z[:, 0] - z[:, 1]) + 3e3,
            "tenure": 1e6 * rng.random(n),
            "city": np.where(z[:, 0] > 0, "paris", rng.choice(["rome", "oslo"], n)),
            "segment": rng.integers(0, 3, n),
        }
    )
    df.loc[rng.random(n) < 0.05, "spend"] = np.nan
    df.loc[rng.random(n) < 0.05, "city"] = None
    return df


def scores_of(path):
    with open(path) as f:
        return np.array([float(r["score"]) for r in csv.DictReader(f)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("customers")
    path = str(folder / "customers.csv")
    customers().to_csv(path, index=False)
    out = str(folder / "run")
    assert (
        main(
            [
                "train",
                "vae",
                path,
                "--epochs",
                "5",
                "--latent-dim",
                "2",
                "--num-samples",
                "20",
                "--batch-size",
                "32",
                "--verbose",
                "0",
                "--out",
                out,
                "--column-type",
                "segment=categorical",
            ]
        )
        == 0
    )
    return path, out


def test_train_on_a_csv_with_header_strings_and_empty_cells(trained, tmp_path):
    path, out = trained
    assert {"model.keras", "table.json", "metrics.json"} <= set(os.listdir(out))
    with open(os.path.join(out, "metrics.json")) as f:
        test = json.load(f)["test"]
    # standardised columns: a few nats per column, not the -1e8 of raw values
    assert -40.0 < test["log_likelihood"] < 5.0 and 0.0 <= test["kl"] < 20.0
    with open(os.path.join(out, "table.json")) as f:
        table = probae.TablePreprocessor.from_config(json.load(f))
    assert table.feature_names_in_ == ["spend", "visits", "basket", "tenure", "city", "segment"]
    assert table.decoder_types_ == ["gaussian"] * 4 + [
        3,
        3,
    ]  # segment: integers, declared categorical
    model = probae.load_model(os.path.join(out, "model.keras"))
    assert type(model.decoder).__name__ == "MaskedMixedDecoder"
    # score applies the saved preprocessing: the library's scores of table.transform(raw)
    new = customers(20, seed=1)
    new.loc[0, "city"] = "tokyo"  # unseen: the rarest city
    raw = str(tmp_path / "new.csv")
    new.to_csv(raw, index=False)
    scores_csv = str(tmp_path / "scores.csv")
    assert (
        main(
            [
                "score",
                os.path.join(out, "model.keras"),
                raw,
                "--out",
                scores_csv,
                "--num-samples",
                "20",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    expected = probae.anomaly_scores(model, table.transform(new), seed=0, num_samples=20)
    np.testing.assert_allclose(scores_of(scores_csv), expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(expected))
    assert (
        main(
            [
                "evaluate",
                os.path.join(out, "model.keras"),
                raw,
                "--num-samples",
                "20",
                "--verbose",
                "0",
            ]
        )
        == 0
    )


def test_raw_numeric_csv_is_standardised(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 2))
    x = np.c_[z @ rng.normal(size=(2, 4)), z[:, :1]] * np.array([1e4, 3e5, 1.0, 2e3, 1e6]) + 7e5
    path = str(tmp_path / "raw.csv")
    np.savetxt(path, x, delimiter=",")  # no header
    out = str(tmp_path / "raw")
    assert (
        main(
            [
                "train",
                "vae",
                path,
                "--epochs",
                "5",
                "--latent-dim",
                "2",
                "--num-samples",
                "20",
                "--batch-size",
                "32",
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
    assert metrics["test"]["examples"] == 30  # no row taken for a header
    assert -25.0 < metrics["test"]["log_likelihood"] < 10.0 and metrics["test"]["kl"] < 20.0
    model = probae.load_model(os.path.join(out, "model.keras"))
    assert (
        type(model.decoder).__name__ == "GaussianDecoder"
    )  # complete, continuous: the plain preset
    with open(os.path.join(out, "table.json")) as f:
        table = probae.TablePreprocessor.from_config(json.load(f))
    np.testing.assert_allclose(
        [c["center"] for c in table.columns_],
        x[np.sort(np.random.default_rng(0).permutation(300)[30:])].mean(0),
        rtol=1e-9,
    )
    scores_csv = str(tmp_path / "s.csv")
    assert (
        main(
            [
                "score",
                os.path.join(out, "model.keras"),
                path,
                "--out",
                scores_csv,
                "--num-samples",
                "20",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    s = scores_of(scores_csv)
    assert np.all(np.abs(s) < 100.0)  # standardised: not the 1e8 of raw values


def test_csv_errors_are_one_line(tmp_path, capsys):
    bad = str(tmp_path / "bad.csv")
    with open(bad, "w") as f:
        f.write("a,b\n1,2\n3\n4,5,6,7\n")
    assert main(["train", "vae", bad, "--epochs", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("probae: error:") and "bad.csv" in err and len(err.splitlines()) == 1
    good = str(tmp_path / "good.csv")
    customers(40).to_csv(good, index=False)
    assert (
        main(
            [
                "train",
                "vae",
                good,
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "y"),
                "--column-type",
                "nope=categorical",
            ]
        )
        == 2
    )
    assert "'nope'" in capsys.readouterr().err
