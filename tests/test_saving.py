"""Atomic saving and safe loading (probae.saving)."""

import json
import zipfile

import keras
import numpy as np
import pytest

import probae


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = probae.VAE((6,), 2, likelihood="gaussian", hidden_units=(8,))
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return model, path, x


def _rewrite(src, dst, edit_config=None, drop=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename == drop:
                continue
            data = zin.read(item.filename)
            if item.filename == "config.json" and edit_config is not None:
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def test_saved_file_round_trips_and_holds_no_code(saved):
    model, path, x = saved
    with zipfile.ZipFile(path) as archive:
        assert set(archive.namelist()) == {"config.json", "metadata.json", "model.weights.h5"}
        config = archive.read("config.json").decode()
    assert "Lambda" not in config and "lambda" not in config and "pickle" not in config
    loaded = probae.load_model(path)
    assert isinstance(loaded, probae.ProbabilisticAutoencoder)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    # The sampling seed's state is part of the saved state (resumed runs draw the same noise).
    np.testing.assert_array_equal(
        loaded.seed_generator.state.numpy(), model.seed_generator.state.numpy()
    )
    assert int(loaded.optimizer.iterations.numpy()) == 4
    np.testing.assert_allclose(loaded.elbo(x, seed=1), model.elbo(x, seed=1), rtol=1e-6)


def _inject_lambda(config):
    encoder = config["config"]["encoder"]["config"]
    encoder["network"] = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
    }


def _unknown_class(config):
    config["config"]["decoder"]["class_name"] = "EvilDecoder"
    config["config"]["decoder"]["registered_name"] = "evil>EvilDecoder"


def _not_probae(config):
    config["class_name"] = "Sequential"
    config["registered_name"] = None


@pytest.mark.parametrize(
    "edit, message",
    [
        (_inject_lambda, "Lambda layer"),
        (_unknown_class, "EvilDecoder"),
        (_not_probae, "not a probae ProbabilisticAutoencoder"),
    ],
)
def test_tampered_file_gives_clear_error(saved, tmp_path, edit, message):
    _, path, _ = saved
    bad = tmp_path / "tampered.keras"
    _rewrite(path, bad, edit_config=edit)
    with pytest.raises(probae.InvalidModelFileError, match=message) as info:
        probae.load_model(bad)
    assert "path=" in str(info.value)


def test_lambda_is_refused_by_keras_safe_mode_too(saved, tmp_path):
    """Without probae's own check, Keras' safe mode still refuses to run the code."""
    _, path, _ = saved
    bad = tmp_path / "tampered.keras"
    _rewrite(path, bad, edit_config=_inject_lambda)
    with pytest.raises(Exception, match="safe_mode"):
        keras.models.load_model(bad)


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_file_gives_clear_error(saved, tmp_path, cut):
    _, path, _ = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(probae.InvalidModelFileError, match="truncated"):
        probae.load_model(bad)


def test_missing_or_foreign_files_give_clear_errors(saved, tmp_path):
    _, path, _ = saved
    with pytest.raises(FileNotFoundError, match="path="):
        probae.load_model(tmp_path / "nope.keras")
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(probae.InvalidModelFileError, match="path="):
        probae.load_model(text)
    no_weights = tmp_path / "no_weights.keras"
    _rewrite(path, no_weights, drop="model.weights.h5")
    with pytest.raises(probae.InvalidModelFileError, match="path="):
        probae.load_model(no_weights)
    with pytest.raises(TypeError, match="path"):
        probae.load_model(123)


def test_failed_save_leaves_previous_file_intact(saved, tmp_path, monkeypatch):
    model, path, _ = saved
    target = tmp_path / "model.keras"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()
    from keras.src.saving import saving_lib

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saving_lib, "_save_state", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temp left
    with pytest.raises(FileExistsError, match="filepath"):
        model.save(target, overwrite=False)
    with pytest.raises(ValueError, match="filepath"):
        model.save(tmp_path / "model.h5")
