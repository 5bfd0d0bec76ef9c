"""Plots of a trained model: reconstructions, samples, latent space, training, anomalies.

Every function draws on a new ``matplotlib.figure.Figure`` (rendered by the Agg backend,
without pyplot, so it works without a display and leaks no global state), or, given
``ax=``, inside that Matplotlib ``Axes`` of a figure of your own: a one-panel plot draws on
it, a plot of several panels (a grid of images, training curves, histograms beside ROC and
precision-recall curves) fills the area of ``ax`` with its panels and puts its title on
``ax``. Every function returns the figure it drew on and saves it as a PNG when ``path`` is
given.

Every figure says what it shows: a title naming the setting that distinguishes it (a
traversal's beta, a score's name), axes with units, and anomaly scores with their sign
convention (higher = more anomalous).

Images or lines: what one example is decides how it is drawn, never its length. An example
of rank 2 or 3 (``[height, width]`` or ``[height, width, channels]``) is an image; an
example of rank 1 (``[d]``) is a signal, drawn as a line, whatever d is (a length-100
signal is not a 10 x 10 image). Functions that receive arrays read the rank from the
array (``[n, d]`` is n signals); those that take a model draw what the model produces,
whose rank is its ``event_shape``'s. ``image_shape=`` draws flat vectors as images.

Conditional models: every function that encodes, decodes or samples takes ``condition=``,
passed on to the model: one row per example, one row for all, or an integer class label
where the condition is one-hot.
"""

import math
import os
import textwrap

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from probae._validation import as_float_array, check_positive_int, check_shape

__all__ = [
    "plot_reconstructions",
    "plot_images",
    "plot_samples",
    "plot_latent_scatter",
    "plot_manifold",
    "plot_interpolation",
    "plot_traversals",
    "plot_history",
    "plot_anomaly_scores",
    "plot_anomaly_map",
    "plot_feature_contributions",
    "slerp",
]


# ---------------------------------------------------------------------- helpers
def _new_figure(width, height):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure_of(ax):
    """The figure ``ax`` belongs to (the top-level one, for an Axes in a subfigure)."""
    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (or None for a new figure). Received: ax={ax!r}"
        )
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure
        fig = fig.figure
    return fig


def _one_axes(ax, width, height):
    """``(figure, axes)``: a new one-panel figure, or ``ax`` and its figure."""
    if ax is None:
        fig = _new_figure(width, height)
        return fig, fig.subplots()
    return _figure_of(ax), ax


def _panels(ax, nrows, ncols, size, wgap=0.02, hgap=0.02, title=None, reserve=0.0, top=0.0):
    """``(figure, [nrows, ncols] axes)``: a new figure of panels, or panels filling ``ax``.

    With ``ax``, the panels are inset axes that tile its area (``wgap`` and ``hgap`` are
    the gaps as fractions of it, ``reserve`` a share kept free on the right for a colour
    bar and ``top`` one at the top for the panels' titles), ``ax`` itself is hidden except
    for its title. Like scikit-learn's ``PartialDependenceDisplay`` given one Axes.
    """
    if ax is None:
        fig = _new_figure(*size)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        if title:
            fig.suptitle(title)
        return fig, axes
    fig = _figure_of(ax)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    width = (1.0 - reserve - wgap * (ncols - 1)) / ncols
    height = (1.0 - top - hgap * (nrows - 1)) / nrows
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):
        for j in range(ncols):
            bottom = 1.0 - top - (i + 1) * height - i * hgap
            axes[i, j] = ax.inset_axes([j * (width + wgap), bottom, width, height])
    return fig, axes


def _finish(fig, path, dpi=100):
    if path is not None:
        path = os.fspath(path)
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _as_images(x, name, image_shape=None):
    """A batch -> ``[n, d]`` signals (one axis per example, drawn as lines), or ``[n, h, w]``
    (grey) or ``[n, h, w, 3 or 4]`` (colour) images; ``image_shape`` makes flat vectors
    images."""
    x = as_float_array(x, name)
    n = x.shape[0]
    if image_shape is not None:
        image_shape = check_shape(image_shape, "image_shape")
        if int(np.prod(image_shape)) != int(np.prod(x.shape[1:])):
            raise ValueError(
                f"image_shape must have as many values as one example of {name} "
                f"({int(np.prod(x.shape[1:]))}). Received: image_shape={image_shape}"
            )
        x = x.reshape(n, *image_shape)
    if x.ndim == 2:
        return x  # signals
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (3, 4)):
        raise ValueError(
            f"{name} must hold signals [n, d] or grey or RGB images [n, height, width(, "
            f"channels)]. Received: {name} with shape {x.shape}"
        )
    return x


