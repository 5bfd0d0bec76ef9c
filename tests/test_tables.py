"""The one preprocessing of tables (probae.tables): column types, standardisation,
vocabularies, unseen categories, missing entries, and the tabular entry point."""

import json

import numpy as np
import pandas as pd
import pytest

import probae
from probae.tables import CLIP, TablePreprocessor


def frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50.0, 10.0, n),
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["paris", "rome", "oslo"], n, p=[0.5, 0.4, 0.1]),
            "member": rng.random(n) < 0.5,
            "plan": pd.Categorical(rng.choice(["basic", "pro"], n)),
            "door": rng.choice([2.0, 4.0], n),
            "visits": pd.array(rng.integers(0, 30, n), dtype="Int64"),
            "const": 7.0,
        }
    )


def test_column_types_from_dtypes_and_values():
    table = TablePreprocessor().fit(frame())
    kinds = {c["name"]: (c["kind"], c["dropped"]) for c in table.columns_}
    assert kinds == {
        "income": ("continuous", False),
        "age": ("continuous", False),
        "city": ("categorical", False),
        "member": ("bernoulli", False),
        "plan": ("categorical", False),
        "door": ("bernoulli", False),
        "visits": ("continuous", False),
        "const": ("continuous", True),
    }
    assert table.decoder_types_ == [
        "student_t",
        "student_t",
        3,
        "bernoulli",
        2,
        "bernoulli",
        "student_t",
    ]
    city = table.columns_[2]
    assert city["categories"] == ["oslo", "paris", "rome"]  # sorted, the values seen in training
    z = table.transform(frame())
    assert z.shape == (60, 7) and z.dtype == np.float32
    df = frame()
    np.testing.assert_array_equal(
        z[:, 2], pd.Series(df["city"]).map({"oslo": 0, "paris": 1, "rome": 2})
    )
    np.testing.assert_array_equal(z[:, 5], (df["door"] == 4.0).astype(np.float32))
    np.testing.assert_allclose(
        z[:, 0], (df["income"] - df["income"].mean()) / df["income"].std(ddof=0), rtol=1e-5
    )
    assert isinstance(table.decoder(), probae.missing.MaskedMixedDecoder)


def test_overrides_by_name_and_their_errors():
    df = frame()
    table = TablePreprocessor(
        column_types={"age": "categorical", "income": "gaussian", "door": "continuous"}
    ).fit(df)
    spec = {c["name"]: c for c in table.columns_}
    assert spec["age"]["kind"] == "categorical" and spec["age"]["categories"] == sorted(
        set(df["age"].astype(float))
    )
    assert spec["income"]["likelihood"] == "gaussian" and spec["door"]["kind"] == "continuous"
    with pytest.raises(ValueError, match="'salary'.*Its columns"):
        TablePreprocessor(column_types={"salary": "gaussian"}).fit(df)
    with pytest.raises(ValueError, match="column 'city' was declared 'gaussian'"):
        TablePreprocessor(column_types={"city": "gaussian"}).fit(df)
    with pytest.raises(ValueError, match="column 'age' was declared 'bernoulli' but holds"):
        TablePreprocessor(column_types={"age": "bernoulli"}).fit(df)
    with pytest.raises(ValueError, match=r"column_types\['age'\] must be one of"):
        TablePreprocessor(column_types={"age": "poisson"}).fit(df)
    with pytest.raises(ValueError, match="one entry per column"):
        TablePreprocessor(column_types=["gaussian"]).fit(df)
    with pytest.raises(ValueError, match="handle_unknown"):
        TablePreprocessor(handle_unknown="ignore")


def test_unseen_categories_rarest_or_error():
    df = frame()
    table = TablePreprocessor().fit(df)
    test = df.head(3).copy()
    test["city"] = ["tokyo", "paris", "lima"]
    z = table.transform(test)
    counts = table.columns_[2]["counts"]
    assert table.columns_[2]["categories"][int(np.argmin(counts))] == "oslo"  # p = 0.1
    np.testing.assert_array_equal(z[:, 2], [0, 1, 0])  # unseen -> the rarest, "oslo"
    strict = TablePreprocessor(handle_unknown="error").fit(df)
    with pytest.raises(
        ValueError,
        match=r"column 'city' holds categories not seen in training: \['lima', 'tokyo'\]",
    ):
        strict.transform(test)
    door = df.head(2).copy()
    door["door"] = [3.0, 4.0]  # a two-valued numeric column meets a third value
    with pytest.raises(ValueError, match="column 'door'"):
        strict.transform(door)


def test_missing_entries_of_every_kind_stay_nan():
    df = frame()
    df.loc[0, "income"] = np.nan
    df.loc[1, "city"] = None
    df.loc[2, "visits"] = pd.NA
    df["member"] = df["member"].astype("boolean")
    df.loc[3, "member"] = pd.NA
    table = TablePreprocessor().fit(df)
    z = table.transform(df)
    assert np.isnan(z[0, 0]) and np.isnan(z[1, 2]) and np.isnan(z[2, 6]) and np.isnan(z[3, 3])
    assert np.isnan(z).sum() == 4
    # statistics of the observed entries only
    assert table.columns_[0]["center"] == pytest.approx(df["income"].mean())


