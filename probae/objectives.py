"""Objectives: what a model maximises, as small serialisable objects.

An objective is called as ``objective(x, posterior, decode, prior, seed)`` and returns a
dict of per-example ``[batch]`` terms: ``objective`` (the quantity training maximises)
and the terms it reports, whose names ``metric_names(has_prior)`` lists; the model's
``fit`` and ``evaluate`` log exactly those. ``decode`` maps codes with the samples folded
into the batch (``[k * batch, ...]``, sample-major) to p(x|z); ``prior`` is p(z) or None.

Gradient surrogates live here too: an objective whose gradient for one part of the model
is not the gradient of ``objective`` (DReG's encoder gradient) returns that surrogate as
another term and names it in ``surrogates`` (``{"encoder": "encoder_objective"}``); the
model's training step differentiates each part against its own term and knows nothing
else about it. Weights that a schedule may change during training (the ELBO's ``beta``)
are listed in ``annealable``; the model keeps them in variables and passes them in.

The maths comes from ``probae.estimators`` (samples, log-weights, KL), the module every
evaluation in probae also uses. Adding an objective is one new class here and its tests.

Objectives: ``ELBO`` (beta-VAE and free bits included), ``IWAE`` (with the DReG
estimator) and ``RenyiBound`` (the variational Renyi bound).
"""

import numbers

import keras
import tensorflow as tf

from probae import estimators, posteriors
from probae._serializable import ConfigObject
from probae._validation import check_non_negative_float, check_positive_int

__all__ = [
    "Objective",
    "ELBO",
    "IWAE",
    "RenyiBound",
    "elbo",
    "iwae_bound",
    "renyi_bound",
    "get",
    "GRADIENT_ESTIMATORS",
]

GRADIENT_ESTIMATORS = ("iwae", "dreg")


def _check_reparameterized(posterior, what):
    if not posteriors.is_reparameterized(posterior):
        raise ValueError(
            f"{what} differentiates through samples of q(z|x), which must be "
            "reparameterised. Received: a posterior of type "
            f"{type(posterior).__name__} with reparameterization_type="
            f"{posterior.reparameterization_type}"
        )


# ---------------------------------------------------------------------- functions
def elbo(x, posterior, decode, prior, beta=1.0, num_samples=1, seed=None, free_bits=None):
    """The evidence lower bound, per example.

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x), with E_q estimated from
    k reparameterised samples and the KL in closed form when TFP registers one (Monte
    Carlo from the same samples otherwise).

    Args:
        x: data ``[batch, *event_shape]``.
        posterior: q(z|x).
        decode: callable from codes ``[k * batch, ...]`` to p(x|z).
        prior: p(z), or None for a model without a prior: then only the reconstruction
            term exists (a deterministic autoencoder's objective).
        beta: weight of the KL term in the objective (beta-VAE); the reported ``elbo`` is
            always the true bound (beta = 1).
        num_samples: k, samples for the reconstruction term.
        seed: stateless seed or None.
        free_bits: None, or a minimum KL per latent dimension (nats) applied to the
            objective only (Kingma et al. 2016): dimensions whose batch-mean KL is below
            it are not pushed further down by the KL term (their KL is not held above
            the floor: the objective is only flat below it). Needs a diagonal Gaussian
            posterior and prior (raises ValueError otherwise).

    Returns:
        A dict of ``[batch]`` tensors: ``reconstruction`` (E_q log p(x|z)) and
        ``objective`` (reconstruction - beta * kl); with a prior also ``elbo``
        (reconstruction - kl) and ``kl``.

    References: Kingma and Welling 2014; Higgins et al. 2017 (beta); Kingma et al. 2016
    (free bits).
    """
    z, log_px_z = estimators.sample_log_likelihoods(x, posterior, decode, num_samples, seed)
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    if prior is None:
        return {"reconstruction": reconstruction, "objective": reconstruction}
    kl, _ = estimators.kl_divergence(posterior, prior, z)
    penalised_kl = kl if free_bits is None else _free_bits_kl(posterior, prior, kl, free_bits)
    return {
        "elbo": reconstruction - kl,
        "reconstruction": reconstruction,
        "kl": kl,
        "objective": reconstruction - beta * penalised_kl,
    }


