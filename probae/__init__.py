"""probae: probabilistic autoencoders on Keras 3 and TensorFlow Probability.

Encoders output distributions over the code, decoders output distributions over the data,
and the objective is computed from ``log_prob`` and KL terms. One model class,
``ProbabilisticAutoencoder``; every named variant is a configuration of it.
"""

import os as _os

# TFP imports tf_keras at import time; probae itself uses Keras 3 only.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from probae import callbacks, data, datasets, distributions, estimators, objectives, posteriors  # noqa: E402
from probae.corruption import (  # noqa: E402
    Corruption,
    GaussianNoise,
    MaskingNoise,
    SaltAndPepperNoise,
)
from probae.decoders import (  # noqa: E402
    BernoulliDecoder,
    ContinuousBernoulliDecoder,
    Decoder,
    GaussianDecoder,
    LaplaceDecoder,
    MixedDecoder,
    StudentTDecoder,
)
from probae.encoders import CodeLayer, DeterministicEncoder, Encoder, GaussianEncoder  # noqa: E402
from probae.evaluation import evaluate_likelihood  # noqa: E402
from probae.model import ProbabilisticAutoencoder  # noqa: E402
from probae.penalties import CodePenalty, SparsityPenalty  # noqa: E402
from probae.objectives import ELBO, IWAE, Objective, RenyiBound  # noqa: E402
from probae.presets import (  # noqa: E402
    VAE,
    Autoencoder,
    BetaVAE,
    ConditionalVAE,
    DenoisingAutoencoder,
    SparseAutoencoder,
)
from probae.priors import (  # noqa: E402
    MixtureOfGaussiansPrior,
    Prior,
    StandardNormalPrior,
    VampPrior,
)
from probae import missing, tables  # noqa: E402
from probae.anomaly import anomaly_scores  # noqa: E402
from probae.detector import AnomalyDetector  # noqa: E402
from probae.missing import marginalize_missing  # noqa: E402
from probae.tables import TablePreprocessor, tabular_model  # noqa: E402
from probae.callbacks import BackupAndRestore, NonFiniteLossError, StopOnNaN  # noqa: E402
from probae.saving import InvalidModelFileError, load_model  # noqa: E402
from probae.seeds import set_seed  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ProbabilisticAutoencoder",
    "Encoder",
    "GaussianEncoder",
    "DeterministicEncoder",
    "CodeLayer",
    "Decoder",
    "BernoulliDecoder",
    "ContinuousBernoulliDecoder",
    "GaussianDecoder",
    "LaplaceDecoder",
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
]