def test_extreme_finite_columns_are_standardised_not_zeroed():
    df = frame()
    big = df.assign(income=df["income"] * 1e300, age=df["age"] * 1e-300)
    plain, huge = TablePreprocessor().fit(df), TablePreprocessor().fit(big)
    assert not huge.columns_[0]["dropped"] and not huge.columns_[1]["dropped"]
    assert np.isfinite(huge.columns_[0]["scale"]) and huge.columns_[0]["scale"] > 1e300
    np.testing.assert_allclose(huge.transform(big), plain.transform(df), rtol=1e-5, atol=1e-6)
    # a test value beyond float64's range after subtraction is clipped, never inf or NaN
    test = big.head(2).copy()
    test["income"] = [1.7e308, -1.7e308]
    z = huge.transform(test)[:, 0]
    np.testing.assert_array_equal(z, [CLIP, -CLIP])


def test_invalid_cells_name_the_column():
    df = frame()
    df.loc[4, "income"] = np.inf
    with pytest.raises(ValueError, match="column 'income' holds infinite values"):
        TablePreprocessor().fit(df)
    table = TablePreprocessor().fit(frame())
    with pytest.raises(ValueError, match="column 'income' holds infinite values"):
        table.transform(df)
    obj = frame().astype(object)
    obj["income"] = [{"a": 1}] + list(obj["income"][1:])
    with pytest.raises(TypeError, match="column 'income' holds a value of type dict"):
        TablePreprocessor().fit(obj)
    with pytest.raises(ValueError, match="X has 7 features, but the table was fitted with 8"):
        table.transform(frame().drop(columns="const"))
    with pytest.raises(ValueError, match="differ from the columns seen in training"):
        table.transform(frame().rename(columns={"age": "years"}))
    with pytest.raises(TypeError, match="dates"):
        TablePreprocessor().fit(pd.DataFrame({"t": pd.date_range("2020", periods=3)}))


def test_arrays_records_and_lists_are_read_like_frames():
    rows = [[1.5, "paris", True], [2.5, "rome", False], [None, "rome", True], [4.0, "", False]]
    table = TablePreprocessor().fit(rows)
    # strings are categorical (K = 2 here), booleans Bernoulli
    assert [c["kind"] for c in table.columns_] == ["continuous", "categorical", "bernoulli"]
    assert table.feature_names_in_ == ["x0", "x1", "x2"] and not table.has_names_
    z = table.transform(rows)
    assert np.isnan(z[2, 0]) and np.isnan(z[3, 1]) and z[0, 1] == 0 and z[1, 1] == 1
    records = np.array([(1.0, b"a"), (2.0, b"b"), (3.0, b"a")], dtype=[("x", "f8"), ("k", "S1")])
    rec = TablePreprocessor().fit(records)
    assert rec.feature_names_in_ == ["x", "k"] and rec.columns_[1]["categories"] == ["a", "b"]
    strings = np.array([["1.0", "a"], ["2.0", "b"], ["nan", "c"]])  # numbers stringified by NumPy
    assert [c["kind"] for c in TablePreprocessor().fit(strings).columns_] == [
        "bernoulli",
        "categorical",
    ]


def test_config_round_trips_through_json():
    df = frame()
    table = TablePreprocessor(column_types={"age": 90}).fit(
        df, sample_weight=np.linspace(0.5, 1.5, 60)
    )
    again = TablePreprocessor.from_config(json.loads(json.dumps(table.get_config())))
    test = df.head(5).assign(city=["x", "paris", None, "rome", "oslo"])
    np.testing.assert_array_equal(again.transform(test), table.transform(test))
    # weighted statistics
    w = np.linspace(0.5, 1.5, 60)
    assert table.columns_[0]["center"] == pytest.approx(np.average(df["income"], weights=w))
    with pytest.raises(ValueError, match="not fitted"):
        TablePreprocessor().transform(df)


def test_tabular_model_is_a_preset_that_marginalises_missing_entries(tmp_path):
    df = frame(200)
    df = df.mask(np.random.default_rng(1).random(df.shape) < 0.1)
    table = TablePreprocessor().fit(df)
    model = probae.tabular_model(table, "vae", hidden_units=(16,))
    assert isinstance(model.encoder, probae.missing.MaskedGaussianEncoder)
    assert model.decoder.column_types == table.decoder_types_ and model.latent_dim == 2
    x = table.transform(df)
    model.fit(x, epochs=2, batch_size=64, verbose=0)
    scores = probae.anomaly_scores(model, x, seed=0, num_samples=10)
    assert np.all(np.isfinite(scores))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = probae.load_model(path)
    np.testing.assert_allclose(
        probae.anomaly_scores(loaded, x, seed=0, num_samples=10), scores, rtol=1e-5
    )
    ae = probae.tabular_model(table, "autoencoder", latent_dim=3)
    assert isinstance(ae.encoder, probae.missing.MaskedDeterministicEncoder) and ae.latent_dim == 3
    with pytest.raises(ValueError, match="likelihood comes from the table"):
        probae.tabular_model(table, likelihood="gaussian")
    with pytest.raises(TypeError, match="preset must be one of"):
        probae.tabular_model(table, "gan")
    with pytest.raises(TypeError, match="table must be a fitted"):
        probae.tabular_model(x)
