"""TensorFlow's start-up messages stay off the terminal of the CLI and the examples."""

import os
import subprocess
import sys

import pytest

from probae.startup import import_tensorflow_quietly, tensorflow_logs_requested

# Lines TensorFlow's C++ runtime prints at import and at the first device use.
CHATTER = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "cudart_stub",
    "cuInit",
    "cpu_feature_guard",
    "Could not find cuda drivers",
)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PROBAE_TF_LOGS",)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it: unset
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", **extra)
    return env


def _chatter(text):
    return [line for line in text.splitlines() if any(c in line for c in CHATTER)]


_USE_TENSORFLOW = (
    "from probae.startup import import_tensorflow_quietly\n"
    "import_tensorflow_quietly()\n"
    "import sys, keras\n"
    "print(float(keras.ops.sum(keras.ops.ones((3,)))))\n"
    "print('stderr still works', file=sys.stderr)\n"
)


def test_import_and_first_device_use_print_nothing_unless_asked():
    loud = subprocess.run(
        [sys.executable, "-c", _USE_TENSORFLOW],
        env=_env(PROBAE_TF_LOGS="1"),
        capture_output=True,
        text=True,
        check=True,
    )
    if not _chatter(loud.stderr):
        pytest.skip("this TensorFlow build prints no start-up messages: nothing to hide")
    quiet = subprocess.run(
        [sys.executable, "-c", _USE_TENSORFLOW],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert quiet.stdout.strip() == "3.0"
    assert _chatter(quiet.stderr) == [], quiet.stderr
    # fd 2 is restored: what the program writes later still reaches stderr.
    assert "stderr still works" in quiet.stderr


def test_a_failed_import_replays_what_it_printed_and_propagates(tmp_path):
    # A broken "keras" that writes to file descriptor 2 (as C++ code does) and fails.
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text(
        "import os\nos.write(2, b'native diagnostic\\n')\nraise ImportError('broken keras')\n"
    )
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from probae.startup import import_tensorflow_quietly\n"
        "try:\n"
        "    import_tensorflow_quietly()\n"
        "except ImportError as err:\n"
        "    print('caught:', err, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True
    )
    assert result.stderr.splitlines() == ["native diagnostic", "caught: broken keras"]


def test_cli_help_and_commands_keep_stderr_clean(tmp_path):
    for argv in (["--help"], ["train", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "probae.cli", *argv],
            env=_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stderr == "", argv
        assert "--tf-logs" in result.stdout or argv != ["--help"]
    # A user error after TensorFlow was imported: exactly the one-line message.
    missing = subprocess.run(
        [sys.executable, "-m", "probae.cli", "evaluate", str(tmp_path / "no.keras"), "digits"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [missing.stderr.strip()], missing.stderr
    assert missing.stderr.startswith("probae: error:"), missing.stderr
    # A short real run: training, evaluation, plots.
    out = tmp_path / "run"
    argv = ["train", "autoencoder", "digits", "--epochs", "1", "--max-examples", "64"]
    argv += ["--num-samples", "2", "--verbose", "0", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "probae.cli", *argv],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (out / "model.keras").exists()
    assert _chatter(run.stderr) == [], run.stderr


def test_the_environment_variable_asks_for_the_messages():
    assert tensorflow_logs_requested({}) is False
    assert tensorflow_logs_requested({"PROBAE_TF_LOGS": ""}) is False
    assert tensorflow_logs_requested({"PROBAE_TF_LOGS": "0"}) is False
    assert tensorflow_logs_requested({"PROBAE_TF_LOGS": "1"}) is True


def test_show_must_be_a_bool():
    with pytest.raises(TypeError, match="show must be a bool or None"):
        import_tensorflow_quietly(show="yes")
