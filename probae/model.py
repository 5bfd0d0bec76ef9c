"""The one model class: ``ProbabilisticAutoencoder``.

An encoder maps x to q(z|x), a decoder maps z to p(x|z), a prior gives p(z), and the
objective (the ELBO or the importance-weighted bound) is computed from ``log_prob`` and
KL terms by the pure functions of ``probae.objectives``. Every named variant (autoencoder,
VAE, beta-VAE, IWAE, ...) is a configuration of this class; see ``probae.presets``.
"""

import inspect
import math

import keras
import numpy as np
import tensorflow as tf

from probae import objectives, reliability
from probae.corruption import get_corruption
from probae._validation import (
    as_float_array,
    check_non_negative_float,
    check_positive_int,
    check_seed,
    check_shape,
)
from probae.decoders import Decoder
from probae.encoders import Encoder
from probae.penalties import get_penalty
from probae.priors import Prior, StandardNormalPrior

__all__ = ["ProbabilisticAutoencoder"]

OBJECTIVES = ("elbo", "iwae")
METRIC_NAMES = ("loss", "elbo", "reconstruction", "kl")

# Upper bound on the elements of one decoder output (rows * features) in the chunked
# estimators: about 4 MB of float32 per tensor, whatever k and the batch size are. Tensors
# that stay in cache make the k = 5000 evaluation about twice as fast on CPU as 32 MB ones
# (measured on the 784-200-200-50 MNIST network, benchmarks/nll_binarized_mnist.py).
_MAX_ELEMENTS = 2**20

# Batches per call of the compiled training step under compile(steps_per_execution="auto").
AUTO_STEPS_PER_EXECUTION = 10


