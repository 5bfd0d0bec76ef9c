"""The package as an installed dependency sees it: light import, consistent exports."""

import subprocess
import sys
import time

import probae


def _best_time(code, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def test_every_public_name_is_exported_lazily_and_resolves():
    assert set(probae.__all__) == set(probae._LAZY)
    for name in probae.__all__:
        assert getattr(probae, name) is not None, name


def test_import_probae_does_not_import_tensorflow():
    code = (
        "import sys, probae; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_costs_a_small_multiple_of_a_bare_interpreter():
    # A ratio, not an absolute time: importing TensorFlow costs about 50 bare interpreters.
    bare = _best_time("pass")
    for args in ("['--help']", "['train', '--help']"):
        code = f"import sys; from probae.cli import main; sys.argv = ['probae'] + {args}; main()"
        code = f"import contextlib, io\nwith contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n    exec({code!r})"
        assert _best_time(code) < 10 * bare + 0.3, args


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = probae.nope


# ------------------------------------------------ issue 21: metadata a dependent relies on
def _pyproject():
    import pathlib
    import tomllib

    with open(pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_the_version_has_one_source():
    from importlib import metadata

    project = _pyproject()
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "probae.__version__"}
    try:
        installed = metadata.version("probae")
    except metadata.PackageNotFoundError:
        import pytest

        pytest.skip("probae is not installed (run from a checkout on sys.path)")
    assert installed == probae.__version__


def test_typed_package_ships_its_marker():
    import pathlib

    assert (pathlib.Path(probae.__file__).parent / "py.typed").is_file()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["probae"]


def test_installed_dependencies_meet_the_declared_floors():
    """.ci/min_constraints.py pins each dependency to its floor; here, every installed
    version is at or above that floor (CI's minimum-versions run installs exactly it)."""
    import pathlib
    import runpy
    from importlib import metadata

    from packaging.version import Version

    script = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "min_constraints.py"
    floors = runpy.run_path(str(script))["floors"]()
    names = [
        r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
        for r in _pyproject()["project"]["dependencies"]
    ]
    assert sorted(floors) == sorted(names)
    for name, floor in floors.items():
        assert Version(metadata.version(name)) >= Version(floor), (name, floor)


def test_min_constraints_refuses_a_dependency_without_a_floor(tmp_path):
    import pathlib
    import runpy

    import pytest

    script = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "min_constraints.py"
    floors = runpy.run_path(str(script))["floors"]
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\ndependencies = ["numpy>=1.26,<3", "keras[jax] >= 3.10"]\n')
    assert floors(toml) == {"numpy": "1.26", "keras": "3.10"}
    toml.write_text('[project]\ndependencies = ["numpy<3"]\n')
    with pytest.raises(ValueError, match="no lower bound"):
        floors(toml)


SAVE = """
import numpy as np, probae
model = probae.VAE((6,), 2, hidden_units=(4,))
model.fit(np.zeros((8, 6), "float32"), epochs=1, verbose=0)
model.save({path!r})
"""

# keras.models.load_model finds probae's registered classes whatever the import order, even
# when no probae name was touched in the process (the lazy import must not lose them).
LOAD_ORDERS = {
    "probae first": "import probae\nimport keras\n",
    "keras first": "import keras\nimport probae\n",
    "tensorflow first": "import tensorflow\nimport probae\nimport keras\n",
    # a probae module whose own import pulls in TensorFlow: the registration must wait
    # until it has finished (it once ran inside it and failed on a half-imported module)
    "submodule first": "import probae.datasets\nimport keras\n",
    "submodule as attribute first": "import probae\nprobae.datasets.load_mnist\nimport keras\n",
}


def test_keras_load_model_finds_probae_classes_in_any_import_order(tmp_path):
    path = str(tmp_path / "m.keras")
    subprocess.run([sys.executable, "-c", SAVE.format(path=path)], check=True)
    for name, imports in LOAD_ORDERS.items():
        code = imports + f"m = keras.models.load_model({path!r})\nprint(type(m).__name__)\n"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr[-2000:])
        assert out.stdout.strip().endswith("ProbabilisticAutoencoder"), name
