"""Presets: factories that configure the one ``ProbabilisticAutoencoder``.

Each returns a ``ProbabilisticAutoencoder`` (never a subclass), built for ``input_shape``.
The likelihood is a name ("bernoulli", "gaussian", "continuous_bernoulli", "laplace",
"beta_binomial" for 8-bit pixels 0..255) or
any ``probae`` decoder instance; the networks are the defaults (an MLP for vectors, a CNN
for H x W x C images) unless ``encoder_network`` / ``decoder_network`` are given.
"""

import math
from collections.abc import Sequence
from typing import Any

import keras

from probae import networks
from probae._validation import check_positive_int, check_shape
from probae.corruption import get_corruption
from probae.decoders import (
    BernoulliDecoder,
    BetaBinomialDecoder,
    ContinuousBernoulliDecoder,
    Decoder,
    GaussianDecoder,
    LaplaceDecoder,
)
from probae.encoders import DeterministicEncoder, GaussianEncoder
from probae.model import ProbabilisticAutoencoder
from probae.penalties import SparsityPenalty

__all__ = [
    "Autoencoder",
    "VAE",
    "BetaVAE",
    "SparseAutoencoder",
    "DenoisingAutoencoder",
    "ConditionalVAE",
    "LIKELIHOODS",
    "make_decoder",
]

LIKELIHOODS = {
    "bernoulli": BernoulliDecoder,
    "continuous_bernoulli": ContinuousBernoulliDecoder,
    "gaussian": GaussianDecoder,
    "laplace": LaplaceDecoder,
    "beta_binomial": BetaBinomialDecoder,
}


def _network_kwargs(architecture, hidden_units, activation, filters):
    kwargs = {"architecture": architecture, "activation": activation, "filters": filters}
    if hidden_units is not None:
        kwargs["hidden_units"] = tuple(hidden_units)
    return kwargs


def make_decoder(likelihood, input_shape, network=None, fixed_unit_scale=False, **net_kwargs):
    """Returns a decoder for ``likelihood`` (a name or a ``Decoder`` instance).

    Args:
        likelihood: one of ``LIKELIHOODS`` or a ``probae`` decoder.
        input_shape: the data's shape (one example).
        network: the decoder's network, or None for the default.
        fixed_unit_scale: Gaussian and Laplace decoders get the fixed scale 1.0 (the
            squared-error / absolute-error autoencoder) instead of a learned one.
        **net_kwargs: options of the default network.
    """
    if isinstance(likelihood, Decoder):
        return likelihood
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"likelihood must be one of {tuple(LIKELIHOODS)} or a probae decoder. "
            f"Received: likelihood={likelihood!r}"
        )
    cls = LIKELIHOODS[likelihood]
    kwargs = dict(net_kwargs)
    if "hidden_units" in kwargs:
        kwargs["hidden_units"] = tuple(reversed(kwargs["hidden_units"]))
    if fixed_unit_scale and cls in (GaussianDecoder, LaplaceDecoder):
        kwargs["scale"] = 1.0
    return cls(event_shape=input_shape, network=network, **kwargs)


def _build(
    encoder_cls,
    input_shape,
    latent_dim,
    likelihood,
    architecture,
    hidden_units,
    activation,
    filters,
    encoder_network,
    decoder_network,
    fixed_unit_scale=False,
    encoder_kwargs=None,
    **model_kwargs,
):
    head = model_kwargs.pop("head", "auto")
    if isinstance(input_shape, keras.layers.Layer) or isinstance(latent_dim, keras.layers.Layer):
        return _build_from_networks(
            encoder_cls,
            input_shape,
            latent_dim,
            likelihood,
            encoder_network,
            decoder_network,
            fixed_unit_scale,
            encoder_kwargs,
            head,
            model_kwargs,
        )
    input_shape = check_shape(input_shape, "input_shape")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    net = _network_kwargs(architecture, hidden_units, activation, filters)
    encoder = encoder_cls(
        latent_dim, network=encoder_network, head=head, **net, **(encoder_kwargs or {})
    )
    decoder = make_decoder(
        likelihood,
        input_shape,
        network=decoder_network,
        fixed_unit_scale=fixed_unit_scale,
        head=head,
        **net,
    )
    return ProbabilisticAutoencoder(encoder, decoder, input_shape=input_shape, **model_kwargs)