def _show(ax, image, vmin=0.0, vmax=1.0, cmap="gray", **line):
    """Draws one example: a signal as a line (with ``line`` options), else an image."""
    if image.ndim == 1:
        margin = 0.05 * (vmax - vmin)
        ax.plot(np.arange(len(image)), image, lw=1, **line)
        ax.set_ylim(vmin - margin, vmax + margin)
        ax.set_xlim(0, max(len(image) - 1, 1))
    elif image.ndim == 3:
        ax.imshow(np.clip(image, vmin, vmax))
    else:
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _value_range(*arrays):
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi if hi > lo else lo + 1.0


def _grid(images, nrows, ncols, cell=0.9, row_labels=None, col_labels=None, title=None, ax=None):
    """Draws ``images`` (length nrows * ncols, row-major) in a grid; returns the figure."""
    width = ncols * cell * (1.8 if images.ndim == 2 else 1.0) + (0.9 if row_labels else 0.0)
    size = (width, nrows * cell + (0.4 if title else 0.0) + (0.2 if col_labels else 0.0))
    fig, axes = _panels(ax, nrows, ncols, size, title=title, top=0.08 if col_labels else 0.0)
    vmin, vmax = _value_range(images)
    for i in range(nrows):
        for j in range(ncols):
            ax = axes[i, j]
            k = i * ncols + j
            if k < len(images):
                _show(ax, images[k], vmin, vmax)
            else:
                ax.axis("off")
            if row_labels and j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=9)
            if col_labels and i == 0:
                ax.set_title(col_labels[j], fontsize=8)
    return fig


def _rows(model, condition, n):
    """A condition for n examples: one condition row, or one integer label, repeated n
    times; rows of several examples pass as they are (the model checks them)."""
    if condition is None:
        return None
    c = np.asarray(condition)
    one = () if model.condition_shape is None else tuple(model.condition_shape)
    if c.ndim == 0 or c.shape == one:
        return np.broadcast_to(c, (n, *c.shape))
    return c


def _encoder_means(model, x, condition=None):
    from probae.posteriors import point_estimate

    posterior = model.encode(x, condition=_rows(model, condition, len(x)), verbose=0)
    return np.asarray(point_estimate(posterior), dtype=np.float32)


def _decoder_means(model, z, condition=None):
    z = np.asarray(z, dtype=np.float32)
    likelihood = model.decode(z, condition=_rows(model, condition, len(z)))
    return np.asarray(likelihood.mean(), dtype=np.float32)


# ---------------------------------------------------------------------- images
def plot_images(
    images, ncols=10, title=None, row_labels=None, image_shape=None, path=None, *, ax=None
):
    """A grid of images, or of signals drawn as lines (see the module doc).

    Args:
        images: a batch: ``[n, h, w]`` or ``[n, h, w, channels]`` images, or ``[n, d]``
            signals.
        ncols: images per row.
        title: optional figure title.
        row_labels: optional text left of each row.
        image_shape: shape of one image, to draw flat vectors as images.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The ``matplotlib.figure.Figure`` drawn on.
    """
    images = _as_images(images, "images", image_shape)
    ncols = min(check_positive_int(ncols, "ncols"), len(images))
    nrows = math.ceil(len(images) / ncols)
    if row_labels is not None:
        row_labels = [str(v) for v in row_labels]
        if len(row_labels) != nrows:
            raise ValueError(
                f"row_labels must have one entry per row ({nrows}). Received: {len(row_labels)}"
            )
    fig = _grid(images, nrows, ncols, row_labels=row_labels, title=title, ax=ax)
    return _finish(fig, path)


def plot_reconstructions(
    x,
    reconstructions,
    n=10,
    image_shape=None,
    path=None,
    *,
    title="inputs and their reconstructions",
    ax=None,
):
    """Originals (top row) above their reconstructions (bottom row); for signals, one
    panel per example with the original (solid) and its reconstruction (dashed).

    Args:
        x: the inputs.
        reconstructions: the model's reconstructions of ``x`` (for example
            ``model.reconstruct(x)``), same shape.
        n: number of pairs shown (the first n).
        image_shape: shape of one image, to draw flat vectors as images.
        title: the figure's title (None for none).
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.

    Raises:
        ValueError: ``x`` and ``reconstructions`` differ in shape.
    """
    n = check_positive_int(n, "n")
    x = _as_images(x, "x", image_shape)
    r = _as_images(reconstructions, "reconstructions", image_shape)
    if x.shape != r.shape:
        raise ValueError(f"reconstructions must have the shape of x {x.shape}. Received: {r.shape}")
    n = min(n, len(x))
    if x.ndim == 2:  # signals: overlaid
        fig, axes = _panels(ax, 1, n, (1.8 * n + 0.4, 1.8 + (0.3 if title else 0.0)), title=title)
        axes = axes[0]
        vmin, vmax = _value_range(x[:n], r[:n])
        for j, ax in enumerate(axes):
            _show(ax, x[j], vmin, vmax, label="input")
            _show(ax, r[j], vmin, vmax, ls="--", label="reconstruction")
        axes[0].legend(fontsize=7, loc="upper left")
        return _finish(fig, path)
    fig = _grid(
        np.concatenate([x[:n], r[:n]]), 2, n, row_labels=["input", "recon."], title=title, ax=ax
    )
    return _finish(fig, path)


