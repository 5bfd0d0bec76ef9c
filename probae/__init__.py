"""probae: probabilistic autoencoders on Keras 3 and TensorFlow Probability.

Encoders output distributions over the code, decoders output distributions over the data,
and the objective is computed from ``log_prob`` and KL terms. One model class,
``ProbabilisticAutoencoder``; every named variant is a configuration of it.

``import probae`` is light: TensorFlow, TensorFlow Probability and Keras load on the first
use of a public name (PEP 562), so ``probae --help`` answers at once. probae's
Keras-serialisable classes are registered as soon as Keras is there (at ``import probae`` if
Keras or TensorFlow is already imported, else right after they are), so
``keras.models.load_model`` finds them in any import order.
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import os as _os
import sys as _sys

# TensorFlow's C++ start-up chatter (and TFP's tf_keras import) stay out of the user's
# terminal unless they ask for it by setting TF_CPP_MIN_LOG_LEVEL themselves.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Public name -> the module that defines it. To export a new name, add it here and to
# __all__ (tests/test_architecture.py checks that the two agree).
_LAZY = {
    "callbacks": "probae.callbacks",
    "data": "probae.data",
    "datasets": "probae.datasets",
    "distributions": "probae.distributions",
    "estimators": "probae.estimators",
    "objectives": "probae.objectives",
    "posteriors": "probae.posteriors",
    "Corruption": "probae.corruption",
    "GaussianNoise": "probae.corruption",
    "MaskingNoise": "probae.corruption",
    "SaltAndPepperNoise": "probae.corruption",
    "BernoulliDecoder": "probae.decoders",
    "BetaBinomialDecoder": "probae.decoders",
    "ContinuousBernoulliDecoder": "probae.decoders",
    "Decoder": "probae.decoders",
    "GaussianDecoder": "probae.decoders",
    "LaplaceDecoder": "probae.decoders",
    "MixedDecoder": "probae.decoders",
    "StudentTDecoder": "probae.decoders",
    "CodeLayer": "probae.encoders",
    "DeterministicEncoder": "probae.encoders",
    "Encoder": "probae.encoders",
    "GaussianEncoder": "probae.encoders",
    "IAFEncoder": "probae.flows",
    "HierarchicalEncoder": "probae.hierarchy",
    "HierarchicalPrior": "probae.hierarchy",
    "HierarchicalVAE": "probae.hierarchy",
    "evaluate_likelihood": "probae.evaluation",
    "ProbabilisticAutoencoder": "probae.model",
    "CodePenalty": "probae.penalties",
    "SparsityPenalty": "probae.penalties",
    "ELBO": "probae.objectives",
    "IWAE": "probae.objectives",
    "Objective": "probae.objectives",
    "RenyiBound": "probae.objectives",
    "VAE": "probae.presets",
    "Autoencoder": "probae.presets",
    "BetaVAE": "probae.presets",
    "ConditionalVAE": "probae.presets",
    "DenoisingAutoencoder": "probae.presets",
    "SparseAutoencoder": "probae.presets",
    "MixtureOfGaussiansPrior": "probae.priors",
    "Prior": "probae.priors",
    "StandardNormalPrior": "probae.priors",
    "VampPrior": "probae.priors",
    "missing": "probae.missing",
    "tables": "probae.tables",
    "graphs": "probae.graphs",
    "anomaly_scores": "probae.anomaly",
    "AnomalyDetector": "probae.detector",
    "marginalize_missing": "probae.missing",
    "TablePreprocessor": "probae.tables",
    "tabular_model": "probae.tables",
    "BackupAndRestore": "probae.callbacks",
    "NonFiniteLossError": "probae.callbacks",
    "StopOnNaN": "probae.callbacks",
    "InvalidModelFileError": "probae.saving",
    "load_model": "probae.saving",
    "set_seed": "probae.seeds",
    "compress": "probae.compression",
    "decompress": "probae.compression",
}

__all__ = [
    "ProbabilisticAutoencoder",
    "Encoder",
    "GaussianEncoder",
    "DeterministicEncoder",
    "CodeLayer",
    "IAFEncoder",
    "HierarchicalEncoder",
    "HierarchicalPrior",
    "HierarchicalVAE",
    "Decoder",
    "BernoulliDecoder",
    "ContinuousBernoulliDecoder",
    "GaussianDecoder",
    "LaplaceDecoder",
    "BetaBinomialDecoder",
    "Prior",
    "StandardNormalPrior",
    "MixtureOfGaussiansPrior",
    "VampPrior",
    "CodePenalty",
    "SparsityPenalty",
    "Corruption",
    "GaussianNoise",
    "MaskingNoise",
    "SaltAndPepperNoise",
    "Autoencoder",
    "VAE",
    "BetaVAE",
    "SparseAutoencoder",
    "DenoisingAutoencoder",
    "ConditionalVAE",
    "Objective",
    "ELBO",
    "IWAE",
    "RenyiBound",
    "evaluate_likelihood",
    "callbacks",
    "data",
    "datasets",
    "objectives",
    "estimators",
    "posteriors",
    "distributions",
    "StudentTDecoder",
    "MixedDecoder",
    "anomaly_scores",
    "AnomalyDetector",
    "TablePreprocessor",
    "tabular_model",
    "marginalize_missing",
    "tables",
    "missing",
    "graphs",
    "load_model",
    "set_seed",
    "StopOnNaN",
    "BackupAndRestore",
    "NonFiniteLossError",
    "InvalidModelFileError",
    "compress",
    "decompress",
]


# Modules imported together on first use, so that every registered Keras class is known.
_MODULES = tuple(dict.fromkeys(_LAZY.values()))


def _register_all():
    """Imports every model module: registers all of probae's Keras-serialisable classes."""
    # Once registering, Keras' own import needs no hook (nor may it re-enter this).
    _sys.meta_path[:] = [f for f in _sys.meta_path if not isinstance(f, _RegisterOnKerasImport)]
    for module in _MODULES:
        _importlib.import_module(module)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'probae' has no attribute {name!r}")
    if module == f"{__name__}.{name}":
        # A submodule (also reached by `from probae import posteriors` inside probae).
        return _importlib.import_module(module)
    _register_all()
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _initializing(module, just_executed=None):
    """Whether ``module`` is half-way through its import (``just_executed`` counts as done)."""
    return module is not just_executed and getattr(
        getattr(module, "__spec__", None), "_initializing", False
    )


