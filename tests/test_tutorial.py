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


if __name__ == "__main__":
    import time

    start = time.time()
    ns = run_tutorial(os.path.join(REPO, "docs"))
    print(f"tutorial ran in {time.time() - start:.0f} s; figures in docs/figures/")