def plot_samples(
    model,
    n=64,
    ncols=8,
    seed=0,
    mean=True,
    condition=None,
    image_shape=None,
    path=None,
    *,
    title=None,
    ax=None,
):
    """Samples from the prior: z ~ p(z), shown as the decoder's mean (or a draw from it).

    Args:
        model: a trained ``ProbabilisticAutoencoder``.
        n: number of samples.
        ncols: samples per row.
        seed: sampling seed.
        mean: show E[x|z] (smooth) instead of a sample x ~ p(x|z) (noisy).
        condition: a conditional model's condition (see the module doc).
        image_shape: shape of one image, to draw flat data as images.
        title: the figure's title; None says what is shown (decoder means or draws).
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.
    """
    images = model.sample(check_positive_int(n, "n"), seed=seed, mean=mean, condition=condition)
    if title is None:
        shown = "decoder means E[x|z]" if mean else "draws x ~ p(x|z)"
        title = f"samples from the prior: {shown}, z ~ p(z)"
    return plot_images(images, ncols=ncols, image_shape=image_shape, title=title, ax=ax, path=path)


# ---------------------------------------------------------------------- latent space
def plot_latent_scatter(
    model, x, labels=None, path=None, max_points=5000, condition=None, *, ax=None
):
    """The encoder means of ``x`` in the plane, coloured by label.

    A 2-D code is drawn directly; a larger one is projected on its first two principal
    components (scikit-learn's PCA), which the axis labels say. Labels get one colour
    each, and the colour bar one tick in the middle of each colour, naming its label.

    Args:
        model: a trained ``ProbabilisticAutoencoder``.
        x: inputs.
        labels: one integer label per input, or None.
        path: where to save a PNG, or None.
        max_points: at most this many points (the first ones) are drawn.
        condition: a conditional model's condition (see the module doc).
        ax: a Matplotlib ``Axes`` to draw on, or None for a new figure.

    Returns:
        The figure.
    """
    max_points = check_positive_int(max_points, "max_points")
    x = as_float_array(x, "x")
    condition = _rows(model, condition, len(x))
    x = x[:max_points]
    z = _encoder_means(model, x, None if condition is None else condition[:max_points])
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[:max_points]
        if len(labels) != len(x):
            raise ValueError(
                f"labels must have one entry per input ({len(x)}). Received: {len(labels)}"
            )
    if z.shape[1] == 1:
        z = np.concatenate([z, np.zeros_like(z)], axis=1)
        axis_names = ("z1", "")
    elif z.shape[1] == 2:
        axis_names = ("z1", "z2")
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2).fit(z)
        z = pca.transform(z)
        share = pca.explained_variance_ratio_
        axis_names = (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})")
    fig, ax = _one_axes(ax, 6.0, 5.0)
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.6)
    else:
        from matplotlib import colormaps
        from matplotlib.colors import BoundaryNorm, ListedColormap

        # One colour per distinct label, and the colour bar's ticks in the middle of each
        # colour band (a continuous map puts integer ticks between the colours).
        classes, index = np.unique(labels, return_inverse=True)
        k = len(classes)
        base = colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "viridis"]
        colours = base(np.arange(k) if k <= 20 else np.linspace(0.0, 1.0, k))
        norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)
        points = ax.scatter(
            z[:, 0], z[:, 1], c=index, cmap=ListedColormap(colours), norm=norm, s=4, alpha=0.7
        )
        bar = fig.colorbar(points, ax=ax, label="label")
        step = max(1, math.ceil(k / 20))  # at most about 20 tick labels
        bar.set_ticks(np.arange(0, k, step), labels=[str(c) for c in classes[::step]])
        bar.minorticks_off()
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(f"encoder means E[z|x] of {len(z)} inputs")
    return _finish(fig, path)