def _free_bits_kl(posterior, prior, kl, free_bits):
    """Per-example KL whose per-dimension batch means are clamped below at ``free_bits``.

    The batch mean of the result is sum_j max(free_bits, mean_batch KL_j). A dimension
    below the floor contributes a constant (no gradient): the KL term stops pushing it
    down, which does not by itself keep its KL above the floor.
    """
    kl_dims = estimators.kl_per_dimension(posterior, prior)  # [batch, latent_dim]
    mean_dims = tf.reduce_mean(kl_dims, axis=0, keepdims=True)
    clamped = tf.where(mean_dims < free_bits, tf.stop_gradient(kl_dims) * 0 + free_bits, kl_dims)
    return tf.reduce_sum(clamped, axis=-1)


def _sampled_terms(log_w, log_px_z):
    """The k-sample Monte Carlo ELBO and its parts from the same log-weights."""
    reconstruction = tf.reduce_mean(log_px_z, axis=0)
    mc_elbo = tf.reduce_mean(log_w, axis=0)
    return {"elbo": mc_elbo, "reconstruction": reconstruction, "kl": reconstruction - mc_elbo}


def iwae_bound(x, posterior, decode, prior, num_samples, seed=None, gradient_estimator="iwae"):
    """The importance-weighted bound, per example.

    IWAE_k(x) = E[log (1/k) sum_k p(x, z_k) / q(z_k|x)], with ELBO = IWAE_1 <= IWAE_k <=
    IWAE_{k+1} <= log p(x); as an estimate of log p(x) it is biased low, the bias falling
    as O(1/k).

    Args:
        x, posterior, decode, prior: as in ``elbo`` (a prior is required).
        num_samples: k.
        seed: stateless seed or None.
        gradient_estimator: "iwae" (the gradient of the bound's estimate, Burda et al.) or
            "dreg" (doubly reparameterised, Tucker et al.): the value of every term is
            the same; with "dreg" the dict also holds ``encoder_objective``, a surrogate
            whose gradient with respect to the encoder's parameters (and only those) is
            the DReG estimator sum_k w~_k^2 d log w_k / d z_k d z_k / d phi, with
            w~ = softmax(log w) held constant. It is unbiased for the gradient of IWAE_k
            and, unlike the IWAE estimator, its signal-to-noise ratio does not fall as k
            grows. DReG needs a posterior whose gradients can be stopped at its
            parameters (``probae.posteriors.stop_parameter_gradients``) and a prior that
            does not depend on the encoder's parameters.

    Returns:
        A dict of ``[batch]`` tensors: ``iwae`` (the bound, also ``objective``), and the
        k-sample Monte Carlo ``elbo``, ``reconstruction`` and ``kl`` from the same samples
        (plus ``encoder_objective`` with ``gradient_estimator="dreg"``).

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders;
    Tucker, Lawson, Gu and Maddison 2019, Doubly reparameterized gradient estimators for
    Monte Carlo objectives.
    """
    if prior is None:
        raise ValueError("iwae_bound needs a prior. Received: prior=None")
    _check_gradient_estimator(gradient_estimator)
    dreg = gradient_estimator == "dreg"
    log_w, log_px_z, _ = estimators.log_weights(
        x, posterior, decode, prior, num_samples, seed, stop_posterior_gradient=dreg
    )
    bound = estimators.log_mean_exp(log_w)
    terms = {"iwae": bound, "objective": bound, **_sampled_terms(log_w, log_px_z)}
    if dreg:
        weights = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
        terms["encoder_objective"] = tf.reduce_sum(tf.square(weights) * log_w, axis=0)
    return terms


