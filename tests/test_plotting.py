"""Every plot renders to a non-blank PNG; bad inputs raise errors naming the argument."""

import os

import keras
import matplotlib.image
import numpy as np
import pytest

import probae
from probae import plotting

OUT = os.environ.get("PROBAE_PLOT_DIR")  # set it to keep the PNGs for a look


@pytest.fixture(scope="module")
def trained():
    """A small VAE with a 2-D code on the 8 x 8 digits (a few seconds)."""
    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = probae.datasets.load_digits()
    model = probae.VAE((8, 8, 1), 2, architecture="mlp", hidden_units=(64,))
    model.compile(keras.optimizers.Adam(3e-3))
    history = model.fit(x, epochs=4, batch_size=64, validation_data=xt, verbose=0)
    return model, history, xt, yt


def _png(tmp_path, name):
    folder = OUT or str(tmp_path)
    return os.path.join(folder, name)


def _check_png(path, fig):
    assert fig.__class__.__name__ == "Figure"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    # Not blank: the grey levels vary (a white canvas has variance 0).
    assert float(np.var(image[..., :3].mean(-1))) > 1e-3


def test_reconstructions(trained, tmp_path):
    model, _, xt, _ = trained
    path = _png(tmp_path, "reconstructions.png")
    fig = plotting.plot_reconstructions(xt[:8], model.reconstruct(xt[:8]), path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert len(axes) == 16
    # Top row shows the inputs, bottom row the reconstructions.
    np.testing.assert_allclose(axes[0].images[0].get_array(), xt[0, ..., 0])
    np.testing.assert_allclose(
        axes[8].images[0].get_array(), model.reconstruct(xt[:1])[0, ..., 0], atol=1e-6
    )


def test_samples_and_images(trained, tmp_path):
    model, _, _, _ = trained
    path = _png(tmp_path, "samples.png")
    fig = plotting.plot_samples(model, n=12, ncols=6, path=path)
    _check_png(path, fig)
    assert len([a for a in fig.get_axes() if a.images]) == 12
    flat = np.random.default_rng(0).uniform(size=(5, 64))
    fig = plotting.plot_images(flat, ncols=5, image_shape=(8, 8), path=_png(tmp_path, "images.png"))
    np.testing.assert_allclose(fig.get_axes()[0].images[0].get_array(), flat[0].reshape(8, 8))


# ------------------------------------------------------------------ signals
def _signals(n, length=100, seed=0):
    """Smooth 1-D signals in [0, 1]: sines of random phase and frequency."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)
    phase, freq = rng.uniform(0, 2 * np.pi, (n, 1)), rng.uniform(1, 3, (n, 1))
    return (0.5 + 0.4 * np.sin(2 * np.pi * freq * t + phase)).astype("float32")


def _is_line_plot(ax, expected):
    """ax draws ``expected`` as a line (and no image)."""
    assert not ax.images
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected, atol=1e-6)


@pytest.fixture(scope="module")
def signal_model():
    """A VAE of length-100 signals (100 is a square: it must still be drawn as a line)."""
    keras.utils.set_random_seed(0)
    model = probae.VAE((100,), 2, likelihood="gaussian", hidden_units=(32,))
    model.compile(keras.optimizers.Adam(3e-3))
    model.fit(_signals(256), epochs=2, batch_size=64, verbose=0)
    return model


def test_flat_arrays_are_signals_whatever_their_length(tmp_path):
    x = _signals(4)
    path = _png(tmp_path, "signals.png")
    fig = plotting.plot_images(x, ncols=2, path=path)
    _check_png(path, fig)
    assert len(fig.get_axes()) == 4
    for ax, row in zip(fig.get_axes(), x):
        _is_line_plot(ax, row)
    # The same numbers as a 10 x 10 image, only when asked for.
    fig = plotting.plot_images(x, ncols=2, image_shape=(10, 10))
    assert fig.get_axes()[0].images[0].get_array().shape == (10, 10)
    # [n, h, w] and [n, h, w, 1] arrays are images.
    fig = plotting.plot_images(x.reshape(4, 10, 10, 1), ncols=2)
    assert fig.get_axes()[0].images[0].get_array().shape == (10, 10)


def test_signal_reconstructions_overlay_input_and_reconstruction(signal_model, tmp_path):
    x = _signals(5, seed=1)
    recon = signal_model.reconstruct(x)
    path = _png(tmp_path, "signal_reconstructions.png")
    fig = plotting.plot_reconstructions(x, recon, n=3, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert len(axes) == 3
    for j, ax in enumerate(axes):
        _is_line_plot(ax, x[j])
        np.testing.assert_allclose(ax.lines[1].get_ydata(), recon[j], atol=1e-6)


def test_model_plots_of_signals_draw_lines(signal_model, tmp_path):
    model = signal_model
    fig = plotting.plot_samples(model, n=6, ncols=3, path=_png(tmp_path, "signal_samples.png"))
    samples = model.sample(6, seed=0, mean=True)
    for ax, row in zip(fig.get_axes(), samples):
        _is_line_plot(ax, row)
    path = _png(tmp_path, "signal_manifold.png")
    fig = plotting.plot_manifold(model, n=3, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert len(axes) == 9
    _is_line_plot(axes[4], model.decode(np.zeros((1, 2), np.float32)).mean().numpy()[0])
    x = _signals(2, seed=2)
    fig = plotting.plot_interpolation(model, x[0], x[1], steps=4)
    _is_line_plot(fig.get_axes()[0], model.reconstruct(x[:1])[0])
    fig = plotting.plot_traversals(model, x[0], values=[-1.0, 0.0, 1.0])
    z = model.encode(x[:1]).mean().numpy()
    z[0, 0] = 1.0
    _is_line_plot(fig.get_axes()[2], model.decode(z).mean().numpy()[0])
    scores = np.abs(x - model.reconstruct(x))
    path = _png(tmp_path, "signal_anomaly_map.png")
    fig = plotting.plot_anomaly_map(x, scores, n=2, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    _is_line_plot(axes[0], x[0])
    _is_line_plot(axes[2], scores[0])


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_latent_scatter(trained, tmp_path, latent_dim):
    model, _, xt, yt = trained
    if latent_dim == 3:
        model = probae.VAE((8, 8, 1), 3, architecture="mlp", hidden_units=(16,))
    path = _png(tmp_path, f"latent_{latent_dim}d.png")
    fig = plotting.plot_latent_scatter(model, xt, yt, path=path)
    _check_png(path, fig)
    ax = fig.get_axes()[0]
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (len(xt), 2)
    if latent_dim == 2:
        np.testing.assert_allclose(offsets, model.encode(xt).mean().numpy(), atol=1e-5)
    else:
        assert "PC1" in ax.get_xlabel()


def test_manifold(trained, tmp_path):
    model, _, _, _ = trained
    path = _png(tmp_path, "manifold.png")
    fig = plotting.plot_manifold(model, n=7, path=path)
    _check_png(path, fig)
    canvas = fig.get_axes()[0].images[0].get_array()
    assert canvas.shape == (7 * 8, 7 * 8)
    # The centre cell is the decoder's mean at the prior's median, z = (0, 0).
    centre = model.decode(np.zeros((1, 2), np.float32)).mean().numpy()[0, ..., 0]
    np.testing.assert_allclose(canvas[24:32, 24:32], centre, atol=1e-5)


def test_interpolation_ends_are_the_reconstructions(trained, tmp_path):
    model, _, xt, _ = trained
    path = _png(tmp_path, "interpolation.png")
    fig = plotting.plot_interpolation(model, xt[0], xt[1], steps=6, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert len(axes) == 12
    recon = model.reconstruct(xt[:2])[..., 0]
    for row in (0, 6):  # linear and spherical rows start and end at the two codes
        np.testing.assert_allclose(axes[row].images[0].get_array(), recon[0], atol=1e-5)
        np.testing.assert_allclose(axes[row + 5].images[0].get_array(), recon[1], atol=1e-5)


def test_slerp_keeps_norm_between_unit_vectors():
    t = np.linspace(0, 1, 11)
    z = plotting.slerp([1.0, 0.0], [0.0, 1.0], t)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(z[5], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(plotting.slerp([1.0, 2.0], [2.0, 4.0], [0.5])[0], [1.5, 3.0])


def test_traversals(trained, tmp_path):
    model, _, xt, _ = trained
    path = _png(tmp_path, "traversals.png")
    values = np.linspace(-2, 2, 5)
    fig = plotting.plot_traversals(model, xt[0], values=values, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert len(axes) == 2 * 5
    z = model.encode(xt[:1]).mean().numpy()[0]
    z[1] = values[4]
    expected = model.decode(z[None]).mean().numpy()[0, ..., 0]
    np.testing.assert_allclose(axes[9].images[0].get_array(), expected, atol=1e-5)


def _titles(fig):
    return [a.get_title().split()[0] for a in fig.get_axes() if a.get_title()]


def test_history(trained, tmp_path):
    _, history, _, _ = trained
    path = _png(tmp_path, "history.png")
    fig = plotting.plot_history(history, path=path)
    _check_png(path, fig)
    axes = fig.get_axes()
    assert _titles(fig) == ["loss", "ELBO", "reconstruction", "KL(q(z|x)"]
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), history.history["loss"])
    np.testing.assert_allclose(axes[0].lines[1].get_ydata(), history.history["val_loss"])
    np.testing.assert_allclose(axes[3].lines[1].get_ydata(), history.history["val_kl"])


def test_history_plots_what_was_logged(tmp_path):
    """Every logged series has a panel: the objective's terms, a penalty, beta and the
    learning rate; validation curves join their training curves."""
    logs = {
        "loss": [9.0, 7.0, 6.0],
        "reconstruction": [-8.0, -6.5, -5.5],
        "sparsity": [1.0, 0.5, 0.2],
        "beta": [0.0, 0.5, 1.0],
        "learning_rate": [1e-3, 1e-3, 1e-4],
        "val_loss": [9.5, 7.5, 6.8],
        "val_sparsity": [1.1, 0.6, 0.3],
    }
    path = _png(tmp_path, "history_logged.png")
    fig = plotting.plot_history(logs, path=path)
    _check_png(path, fig)
    axes = [a for a in fig.get_axes() if a.get_title()]
    assert _titles(fig) == ["loss", "reconstruction", "sparsity", "beta", "learning"]
    for ax, key in zip(axes, ["loss", "reconstruction", "sparsity", "beta", "learning_rate"]):
        np.testing.assert_allclose(ax.lines[0].get_ydata(), logs[key])
        val = logs.get(f"val_{key}")
        assert len(ax.lines) == (1 if val is None else 2)
        if val is not None:
            np.testing.assert_allclose(ax.lines[1].get_ydata(), val)
    assert axes[4].get_yscale() == "log"  # a learning rate that spans a decade


def test_history_of_a_point_mass_autoencoder_has_no_kl_panel(tmp_path):
    (x, _), _ = probae.datasets.load_digits()
    model = probae.Autoencoder((8, 8, 1), 3, architecture="mlp", hidden_units=(16,))
    model.compile(keras.optimizers.Adam(3e-3))
    history = model.fit(x[:256], epochs=2, batch_size=64, validation_data=x[256:320], verbose=0)
    fig = plotting.plot_history(history, path=_png(tmp_path, "history_autoencoder.png"))
    assert _titles(fig) == ["loss", "reconstruction"]
    np.testing.assert_allclose(
        fig.get_axes()[1].lines[1].get_ydata(), history.history["val_reconstruction"]
    )


def test_anomaly_scores_auroc(tmp_path):
    rng = np.random.default_rng(0)
    normal, anomalous = rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)
    path = _png(tmp_path, "anomaly_scores.png")
    fig = plotting.plot_anomaly_scores(normal, anomalous, path=path)
    _check_png(path, fig)
    title = fig.get_axes()[1].get_title()
    auroc = float(title.split("=")[1])
    # Closed form for two unit Gaussians one apart: Phi(1 / sqrt 2) = 0.7602; n = 2000 each
    # gives a standard error of about 0.0075.
    assert abs(auroc - 0.7602) < 0.03


def test_anomaly_map(trained, tmp_path):
    model, _, xt, _ = trained
    z = model.encode(xt[:5]).mean()
    pixel_scores = -model.decode(z).distribution.log_prob(xt[:5]).numpy()
    assert pixel_scores.shape == xt[:5].shape
    path = _png(tmp_path, "anomaly_map.png")
    fig = plotting.plot_anomaly_map(xt[:5], pixel_scores, n=5, path=path)
    _check_png(path, fig)
    np.testing.assert_allclose(fig.get_axes()[5].images[0].get_array(), pixel_scores[0, ..., 0])


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda m, x: plotting.plot_reconstructions(x[:3], x[:4]), ValueError, "reconstructions"),
        (lambda m, x: plotting.plot_images(np.zeros((3, 4, 4, 2))), ValueError, "images"),
        (lambda m, x: plotting.plot_images(x, ncols=0), ValueError, "ncols"),
        (lambda m, x: plotting.plot_manifold(m, n=0), ValueError, "n must"),
        (lambda m, x: plotting.plot_interpolation(m, x[:2], x[2], steps=4), ValueError, "x_start"),
        (lambda m, x: plotting.plot_interpolation(m, x[0], x[1], steps=1), ValueError, "steps"),
        (lambda m, x: plotting.plot_traversals(m, x[0], dims=[5]), ValueError, "dims"),
        (lambda m, x: plotting.plot_history({"kl": [1.0]}), TypeError, "history"),
        (lambda m, x: plotting.plot_anomaly_scores([], [1.0]), ValueError, "scores_normal"),
        (
            lambda m, x: plotting.plot_anomaly_map(x[:2], np.zeros((2, 4, 4))),
            ValueError,
            "pixel_scores",
        ),
        (lambda m, x: plotting.plot_latent_scatter(m, x[:5], [0, 1]), ValueError, "labels"),
        (lambda m, x: plotting.plot_images(x, image_shape=(3, 3)), ValueError, "image_shape"),
    ],
)
def test_bad_input(trained, call, error, name):
    model, _, xt, _ = trained
    with pytest.raises(error, match=name):
        call(model, xt)


def test_manifold_needs_2d_code(tmp_path):
    model = probae.VAE((8, 8, 1), 3, architecture="mlp", hidden_units=(8,))
    with pytest.raises(ValueError, match="latent_dim=3"):
        plotting.plot_manifold(model)


def test_manifold_with_a_mixture_prior_uses_its_quantiles(tmp_path):
    model = probae.VAE(
        (8, 8, 1), 2, architecture="mlp", hidden_units=(8,), prior=probae.MixtureOfGaussiansPrior(3)
    )
    path = _png(tmp_path, "manifold_mixture.png")
    fig = plotting.plot_manifold(model, n=5, path=path)
    assert fig.get_axes()[0].images[0].get_array().shape == (40, 40)
    q = plotting._prior_quantiles(model, np.array([0.05, 0.5, 0.95]))
    assert q.shape == (3, 2) and np.all(np.diff(q, axis=0) > 0)


# ---------------------------------------------------------- conditional models
@pytest.fixture(scope="module")
def conditional():
    """A conditional VAE of the 8 x 8 digits given their one-hot label."""
    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = probae.datasets.load_digits()
    model = probae.ConditionalVAE(
        (8, 8, 1), 2, condition_shape=(10,), architecture="mlp", hidden_units=(32,)
    )
    model.compile(keras.optimizers.Adam(3e-3))
    model.fit(x, np.eye(10, dtype="float32")[y], epochs=3, batch_size=64, verbose=0)
    return model, xt, yt


def test_plots_of_a_conditional_model_take_its_condition(conditional, tmp_path):
    model, xt, yt = conditional
    seven = np.eye(10, dtype="float32")[7]
    path = _png(tmp_path, "conditional_samples.png")
    fig = plotting.plot_samples(model, n=4, ncols=4, condition=seven, path=path)
    _check_png(path, fig)
    expected = model.sample(4, seed=0, mean=True, condition=seven)[..., 0]
    for ax, image in zip(fig.get_axes(), expected):
        np.testing.assert_allclose(ax.images[0].get_array(), image, atol=1e-6)
    # An integer class label means its one-hot row.
    fig = plotting.plot_samples(model, n=4, ncols=4, condition=7)
    for ax, image in zip(fig.get_axes(), expected):
        np.testing.assert_allclose(ax.images[0].get_array(), image, atol=1e-6)
    # Other digits give other images: the condition is used, not dropped.
    other = plotting.plot_samples(model, n=4, ncols=4, condition=1).get_axes()[0]
    assert np.max(np.abs(other.images[0].get_array() - expected[0])) > 0.05

    canvas = plotting.plot_manifold(model, n=3, condition=7).get_axes()[0].images[0].get_array()
    centre = model.decode(np.zeros((1, 2), np.float32), condition=seven[None]).mean()
    np.testing.assert_allclose(canvas[8:16, 8:16], centre.numpy()[0, ..., 0], atol=1e-5)

    onehot = np.eye(10, dtype="float32")[yt]
    fig = plotting.plot_interpolation(model, xt[0], xt[1], steps=3, condition=onehot[0])
    recon = model.reconstruct(xt[:1], condition=onehot[:1])[0, ..., 0]
    np.testing.assert_allclose(fig.get_axes()[0].images[0].get_array(), recon, atol=1e-5)

    fig = plotting.plot_traversals(model, xt[0], values=[-1.0, 1.0], condition=yt[0])
    z = model.encode(xt[:1], condition=onehot[:1]).mean().numpy()
    z[0, 1] = 1.0
    expected = model.decode(z, condition=onehot[:1]).mean().numpy()[0, ..., 0]
    np.testing.assert_allclose(fig.get_axes()[3].images[0].get_array(), expected, atol=1e-5)

    fig = plotting.plot_latent_scatter(model, xt, yt, condition=onehot, max_points=100)
    np.testing.assert_allclose(
        fig.get_axes()[0].collections[0].get_offsets(),
        model.encode(xt[:100], condition=onehot[:100]).mean().numpy(),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="condition"):
        plotting.plot_samples(model, n=4)


# ------------------------------------------------------ ax= and what figures say
def _two_panel_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 7))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1, 3])
    left.plot([0, 1], [0, 1])
    return fig, left, right


def _drawn_inside(ax):
    """``ax`` itself when drawn on, else the inset panels that fill it."""
    return ax.child_axes or [ax]


def _model_calls(model, xt, yt):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(xt))
    return {
        "plot_images": lambda ax: plotting.plot_images(xt[:6], ncols=3, ax=ax),
        "plot_reconstructions": lambda ax: plotting.plot_reconstructions(
            xt[:4], model.reconstruct(xt[:4]), ax=ax
        ),
        "plot_samples": lambda ax: plotting.plot_samples(model, n=4, ncols=4, ax=ax),
        "plot_latent_scatter": lambda ax: plotting.plot_latent_scatter(model, xt, yt, ax=ax),
        "plot_manifold": lambda ax: plotting.plot_manifold(model, n=4, ax=ax),
        "plot_interpolation": lambda ax: plotting.plot_interpolation(
            model, xt[0], xt[1], steps=3, ax=ax
        ),
        "plot_traversals": lambda ax: plotting.plot_traversals(
            model, xt[0], values=[-1.0, 1.0], ax=ax
        ),
        "plot_history": lambda ax: plotting.plot_history({"loss": [3.0, 2.0], "kl": [1, 2]}, ax=ax),
        "plot_anomaly_scores": lambda ax: plotting.plot_anomaly_scores(
            scores[:100], scores[100:] + 1, ax=ax
        ),
        "plot_anomaly_map": lambda ax: plotting.plot_anomaly_map(
            xt[:10], np.abs(xt[:10] - 0.5), n=4, scores=scores[:10], ax=ax
        ),
        "plot_feature_contributions": lambda ax: plotting.plot_feature_contributions(
            rng.normal(size=(8, 5)), scores[:8], n=3, ax=ax
        ),
    }


def test_every_plotting_function_takes_ax(trained, tmp_path):
    """Each public plot draws inside the given Axes of the caller's figure, returns that
    figure, and leaves the figure's other Axes alone."""
    model, _, xt, yt = trained
    calls = _model_calls(model, xt, yt)
    drawing = [n for n in plotting.__all__ if n.startswith("plot_")]
    assert sorted(calls) == sorted(drawing)  # a new plot function must be added here
    for name, call in calls.items():
        fig, left, right = _two_panel_figure()
        out = call(right)
        assert out is fig, name
        assert len(left.lines) == 1 and not left.images and not left.collections, name
        drawn = _drawn_inside(right)
        assert any(a.images or a.lines or a.collections or a.patches for a in drawn), name
        # Panels stay inside the area of the Axes they were given.
        fig.canvas.draw()
        box = right.get_position()
        for a in drawn:
            p = a.get_position()
            assert p.x0 >= box.x0 - 1e-6 and p.x1 <= box.x1 + 1e-6, name
            assert p.y0 >= box.y0 - 1e-6 and p.y1 <= box.y1 + 1e-6, name
        path = _png(tmp_path, f"ax_{name}.png")
        fig.savefig(path)
        _check_png(path, fig)


def test_ax_must_be_an_axes(trained):
    model, _, xt, _ = trained
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plotting.plot_images(xt[:4], ax="left")
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plotting.plot_manifold(model, n=3, ax=np.zeros(2))


def test_roc_and_precision_recall_are_scikit_learns_displays(tmp_path):
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    rng = np.random.default_rng(1)
    normal, anomalous = rng.normal(0, 1, 300), rng.normal(1.5, 1, 100)
    path = _png(tmp_path, "anomaly_scores_titled.png")
    fig = plotting.plot_anomaly_scores(normal, anomalous, title="raw -log p(x)", path=path)
    _check_png(path, fig)
    assert fig.get_suptitle() == "raw -log p(x)"
    hist, roc, pr = fig.get_axes()[:3]
    y = np.r_[np.zeros(300), np.ones(100)]
    s = np.r_[normal, anomalous]
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_allclose(roc.lines[0].get_xdata(), fpr)
    np.testing.assert_allclose(roc.lines[0].get_ydata(), tpr)
    assert roc.get_xlabel().startswith("False Positive Rate")  # RocCurveDisplay's label
    precision, recall, _ = precision_recall_curve(y, s)
    np.testing.assert_allclose(pr.lines[0].get_xdata(), recall)
    np.testing.assert_allclose(pr.lines[0].get_ydata(), precision)
    ap = float(pr.get_title().split("=")[1])
    assert ap == pytest.approx(average_precision_score(y, s), abs=5e-4)
    # Chance levels: the diagonal, and the share of anomalies.
    np.testing.assert_allclose(pr.lines[1].get_ydata(), [0.25, 0.25])
    # The score axis states the sign convention; a caller can say what the score is.
    assert hist.get_xlabel() == "anomaly score (higher = more anomalous)"
    fig = plotting.plot_anomaly_scores(normal, anomalous, score_label="-log p(x), nats")
    assert fig.get_axes()[0].get_xlabel() == "-log p(x), nats"


def test_traversal_titles_show_beta(tmp_path):
    beta_vae = probae.BetaVAE((8, 8, 1), 2, beta=4.0, architecture="mlp", hidden_units=(8,))
    path = _png(tmp_path, "traversals_beta4.png")
    fig = plotting.plot_traversals(beta_vae, values=[-1.0, 0.0, 1.0], path=path)
    _check_png(path, fig)
    assert fig.get_suptitle() == "latent traversals from the prior's centre, beta = 4"
    vae = probae.VAE((8, 8, 1), 2, architecture="mlp", hidden_units=(8,))
    assert plotting.plot_traversals(vae).get_suptitle().endswith("beta = 1")
    ae = probae.Autoencoder((8, 8, 1), 2, architecture="mlp", hidden_units=(8,))
    assert "beta" not in plotting.plot_traversals(ae).get_suptitle()  # no KL term


def test_anomaly_map_names_the_most_normal_and_most_anomalous(trained, tmp_path):
    model, _, xt, _ = trained
    scores = probae.anomaly_scores(model, xt[:40], method="reconstruction", verbose=0)
    pixels = probae.anomaly_scores(
        model, xt[:40], method="reconstruction", per_feature=True, verbose=0
    )
    path = _png(tmp_path, "anomaly_map_ranked.png")
    fig = plotting.plot_anomaly_map(xt[:40], pixels, n=5, scores=scores, path=path)
    _check_png(path, fig)
    order = np.argsort(scores)
    shown = [*order[:3], *order[-2:]]
    top = fig.get_axes()[:5]
    titles = [a.get_title() for a in top]
    assert [t.split("\n")[0] for t in titles] == [
        "normal #1",
        "normal #2",
        "normal #3",
        "anomalous #2",
        "anomalous #1",
    ]
    for ax, i, title in zip(top, shown, titles):
        np.testing.assert_allclose(ax.images[0].get_array(), xt[i, ..., 0])
        assert title.endswith(f"score {scores[i]:.1f}")
    assert (
        fig.get_suptitle() == "the 3 most normal (left) and 2 most anomalous (right) of 40 inputs"
    )
    # The heat maps share one colour scale, whose label states the sign convention.
    heats = [a.images[0] for a in fig.get_axes()[5:10]]
    assert len({(h.norm.vmin, h.norm.vmax) for h in heats}) == 1
    label = fig.get_axes()[-1].get_ylabel()
    assert " ".join(label.split()) == "per-pixel score (higher = more anomalous)"
    with pytest.raises(ValueError, match="scores must hold one finite score per input"):
        plotting.plot_anomaly_map(xt[:4], pixels[:4], scores=scores[:3])


def test_latent_scatter_colour_bar_ticks_sit_on_the_colours(trained, tmp_path):
    model, _, xt, yt = trained
    labels = np.where(yt % 2 == 0, yt, yt + 10)  # labels 0, 2, ..., 11, 13, ...: not 0..9
    path = _png(tmp_path, "latent_ticks.png")
    fig = plotting.plot_latent_scatter(model, xt, labels, path=path)
    _check_png(path, fig)
    ax, bar_ax = fig.get_axes()[:2]
    classes = np.unique(labels)
    ticks = bar_ax.get_yticks()
    assert [t.get_text() for t in bar_ax.get_yticklabels()] == [str(c) for c in classes]
    # Each tick is in the middle of the colour band of its label.
    points = ax.collections[0]
    norm, cmap = points.norm, points.cmap
    bounds = norm.boundaries
    np.testing.assert_allclose(ticks, (bounds[:-1] + bounds[1:]) / 2)
    colours = cmap(norm(points.get_array()))
    for k, c in enumerate(classes):
        rows = colours[labels == c]
        np.testing.assert_allclose(rows, np.broadcast_to(cmap(norm(ticks[k])), rows.shape))


def test_feature_contributions_share_one_scale_with_the_sign_convention(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(10, 6))
    values[3, 2] = 25.0  # one strong contribution sets the scale for every row
    fig = plotting.plot_feature_contributions(values, values.sum(axis=1), n=4)
    ax, bar = fig.get_axes()[:2]
    image = ax.images[0]
    assert (image.norm.vmin, image.norm.vmax) == (-25.0, 25.0)
    assert "higher = more anomalous" in " ".join(bar.get_ylabel().split())


def test_default_titles_say_what_is_shown(trained):
    model, history, xt, _ = trained
    assert plotting.plot_samples(model, n=4).get_suptitle() == (
        "samples from the prior: decoder means E[x|z], z ~ p(z)"
    )
    assert "draws x ~ p(x|z)" in plotting.plot_samples(model, n=4, mean=False).get_suptitle()
    assert plotting.plot_manifold(model, n=3).get_axes()[0].get_title() == (
        "decoder means E[x|z] on a grid of prior quantiles"
    )
    fig = plotting.plot_reconstructions(xt[:3], model.reconstruct(xt[:3]))
    assert fig.get_suptitle() == "inputs and their reconstructions"
    fig = plotting.plot_interpolation(model, xt[0], xt[1], steps=3)
    assert "x_start (t=0)" in fig.get_suptitle()


def test_path_keeps_its_position_and_new_options_are_keywords(trained, tmp_path):
    """Calls written before ax=, title= and scores= existed still save where they say."""
    model, history, xt, _ = trained
    rng = np.random.default_rng(0)
    calls = {
        "images": lambda p: plotting.plot_images(xt[:4], 4, None, None, None, p),
        "reconstructions": lambda p: plotting.plot_reconstructions(xt[:3], xt[:3], 3, None, p),
        "samples": lambda p: plotting.plot_samples(model, 4, 4, 0, True, None, None, p),
        "manifold": lambda p: plotting.plot_manifold(model, 3, None, None, p),
        "interpolation": lambda p: plotting.plot_interpolation(
            model, xt[0], xt[1], 3, None, None, p
        ),
        "traversals": lambda p: plotting.plot_traversals(model, xt[0], None, [0.0], None, None, p),
        "history": lambda p: plotting.plot_history(history, p),
        "scores": lambda p: plotting.plot_anomaly_scores(
            rng.normal(size=20), rng.normal(size=20), 10, ("a", "b"), p
        ),
        "map": lambda p: plotting.plot_anomaly_map(xt[:3], xt[:3], 3, None, p),
    }
    for name, call in calls.items():
        path = str(tmp_path / f"{name}.png")
        _check_png(path, call(path))
    with pytest.raises(TypeError):
        plotting.plot_anomaly_map(xt[:3], xt[:3], 3, None, None, np.zeros(3))  # scores=
