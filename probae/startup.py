"""TensorFlow's start-up messages, kept off the terminal of the command line and examples.

Importing TensorFlow prints several lines from its C++ runtime before Python can filter
anything ("WARNING: All log messages before absl::InitializeLog() is called are written
to STDERR", the oneDNN notice, ``cudart_stub`` and ``cpu_feature_guard`` lines), and the
first use of a device prints "failed call to cuInit" on a machine without a GPU.
``import_tensorflow_quietly`` imports TensorFlow and initialises its devices with file
descriptor 2 pointed at a temporary file, then restores it: later messages (warnings and
errors while a model runs) reach stderr as usual. If the import fails, what TensorFlow
printed is replayed on stderr before the error propagates.

The messages are shown (nothing is redirected) when asked for: ``show=True``, or the
environment variable ``PROBAE_TF_LOGS`` set to anything but ``""`` or ``"0"``. (Importing
probae sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless it is set, which filters TensorFlow's
later INFO and WARNING lines but not these: most are written before TensorFlow reads it.)
"""

import os
import sys
import tempfile

__all__ = ["SHOW_LOGS_VARIABLE", "import_tensorflow_quietly", "tensorflow_logs_requested"]

# Set to 1 to see TensorFlow's start-up messages in the CLI and the examples.
SHOW_LOGS_VARIABLE = "PROBAE_TF_LOGS"


def tensorflow_logs_requested(environ=None):
    """Whether the environment asks for TensorFlow's start-up messages.

    Args:
        environ: a mapping of environment variables (default ``os.environ``).

    Returns:
        True when ``PROBAE_TF_LOGS`` is set to anything but ``""`` or ``"0"``.
    """
    environ = os.environ if environ is None else environ
    return environ.get(SHOW_LOGS_VARIABLE, "") not in ("", "0")


def import_tensorflow_quietly(show: bool | None = None) -> None:
    """Imports TensorFlow (and Keras) with its start-up messages kept off stderr.

    Does nothing more than ``import tensorflow`` when TensorFlow is already imported or
    the messages were asked for.

    Args:
        show: True to let the messages through; None (default) reads the environment
            (``tensorflow_logs_requested``).

    Raises:
        TypeError: ``show`` is not a bool or None.
    """
    if show is not None and not isinstance(show, bool):
        raise TypeError(f"show must be a bool or None. Received: show={show!r}")
    if show is None:
        show = tensorflow_logs_requested()
    if show or "tensorflow" in sys.modules:
        import keras
        import tensorflow

        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real fd 2 (embedded, captured)
        import keras
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit attempt happens here
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            sys.stderr.flush()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