def renyi_bound(x, posterior, decode, prior, alpha, num_samples, seed=None):
    """The variational Renyi (VR) bound, per example.

    L_alpha(x) = 1 / (1 - alpha) log (1/k) sum_k w_k^(1 - alpha), w_k = p(x, z_k) / q(z_k|x):
    the log of the power mean of order 1 - alpha of the importance weights. For the same
    samples it lies between the Monte Carlo ELBO (alpha -> 1, the geometric mean) and the
    IWAE bound (alpha = 0, the arithmetic mean), and falls as alpha rises; for alpha in
    [0, 1) its expectation is a lower bound on log p(x) that rises with k.

    Args:
        x, posterior, decode, prior: as in ``elbo`` (a prior is required).
        alpha: the order, in [0, 1).
        num_samples: k.
        seed: stateless seed or None.

    Returns:
        A dict of ``[batch]`` tensors: ``renyi`` (the bound, also ``objective``) and the
        k-sample Monte Carlo ``elbo``, ``reconstruction`` and ``kl``.

    References: Li and Turner 2016, Renyi divergence variational inference.
    """
    if prior is None:
        raise ValueError("renyi_bound needs a prior. Received: prior=None")
    log_w, log_px_z, _ = estimators.log_weights(x, posterior, decode, prior, num_samples, seed)
    bound = estimators.log_mean_exp((1.0 - alpha) * log_w) / (1.0 - alpha)
    return {"renyi": bound, "objective": bound, **_sampled_terms(log_w, log_px_z)}


def _check_gradient_estimator(value):
    if value not in GRADIENT_ESTIMATORS:
        raise ValueError(
            f"gradient_estimator must be one of {GRADIENT_ESTIMATORS}. "
            f"Received: gradient_estimator={value!r}"
        )


# ---------------------------------------------------------------------- objects
class Objective(ConfigObject):
    """Base class of objectives (see the module doc).

    Subclasses set the class attributes below, implement ``__call__`` and ``get_config``,
    and are registered with ``keras.saving.register_keras_serializable(package="probae")``.

    Attributes:
        num_samples: posterior samples per example in training.
        annealable: names of weights a schedule may set during training (passed to
            ``__call__`` as keyword arguments holding tensors).
        surrogates: ``{part: term}``: the model part ("encoder", "decoder" or "prior")
            whose gradient comes from ``term`` instead of ``objective``.
        requires_prior: whether the objective needs p(z).
    """

    num_samples = 1
    annealable: tuple[str, ...] = ()
    surrogates: dict = {}
    requires_prior = True

    def metric_names(self, has_prior=True):
        """The per-example terms the model logs (besides ``loss``)."""
        raise NotImplementedError

    def check(self, encoder=None, prior=None):
        """Raises ValueError when the objective cannot train this encoder and prior."""
        if self.requires_prior and prior is None:
            raise ValueError(
                f"{type(self).__name__} needs a prior p(z). Received: prior=None (a "
                "point-mass encoder has no prior unless you pass prior=...)."
            )

    def initial_value(self, name):
        """The starting value of the annealable weight ``name``."""
        return getattr(self, name)

    def __call__(self, x, posterior, decode, prior, seed=None, **weights):
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


def _check_num_samples(num_samples):
    return check_positive_int(num_samples, "num_samples")