def _to_seed_tensor(seed):
    """An int (or None) -> a stateless shape-[2] int32 seed tensor."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return tf.constant([seed % (2**31 - 1), 0], dtype=tf.int32)


@keras.saving.register_keras_serializable(package="probae")
class ProbabilisticAutoencoder(keras.Model):
    """An autoencoder whose encoder and decoder output distributions.

    Training maximises ``objective`` averaged over examples: the ELBO

        ELBO(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))

    (k = ``num_samples`` reparameterised samples; analytic KL where TFP registers one,
    Monte Carlo otherwise), or with ``objective="iwae"`` the importance-weighted bound
    log (1/k) sum_k p(x, z_k) / q(z_k|x). A point-mass encoder with ``beta=0`` is the
    classic deterministic autoencoder: its loss is minus the reconstruction
    log-likelihood (binary cross-entropy for a Bernoulli decoder, half the squared error
    plus a constant for a unit-scale Gaussian one).

    ``fit`` and ``evaluate`` report ``loss`` (minus the objective, plus any layer
    regularisation), ``elbo`` (the true bound, beta = 1), ``reconstruction``
    (E_q log p(x|z)) and ``kl``, all in nats per example.

    Args:
        encoder: a ``probae`` encoder (x -> q(z|x)).
        decoder: a ``probae`` decoder (z -> p(x|z)).
        prior: a ``probae`` prior; None for the standard normal N(0, I).
        beta: weight of the KL term (kept in a non-trainable variable so callbacks can
            anneal it).
        num_samples: k, posterior samples per example in training.
        objective: "elbo" or "iwae".
        free_bits: None or a minimum KL per latent dimension in nats (objective only;
            objective="elbo" with a diagonal Gaussian encoder and prior).
        penalty: None or a code penalty (for example ``probae.SparsityPenalty``)
            subtracted from the objective; logged under its name (e.g. ``sparsity``).
        corruption: None, a rate in [0, 1) (masking noise) or a ``probae`` corruption
            (``GaussianNoise``, ``MaskingNoise``, ``SaltAndPepperNoise``) applied to the
            encoder's input in training only; the likelihood is of the clean input.
        gradient_estimator: "iwae" (default) or "dreg" (doubly reparameterised encoder
            gradients, objective="iwae" only; Tucker et al. 2019).
        condition_shape: shape of a condition given to encoder and decoder (conditional
            models), or None.
        input_shape: shape of one example; when given the model is built at once.
        seed: seed of the model's sampling during training (None: from Keras' global
            seed, see ``keras.utils.set_random_seed``).
        **kwargs: passed to ``keras.Model`` (name, ...).

    References: Kingma and Welling 2014 (VAE); Higgins et al. 2017 (beta-VAE); Burda et
    al. 2016 (IWAE).
    """

    def __init__(
        self,
        encoder,
        decoder,
        prior=None,
        beta=1.0,
        num_samples=1,
        objective="elbo",
        free_bits=None,
        condition_shape=None,
        input_shape=None,
        seed=None,
        penalty=None,
        corruption=None,
        gradient_estimator="iwae",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, Encoder):
            raise TypeError(
                "encoder must be a probae encoder (for example probae.GaussianEncoder). "
                f"Received: encoder={encoder!r}"
            )
        if not isinstance(decoder, Decoder):
            raise TypeError(
                "decoder must be a probae decoder (for example probae.BernoulliDecoder). "
                f"Received: decoder={decoder!r}"
            )
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(
                "prior must be None or a probae prior (for example "
                f"probae.MixtureOfGaussiansPrior). Received: prior={prior!r}"
            )
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}. Received: objective={objective!r}")
        self.num_samples = check_positive_int(num_samples, "num_samples")
        if objective == "iwae" and beta != 1.0:
            raise ValueError(
                "beta must be 1.0 with objective='iwae' (the importance-weighted bound has no "
                f"KL weight). Received: beta={beta!r}"
            )
        self.objective = objective
        self.penalty = get_penalty(penalty)
        self.corruption = get_corruption(corruption)
        if gradient_estimator not in objectives.GRADIENT_ESTIMATORS:
            raise ValueError(
                f"gradient_estimator must be one of {objectives.GRADIENT_ESTIMATORS}. "
                f"Received: gradient_estimator={gradient_estimator!r}"
            )
        if gradient_estimator == "dreg" and objective != "iwae":
            raise ValueError(
                "gradient_estimator='dreg' needs objective='iwae'. "
                f"Received: objective={objective!r}"
            )
        if gradient_estimator == "dreg" and getattr(prior, "uses_encoder", False):
            raise ValueError(
                "gradient_estimator='dreg' assumes a prior that does not depend on the "
                f"encoder's parameters. Received: prior={type(prior).__name__}"
            )
        self.gradient_estimator = gradient_estimator
        if free_bits is not None and objective != "elbo":
            raise ValueError(
                f"free_bits applies to objective='elbo' only. Received: objective={objective!r}"
            )
        self.free_bits = None if free_bits is None else check_non_negative_float(free_bits, "free_bits")
        self.seed = check_seed(seed)
        self.condition_shape = None if condition_shape is None else check_shape(
            condition_shape, "condition_shape"
        )
        for part in (encoder, decoder):
            if self.condition_shape is not None:
                if part.condition_shape not in (None, self.condition_shape):
                    raise ValueError(
                        f"{part.name} has condition_shape={part.condition_shape}, the model "
                        f"condition_shape={self.condition_shape}."
                    )
                part.condition_shape = self.condition_shape
            elif part.condition_shape is not None:
                self.condition_shape = part.condition_shape
        if self.condition_shape is not None and getattr(prior, "uses_encoder", False):
            raise ValueError(
                f"prior={type(prior).__name__} runs the encoder on unconditioned pseudo-inputs "
                "and cannot be used with a conditional model (condition_shape is set)."
            )
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior if prior is not None else StandardNormalPrior()
        self.beta_variable = keras.Variable(
            check_non_negative_float(beta, "beta"), trainable=False, name="beta", dtype="float32"
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        names = METRIC_NAMES + ((self.penalty.name,) if self.penalty is not None else ())
        self._trackers = [keras.metrics.Mean(name=n) for n in names]
        object.__setattr__(self, "_compiled_fns", {})
        self.event_shape = None
        if input_shape is not None:
            self.build((None, *check_shape(input_shape, "input_shape")))

    # ------------------------------------------------------------------ building
    def build(self, input_shape):
        event_shape = check_shape(tuple(input_shape)[1:], "input_shape")
        if self.decoder.event_shape is not None and self.decoder.event_shape != event_shape:
            raise ValueError(
                f"input_shape must match the decoder's event_shape {self.decoder.event_shape}. "
                f"Received: examples of shape {event_shape}"
            )
        self.event_shape = event_shape
        if not self.encoder.built:
            self.encoder.build((None, *event_shape))
        latent_dim = self.encoder.latent_dim
        self.decoder.set_event_shape(event_shape)
        if not self.decoder.built:
            self.decoder.build((None, latent_dim))
        self.prior.set_data_shape(event_shape)
        if not self.prior.built:
            self.prior.build((None, latent_dim))
        self.built = True

    def get_build_config(self):
        if self.event_shape is None:
            return None
        return {"input_shape": [None, *self.event_shape]}

    @property
    def latent_dim(self):
        return self.encoder.latent_dim

    @property
    def beta(self):
        """The KL weight (a float); assign to change it."""
        return float(keras.ops.convert_to_numpy(self.beta_variable))

    @beta.setter
    def beta(self, value):
        self.beta_variable.assign(check_non_negative_float(value, "beta"))

    @property
    def metrics(self):
        return list(self._trackers)

    # ------------------------------------------------------------------ the maths
    def _decode_fn(self, condition, num_samples, training=False):
        """A callable z [k * batch, d] -> p(x|z) with the condition repeated k times."""
        if condition is not None:
            condition = objectives.tile_samples(condition, num_samples)
        return lambda z: self.decoder(z, condition=condition, training=training)

    def _encoder_input(self, x, seed, training):
        """The encoder's input: x, corrupted in training when the model has a corruption."""
        if training and self.corruption is not None:
            return self.corruption(x, seed)
        return x

    def compute_terms(self, x, condition=None, seed=None, training=False, num_samples=None):
        """Per-example objective terms on a batch of tensors (no validation).

        Returns:
            The dict of ``objectives.elbo`` or ``objectives.iwae_bound``.
        """
        k = self.num_samples if num_samples is None else num_samples
        posterior = self.encoder(
            self._encoder_input(x, seed, training), condition=condition, training=training
        )
        prior = self.prior.distribution(self.encoder)
        decode = self._decode_fn(condition, k, training)
        if self.objective == "iwae":
            terms = objectives.iwae_bound(
                x, posterior, decode, prior, k, seed, gradient_estimator=self.gradient_estimator
            )
        else:
            terms = objectives.elbo(
                x,
                posterior,
                decode,
                prior,
                beta=tf.convert_to_tensor(self.beta_variable),
                num_samples=k,
                seed=seed,
                free_bits=self.free_bits,
            )
        if self.penalty is not None:
            penalty = self.penalty(posterior.mean())
            terms["penalty"] = penalty
            for key in ("objective", "encoder_objective"):
                if key in terms:
                    terms[key] = terms[key] - penalty
        return terms

    def call(self, inputs, training=None):
        """Returns p(x|z) for z drawn from q(z|x) in training, z = E[q(z|x)] otherwise.

        ``inputs`` is x, or ``(x, condition)`` for a conditional model.
        """
        x, condition = self._split_inputs(inputs)
        posterior = self.encoder(x, condition=condition, training=training)
        z = posterior.sample(seed=self._next_seed()) if training else posterior.mean()
        return self.decoder(z, condition=condition, training=training)

    def _split_inputs(self, inputs):
        if self.condition_shape is not None and isinstance(inputs, (tuple, list)):
            return inputs[0], inputs[1]
        return inputs, None

    def _next_seed(self):
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        # Under a distribution strategy every replica reads the same generator state:
        # fold in the replica's index so replicas draw independent noise for their shards.
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(seed, ctx.replica_id_in_sync_group)
        return seed

    # ------------------------------------------------------------------ Keras steps
    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        condition = None
        if self.condition_shape is not None:
            if isinstance(x, (tuple, list)) and len(x) == 2:
                x, condition = x
            else:
                condition = y
            if condition is None:
                raise ValueError(
                    "condition is required: this model was built with condition_shape="
                    f"{self.condition_shape}. Use fit(x, condition) or fit((x, condition))."
                )
        x = tf.cast(x, "float32")
        return x, condition, sample_weight

    def _loss_and_metrics(self, terms, sample_weight):
        per_example_loss = -terms["objective"]
        loss = tf.nn.compute_average_loss(per_example_loss, sample_weight=sample_weight)
        regularization = tf.add_n(self.losses) if self.losses else None
        if regularization is not None:
            loss += tf.nn.scale_regularization_loss(regularization)
            per_example_loss = per_example_loss + regularization
        return loss, per_example_loss

    def _update_metrics(self, per_example_loss, terms, sample_weight):
        values = {
            "loss": per_example_loss,
            "elbo": terms["elbo"],
            "reconstruction": terms["reconstruction"],
            "kl": terms["kl"],
        }
        if self.penalty is not None:
            values[self.penalty.name] = terms["penalty"]
        for tracker in self._trackers:
            tracker.update_state(values[tracker.name], sample_weight=sample_weight)
        results = {t.name: t.result() for t in self._trackers}
        if self._multi_worker():
            # Keras reduces step outputs across workers with reduce(MEAN, axis=0), which
            # fails on scalars: give it shape [1] (the reduction returns a scalar).
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def _multi_worker(self):
        strategy = self.distribute_strategy
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
            strategy.extended._in_multi_worker_mode()
        )

    def train_step(self, data):
        x, condition, sample_weight = self._unpack(data)
        dreg = self.gradient_estimator == "dreg"
        with tf.GradientTape(persistent=dreg) as tape:
            terms = self.compute_terms(x, condition, seed=self._next_seed(), training=True)
            loss, per_example_loss = self._loss_and_metrics(terms, sample_weight)
            scaled = self.optimizer.scale_loss(loss)
            if dreg:
                encoder_loss, _ = self._loss_and_metrics(
                    {"objective": terms["encoder_objective"]}, sample_weight
                )
                encoder_scaled = self.optimizer.scale_loss(encoder_loss)
        variables = self.trainable_variables
        if dreg:
            # The encoder's gradient is DReG's; the decoder's and prior's stay IWAE's.
            # Each part is differentiated once, against its own objective.
            encoder_ids = {id(v) for v in self.encoder.trainable_variables}
            encoder_vars = [v for v in variables if id(v) in encoder_ids]
            other_vars = [v for v in variables if id(v) not in encoder_ids]
            by_id = dict(zip(map(id, other_vars), tape.gradient(scaled, other_vars)))
            by_id.update(zip(map(id, encoder_vars), tape.gradient(encoder_scaled, encoder_vars)))
            grads = [by_id[id(v)] for v in variables]
            del tape
        else:
            grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._update_metrics(per_example_loss, terms, sample_weight)

    def test_step(self, data):
        x, condition, sample_weight = self._unpack(data)
        terms = self.compute_terms(x, condition, seed=self._next_seed(), training=False)
        _, per_example_loss = self._loss_and_metrics(terms, sample_weight)
        return self._update_metrics(per_example_loss, terms, sample_weight)

    def predict_step(self, data):
        x, condition, _ = self._unpack(data)
        posterior = self.encoder(x, condition=condition, training=False)
        return self.decoder(posterior.mean(), condition=condition, training=False).mean()

    def compile(self, optimizer="adam", loss=None, steps_per_execution="auto", **kwargs):
        """Configures training. The loss comes from the likelihood: ``loss`` must be None.

        Args:
            optimizer: a Keras optimizer or its name (default Adam, learning rate 1e-3).
            loss: must be None.
            steps_per_execution: how many batches one call of the compiled step runs
                (Keras' option), or "auto" (the default): ``fit`` and ``evaluate`` run
                ``AUTO_STEPS_PER_EXECUTION`` (10) batches per call when every callback
                supports it, otherwise 1 (see
                ``probae.reliability.supports_steps_per_execution``), and 1 under a
                ``tf.distribute`` strategy. With ``steps_per_epoch`` (or ``steps``,
                ``validation_steps``) the group is the largest size up to 10 that divides
                it, because Keras always runs whole groups. Grouping steps
                removes Keras' per-batch Python work (about 8% of an MNIST MLP step on
                CPU) and changes nothing in the maths: the same batches, seeds and
                updates in the same order. A callback with batch hooks of its own (a
                per-step beta schedule, ``BackupAndRestore(save_freq=<batches>)``, a
                user's ``on_train_batch_end``) keeps seeing every batch.
            **kwargs: passed to ``keras.Model.compile`` (for example ``jit_compile``).
        """
        auto = isinstance(steps_per_execution, str) and steps_per_execution == "auto"
        if not auto:
            steps_per_execution = check_positive_int(steps_per_execution, "steps_per_execution")
        if loss is not None:
            raise ValueError(
                "loss must be None: a probae model's loss is minus its objective, computed "
                f"from the decoder's log_prob and the KL term. Received: loss={loss!r}"
            )
        if kwargs.get("metrics"):
            raise ValueError(
                "metrics must be empty: the model reports loss, elbo, reconstruction and kl "
                f"itself. Received: metrics={kwargs['metrics']!r}"
            )
        super().compile(
            optimizer=optimizer, steps_per_execution=1 if auto else steps_per_execution, **kwargs
        )
        self._auto_steps_per_execution = auto
        object.__setattr__(self, "_functions_by_steps", {})  # untracked, like _compiled_fns
        if auto:  # saved with the model, so a loaded model keeps choosing
            self._compile_config.config["steps_per_execution"] = "auto"

    def _choose_steps_per_execution(self, callbacks, step_counts=()):
        """With "auto": 10 steps per call if every callback supports it, else 1.

        Keras runs whole groups: with steps_per_epoch=25 and 10 per call an epoch would be
        30 steps. Given step counts, the group size is the largest one up to 10 that
        divides every count.
        """
        if not getattr(self, "_auto_steps_per_execution", False):
            return
        if isinstance(callbacks, keras.callbacks.CallbackList):
            callbacks = callbacks.callbacks
        elif isinstance(callbacks, keras.callbacks.Callback):
            callbacks = [callbacks]
        safe = all(reliability.supports_steps_per_execution(cb) for cb in callbacks or ())
        # Under a tf.distribute strategy Keras' multi-step loop fails to run this model's
        # step (TF 2.21: "You must feed a value for placeholder tensor while/cond/..."):
        # one step per call there.
        distributed = tf.distribute.has_strategy() or getattr(self, "_distribute_strategy", None) is not None
        steps = AUTO_STEPS_PER_EXECUTION if safe and not distributed else 1
        counts = [c for c in step_counts if c]
        while steps > 1 and any(c % steps for c in counts):
            steps -= 1
        if steps == self.steps_per_execution:
            return
        # Keras traces its step loop for one steps_per_execution: keep one per value.
        # (predict's too: traced for one batch, it would read only the first of each group).
        cache = self._functions_by_steps
        cache[self.steps_per_execution] = (
            self.train_function, self.test_function, self.predict_function
        )
        self.steps_per_execution = steps
        self.train_function, self.test_function, self.predict_function = cache.get(
            steps, (None, None, None)
        )

    def compile_from_config(self, config):
        """Restores the compiled state (optimizer and its slots) when a model is loaded."""
        config = keras.saving.deserialize_keras_object(config)
        config = {k: v for k, v in config.items() if k not in ("loss", "metrics", "loss_weights", "weighted_metrics")}
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------ input checks
    def _prepare_x(self, x, name="x"):
        arr = as_float_array(x, name, event_shape=self.event_shape)
        if not self.built:
            self.build((None, *arr.shape[1:]))
        self.decoder.check_support(arr, name)
        return arr

    def _prepare_condition(self, condition, n, name="condition"):
        if self.condition_shape is None:
            if condition is not None:
                raise ValueError(
                    f"{name} must be None: this model has no condition (condition_shape=None)."
                )
            return None
        if condition is None:
            raise ValueError(
                f"{name} is required: this model was built with condition_shape="
                f"{self.condition_shape}. Received: {name}=None"
            )
        c = as_float_array(condition, name, event_shape=self.condition_shape)
        if len(c) != n:
            raise ValueError(
                f"{name} must have one row per example ({n}). Received: {len(c)} rows"
            )
        return c

    def _prepare_array_data(self, x, y, name="x"):
        """Validates NumPy-like training data; returns (x, y) ready for Keras."""
        if self.condition_shape is not None and isinstance(x, (tuple, list)) and len(x) == 2:
            x, y = x
        x = self._prepare_x(x, name)
        if self.condition_shape is not None:
            y = self._prepare_condition(y, len(x))
        return x, y

    @staticmethod
    def _check_loop_options(kwargs, *required):
        """Validates fit/evaluate's batch_size, epochs and steps keyword arguments."""
        for name in ("batch_size", "epochs", "steps_per_epoch", "validation_batch_size", "validation_steps", "steps"):
            if name in kwargs:
                allow_none = name not in required
                kwargs[name] = check_positive_int(kwargs[name], name, allow_none=allow_none)

    @staticmethod
    def _is_array_like(x):
        return isinstance(x, (np.ndarray, list, tf.Tensor)) or (
            isinstance(x, tuple) and all(isinstance(v, (np.ndarray, list, tf.Tensor)) for v in x)
        )

    def _build_from_dataset(self, x):
        if self.built:
            return
        if isinstance(x, keras.utils.PyDataset):
            # A PyDataset can be indexed: build from the shape of its first batch.
            first = x[0]
            while isinstance(first, (tuple, list)):
                first = first[0]
            self.build((None, *np.shape(first)[1:]))
            return
        if not isinstance(x, tf.data.Dataset):
            return
        spec = x.element_spec
        while isinstance(spec, (tuple, list)):
            spec = spec[0]
        self.build((None, *spec.shape[1:]))

    def _prepare_keras_inputs(self, x, y):
        """Validates arrays (dropping an unconditional model's y), or builds from a Dataset."""
        if self._is_array_like(x):
            x, y = self._prepare_array_data(x, y)
            return x, (y if self.condition_shape is not None else None)
        self._build_from_dataset(x)
        if inspect.isgenerator(x):
            # Keras wants generators to yield tuples; a bare batch of x is the usual thing
            # for an unconditional model, so wrap it as (x,).
            x = (b if isinstance(b, tuple) else (b,) for b in x)
        return x, y

    def fit(self, x=None, y=None, *args, validation_data=None, stop_on_nan=True, **kwargs):
        """Trains the model (``keras.Model.fit``), validating array inputs first.

        ``x`` may be an array, ``(x, condition)`` for conditional models, or a
        ``tf.data.Dataset``. For unconditional models a ``y`` is ignored, so
        ``fit(x, x)`` also works. With ``stop_on_nan`` (the default) a
        ``probae.StopOnNaN`` callback runs first: training raises
        ``probae.NonFiniteLossError`` at the first step whose loss is NaN or infinite,
        before later callbacks can checkpoint the broken weights.
        """
        self._check_loop_options(kwargs, "epochs")
        if stop_on_nan:
            kwargs["callbacks"] = reliability.with_nan_guard(kwargs.get("callbacks"))
        x, y = self._prepare_keras_inputs(x, y)
        if isinstance(validation_data, tuple) and self._is_array_like(validation_data[0]):
            vx, vy = self._prepare_array_data(
                validation_data[0], validation_data[1] if len(validation_data) > 1 else None,
                "validation_data",
            )
            validation_data = (vx, vy) if vy is not None else (vx,)
        elif self._is_array_like(validation_data):
            validation_data = (self._prepare_x(validation_data, "validation_data"),)
        if not self.built:
            raise ValueError(
                "The model is not built and its input shape cannot be read from x (a "
                f"{type(x).__name__}: a Python generator cannot be inspected without "
                "consuming it): pass input_shape=... to the model or call "
                "model.build((None, *shape)) first."
            )
        if not self.compiled:
            self.compile()
        self._choose_steps_per_execution(
            kwargs.get("callbacks"),
            (kwargs.get("steps_per_epoch"), kwargs.get("validation_steps")),
        )
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates loss, elbo, reconstruction and kl (``keras.Model.evaluate``)."""
        self._check_loop_options(kwargs)
        x, y = self._prepare_keras_inputs(x, y)
        if not self.compiled:
            self.compile()
        if not kwargs.get("_use_cached_eval_dataset", False):  # fit's validation: fit chose
            self._choose_steps_per_execution(kwargs.get("callbacks"), (kwargs.get("steps"),))
        return super().evaluate(x, y, *args, **kwargs)

    # ------------------------------------------------------------------ user methods
    def encode(self, x, condition=None):
        """Returns the posterior q(z|x), a distribution with batch shape ``[len(x)]``."""
        x = self._prepare_x(x)
        c = self._prepare_condition(condition, len(x))
        return self.encoder(x, condition=c, training=False)

    def decode(self, z, condition=None):
        """Returns the likelihood p(x|z), a distribution with batch shape ``[len(z)]``."""
        self._require_built()
        z = as_float_array(z, "z", event_shape=(self.latent_dim,))
        c = self._prepare_condition(condition, len(z))
        return self.decoder(z, condition=c, training=False)

    def _require_built(self):
        if not self.built:
            raise ValueError(
                "The model is not built: train it, pass input_shape=..., or call "
                "model.build((None, *shape)) first."
            )

    def _fn(self, key, python_fn):
        fns = self._compiled_fns
        if key not in fns:
            fns[key] = tf.function(python_fn, reduce_retracing=True)
        return fns[key]

    @staticmethod
    def _slices(n, batch_size):
        for start in range(0, n, batch_size):
            yield slice(start, min(start + batch_size, n))

    def reconstruct(self, x, condition=None, batch_size=256, sample=False, seed=None):
        """Reconstructs x: the decoder's mean at the encoder's mean (by default).

        Args:
            x: data ``[n, *event_shape]``.
            condition: condition ``[n, *condition_shape]`` for conditional models.
            batch_size: examples per network call.
            sample: draw z from q(z|x) instead of taking its mean.
            seed: seed of that draw.

        Returns:
            A NumPy array of the same shape as x.
        """
        x = self._prepare_x(x)
        c = self._prepare_condition(condition, len(x))
        batch_size = check_positive_int(batch_size, "batch_size")
        seed = _to_seed_tensor(check_seed(seed))

        def run(xb, cb, seed):
            posterior = self.encoder(xb, condition=cb, training=False)
            z = posterior.sample(seed=seed) if sample else posterior.mean()
            return self.decoder(z, condition=cb, training=False).mean()

        fn = self._fn(("reconstruct", sample), run)
        out = [
            fn(x[s], None if c is None else c[s], tf.random.experimental.stateless_fold_in(seed, i))
            for i, s in enumerate(self._slices(len(x), batch_size))
        ]
        return np.concatenate([o.numpy() for o in out])

    def sample(self, n, seed=None, condition=None, mean=False):
        """Generates n examples: z ~ p(z), then x ~ p(x|z) (or its mean).

        Args:
            n: number of examples.
            seed: int seed, or None.
            condition: for conditional models, ``[n, *condition_shape]`` or one condition
                ``[*condition_shape]`` used for all n.
            mean: return the decoder's mean E[x|z] (smooth images) instead of a draw.

        Returns:
            A NumPy array ``[n, *event_shape]``.
        """
        self._require_built()
        n = check_positive_int(n, "n")
        seed = _to_seed_tensor(check_seed(seed))
        if condition is not None and self.condition_shape is not None:
            c = np.asarray(condition)
            if c.shape == tuple(self.condition_shape):
                condition = np.broadcast_to(c, (n, *c.shape))
        c = self._prepare_condition(condition, n)
        z_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        z = self.prior.distribution(self.encoder).sample(n, seed=z_seed)
        likelihood = self.decoder(z, condition=c, training=False)
        x = likelihood.mean() if mean else likelihood.sample(seed=x_seed)
        return keras.ops.convert_to_numpy(x)

    def elbo(self, x, condition=None, num_samples=1, seed=None, batch_size=256, return_terms=False):
        """The ELBO per example (beta = 1), in nats.

        Args:
            x: data ``[n, *event_shape]``.
            condition: for conditional models.
            num_samples: samples for the reconstruction term (the KL is analytic where
                possible).
            seed: int seed or None.
            batch_size: examples per network call.
            return_terms: also return the reconstruction and KL terms.

        Returns:
            ``[n]`` NumPy array, or with ``return_terms`` a dict of ``[n]`` arrays with keys
            ``elbo``, ``reconstruction`` and ``kl``.
        """
        x = self._prepare_x(x)
        c = self._prepare_condition(condition, len(x))
        k = check_positive_int(num_samples, "num_samples")
        batch_size = check_positive_int(batch_size, "batch_size")
        seed = _to_seed_tensor(check_seed(seed))

        def run(xb, cb, seed):
            posterior = self.encoder(xb, condition=cb, training=False)
            prior = self.prior.distribution(self.encoder)
            terms = objectives.elbo(xb, posterior, self._decode_fn(cb, k), prior, num_samples=k, seed=seed)
            return {key: terms[key] for key in ("elbo", "reconstruction", "kl")}

        fn = self._fn(("elbo", k), run)
        parts = [
            fn(x[s], None if c is None else c[s], tf.random.experimental.stateless_fold_in(seed, i))
            for i, s in enumerate(self._slices(len(x), batch_size))
        ]
        terms = {key: np.concatenate([p[key].numpy() for p in parts]) for key in parts[0]}
        return terms if return_terms else terms["elbo"]

    def log_likelihood(
        self, x, condition=None, num_samples=1000, seed=None, batch_size=None, verbose=0, return_terms=False
    ):
        """Importance-sampling estimate of log p(x) per example, in nats.

        log p(x) ~= log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): the IWAE
        bound with k = ``num_samples``. It is biased low (by O(1/k)) and rises to log p(x)
        as k grows. Computed in chunks of examples and of samples, with a running
        log-sum-exp, so memory stays bounded for any k (k = 5000 on 10,000 MNIST images
        fits in a few hundred MB).

        Args:
            x: data ``[n, *event_shape]``.
            condition: for conditional models.
            num_samples: k, importance samples per example.
            seed: int seed (the same seed and batch_size give the same estimates) or None.
            batch_size: examples per chunk (default: chosen from k and the data's size).
            verbose: 1 shows a progress bar.
            return_terms: also return, from the same samples, the ELBO and its parts and
                the diagnostics of the importance weights w_k = p(x, z_k) / q(z_k|x).

        Returns:
            ``[n]`` NumPy array of estimates of log p(x); with ``return_terms`` a dict of
            ``[n]`` arrays: ``log_likelihood``, ``elbo`` (= reconstruction - kl),
            ``reconstruction`` (the k-sample mean of log p(x|z_k)), ``kl`` (analytic where
            TFP registers it, else the k-sample Monte Carlo mean of log q - log p),
            ``effective_sample_size`` ((sum w)^2 / sum w^2, between 1 and k) and
            ``mc_stderr`` (the delta-method Monte Carlo standard error of the estimate,
            sqrt((k sum w^2 / (sum w)^2 - 1) / k)).

        References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders.
        """
        x = self._prepare_x(x)
        c = self._prepare_condition(condition, len(x))
        k = check_positive_int(num_samples, "num_samples")
        dim = int(np.prod(self.event_shape))
        if batch_size is None:
            batch_size = min(100, len(x))
        batch_size = check_positive_int(batch_size, "batch_size")
        chunk = max(1, min(k, _MAX_ELEMENTS // (dim * batch_size)))
        num_chunks = math.ceil(k / chunk)
        seed = _to_seed_tensor(check_seed(seed))

        def run(xb, cb, seed):
            posterior = self.encoder(xb, condition=cb, training=False)
            prior = self.prior.distribution(self.encoder)
            decode = self._decode_fn(cb, chunk)

            def body(i, lse, lse2, sum_px, sum_pxw):
                s = tf.random.experimental.stateless_fold_in(seed, i)
                log_w, log_px_z, _ = objectives.log_weights(xb, posterior, decode, prior, chunk, s)
                valid = (tf.range(chunk) + i * chunk < k)[:, None]
                masked = tf.where(valid, log_w, -np.inf)
                # Running log-sum-exps of w and w^2, and sums for the ELBO terms.
                lse = tf.reduce_logsumexp(tf.stack([lse, tf.reduce_logsumexp(masked, axis=0)]), axis=0)
                lse2 = tf.reduce_logsumexp(tf.stack([lse2, tf.reduce_logsumexp(2 * masked, axis=0)]), axis=0)
                sum_px += tf.reduce_sum(tf.where(valid, log_px_z, 0.0), axis=0)
                sum_pxw += tf.reduce_sum(tf.where(valid, log_px_z - log_w, 0.0), axis=0)
                return i + 1, lse, lse2, sum_px, sum_pxw

            n = tf.shape(xb)[0]
            minus_inf = tf.fill([n], tf.constant(-np.inf, tf.float32))
            zeros = tf.zeros([n], tf.float32)
            _, lse, lse2, sum_px, sum_pxw = tf.while_loop(
                lambda i, *_: i < num_chunks, body, (tf.constant(0), minus_inf, minus_inf, zeros, zeros)
            )
            reconstruction = sum_px / k
            try:
                kl, _ = objectives.kl_divergence(posterior, prior)
            except ValueError:  # no closed form: the Monte Carlo mean of log q - log p
                kl = sum_pxw / k
            log_ess = 2 * lse - lse2
            relative_variance = tf.maximum(k * tf.exp(-log_ess) - 1.0, 0.0)
            return {
                "log_likelihood": lse - math.log(k),
                "elbo": reconstruction - kl,
                "reconstruction": reconstruction,
                "kl": kl,
                "effective_sample_size": tf.exp(log_ess),
                "mc_stderr": tf.sqrt(relative_variance / k),
            }

        fn = self._fn(("log_likelihood", k, chunk), run)
        progbar = keras.utils.Progbar(len(x), unit_name="example") if verbose else None
        parts = []
        for i, s in enumerate(self._slices(len(x), batch_size)):
            out = fn(x[s], None if c is None else c[s], tf.random.experimental.stateless_fold_in(seed, i))
            parts.append({key: value.numpy() for key, value in out.items()})
            if progbar is not None:
                progbar.add(s.stop - s.start)
        terms = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        return terms if return_terms else terms["log_likelihood"]

    # ------------------------------------------------------------------ saving
    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the model to a ``.keras`` file, atomically (``probae.atomic_save``).

        The file is written beside the target under a temporary name and renamed over
        it, so an interrupted save never leaves a corrupt file in place of a good one.
        Load it with ``probae.load_model``.
        """
        reliability.atomic_save(super().save, filepath, overwrite=overwrite, **kwargs)

    def save_own_variables(self, store):
        # The sampling seed's state is saved too, so a resumed run draws the same noise.
        super().save_own_variables(store)
        store["sampling_seed_state"] = self.seed_generator.state

    def load_own_variables(self, store):
        if "sampling_seed_state" in store:
            self.seed_generator.state.assign(store["sampling_seed_state"])
            store = {k: store[k] for k in store.keys() if k != "sampling_seed_state"}
        super().load_own_variables(store)

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "prior": keras.saving.serialize_keras_object(self.prior),
            "beta": self.beta,
            "num_samples": self.num_samples,
            "objective": self.objective,
            "free_bits": self.free_bits,
            "condition_shape": None if self.condition_shape is None else list(self.condition_shape),
            "input_shape": None if self.event_shape is None else list(self.event_shape),
            "seed": self.seed,
            "penalty": None if self.penalty is None else keras.saving.serialize_keras_object(self.penalty),
            "corruption": (
                None if self.corruption is None else keras.saving.serialize_keras_object(self.corruption)
            ),
            "gradient_estimator": self.gradient_estimator,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
