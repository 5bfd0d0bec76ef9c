"""Traced functions shared by models of one configuration.

TensorFlow traces a ``tf.function`` per model: the graph captures that model's variables.
For small tables tracing (and instantiating the traced graph) costs more than training:
about 1.4 s per ``AnomalyDetector`` fit on one thread, against 0.26 s for 400 training
steps of a 13-column table (BENCHMARKS.md, issue 18). Models that differ only in their
state (weights, optimizer moments, seeds) compute the same graph, so one traced function
can serve them all if their state is swapped in: ``shared(model)`` yields a *template*, a
model of the same configuration kept in a small process-wide cache, holding ``model``'s
variables and optimizer variables; whatever runs on the template (``fit``-like loops,
``model.traced`` functions, scoring) is traced once per configuration, and on exit the
template's state is copied back into ``model``. Results are bitwise those of running on
``model`` itself: the same graph runs on the same values.

The configuration key is the model's Keras serialization without its names and seeds
(``structure_key``), plus the shape and dtype of every variable. Only models whose
computation is fully described by their configuration may share: probae's own layers
built from configurations (the ``AnomalyDetector``'s models), not a user's custom layers.
A template in use by another thread is not waited for: ``shared`` then yields ``model``
itself (correct, only slower).
"""

import collections
import contextlib
import json
import threading
from collections.abc import Iterator

import keras

from probae.seeds import keras_seed

__all__ = ["structure_key", "shareable", "shared", "clear", "size", "MAX_TEMPLATES"]

# Configurations kept (least recently used first out).
MAX_TEMPLATES = 8

_templates: "collections.OrderedDict[str, _Template]" = collections.OrderedDict()
_lock = threading.Lock()


class _Template:
    def __init__(self, model):
        # Its initial weights are overwritten by every model it runs: a fixed seed, so that
        # making it leaves the caller's random state as it was.
        with keras_seed(0):
            self.model = type(model).from_config(model.get_config())
            optimizer = model.optimizer
            self.model.compile(optimizer=type(optimizer).from_config(optimizer.get_config()))
            self.model.build_from_config(model.get_build_config())
            self.model.optimizer.build(self.model.trainable_variables)
        self.functions: dict = {}
        self.lock = threading.Lock()


def _strip(config):
    if isinstance(config, dict):
        if "DTypePolicy" in str(config.get("class_name", "")):
            return config  # its "name" is the policy (float32, mixed_float16): kept
        return {k: _strip(v) for k, v in config.items() if k not in ("name", "seed")}
    if isinstance(config, (list, tuple)):
        return [_strip(v) for v in config]
    return config


def _state(model):
    return list(model.variables), list(model.optimizer.variables)


def shareable(model: keras.Model) -> bool:
    """Whether ``model`` is built and compiled with a built optimizer (what ``shared``
    needs)."""
    optimizer = getattr(model, "optimizer", None)
    return bool(model.built and optimizer is not None and optimizer.built)


def structure_key(model: keras.Model) -> str:
    """A string equal for two compiled, built models exactly when they compute the same
    functions of their state: their serialization (layers, objective, optimizer) without
    names and seeds, and every variable's shape and dtype."""
    config = _strip(keras.saving.serialize_keras_object(model))
    variables, optimizer = _state(model)
    shapes = [[list(v.shape), str(v.dtype)] for v in variables + optimizer]
    return json.dumps([config, shapes], sort_keys=True, default=repr)


def _copy(sources, targets):
    for source, target in zip(sources, targets, strict=True):
        target.assign(source.value)


def _compatible(model, template):
    ours, theirs = _state(model), _state(template)
    return all(
        len(a) == len(b) and all(u.shape == v.shape and u.dtype == v.dtype for u, v in zip(a, b))
        for a, b in zip(ours, theirs)
    )


@contextlib.contextmanager
def shared(model: keras.Model) -> Iterator[tuple[keras.Model, dict]]:
    """Yields ``(runner, functions)``: ``runner`` computes as ``model`` (a template of its
    configuration holding its state, or ``model`` itself when the template is busy) and
    ``functions`` is a dict for the caller's own traced functions of ``runner``, kept as
    long as the template. On exit ``model`` holds the runner's final state.

    A model that is not ``shareable`` is yielded as it is.
    """
    if not shareable(model):
        yield model, {}
        return
    key = structure_key(model)
    with _lock:
        template = _templates.pop(key, None)
        if template is None:
            template = _Template(model)
        if _compatible(model, template.model):
            # most recently used last; a model of the same key has the same state shapes
            _templates[key] = template
            while len(_templates) > MAX_TEMPLATES:
                _templates.popitem(last=False)
        else:  # its configuration does not rebuild the same state: not shareable
            template = None
    if template is None or not template.lock.acquire(blocking=False):
        yield model, {}
        return
    try:
        ours, theirs = _state(model), _state(template.model)
        for a, b in zip(ours, theirs):
            _copy(a, b)
        template.model.reset_metrics()
        yield template.model, template.functions
        for a, b in zip(theirs, ours):
            _copy(a, b)
    finally:
        template.lock.release()


def clear() -> None:
    """Drops every template (and its traced functions)."""
    with _lock:
        _templates.clear()


def size() -> int:
    """How many configurations have a template."""
    with _lock:
        return len(_templates)
