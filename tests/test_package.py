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
