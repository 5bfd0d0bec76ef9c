"""End to end on real data: a VAE preset trained 3 epochs on binarized MNIST."""

import numpy as np
import pytest

import probae


@pytest.fixture(scope="module")
def trained(request):
    data_dir = request.getfixturevalue("data_dir")
    train, _, test = probae.datasets.load_binarized_mnist(data_dir)
    model = probae.VAE((784,), 32, hidden_units=(256, 128))
    model.compile(optimizer="adam")
    history = model.fit(train, epochs=3, batch_size=100, verbose=0)
    return model, history, test


def test_vae_reaches_a_good_test_elbo(trained):
    model, history, test = trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    elbo = model.elbo(test, seed=0)
    print(f"test ELBO after 3 epochs: {elbo.mean():.2f} nats")
    assert elbo.mean() > -135.0


def test_log_likelihood_estimate_is_above_the_elbo(trained):
    model, _, test = trained
    x = test[:500]
    elbo = model.elbo(x, num_samples=10, seed=1)
    ll = model.log_likelihood(x, num_samples=200, seed=2)
    gap = ll - elbo
    print(f"log p(x) ~ {ll.mean():.2f}, ELBO {elbo.mean():.2f}")
    assert gap.mean() > 4 * gap.std() / np.sqrt(len(gap))
    assert np.all(np.isfinite(ll))
