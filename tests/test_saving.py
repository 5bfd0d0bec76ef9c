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


# ------------------------------------------------------------ issue 17: files at the edges
def _with_nan_weight(model, tmp_path):
    """A copy of ``model``'s file whose first weight holds a NaN (edited inside the archive)."""
    import h5py

    src = tmp_path / "good.keras"
    model.save(src)
    out = tmp_path / "nan.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.weights.h5":
                weights = tmp_path / "w.h5"
                weights.write_bytes(data)
                with h5py.File(weights, "r+") as f:
                    names = []
                    f.visit(
                        lambda n, names=names: (
                            names.append(n)
                            if isinstance(f[n], h5py.Dataset)
                            and f[n].dtype.kind == "f"
                            and f[n].size
                            else None
                        )
                    )
                    f[names[0]][...] = np.nan
                data = weights.read_bytes()
            zout.writestr(item, data)
    return out


def test_file_with_nan_weights_is_refused(saved, tmp_path):
    model, _, _ = saved
    bad = _with_nan_weight(model, tmp_path)
    with pytest.raises(probae.InvalidModelFileError, match=r"path=.*NaN or infinite weights"):
        probae.load_model(bad)


def test_model_with_nan_weights_is_not_saved(saved, tmp_path):
    """The save is refused and the previous file is kept: no saved model holds NaN."""
    model, path, _ = saved
    target = tmp_path / "model.keras"
    target.write_bytes(path.read_bytes())
    broken = probae.load_model(path)
    broken.weights[0].assign(np.full(broken.weights[0].shape, np.inf, "float32"))
    with pytest.raises(ValueError, match=r"filepath=.*NaN or infinite"):
        broken.save(target)
    assert target.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_deeply_nested_config_is_an_invalid_file(saved, tmp_path):
    _, path, _ = saved
    bad = tmp_path / "deep.keras"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                data = ("[" * 100_000 + "]" * 100_000).encode()
            zout.writestr(item, data)
    with pytest.raises(probae.InvalidModelFileError, match="path=.*nested"):
        probae.load_model(bad)


def test_save_into_a_missing_directory_names_the_users_path(saved, tmp_path):
    model, _, _ = saved
    target = tmp_path / "no" / "such" / "model.keras"
    with pytest.raises(FileNotFoundError) as info:
        model.save(target)
    assert str(target) in str(info.value) and ".tmp-" not in str(info.value)


def test_temporary_files_of_killed_saves_are_removed_at_the_next_save(saved, tmp_path):
    """A save killed mid-write leaves '.model.tmp-<pid>.keras'; the next save to the same
    place removes it when that process is gone, but never a live process's file."""
    import subprocess
    import sys

    model, _, _ = saved
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".model.tmp-{dead.pid}.keras"
        busy = tmp_path / f".model.tmp-{alive.pid}.keras"
        other = tmp_path / f".other.tmp-{dead.pid}.keras"
        for p in (stale, busy, other):
            p.write_bytes(b"partial")
        model.save(tmp_path / "model.keras")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == sorted(["model.keras", busy.name, other.name])
    finally:
        alive.kill()
        alive.wait()