@keras.saving.register_keras_serializable(package="probae")
class ELBO(Objective):
    """The evidence lower bound, E_q[log p(x|z)] - beta KL(q(z|x) || p(z)).

    With beta = 1 a lower bound on log p(x) (the VAE); beta > 1 is the beta-VAE; a model
    without a prior (a point-mass encoder) maximises the reconstruction term alone, the
    classic autoencoder. The model logs ``elbo`` (always with beta = 1),
    ``reconstruction`` and ``kl`` (only ``reconstruction`` without a prior). ``beta`` is
    annealable (``probae.callbacks.LinearBetaWarmup`` and friends).

    Args:
        beta: weight of the KL term (>= 0).
        free_bits: None or a minimum KL per latent dimension in nats (see ``elbo``).
        num_samples: k, samples of the reconstruction term per example.

    References: Kingma and Welling 2014; Higgins et al. 2017; Kingma et al. 2016.
    """

    annealable = ("beta",)
    requires_prior = False

    def __init__(
        self, beta: float = 1.0, free_bits: float | None = None, num_samples: int = 1
    ) -> None:
        self.beta = check_non_negative_float(beta, "beta")
        self.free_bits = (
            None if free_bits is None else check_non_negative_float(free_bits, "free_bits")
        )
        self.num_samples = _check_num_samples(num_samples)

    def metric_names(self, has_prior=True):
        return ("elbo", "reconstruction", "kl") if has_prior else ("reconstruction",)

    def __call__(self, x, posterior, decode, prior, seed=None, beta=None):
        _check_reparameterized(posterior, "The ELBO")
        return elbo(
            x,
            posterior,
            decode,
            prior,
            beta=self.beta if beta is None else beta,
            num_samples=self.num_samples,
            seed=seed,
            free_bits=self.free_bits,
        )

    def get_config(self):
        return {"beta": self.beta, "free_bits": self.free_bits, "num_samples": self.num_samples}


@keras.saving.register_keras_serializable(package="probae")
class IWAE(Objective):
    """The importance-weighted bound log (1/k) sum_k p(x, z_k) / q(z_k|x) (see ``iwae_bound``).

    Tighter than the ELBO for k > 1; the model logs ``iwae`` and, from the same samples,
    ``elbo``, ``reconstruction`` and ``kl``. With ``gradient_estimator="dreg"`` the
    encoder is trained with the doubly reparameterised gradient, through the surrogate
    term ``encoder_objective``.

    Args:
        num_samples: k (default 5).
        gradient_estimator: "iwae" or "dreg".

    Raises:
        ValueError: k not a positive integer, an unknown estimator; at model
            construction, DReG with a prior that depends on the encoder (VampPrior); in
            training, DReG with a posterior whose gradients cannot be stopped.

    References: Burda, Grosse and Salakhutdinov 2016; Tucker et al. 2019.
    """

    def __init__(self, num_samples: int = 5, gradient_estimator: str = "iwae") -> None:
        if isinstance(num_samples, (tuple, list)):
            raise TypeError(
                "probae.IWAE is the importance-weighted objective: IWAE(num_samples=5, "
                "gradient_estimator='iwae'). For the model, use probae.VAE(input_shape, "
                "latent_dim, objective=probae.IWAE(5)). Received: a shape "
                f"{tuple(num_samples)!r} as num_samples"
            )
        self.num_samples = _check_num_samples(num_samples)
        _check_gradient_estimator(gradient_estimator)
        self.gradient_estimator = gradient_estimator

    @property
    def surrogates(self):
        return {"encoder": "encoder_objective"} if self.gradient_estimator == "dreg" else {}

    def metric_names(self, has_prior=True):
        return ("iwae", "elbo", "reconstruction", "kl")

    def check(self, encoder=None, prior=None):
        super().check(encoder, prior)
        if self.gradient_estimator == "dreg" and not getattr(encoder, "stoppable_posterior", True):
            raise ValueError(
                "gradient_estimator='dreg' needs the posterior's gradients stopped at its "
                f"parameters, which a {type(encoder).__name__}'s posterior (a flow or a joint "
                "distribution) does not allow. Use gradient_estimator='iwae'."
            )
        if self.gradient_estimator == "dreg" and getattr(prior, "uses_encoder", False):
            raise ValueError(
                "gradient_estimator='dreg' assumes a prior that does not depend on the "
                f"encoder's parameters. Received: prior={type(prior).__name__}"
            )

    def __call__(self, x, posterior, decode, prior, seed=None):
        _check_reparameterized(posterior, "The IWAE bound")
        return iwae_bound(
            x,
            posterior,
            decode,
            prior,
            self.num_samples,
            seed,
            gradient_estimator=self.gradient_estimator,
        )

    def get_config(self):
        return {"num_samples": self.num_samples, "gradient_estimator": self.gradient_estimator}


