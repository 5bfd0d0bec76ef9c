"""probae: probabilistic autoencoders on Keras 3 and TensorFlow Probability.

Encoders output distributions over the code, decoders output distributions over the data,
and the objective is computed from ``log_prob`` and KL terms. One model class,
``ProbabilisticAutoencoder``; every named variant is a configuration of it.

``import probae`` is light: TensorFlow, TensorFlow Probability and Keras load on the first
use of a public name (PEP 562), so ``probae --help`` answers at once. The first such use
imports every model module, which registers all of probae's Keras-serialisable classes, so
``keras.saving.load_model`` finds them as before.
"""

import importlib as _importlib
import os as _os

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


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'probae' has no attribute {name!r}")
    if module == f"{__name__}.{name}":
        # A submodule (also reached by `from probae import posteriors` inside probae).
        return _importlib.import_module(module)
    for other in _MODULES:
        _importlib.import_module(other)
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