def _imported(name, just_executed=None):
    module = _sys.modules.get(name)
    return module is not None and not _initializing(module, just_executed)


def _probae_initializing(just_executed=None):
    """Whether a probae submodule (other than ``just_executed``) is half-way through its
    import: registering then would import modules that need its names before they exist."""
    return any(
        _initializing(module, just_executed)
        for name, module in list(_sys.modules.items())
        if name.startswith(f"{__name__}.")
    )


def _register_when_ready(just_executed=None):
    """Registers now, or (inside a probae submodule's import) as soon as the outermost
    probae import finishes."""
    global _pending
    _pending = _probae_initializing(just_executed)
    if not _pending:
        _register_all()


_pending = False


class _RegisterOnKerasImport(_importlib_abc.MetaPathFinder):
    """Registers probae's classes once both Keras and TensorFlow have finished importing
    (either may import the other), so that ``import probae`` stays light and
    ``keras.models.load_model`` still finds the classes whatever the import order. When a
    probae submodule imports TensorFlow itself, registration waits until that submodule
    (and every probae import around it) has finished: probae's submodules are watched
    too."""

    def find_spec(self, name, path=None, target=None):
        if name not in ("keras", "tensorflow") and not name.startswith(f"{__name__}."):
            return None
        for finder in _sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(_importlib_abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, attr):
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if module.__name__ in ("keras", "tensorflow"):
            if _imported("keras", module) and _imported("tensorflow", module):
                _register_when_ready(module)
        elif _pending:
            _register_when_ready(module)


if _imported("keras") or _imported("tensorflow"):
    _register_all()
else:
    _sys.meta_path.insert(0, _RegisterOnKerasImport())