def _prior_quantiles(model, probabilities, seed=0, num_draws=20000):
    """Per-dimension quantiles of the prior (exact for N(0, I), else from draws)."""
    import tensorflow_probability as tfp

    from probae.priors import StandardNormalPrior
    from probae.seeds import seed_tensor

    if isinstance(model.prior, StandardNormalPrior):
        q = tfp.distributions.Normal(0.0, 1.0).quantile(np.asarray(probabilities, np.float32))
        return np.stack([np.asarray(q)] * model.latent_dim, axis=1)

    draws = model.prior_distribution().sample(num_draws, seed=seed_tensor(seed))
    return np.quantile(np.asarray(draws), probabilities, axis=0)


_MANIFOLD_TITLE = "decoder means E[x|z] on a grid of prior quantiles"


def plot_manifold(model, n=15, condition=None, image_shape=None, path=None, *, ax=None):
    """The learned 2-D manifold: decoder means on an n x n grid of prior quantiles.

    The grid covers the prior's 5% to 95% quantiles in each latent dimension, so equal
    steps hold equal prior mass. Signals are drawn as an n x n grid of lines.

    Args:
        model: a trained ``ProbabilisticAutoencoder`` with ``latent_dim == 2``.
        n: grid points per dimension.
        condition: a conditional model's condition (see the module doc).
        image_shape: shape of one image, to draw flat data as images.
        ax: a Matplotlib ``Axes`` to draw on (for signals, whose area the panels fill),
            or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.

    Raises:
        ValueError: the model's code is not 2-D.
    """
    n = check_positive_int(n, "n")
    if model.latent_dim != 2:
        raise ValueError(
            "model must have a 2-D code for the manifold plot (use plot_latent_scatter or "
            f"plot_traversals otherwise). Received: a model with latent_dim={model.latent_dim}"
        )
    q = _prior_quantiles(model, np.linspace(0.05, 0.95, n))
    # Rows go from high z2 (top) to low z2, columns from low z1 to high z1.
    z = np.array([[q[j, 0], q[n - 1 - i, 1]] for i in range(n) for j in range(n)], np.float32)
    images = _as_images(_decoder_means(model, z, condition), "decoded", image_shape)
    if images.ndim == 2:  # signals
        fig = _grid(
            images,
            n,
            n,
            row_labels=[f"z2={v + 0.0:.1f}" for v in q[::-1, 1]],
            col_labels=[f"z1={v + 0.0:.1f}" for v in q[:, 0]],
            title=_MANIFOLD_TITLE,
            ax=ax,
        )
        return _finish(fig, path)
    h, w = images.shape[1:3]
    canvas_shape = (n * h, n * w) + images.shape[3:]
    canvas = np.zeros(canvas_shape, np.float32)
    for k, image in enumerate(images):
        i, j = divmod(k, n)
        canvas[i * h : (i + 1) * h, j * w : (j + 1) * w] = image
    fig, ax = _one_axes(ax, 6.0, 6.0)
    vmin, vmax = _value_range(canvas)
    ax.imshow(np.clip(canvas, vmin, vmax), cmap="gray", vmin=vmin, vmax=vmax)
    ticks = np.arange(n) * w + w / 2
    step = max(1, n // 5)
    ax.set_xticks(ticks[::step], [f"{v + 0.0:.1f}" for v in np.round(q[::step, 0], 1)])
    ax.set_yticks(ticks[::step], [f"{v + 0.0:.1f}" for v in np.round(q[::-1, 1][::step], 1)])
    ax.set_xlabel("z1 (prior quantiles 5% to 95%)")
    ax.set_ylabel("z2")
    ax.set_title(_MANIFOLD_TITLE)
    return _finish(fig, path)


def slerp(z0, z1, t):
    """Spherical interpolation between two codes (linear when they are parallel).

    Args:
        z0, z1: vectors of the same size.
        t: an array of positions in [0, 1].

    Returns:
        ``[len(t), d]`` array; t = 0 gives z0 and t = 1 gives z1.

    References: Shoemake 1985; White 2016, Sampling Generative Networks.
    """
    z0 = np.asarray(z0, np.float64)
    z1 = np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    cos = np.dot(z0, z1) / max(np.linalg.norm(z0) * np.linalg.norm(z1), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1 - t) * z0 + t * z1
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


def plot_interpolation(
    model, x_start, x_end, steps=10, condition=None, image_shape=None, path=None, *, ax=None
):
    """Decoded interpolation between the codes of two inputs, linear and spherical.

    Row 1: linear, z(t) = (1 - t) z0 + t z1; row 2: spherical (``slerp``), which keeps
    the norm of the code closer to where a Gaussian prior puts its mass. z0 and z1 are
    the encoder means of ``x_start`` and ``x_end``.

    Args:
        model: a trained ``ProbabilisticAutoencoder``.
        x_start, x_end: two single inputs (no batch axis) or batches of one.
        steps: images per row, ends included (>= 2).
        condition: a conditional model's condition, one for the whole plot (one row or an
            integer label).
        image_shape: shape of one image, to draw flat data as images.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.
    """
    steps = check_positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2. Received: steps={steps}")
    pair = []
    for name, x in (("x_start", x_start), ("x_end", x_end)):
        x = np.asarray(x, dtype=np.float32)
        if model.event_shape is not None and tuple(x.shape) == tuple(model.event_shape):
            x = x[None]
        x = as_float_array(x, name, event_shape=model.event_shape)
        if len(x) != 1:
            raise ValueError(f"{name} must be one example. Received: {len(x)} examples")
        pair.append(x)
    z = _encoder_means(model, np.concatenate(pair), condition)
    t = np.linspace(0.0, 1.0, steps)
    linear = (1 - t)[:, None] * z[0] + t[:, None] * z[1]
    spherical = slerp(z[0], z[1], t)
    images = _as_images(
        _decoder_means(model, np.concatenate([linear, spherical]), condition),
        "decoded",
        image_shape,
    )
    fig = _grid(
        images,
        2,
        steps,
        row_labels=["linear", "spherical"],
        col_labels=[f"t={v:.2f}" for v in t],
        title="decoder means along z(t), from the code of x_start (t=0) to x_end's (t=1)",
        ax=ax,
    )
    return _finish(fig, path)


def plot_traversals(
    model,
    x=None,
    dims=None,
    values=None,
    condition=None,
    image_shape=None,
    path=None,
    *,
    title=None,
    ax=None,
):
    """Latent traversals: one row per latent dimension, that dimension swept, others fixed.

    The default title names the model's KL weight beta (``model.beta``), so traversals of
    a beta-VAE say which beta they show.

    Args:
        model: a trained ``ProbabilisticAutoencoder``.
        x: one input whose encoder mean is the starting code, or None for the prior's
            centre (zeros).
        dims: the dimensions to traverse (default: all, at most 10).
        values: values given to each dimension (default: 9 points from -3 to 3).
        condition: a conditional model's condition, one for the whole plot (one row or an
            integer label).
        image_shape: shape of one image, to draw flat data as images.
        title: the figure's title; None says where the traversal starts and, for a model
            with a prior, its beta.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.
    """
    d = model.latent_dim
    if x is None:
        base = np.zeros(d, np.float32)
    else:
        x = np.asarray(x, dtype=np.float32)
        if model.event_shape is not None and tuple(x.shape) == tuple(model.event_shape):
            x = x[None]
        x = as_float_array(x, "x", event_shape=model.event_shape)[:1]
        base = _encoder_means(model, x, condition)[0]
    dims = list(range(min(d, 10))) if dims is None else [int(v) for v in dims]
    for v in dims:
        if not 0 <= v < d:
            raise ValueError(f"dims must lie in [0, {d}). Received: dims={dims}")
    if values is None:
        values = np.linspace(-3.0, 3.0, 9)
    else:
        given = values
        try:
            values = np.asarray(values, np.float32).reshape(-1)
        except (TypeError, ValueError):
            values = np.zeros(0)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(
                f"values must be a non-empty list of finite numbers. Received: values={given!r}"
            )
    codes = np.repeat(base[None], len(dims) * len(values), axis=0)
    for i, dim in enumerate(dims):
        codes[i * len(values) : (i + 1) * len(values), dim] = values
    images = _as_images(_decoder_means(model, codes, condition), "decoded", image_shape)
    if title is None:
        start = "the prior's centre" if x is None else "the code of x"
        title = f"latent traversals from {start}"
        if getattr(model, "prior", None) is not None:
            title += f", beta = {model.beta:g}"
    fig = _grid(
        images,
        len(dims),
        len(values),
        row_labels=[f"z{dim + 1}" for dim in dims],
        col_labels=[f"{v:+.1f}" for v in values],
        title=title,
        ax=ax,
    )
    return _finish(fig, path)


# ---------------------------------------------------------------------- training
_HISTORY_TITLES = {
    "loss": "loss (nats per example)",
    "elbo": "ELBO (nats per example)",
    "reconstruction": "reconstruction E_q[log p(x|z)]",
    "kl": "KL(q(z|x) || p(z))",
    "sparsity": "sparsity penalty",
    "beta": "beta (KL weight)",
    "learning_rate": "learning rate",
    "lr": "learning rate",
}
_SCHEDULES = ("beta", "learning_rate", "lr")  # drawn last: settings, not results
_FIRST = ("loss", "elbo", "reconstruction", "kl")  # in this order, before other series


def plot_history(history, path=None, ncols=4, *, ax=None):
    """Training curves: one panel per logged series, per epoch (validation dashed).

    Draws what ``fit`` logged and nothing else: the loss, then the terms of the objective
    (a VAE's ``elbo``, ``reconstruction`` and ``kl``; a point-mass autoencoder's
    ``reconstruction`` alone), then any other series (a code penalty, an IWAE bound, a
    metric of your own) in the order they were logged,
    then the schedules ``beta`` and the learning rate when present (the learning rate on
    a log scale when it spans more than a factor of 10). ``val_<name>`` is drawn dashed
    in the panel of ``<name>``.

    Args:
        history: the ``keras.callbacks.History`` returned by ``fit``, or its
            ``.history`` dict.
        path: where to save a PNG, or None.
        ncols: panels per row.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.

    Returns:
        The figure.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or "loss" not in logs:
        raise TypeError(
            "history must be a keras History or its .history dict with a 'loss' entry. "
            f"Received: history={history!r}"
        )
    names = [k for k in logs if not (k.startswith("val_") and k[4:] in logs)]
    results = [k for k in names if k not in _SCHEDULES]
    rank = {k: i for i, k in enumerate(_FIRST)}
    panels = sorted(results, key=lambda k: rank.get(k, len(_FIRST)))
    panels += [k for k in names if k in _SCHEDULES]
    ncols = min(check_positive_int(ncols, "ncols"), len(panels))
    nrows = math.ceil(len(panels) / ncols)
    size = (3.6 * ncols, 3.0 * nrows)
    fig, axes = _panels(ax, nrows, ncols, size, wgap=0.12, hgap=0.25 / nrows, top=0.08 / nrows)
    axes = axes.reshape(-1)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    for ax, key in zip(axes, panels):
        values = np.asarray(logs[key], np.float64)
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o", ms=3, label="train")
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], ls="--", marker="o", ms=3, label="validation")
            ax.legend()
        if (
            key in ("learning_rate", "lr")
            and values.min() > 0
            and values.max() >= 10 * values.min()
        ):
            ax.set_yscale("log")
        ax.set_title(_HISTORY_TITLES.get(key, key))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return _finish(fig, path)


# ---------------------------------------------------------------------- anomalies
SCORE_LABEL = "anomaly score (higher = more anomalous)"


def plot_anomaly_scores(
    scores_normal,
    scores_anomalous,
    bins=50,
    labels=("normal", "anomalous"),
    path=None,
    *,
    title=None,
    score_label=SCORE_LABEL,
    ax=None,
):
    """Histograms of anomaly scores (normal against anomalous), the ROC curve and the
    precision-recall curve.

    Higher scores must mean "more anomalous" (for example ``probae.anomaly_scores``,
    minus log p(x)); the anomalous group is the positive class. The curves are
    scikit-learn's ``RocCurveDisplay`` and ``PrecisionRecallDisplay`` (with the chance
    level), the AUROC and the average precision are in their panels' titles.

    Args:
        scores_normal: scores of normal examples (1-D).
        scores_anomalous: scores of anomalous examples (1-D).
        bins: histogram bins.
        labels: legend names of the two groups.
        title: the figure's title: say which score it is (for example "raw -log p(x)"
            against "likelihood ratio"), or None for none.
        score_label: the score axis' label: what the score is, its unit and its sign
            convention.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.
    """
    from sklearn.metrics import (
        PrecisionRecallDisplay,
        RocCurveDisplay,
        average_precision_score,
        roc_auc_score,
    )

    if isinstance(labels, str) or len(labels) != 2:
        raise ValueError(
            f"labels must be two names (normal, anomalous). Received: labels={labels!r}"
        )
    if not isinstance(score_label, str):
        raise TypeError(f"score_label must be a string. Received: score_label={score_label!r}")
    normal = np.asarray(scores_normal, np.float64).reshape(-1)
    anomalous = np.asarray(scores_anomalous, np.float64).reshape(-1)
    for name, s in (("scores_normal", normal), ("scores_anomalous", anomalous)):
        if s.size == 0 or not np.all(np.isfinite(s)):
            raise ValueError(f"{name} must be a non-empty array of finite numbers.")
    bins = check_positive_int(bins, "bins")
    y = np.concatenate([np.zeros(len(normal)), np.ones(len(anomalous))])
    s = np.concatenate([normal, anomalous])
    auroc = roc_auc_score(y, s)
    precision = average_precision_score(y, s)
    size = (13.0, 4.2 if title else 3.9)
    fig, axes = _panels(ax, 1, 3, size, wgap=0.12, title=title, top=0.08)
    ax_hist, ax_roc, ax_pr = axes[0]
    edges = np.histogram_bin_edges(s, bins=bins)
    for values, name in ((normal, labels[0]), (anomalous, labels[1])):
        ax_hist.hist(values, bins=edges, alpha=0.6, density=True, label=f"{name} (n={len(values)})")
    ax_hist.set_xlabel(score_label)
    ax_hist.set_ylabel("density")
    ax_hist.legend(fontsize=8)
    RocCurveDisplay.from_predictions(
        y, s, ax=ax_roc, name=labels[1], plot_chance_level=True, pos_label=1
    )
    ax_roc.set_title(f"ROC, AUROC = {auroc:.3f}")
    ax_roc.legend(fontsize=8, loc="lower right")
    PrecisionRecallDisplay.from_predictions(
        y, s, ax=ax_pr, name=labels[1], plot_chance_level=True, pos_label=1
    )
    ax_pr.set_title(f"precision-recall, AP = {precision:.3f}")
    ax_pr.legend(fontsize=8, loc="upper right")
    return _finish(fig, path)


def plot_anomaly_map(
    x,
    pixel_scores,
    n=6,
    image_shape=None,
    path=None,
    *,
    scores=None,
    pixel_label="per-pixel score (higher = more anomalous)",
    title=None,
    ax=None,
):
    """Inputs (top row) above their per-pixel anomaly scores (bottom row, a heat map on
    one colour scale for all columns; for signals, the scores drawn as a line under each
    input).

    Per-pixel scores are any array of the inputs' shape, for example minus the decoder's
    per-pixel log-likelihood, ``probae.anomaly_scores(model, x, method="reconstruction",
    per_feature=True)``.

    With ``scores`` (one anomaly score per input, higher = more anomalous) the figure
    shows the ceil(n / 2) most normal inputs on the left and the floor(n / 2) most
    anomalous on the right, in order of score, each column titled with its rank ("normal
    #1" is the most normal, "anomalous #1" the most anomalous) and its score; without,
    the first n inputs.

    Args:
        x: the inputs.
        pixel_scores: per-pixel scores, same shape as ``x``.
        n: number of inputs shown.
        image_shape: shape of one image, to draw flat data as images.
        scores: optional per-input anomaly scores (``[len(x)]``, higher = more anomalous)
            choosing the most normal and the most anomalous inputs.
        pixel_label: the label of the per-pixel scores: what they are and their sign
            convention.
        title: the figure's title; None says what the columns are.
        ax: a Matplotlib ``Axes`` whose area the panels fill, or None for a new figure.
        path: where to save a PNG, or None.

    Returns:
        The figure.
    """
    n = check_positive_int(n, "n")
    x = _as_images(x, "x", image_shape)
    pixels = _as_images(pixel_scores, "pixel_scores", image_shape)
    if pixels.shape != x.shape:
        raise ValueError(
            f"pixel_scores must have the shape of x {x.shape}. Received: {pixels.shape}"
        )
    if pixels.ndim == 4:
        pixels = pixels.mean(axis=-1)
    n = min(n, len(x))
    if scores is None:
        shown = np.arange(n)
        col_labels = None
        default_title = "inputs and their per-pixel anomaly scores"
    else:
        scores = np.asarray(scores, np.float64)
        if scores.shape != (len(x),) or not np.all(np.isfinite(scores)):
            raise ValueError(
                f"scores must hold one finite score per input ({len(x)},). "
                f"Received: shape {scores.shape}"
            )
        order = np.argsort(scores, kind="stable")
        n_normal = (n + 1) // 2
        shown = np.concatenate([order[:n_normal], order[len(x) - (n - n_normal) :]])
        col_labels = [f"normal #{k + 1}" for k in range(n_normal)]
        col_labels += [f"anomalous #{n - n_normal - k}" for k in range(n - n_normal)]
        col_labels = [f"{c}\nscore {scores[i]:.1f}" for c, i in zip(col_labels, shown)]
        default_title = (
            f"the {n_normal} most normal (left) and {n - n_normal} most anomalous (right) "
            f"of {len(x)} inputs"
        )
    x, pixels = x[shown], pixels[shown]
    title = default_title if title is None else title
    size = (1.3 * n + 1.6, 3.8 + (0.3 if title else 0.0))
    fig, axes = _panels(
        ax,
        2,
        n,
        size,
        hgap=0.06,
        title=title,
        reserve=0.1 if x.ndim == 3 else 0.0,
        top=0.12 if col_labels else 0.0,
    )
    vmax = float(np.max(pixels)) or 1.0
    vmin = min(0.0, float(np.min(pixels)))
    xmin, xmax = _value_range(x)
    for j in range(n):
        _show(axes[0, j], x[j], xmin, xmax)
        if col_labels:
            axes[0, j].set_title(col_labels[j], fontsize=8)
        if pixels.ndim == 2:  # signals
            _show(axes[1, j], pixels[j], vmin, vmax, color="C3")
            axes[1, j].fill_between(
                np.arange(pixels.shape[1]), vmin, pixels[j], color="C3", alpha=0.3
            )
            continue
        heat = axes[1, j].imshow(pixels[j], cmap="inferno", vmin=vmin, vmax=vmax)
        axes[1, j].set_xticks([])
        axes[1, j].set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("score")
    if pixels.ndim == 3:
        if ax is None:
            bar = fig.colorbar(heat, ax=axes[1, :].tolist())
        else:  # beside the bottom row of the given area
            bar = fig.colorbar(heat, cax=ax.inset_axes([0.93, 0.0, 0.02, 0.48]))
        bar.set_label(textwrap.fill(pixel_label, 26), fontsize=8)
    elif pixel_label:
        axes[1, 0].set_ylabel(pixel_label, fontsize=7)
    return _finish(fig, path)


def plot_feature_contributions(
    contributions,
    scores,
    feature_names=None,
    row_labels=None,
    n=4,
    max_features=10,
    ax=None,
    path=None,
):
    """A heat map of the per-feature contributions of the ``n`` most anomalous rows.

    One row of cells per anomaly (highest score first, labelled with ``row_labels`` and
    the score), one column per feature: the ``max_features`` features with the largest
    contribution in any of the rows shown, in that order. Each cell is the feature's
    contribution (minus log p of the feature given the code, in nats; for example
    ``AnomalyDetector.score_features``), written in the cell; NaN cells (missing entries)
    are left blank and marked "missing".

    Args:
        contributions: ``[n_rows, n_features]`` contributions (higher = more anomalous).
        scores: ``[n_rows]`` anomaly scores (higher = more anomalous) choosing the rows.
        feature_names: names of the features (default "x0", "x1", ...).
        row_labels: labels of the rows (default their positions).
        n: number of rows shown.
        max_features: number of features shown.
        ax: a Matplotlib Axes to draw on, or None for a new figure.
        path: save the figure there (PNG) when given.

    Returns:
        The ``matplotlib.figure.Figure`` (``ax.figure`` when ``ax`` is given).

    Raises:
        ValueError: shapes that do not match, or non-positive ``n`` / ``max_features``.
    """
    values = np.asarray(contributions, np.float64)
    scores = np.asarray(scores, np.float64)
    if values.ndim != 2:
        raise ValueError(
            f"contributions must be [n_rows, n_features]. Received: shape {values.shape}"
        )
    if scores.shape != (len(values),):
        raise ValueError(
            f"scores must have one value per row of contributions ({len(values)},). "
            f"Received: shape {scores.shape}"
        )
    n = check_positive_int(n, "n")
    max_features = check_positive_int(max_features, "max_features")
    names = (
        [f"x{j}" for j in range(values.shape[1])] if feature_names is None else list(feature_names)
    )
    if len(names) != values.shape[1]:
        raise ValueError(
            f"feature_names must have one name per column ({values.shape[1]}). Received: {len(names)}"
        )
    labels = list(range(len(values))) if row_labels is None else list(row_labels)
    if len(labels) != len(values):
        raise ValueError(
            f"row_labels must have one label per row ({len(values)}). Received: {len(labels)}"
        )
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:n]
    shown = values[order]
    strength = np.nan_to_num(shown, nan=-np.inf).max(axis=0)
    columns = np.argsort(-strength, kind="stable")[:max_features]
    cells = shown[:, columns]
    if ax is None:
        fig = _new_figure(max(5.5, 1.0 + 0.9 * len(columns)), 1.2 + 0.55 * len(order))
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = _figure_of(ax)
    finite = cells[np.isfinite(cells)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(cells), cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto"
    )
    for i in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            value = cells[i, j]
            text = "missing" if np.isnan(value) else f"{value:.1f}"
            strong = np.isfinite(value) and abs(value) > 0.6 * bound
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if strong else ("grey" if np.isnan(value) else "black"),
            )
    ax.set_xticks(np.arange(len(columns)))
    ax.set_xticklabels([str(names[j])[:18] for j in columns], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(order)))
    ax.set_yticklabels([f"{labels[r]} (score {scores[r]:.1f})" for r in order], fontsize=8)
    ax.set_title(
        "per-feature contributions of the most anomalous rows, one colour scale for all rows",
        fontsize=9,
    )
    bar = fig.colorbar(image, ax=ax)
    label = "-log p(feature | code), nats (higher = more anomalous)"
    bar.set_label(textwrap.fill(label, 28), fontsize=8)
    return _finish(fig, path)
