"""Presets: factories that configure the one ``ProbabilisticAutoencoder``.

Each returns a ``ProbabilisticAutoencoder`` (never a subclass), built for ``input_shape``.
The likelihood is a name ("bernoulli", "gaussian", "continuous_bernoulli", "laplace") or
any ``probae`` decoder instance; the networks are the defaults (an MLP for vectors, a CNN
for H x W x C images) unless ``encoder_network`` / ``decoder_network`` are given.
"""

from probae._validation import check_positive_int, check_shape
from probae.decoders import (
    BernoulliDecoder,
    ContinuousBernoulliDecoder,
    Decoder,
    GaussianDecoder,
    LaplaceDecoder,
)
from probae.encoders import DeterministicEncoder, GaussianEncoder
from probae.model import ProbabilisticAutoencoder

__all__ = ["Autoencoder", "VAE", "BetaVAE", "IWAE", "LIKELIHOODS", "make_decoder"]

LIKELIHOODS = {
    "bernoulli": BernoulliDecoder,
    "continuous_bernoulli": ContinuousBernoulliDecoder,
    "gaussian": GaussianDecoder,
    "laplace": LaplaceDecoder,
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
    input_shape = check_shape(input_shape, "input_shape")
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    net = _network_kwargs(architecture, hidden_units, activation, filters)
    encoder = encoder_cls(latent_dim, network=encoder_network, **net, **(encoder_kwargs or {}))
    decoder = make_decoder(
        likelihood, input_shape, network=decoder_network, fixed_unit_scale=fixed_unit_scale, **net
    )
    return ProbabilisticAutoencoder(encoder, decoder, input_shape=input_shape, **model_kwargs)


def Autoencoder(
    input_shape,
    latent_dim,
    likelihood="bernoulli",
    architecture="auto",
    hidden_units=None,
    activation="relu",
    filters=(32, 64),
    encoder_network=None,
    decoder_network=None,
    code_activation=None,
    name="autoencoder",
    **kwargs,
):
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
    input_shape,
    latent_dim,
    likelihood="bernoulli",
    prior=None,
    beta=1.0,
    num_samples=1,
    architecture="auto",
    hidden_units=None,
    activation="relu",
    filters=(32, 64),
    encoder_network=None,
    decoder_network=None,
    name="vae",
    **kwargs,
):
    """A variational autoencoder: a Gaussian encoder, a standard normal prior (default) and
    the ELBO, E_q[log p(x|z)] - KL(q(z|x) || p(z)).

    Args:
        input_shape: shape of one example, e.g. (784,) or (28, 28, 1).
        latent_dim: size of the code.
        likelihood: "bernoulli", "gaussian" (learned per-feature scale),
            "continuous_bernoulli", "laplace" or a decoder.
        prior: None (N(0, I)) or a ``probae`` prior.
        beta: KL weight (1 for the VAE).
        num_samples: posterior samples per example in training.
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


def BetaVAE(input_shape, latent_dim, beta=4.0, name="beta_vae", **kwargs):
    """A beta-VAE: the VAE whose KL term has weight beta (beta > 1 favours disentangled,
    less informative codes). Maximises E_q[log p(x|z)] - beta KL(q(z|x) || p(z)).

    Args: as ``VAE``; ``beta`` defaults to 4.

    References: Higgins et al. 2017, beta-VAE: Learning basic visual concepts with a
    constrained variational framework.
    """
    return VAE(input_shape, latent_dim, beta=beta, name=name, **kwargs)


def IWAE(input_shape, latent_dim, num_samples=5, name="iwae", **kwargs):
    """An importance-weighted autoencoder: the VAE's networks trained on the k-sample
    bound log (1/k) sum_k p(x, z_k) / q(z_k|x), tighter than the ELBO for k > 1.

    Args: as ``VAE``; ``num_samples`` is k (default 5).

    References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders.
    """
    return VAE(input_shape, latent_dim, num_samples=num_samples, objective="iwae", name=name, **kwargs)