def _build_from_networks(
    encoder_cls,
    encoder_network,
    decoder_network,
    likelihood,
    enc_kw,
    dec_kw,
    fixed_unit_scale,
    encoder_kwargs,
    head,
    model_kwargs,
):
    """The bring-your-own-networks form: ``VAE(encoder, decoder)``.

    Both networks are used as they are (see ``probae._base``): the code size is the
    decoder's declared input width when it has one, else read from the encoder's output;
    the data's shape is the encoder's declared input shape when it has one, else read
    from the data at the first ``fit``.
    """
    for name, net in (("encoder", encoder_network), ("decoder", decoder_network)):
        if not isinstance(net, keras.layers.Layer):
            raise TypeError(
                f"{name} must be a Keras layer or model when the networks are given "
                f"positionally (probae.VAE(encoder, decoder)). Received: {name}={net!r}"
            )
    if enc_kw is not None or dec_kw is not None:
        raise ValueError(
            "encoder_network and decoder_network must be None when the networks are given "
            "positionally (probae.VAE(encoder, decoder))."
        )
    code = networks.declared_shape(decoder_network, "input")
    latent_dim = code[-1] if code else None
    data_shape = networks.declared_shape(encoder_network, "input")
    encoder = encoder_cls(latent_dim, network=encoder_network, head=head, **(encoder_kwargs or {}))
    decoder = make_decoder(
        likelihood,
        data_shape,
        network=decoder_network,
        fixed_unit_scale=fixed_unit_scale,
        head=head,
    )
    return ProbabilisticAutoencoder(encoder, decoder, input_shape=data_shape, **model_kwargs)