# ----------------------------------------------------------- the detector's archive
@pytest.fixture(scope="module")
def detector_file(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    det = probae.AnomalyDetector(epochs=1, hidden_units=(8,), latent_dim=2, num_samples=5).fit(X)
    path = tmp_path_factory.mktemp("det") / "detector.zip"
    det.save(path)
    return det, path, X


def _edit_archive(src, dst, member, edit):
    """Copies the archive ``src`` to ``dst`` with ``edit(bytes) -> bytes`` applied to one member
    (``edit=None`` drops it). An edited model's digest in params.json is recomputed, as a
    deliberate editor would, so that the model itself reaches the safe loader."""
    import hashlib

    with zipfile.ZipFile(src) as zin:
        members = {item.filename: zin.read(item.filename) for item in zin.infolist()}
    if edit is None:
        del members[member]
    else:
        members[member] = edit(members[member])
    if member.endswith(".keras") and edit is not None:
        state = json.loads(members["params.json"])
        state["sha256"][member] = hashlib.sha256(members[member]).hexdigest()
        members["params.json"] = json.dumps(state).encode()
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    return dst


def _edit_state(change):
    def edit(data):
        state = json.loads(data)
        change(state)
        return json.dumps(state).encode()

    return edit


def _lambda_model(data):
    """The model member rewritten to hold a Lambda layer (code that safe mode refuses)."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            member = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(member)
                _inject_lambda(config)
                member = json.dumps(config).encode()
            zout.writestr(item.filename, member)
    return out.getvalue()


DETECTOR_EDITS = [
    ("no params.json", "params.json", None, "no params.json"),
    ("params not JSON", "params.json", lambda d: b"{not json", "not valid JSON"),
    ("params nested deep", "params.json", lambda d: b"[" * 100_000 + b"]" * 100_000, "nested"),
    (
        "unknown parameter",
        "params.json",
        _edit_state(lambda s: s["params"].update(colour="red")),
        "colour",
    ),
    (
        "class attribute",
        "params.json",
        _edit_state(lambda s: s["fitted"].update(__class__="x")),
        "__class__",
    ),
    (
        "mean_ of the wrong length",
        "params.json",
        _edit_state(lambda s: s["fitted"].update(mean_=[0.0] * 7)),
        "mean_",
    ),
    (
        "offset_ not a number",
        "params.json",
        _edit_state(lambda s: s["fitted"].update(offset_="low")),
        "offset_",
    ),
    (
        "model digest",
        "params.json",
        _edit_state(lambda s: s["sha256"].update({"model.keras": "0" * 64})),
        "SHA-256",
    ),
    ("model with a Lambda", "model.keras", _lambda_model, "Lambda"),
    ("model not a zip", "model.keras", lambda d: b"nonsense", "model.keras"),
]


@pytest.mark.parametrize(
    "member, edit, text", [c[1:] for c in DETECTOR_EDITS], ids=[c[0] for c in DETECTOR_EDITS]
)
def test_edited_detector_archive_is_an_invalid_file(detector_file, tmp_path, member, edit, text):
    _, path, _ = detector_file
    bad = _edit_archive(path, tmp_path / "edited.zip", member, edit)
    with pytest.raises(probae.InvalidModelFileError) as info:
        probae.AnomalyDetector.load(bad)
    message = str(info.value)
    assert text in message and "edited.zip" in message, message


def test_foreign_or_truncated_detector_archive_is_an_invalid_file(detector_file, tmp_path):
    _, path, _ = detector_file
    cut = tmp_path / "cut.zip"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hi")
    for bad in (cut, text, other):
        with pytest.raises(probae.InvalidModelFileError, match=f"path=.*{bad.name}"):
            probae.AnomalyDetector.load(bad)
    with pytest.raises(FileNotFoundError, match="path="):
        probae.AnomalyDetector.load(tmp_path / "missing.zip")
    with pytest.raises(TypeError, match="path"):
        probae.AnomalyDetector.load(3)


def test_detector_save_is_atomic(detector_file, tmp_path, monkeypatch):
    """A save that fails while writing the model leaves the previous archive intact and no
    temporary file; the saved detector loads through probae's safe loader."""
    det, path, X = detector_file
    target = tmp_path / "detector.zip"
    target.write_bytes(path.read_bytes())
    loaded = probae.AnomalyDetector.load(target)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(probae.ProbabilisticAutoencoder, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        det.save(target)
    assert target.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.zip"]


# ------------------------------------------------- issue 21: every path scheme Keras saves to
def _ram(name):
    """A fresh path on TensorFlow's in-memory file system (``ram://``)."""
    import uuid

    return f"ram://probae-{uuid.uuid4().hex}/{name}"


def test_is_remote_path():
    from probae.saving import is_remote_path

    for url in ("ram://a/m.keras", "gs://bucket/m.keras", "s3://b/m.keras", "hf://user/repo"):
        assert is_remote_path(url), url
    for local in ("m.keras", "/tmp/m.keras", "C:/m.keras", "./a://b"):
        assert not is_remote_path(local), local


def test_model_saves_to_and_loads_from_a_url(saved):
    import io

    import tensorflow as tf

    model, path, x = saved
    url = _ram("model.keras")
    model.save(url)
    assert tf.io.gfile.exists(url)
    with tf.io.gfile.GFile(url, "rb") as f:
        assert zipfile.ZipFile(io.BytesIO(f.read())).testzip() is None
    loaded = probae.load_model(url)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(loaded.elbo(x, seed=1), model.elbo(x, seed=1), rtol=1e-6)
    # keras.saving.load_model reads the same URL (the file is a plain Keras archive).
    assert isinstance(keras.saving.load_model(url), probae.ProbabilisticAutoencoder)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(url, overwrite=False)


def test_url_checks_are_those_of_local_files(saved, tmp_path):
    import tensorflow as tf

    model, path, _ = saved
    missing = _ram("none.keras")
    with pytest.raises(FileNotFoundError, match="no saved model at path='ram://"):
        probae.load_model(missing)
    # A NaN-weight file copied to a URL is refused, naming the URL.
    url = _ram("nan.keras")
    tf.io.gfile.copy(str(_with_nan_weight(model, tmp_path)), url)
    with pytest.raises(probae.InvalidModelFileError, match=r"path='ram://.*NaN or infinite"):
        probae.load_model(url)
    # A model with NaN weights is not written to a URL either.
    broken = probae.load_model(path)
    broken.weights[0].assign(np.full(broken.weights[0].shape, np.nan, "float32"))
    target = _ram("broken.keras")
    with pytest.raises(ValueError, match=r"filepath='ram://.*NaN or infinite"):
        broken.save(target)
    assert not tf.io.gfile.exists(target)
    # Truncated archives at a URL get the local message.
    with open(path, "rb") as f:
        head = f.read(100)
    cut = _ram("cut.keras")
    with tf.io.gfile.GFile(cut, "wb") as f:
        f.write(head)
    with pytest.raises(probae.InvalidModelFileError, match="path='ram://.*not a complete"):
        probae.load_model(cut)


def test_detector_saves_to_and_loads_from_a_url(detector_file):
    det, _, X = detector_file
    url = _ram("detector.zip")
    det.save(url)
    loaded = probae.AnomalyDetector.load(url)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    with pytest.raises(FileNotFoundError):
        probae.AnomalyDetector.load(_ram("none.zip"))


def test_hf_paths_go_to_keras_in_safe_mode_and_are_checked(saved, monkeypatch):
    """hf:// (the Hugging Face Hub) is read by Keras itself; probae checks what it built."""
    model, path, _ = saved
    calls = []

    def fake_load(filepath, compile=True, safe_mode=True, **kwargs):
        calls.append((filepath, compile, safe_mode))
        return returned

    monkeypatch.setattr(keras.models, "load_model", fake_load)
    returned = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(
        probae.InvalidModelFileError, match="hf://user/repo.*loaded as a Sequential"
    ):
        probae.load_model("hf://user/repo")
    monkeypatch.undo()
    returned = probae.load_model(path)
    monkeypatch.setattr(keras.models, "load_model", fake_load)
    assert probae.load_model("hf://user/repo", compile=False) is returned
    assert calls == [("hf://user/repo", True, True), ("hf://user/repo", False, True)]
    returned.weights[0].assign(np.full(returned.weights[0].shape, np.nan, "float32"))
    with pytest.raises(probae.InvalidModelFileError, match="hf://user/repo.*NaN or infinite"):
        probae.load_model("hf://user/repo")