@keras.saving.register_keras_serializable(package="probae")
class RenyiBound(Objective):
    """The variational Renyi bound of order alpha (see ``renyi_bound``).

    Interpolates between the IWAE bound (alpha = 0) and the ELBO (alpha -> 1); the model
    logs ``renyi`` and the Monte Carlo ``elbo``, ``reconstruction`` and ``kl``. (NumPyro
    calls it ``RenyiELBO``.)

    Args:
        alpha: the order, in [0, 1).
        num_samples: k (default 5).

    References: Li and Turner 2016, Renyi divergence variational inference.
    """

    def __init__(self, alpha: float = 0.5, num_samples: int = 5) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be a number in [0, 1). Received: alpha={alpha!r}")
        self.alpha = float(alpha)
        self.num_samples = _check_num_samples(num_samples)

    def metric_names(self, has_prior=True):
        return ("renyi", "elbo", "reconstruction", "kl")

    def __call__(self, x, posterior, decode, prior, seed=None):
        _check_reparameterized(posterior, "The Renyi bound")
        return renyi_bound(x, posterior, decode, prior, self.alpha, self.num_samples, seed)

    def get_config(self):
        return {"alpha": self.alpha, "num_samples": self.num_samples}


_SHORTHANDS = {"elbo": ELBO, "iwae": IWAE, "renyi": RenyiBound}


def get(objective, beta=None, num_samples=None, free_bits=None, gradient_estimator=None):
    """An ``Objective`` from an object, its saved config or a string shorthand.

    The strings "elbo", "iwae" and "renyi" name ``ELBO``, ``IWAE`` and ``RenyiBound``;
    the keyword options (the model's shorthand arguments) configure them. An objective
    object carries its own options: passing one of these as well is an error.

    Raises:
        TypeError: ``objective`` is neither a string nor an ``Objective``.
        ValueError: an unknown name, or an option the objective does not take.
    """
    options = {
        "beta": beta,
        "num_samples": num_samples,
        "free_bits": free_bits,
        "gradient_estimator": gradient_estimator,
    }
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(objective, dict):
        objective = keras.saving.deserialize_keras_object(objective)
    if isinstance(objective, Objective):
        if given:
            name = sorted(given)[0]
            raise ValueError(
                f"{name} must be given to the objective, not to the model, when objective is "
                f"an object. Received: objective={objective!r} and {name}={given[name]!r}"
            )
        return objective
    if not isinstance(objective, str):
        raise TypeError(
            "objective must be a probae objective (probae.ELBO(), probae.IWAE(), "
            f"probae.RenyiBound()) or one of {tuple(_SHORTHANDS)}. Received: "
            f"objective={objective!r}"
        )
    if objective not in _SHORTHANDS:
        raise ValueError(
            f"objective must be one of {tuple(_SHORTHANDS)} or a probae objective. "
            f"Received: objective={objective!r}"
        )
    if gradient_estimator is not None:
        _check_gradient_estimator(gradient_estimator)
    if objective != "iwae" and gradient_estimator not in (None, "iwae"):
        raise ValueError(
            f"gradient_estimator={gradient_estimator!r} needs objective='iwae'. "
            f"Received: objective={objective!r}"
        )
    if objective != "elbo":
        if free_bits is not None:
            raise ValueError(
                f"free_bits applies to objective='elbo' only. Received: objective={objective!r}"
            )
        if beta is not None and beta != 1.0:
            raise ValueError(
                f"beta must be 1.0 with objective={objective!r} (the bound has no KL weight). "
                f"Received: beta={beta!r}"
            )
    if objective == "elbo":
        return ELBO(**{k: v for k, v in given.items() if k in ("beta", "free_bits", "num_samples")})
    if objective == "iwae":
        return IWAE(
            **{k: v for k, v in given.items() if k in ("num_samples", "gradient_estimator")}
        )
    return RenyiBound(**{k: v for k, v in given.items() if k == "num_samples"})
