"""A base for small configuration objects (penalties, corruptions) that Keras saves."""

import keras


class ConfigObject:
    """A plain object saved inside a model's config through ``get_config`` /
    ``from_config``; subclasses are registered with
    ``keras.saving.register_keras_serializable(package="probae")``."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def deserialize_as(value, base):
    """Returns ``value`` if it is a ``base``, the ``base`` its config dict describes, or None."""
    if isinstance(value, base):
        return value
    if isinstance(value, dict):
        obj = keras.saving.deserialize_keras_object(value)
        if isinstance(obj, base):
            return obj
    return None
