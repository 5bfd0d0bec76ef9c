"""docs/tutorial.md: its python blocks run in order, and its figures are made by them.

Run this file as a script to regenerate the committed figures at the full settings:
``python tests/test_tutorial.py`` (writes docs/figures/).
"""

import os
import re

import matplotlib.image
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(REPO, "docs", "tutorial.md")


def python_blocks(path=TUTORIAL):
    with open(path) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def figures(path=TUTORIAL):
    with open(path) as f:
        return re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", f.read())


def run_tutorial(cwd):
    """Executes every python block of the tutorial in one namespace, in ``cwd``."""
    namespace = {"__name__": "tutorial"}
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for i, block in enumerate(python_blocks()):
            exec(compile(block, f"tutorial block {i + 1}", "exec"), namespace)
    finally:
        os.chdir(old)
    return namespace


def test_tutorial_runs_and_makes_its_figures(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("PROBAE_TUTORIAL_QUICK", "1")
    assert len(python_blocks()) >= 10
    ns = run_tutorial(tmp_path)
    names = figures()
    assert len(names) == 10
    for name in names:
        image = matplotlib.image.imread(os.path.join(tmp_path, name))
        assert np.var(image[..., :3]) > 1e-3, f"{name} is blank"
    # The numbers the text talks about are in a sane range even after one short epoch.
    elbo, log_px = ns["elbo"]["elbo"].mean(), ns["log_px"].mean()
    assert -300 < elbo < -100
    assert elbo - 1.0 < log_px < -100
    assert 0.09 < ns["before"] < 0.11  # 10% of pixels flipped
    assert 0.0 < ns["after"] < 0.2  # one short epoch: a weak model, but a sane one
    assert ns["vae16"].latent_dim == 16
    assert 0.85 < ns["pixel_accuracy"] <= 1.0
    assert np.mean(ns["score_anomalous"]) > np.mean(ns["score_normal"])
    # Training is watched on a split of the training data; the test set stays untouched.
    assert len(ns["x_val"]) == 250 and len(ns["x_train"]) == 2750
    # The seed programs ran: the hello world's own networks, with nothing added...
    assert ns["vae"].encoder.head is None and ns["vae"].decoder.head is None
    assert ns["encoded"].mean().shape == (2000, 2)
    pixels = ns["generated"].mean().numpy()
    assert pixels.shape == (2000, 784) and 0.0 < pixels.min() and pixels.max() < 1.0
    # ... and the classic autoencoder's loss is Keras' binary cross-entropy times 784.
    assert abs(ns["probae_loss"] - ns["keras_bce"]) < 1e-3 * ns["keras_bce"]
    # Bits-back coding (section 11): the stream decodes (asserted in the block) and costs
    # the model's -ELBO (a 10-sample estimate; the stream draws one code per image), plus
    # the header and initial bits spread over 300 images.
    assert abs(ns["stream_bpd"] / ns["elbo_bpd"] - 1.0) < 0.05


SEED_PROGRAMS = [
    # The VAE notes' hello world.
    'vae = probae.VAE(encoder, decoder)\nvae.compile(optimizer="adam")\n'
    "vae.fit(x_train, epochs=10)\nencoded = vae.encoder(x_test)",
    "keras.layers.Dense(2 * latent_dim),",
    'keras.layers.Dense(784, activation="sigmoid"),',
    # The classic Keras autoencoder.
    'encoder = keras.Sequential([keras.layers.Dense(64, activation="relu")])\n'
    'decoder = keras.Sequential([keras.layers.Dense(784, activation="sigmoid")])\n'
    "autoencoder = probae.Autoencoder(encoder, decoder)\n"
    'autoencoder.compile(optimizer="adam")',
    "decoded = decoder(encoder(x_test))",
]


def test_tutorial_teaches_good_habits():
    with open(TUTORIAL) as f:
        text = " ".join(f.read().split())  # line breaks do not matter
    code = "\n".join(python_blocks())
    # Validation on a split of the training data, never on the test set.
    assert "validation_data=x_val" in code and "validation_data=x_test" not in code
    for program in SEED_PROGRAMS:
        assert program in code, program
    # Each idea is explained where it is first used: the explanation follows the first
    # use within a few paragraphs.
    for used, explained in [
        ("nats", "**Nats.**"),
        ("reparameteris", "**reparameterisation trick**"),
        ("importance sampling", "**importance sampling**"),
    ]:
        first, explanation = text.find(used), text.find(explained)
        assert first >= 0 and explanation >= 0, used
        assert abs(explanation - first) < 1200, (used, first, explanation)


if __name__ == "__main__":
    import time

    start = time.time()
    ns = run_tutorial(os.path.join(REPO, "docs"))
    print(f"tutorial ran in {time.time() - start:.0f} s; figures in docs/figures/")
