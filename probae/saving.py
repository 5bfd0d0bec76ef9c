"""Saving and loading: atomic writes and a safe loader with clear errors.

- ``atomic_save`` (used by ``ProbabilisticAutoencoder.save``): the model is written to a
  temporary file in the same directory and renamed over the target, so a crash while
  saving never leaves a corrupt file in place of a good one. ``replace_atomically`` is the
  same commit for any writer (backups, detector archives).
- ``load_model``: ``keras.models.load_model`` in safe mode, with a clear error for a
  missing, truncated, tampered or non-probae file, or one whose weights are NaN or
  infinite (``InvalidModelFileError``). ``atomic_save`` refuses to write such weights.
- Paths: every scheme Keras' saving supports. A URL (``gs://``, ``s3://``, ``ram://``,
  any scheme TensorFlow's file systems know: ``is_remote_path``) is written through a
  local temporary file copied with ``tf.io.gfile`` and read from a local copy
  (``local_copy``), so the checks above apply; ``hf://`` (the Hugging Face Hub) goes to
  Keras itself, and the loaded model's class and weights are checked. The atomic rename
  applies to local paths only: other file systems have no such rename.
"""

import errno
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

__all__ = [
    "InvalidModelFileError",
    "is_remote_path",
    "local_copy",
    "replace_atomically",
    "atomic_save",
    "load_model",
    "nonfinite_weights",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class InvalidModelFileError(ValueError):
    """Raised by ``load_model`` for a file that is not a loadable, safe probae model."""


def is_remote_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL (``scheme://...``: ``gs://``, ``ram://``, ``hf://``)
    rather than a local file path."""
    return bool(_URL.match(os.fspath(path))) if isinstance(path, (str, os.PathLike)) else False


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


@contextmanager
def local_copy(path: str | os.PathLike) -> Iterator[str]:
    """A context giving a local file path for ``path``: itself when it is local, else a
    copy (through ``tf.io.gfile``) in a temporary directory removed on exit.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    path = os.fspath(path)
    if not is_remote_path(path):
        yield path
        return
    gfile = _gfile()
    if not gfile.exists(path):
        raise FileNotFoundError(f"path does not exist: no file at path={path!r}")
    if gfile.isdir(path):
        yield path  # a directory: the caller reports it
        return
    folder = tempfile.mkdtemp(prefix="probae-")
    try:
        local = os.path.join(folder, os.path.basename(path.rstrip("/")) or "file")
        gfile.copy(path, local, overwrite=True)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid):
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def _remove_stale_temporaries(directory, root, ext):
    """Removes ``.{root}.tmp-{pid}{ext}`` files left by saves whose process is gone."""
    pattern = re.compile(re.escape(f".{root}.tmp-") + r"(\d+)" + re.escape(ext) + "$")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match and not _process_alive(int(match.group(1))):
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass


def replace_atomically(write: Callable[[str], Any], path: str | os.PathLike) -> None:
    """Calls ``write(tmp)`` for a temporary path beside ``path``, then renames it.

    Temporary files that earlier saves to the same place left behind when their process
    was killed are removed first. An ``OSError`` (a missing or read-only directory, a
    full disk) names ``path``, not the temporary file.

    A URL (``is_remote_path``): ``write`` writes a local temporary file, which is then
    copied to ``path`` with ``tf.io.gfile`` (not atomic: remote file systems have no
    atomic rename; the copy is made only once the file is complete).
    """
    path = os.fspath(path)
    if is_remote_path(path):
        folder = tempfile.mkdtemp(prefix="probae-")
        try:
            tmp = os.path.join(folder, os.path.basename(path.rstrip("/")) or "file")
            write(tmp)
            _gfile().copy(tmp, path, overwrite=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    directory, base = os.path.split(os.path.abspath(path))
    root, ext = os.path.splitext(base)
    if base.endswith(".weights.h5"):
        root, ext = base[: -len(".weights.h5")], ".weights.h5"
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot save to {path!r}: the directory {directory!r} does not exist"
        )
    _remove_stale_temporaries(directory, root, ext)
    tmp = os.path.join(directory, f".{root}.tmp-{os.getpid()}{ext}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if (
            isinstance(err, OSError)
            and err.errno is not None
            and getattr(err, "filename", None) != path
        ):
            raise OSError(err.errno, f"cannot save to {path!r}: {err.strerror}") from err
        raise
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_save(
    save: Callable[..., Any], filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any
) -> None:
    """Saves through ``save(tmp_path, **kwargs)`` into a temporary file, then renames it.

    The temporary file lies in the target's directory (so ``os.replace`` is an atomic
    rename on the same file system) and keeps its extension (``.keras``). A crash or an
    error while writing leaves the previous file untouched. A URL (``gs://``, ``ram://``)
    is written locally first and then copied (``replace_atomically``); an ``hf://`` path
    is passed to ``save`` itself (Keras uploads it to the Hugging Face Hub).

    Args:
        save: the function that writes a model file (for example ``keras.Model.save``
            bound to the model).
        filepath: the target path.
        overwrite: if False and the target exists, raise instead of replacing it.
        **kwargs: passed to ``save``.

    Raises:
        TypeError: ``filepath`` is not a path.
        FileExistsError: ``overwrite=False`` and the file exists.
        FileNotFoundError, PermissionError: the target's directory is missing or not
            writable (the message names ``filepath``).
        ValueError: the model's weights are NaN or infinite (nothing is written).
    """
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(
            f"filepath must be a path (str or os.PathLike). Received: filepath={filepath!r}"
        )
    filepath = os.fspath(filepath)
    if filepath.startswith("hf://"):
        save(filepath, overwrite=overwrite, **kwargs)
        return
    if not filepath.endswith(".keras"):
        raise ValueError(
            "filepath must end in .keras (probae saves the Keras 3 format only). "
            f"Received: filepath={filepath!r}"
        )
    exists = _gfile().exists if is_remote_path(filepath) else os.path.exists
    if not overwrite and exists(filepath):
        raise FileExistsError(
            f"filepath already exists and overwrite=False. Received: filepath={filepath!r}"
        )

    def write(tmp):
        save(tmp, overwrite=True, **kwargs)
        bad = nonfinite_weights(tmp)
        if bad:
            raise ValueError(
                f"filepath={filepath!r} was not written: the model's weights are NaN or "
                f"infinite ({bad}), so the file could never be used. The previous file, if "
                "any, is kept."
            )

    replace_atomically(write, filepath)


def _nonfinite_in_h5(handle):
    """The name of the first float dataset in an open HDF5 file holding NaN or inf."""
    import h5py

    found = []

    def visit(name, obj):
        if not found and isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
            if not np.all(np.isfinite(obj[()])):
                found.append(name)

    handle.visititems(visit)
    return found[0] if found else None


def nonfinite_weights(path: str | os.PathLike) -> str | None:
    """Names the first weight (or optimizer slot) in a ``.keras`` file that is NaN or
    infinite, or returns None when all are finite."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return None
        with archive.open("model.weights.h5") as f, h5py.File(io.BytesIO(f.read()), "r") as h5:
            return _nonfinite_in_h5(h5)


_UNSAFE_CLASSES = ("Lambda", "TFOpLambda", "SlicingOpLambda")
_MAX_DEPTH = 200  # nesting of a config.json; probae's own are a few dozen levels deep


def _depth(config):
    """The nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(config, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


def _find_unsafe(config, where="config"):
    """Returns a description of the first code-carrying entry in a saved config, or None."""
    if isinstance(config, dict):
        if config.get("class_name") in _UNSAFE_CLASSES:
            return f"a {config['class_name']} layer at {where}"
        if config.get("class_name") == "__lambda__" or "__lambda__" in config:
            return f"a serialised Python function at {where}"
        for key, value in config.items():
            found = _find_unsafe(value, f"{where}.{key}")
            if found:
                return found
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found = _find_unsafe(value, f"{where}[{i}]")
            if found:
                return found
    return None


def _find_unknown_class(config, where="config"):
    """Returns the first custom class a saved config names that is not registered."""
    if isinstance(config, dict):
        registered = config.get("registered_name")
        if (
            isinstance(registered, str)
            and ">" in registered
            and "class_name" in config
            and keras.saving.get_registered_object(registered) is None
        ):
            return f"the unknown class {registered!r} at {where}"
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return None
    for key, value in items:
        found = _find_unknown_class(
            value, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]"
        )
        if found:
            return found
    return None


def load_model(path: str | os.PathLike, compile: bool = True) -> Any:
    """Loads a ``ProbabilisticAutoencoder`` saved with ``model.save(path)``, safely.

    ``keras.models.load_model`` with ``safe_mode=True``: no Python code (Lambda layers,
    pickled functions) in the file is ever run. Checks first that the file exists, is a
    complete ``.keras`` archive and describes a probae model.

    Args:
        path: a ``.keras`` file: a local path, a URL that TensorFlow's file systems read
            (``gs://``, ``s3://``, ``ram://``: copied to a local temporary file and checked
            as a local one) or an ``hf://`` Hugging Face Hub repository (loaded by Keras in
            safe mode; the model's class and weights are checked after loading).
        compile: restore the optimizer and its state (to continue training).

    Returns:
        The ``ProbabilisticAutoencoder``.

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: no file at ``path``.
        InvalidModelFileError (a ValueError): the file is truncated or not a zip
            archive, is not a saved probae model, holds code that safe mode refuses, has
            a config nested absurdly deep, holds NaN or infinite weights, or Keras
            cannot rebuild it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike). Received: path={path!r}")
    path = os.fspath(path)
    prefix = f"path={path!r} is not a loadable probae model"
    if path.startswith("hf://"):
        try:
            model = keras.models.load_model(path, compile=compile, safe_mode=True)
        except ImportError:
            raise
        except Exception as err:
            raise InvalidModelFileError(
                f"{prefix}: Keras could not load it in safe mode: {type(err).__name__}: "
                f"{str(err)[:500]}"
            ) from err
        return _checked(model, prefix)
    try:
        with local_copy(path) as local:
            return _load_local(local, prefix, compile)
    except FileNotFoundError:
        raise FileNotFoundError(f"path does not exist: no saved model at path={path!r}") from None


def _checked(model, prefix):
    """The loaded model if it is a probae model with finite weights."""
    model_class = keras.saving.get_registered_object("probae>ProbabilisticAutoencoder")
    if model_class is None or not isinstance(model, model_class):
        raise InvalidModelFileError(f"{prefix}: it loaded as a {type(model).__name__}.")
    for weight in model.weights:
        if weight.dtype.startswith("float") and not np.all(
            np.isfinite(keras.ops.convert_to_numpy(weight))
        ):
            raise InvalidModelFileError(
                f"{prefix}: it holds NaN or infinite weights ({weight.path}); a model trained "
                "into NaN cannot be used. Load an earlier checkpoint."
            )
    return model


def _load_local(path, prefix, compile):
    """``load_model`` for a local path; messages start with ``prefix``."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if os.path.isdir(path):
        raise InvalidModelFileError(f"{prefix}: path must be a .keras file, not a directory.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise InvalidModelFileError(f"{prefix}: the archive has no config.json.")
            bad = archive.testzip()
            if bad is not None:
                raise InvalidModelFileError(f"{prefix}: {bad} in the archive is corrupt.")
            config = json.loads(archive.read("config.json"))
            depth = _depth(config)
            if depth > _MAX_DEPTH:
                raise InvalidModelFileError(
                    f"{prefix}: its config.json is nested {depth} levels deep (a saved "
                    f"model's is at most a few dozen; more than {_MAX_DEPTH} is refused)."
                )
    except RecursionError:
        raise InvalidModelFileError(
            f"{prefix}: its config.json is nested too deeply to read (a saved model's is "
            f"at most a few dozen levels; more than {_MAX_DEPTH} is refused)."
        ) from None
    except zipfile.BadZipFile as err:
        raise InvalidModelFileError(
            f"{prefix}: it is not a complete .keras (zip) archive ({err}); the file may be "
            "truncated or of another format."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidModelFileError(
            f"{prefix}: its config.json is not valid JSON ({err})."
        ) from None
    if (
        not isinstance(config, dict)
        or config.get("class_name") != "ProbabilisticAutoencoder"
        or (
            config.get("registered_name", "probae>ProbabilisticAutoencoder")
            != "probae>ProbabilisticAutoencoder"
        )
    ):
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise InvalidModelFileError(
            f"{prefix}: it holds a {found!r}, not a probae ProbabilisticAutoencoder."
        )
    unsafe = _find_unsafe(config)
    unknown = _find_unknown_class(config)
    if unknown and not unsafe:
        raise InvalidModelFileError(
            f"{prefix}: it refers to {unknown}, which is not a registered probae or Keras "
            "class (import the package that defines it, or the file was edited)."
        )
    if unsafe:
        raise InvalidModelFileError(
            f"{prefix}: it contains {unsafe}, which would run arbitrary Python code when "
            "loaded. probae never saves such layers; refusing to load it (safe mode)."
        )
    try:
        bad = nonfinite_weights(path)
    except (OSError, ValueError, KeyError) as err:  # h5py's errors for a corrupt weights file
        raise InvalidModelFileError(
            f"{prefix}: its model.weights.h5 cannot be read ({type(err).__name__}: {err})."
        ) from None
    if bad:
        raise InvalidModelFileError(
            f"{prefix}: it holds NaN or infinite weights ({bad}); a model trained into NaN "
            "cannot be used. Load an earlier checkpoint."
        )
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # Keras raises TypeError/ValueError/OSError/KeyError here
        raise InvalidModelFileError(
            f"{prefix}: Keras could not rebuild it in safe mode: {type(err).__name__}: "
            f"{str(err)[:500]}"
        ) from err
    return _checked(model, prefix)