def Autoencoder(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    likelihood: str = "bernoulli",
    architecture="auto",
    hidden_units=None,
    activation="relu",
    filters=(32, 64),
    encoder_network=None,
    decoder_network=None,
    code_activation: Any = None,
    name: str = "autoencoder",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A deterministic autoencoder: a point-mass encoder and KL weight 0.

    Its loss is minus the reconstruction log-likelihood: with the Bernoulli likelihood
    exactly the binary cross-entropy summed over features; with "gaussian" (fixed unit
    scale here) exactly half the squared error plus d/2 log(2 pi).

    Args:
        input_shape: shape of one example, e.g. (784,) or (28, 28, 1).
        latent_dim: size of the code.
        likelihood: "bernoulli", "gaussian", "continuous_bernoulli", "laplace" or a
            decoder.
        architecture, hidden_units, activation, filters: the default networks.
        encoder_network, decoder_network: custom Keras networks instead.
        code_activation: activation of the code (None: linear).
        name: the model's name.
        **kwargs: passed to ``ProbabilisticAutoencoder``.

    Returns:
        A built ``ProbabilisticAutoencoder``.
    """
    return _build(
        DeterministicEncoder,
        input_shape,
        latent_dim,
        likelihood,
        architecture,
        hidden_units,
        activation,
        filters,
        encoder_network,
        decoder_network,
        fixed_unit_scale=True,
        encoder_kwargs={"code_activation": code_activation},
        beta=kwargs.pop("beta", 0.0),
        name=name,
        **kwargs,
    )


def VAE(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    likelihood: str = "bernoulli",
    prior=None,
    beta=None,
    num_samples=None,
    architecture="auto",
    hidden_units=None,
    activation="relu",
    filters=(32, 64),
    encoder_network=None,
    decoder_network: Any = None,
    name: str = "vae",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A variational autoencoder: a Gaussian encoder, a standard normal prior (default) and
    the ELBO, E_q[log p(x|z)] - KL(q(z|x) || p(z)).

    Args:
        input_shape: shape of one example, e.g. (784,) or (28, 28, 1).
        latent_dim: size of the code.
        likelihood: "bernoulli", "gaussian" (learned per-feature scale),
            "continuous_bernoulli", "laplace" or a decoder.
        prior: None (N(0, I)) or a ``probae`` prior.
        beta: KL weight (None: 1, the VAE); a shorthand for ``objective=probae.ELBO(beta)``.
        num_samples: posterior samples per example in training (None: the objective's).
        architecture, hidden_units, activation, filters: the default networks.
        encoder_network, decoder_network: custom Keras networks instead.
        name: the model's name.
        **kwargs: passed to ``ProbabilisticAutoencoder``.

    Returns:
        A built ``ProbabilisticAutoencoder``.

    References: Kingma and Welling 2014; Rezende, Mohamed and Wierstra 2014.
    """
    return _build(
        GaussianEncoder,
        input_shape,
        latent_dim,
        likelihood,
        architecture,
        hidden_units,
        activation,
        filters,
        encoder_network,
        decoder_network,
        prior=prior,
        beta=beta,
        num_samples=num_samples,
        name=name,
        **kwargs,
    )


def BetaVAE(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    beta: float = 4.0,
    name: str = "beta_vae",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A beta-VAE: the VAE whose KL term has weight beta (beta > 1 favours disentangled,
    less informative codes). Maximises E_q[log p(x|z)] - beta KL(q(z|x) || p(z)).

    Args: as ``VAE``; ``beta`` defaults to 4.

    References: Higgins et al. 2017, beta-VAE: Learning basic visual concepts with a
    constrained variational framework.
    """
    return VAE(input_shape, latent_dim, beta=beta, name=name, **kwargs)


def SparseAutoencoder(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    sparsity: float = 0.05,
    kl_weight: float = 20.0,
    l1_weight: float = 0.0,
    name: str = "sparse_autoencoder",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A sparse autoencoder: the deterministic autoencoder with sigmoid codes and a
    sparsity penalty on them.

    Maximises the reconstruction log-likelihood minus ``probae.SparsityPenalty``:

        log p(x|h) - kl_weight * sum_j KL(rho || rho_hat_j) - l1_weight * sum_j |h_j|,

    with h = sigmoid(f(x)) the code, rho = ``sparsity`` the target activation rate and
    rho_hat_j the batch-mean activation of unit j. ``fit`` logs the penalty as the metric
    ``sparsity``.

    The defaults deliver the rate they name: every code unit starts at rho (probae's code
    head gets the bias logit(rho), as a classifier's output bias is set to the log prior
    odds; a user's own encoder network is left as it is), and ``kl_weight=20`` holds the
    mean activation near rho while the codes learn (within 30% after 3 epochs on 6,000
    MNIST digits with Keras' default batch of 32, for rho = 0.05 and 0.1, tested).

    Args:
        input_shape: shape of one example.
        latent_dim: number of code units.
        sparsity: rho, the target mean activation, in (0, 1).
        kl_weight: weight of the KL-divergence sparsity term (>= 0). Larger weights hold
            the rate closer to rho at a cost in reconstruction.
        l1_weight: weight of the L1 activity term (>= 0).
        name: the model's name.
        **kwargs: passed to ``Autoencoder`` (likelihood, networks, corruption, ...).

    Returns:
        A built ``ProbabilisticAutoencoder``.

    Raises:
        ValueError: ``sparsity`` outside (0, 1) or a negative weight.

    References: Ng 2011, Sparse autoencoder (CS294A lecture notes).
    """
    penalty = SparsityPenalty(sparsity, kl_weight=kl_weight, l1_weight=l1_weight)
    if "code_activation" in kwargs and kwargs["code_activation"] != "sigmoid":
        raise ValueError(
            "code_activation must be 'sigmoid' for the sparse autoencoder (the KL sparsity "
            f"penalty needs codes in (0, 1)). Received: code_activation={kwargs['code_activation']!r}"
        )
    kwargs["code_activation"] = "sigmoid"
    model = Autoencoder(input_shape, latent_dim, penalty=penalty, name=name, **kwargs)
    head = getattr(model.encoder, "head", None)
    if head is not None and head.built:  # start every code unit at the target rate
        head.bias.assign(head.bias * 0.0 + math.log(penalty.sparsity / (1.0 - penalty.sparsity)))
    return model


def DenoisingAutoencoder(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    corruption: Any = 0.25,
    name: str = "denoising_autoencoder",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A denoising autoencoder: the deterministic autoencoder trained to reconstruct the
    clean x from a corrupted copy x~ ~ C(x~|x).

    Maximises E_C[log p(x | f(x~))]: the corruption is applied to the encoder's input in
    training only; the likelihood is of the clean input. The same ``corruption=`` option
    works on any model (``probae.VAE(..., corruption=0.3)`` is a denoising VAE, which
    maximises the denoising ELBO of Im et al. 2017).

    Args:
        input_shape: shape of one example.
        latent_dim: size of the code.
        corruption: a rate in [0, 1) (masking noise: each input set to 0 with that
            probability) or a corruption: ``probae.MaskingNoise(rate)``,
            ``probae.SaltAndPepperNoise(rate)``, ``probae.GaussianNoise(stddev)``.
        name: the model's name.
        **kwargs: passed to ``Autoencoder``.

    Returns:
        A built ``ProbabilisticAutoencoder``.

    Raises:
        ValueError: a rate outside [0, 1).

    References: Vincent, Larochelle, Bengio and Manzagol 2008, Extracting and composing
    robust features with denoising autoencoders; Im, Ahn, Memisevic and Bengio 2017,
    Denoising criterion for variational auto-encoding framework.
    """
    return Autoencoder(
        input_shape, latent_dim, corruption=get_corruption(corruption), name=name, **kwargs
    )


def ConditionalVAE(
    input_shape: Sequence[int] | int,
    latent_dim: int,
    condition_shape: Sequence[int] | int,
    name: str = "conditional_vae",
    **kwargs: Any,
) -> ProbabilisticAutoencoder:
    """A conditional VAE: encoder q(z|x, c) and decoder p(x|z, c) both take a condition c
    (a one-hot label or any continuous vector); the prior is N(0, I).

    Maximises the conditional ELBO E_q[log p(x|z, c)] - KL(q(z|x, c) || p(z)) <=
    log p(x|c). Train with ``fit(x, c)`` or ``fit((x, c))``; ``sample(n, condition=c)``,
    ``elbo(x, condition=c)``, ``log_likelihood(x, condition=c)``, ``encode`` and
    ``reconstruct`` take the condition too (one row per example; ``sample`` also accepts
    a single condition for all n).

    Args:
        input_shape: shape of one example.
        latent_dim: size of the code.
        condition_shape: shape of one condition (for example (10,) for one-hot digits).
        name: the model's name.
        **kwargs: passed to ``VAE`` (likelihood, beta, networks, ...).

    Returns:
        A built ``ProbabilisticAutoencoder``.

    References: Sohn, Lee and Yan 2015, Learning structured output representation using
    deep conditional generative models; Kingma et al. 2014, Semi-supervised learning with
    deep generative models (the M2 model's conditional decoder).
    """
    condition_shape = check_shape(condition_shape, "condition_shape")
    return VAE(input_shape, latent_dim, condition_shape=condition_shape, name=name, **kwargs)
