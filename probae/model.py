"""The one model class: ``ProbabilisticAutoencoder``.

An encoder maps x to q(z|x), a decoder maps z to p(x|z), a prior gives p(z), and an
objective (``probae.objectives``: the ELBO, the importance-weighted bound, ...) turns
them into per-example terms. Every named variant (autoencoder, VAE, beta-VAE, IWAE, ...)
is a configuration of this class; see ``probae.presets``. This module holds the model's
Keras steps and its user methods; the maths lives in ``objectives`` and ``estimators``,
input checks in ``inputs``, the step-grouping policy in ``execution`` and file handling
in ``saving``.
"""

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from probae import callbacks as callbacks_lib
from probae import estimators, execution, inputs, objectives, posteriors, priors, saving
from probae._validation import (
    as_float_array,
    check_array_size,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_shape,
)
from probae.corruption import get_corruption
from probae.decoders import Decoder
from probae.encoders import Encoder
from probae.penalties import get_penalty
from probae.priors import Prior, StandardNormalPrior
from probae.seeds import batch_seed, seed_tensor, split_seed

__all__ = ["ProbabilisticAutoencoder"]

_PARTS = ("encoder", "decoder", "prior")


def _checked_optimizer(optimizer):
    """``keras.optimizers.get(optimizer)``, refusing a learning rate that is not finite > 0."""
    try:
        optimizer = keras.optimizers.get(optimizer)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "optimizer must be a Keras optimizer or its name (such as 'adam'). Received: "
            f"optimizer={optimizer!r} ({err})"
        ) from None
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    rate = getattr(inner, "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(0)
    if rate is not None:
        value = float(keras.ops.convert_to_numpy(rate))
        if not np.isfinite(value) or value <= 0:
            raise ValueError(
                f"learning_rate must be a finite number > 0. Received: learning_rate={value!r} "
                f"(optimizer {type(inner).__name__})"
            )
    return optimizer


def _map_code(fn, code_shape):
    """Applies fn to each shape of a code: one shape, or a dict of named shapes."""
    if isinstance(code_shape, dict):
        return {name: fn(shape) for name, shape in code_shape.items()}
    return fn(code_shape)


def _join_batches(parts):
    """Joins per-batch distributions into one along the batch axis: tensors with one row
    per example are concatenated, the others (scalar parameters such as tolerances) must
    agree and are kept."""
    sizes = [int(tf.nest.flatten(posteriors.point_estimate(p))[0].shape[0]) for p in parts]
    flat = [tf.nest.flatten(p, expand_composites=True) for p in parts]
    joined = []
    for leaves in zip(*flat):
        if all(t.shape.rank and t.shape[0] == n for t, n in zip(leaves, sizes)):
            joined.append(tf.concat(leaves, axis=0))
        elif all(t.shape == leaves[0].shape for t in leaves) and all(
            bool(tf.reduce_all(t == leaves[0])) for t in leaves
        ):
            joined.append(leaves[0])
        else:
            raise ValueError("the batches' parameters cannot be joined")
    return tf.nest.pack_sequence_as(parts[0], joined, expand_composites=True)


@keras.saving.register_keras_serializable(package="probae")
class ProbabilisticAutoencoder(keras.Model):
    """An autoencoder whose encoder and decoder output distributions.

    Training maximises the ``objective`` averaged over examples, by default the ELBO

        ELBO(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))

    (``probae.ELBO``; ``probae.IWAE`` for the importance-weighted bound,
    ``probae.RenyiBound`` for the Renyi bound). ``fit`` and ``evaluate`` report ``loss``
    (minus the objective, plus any layer regularisation) and the terms the objective
    names (for the ELBO ``elbo``, the true bound with beta = 1, ``reconstruction``
    E_q log p(x|z) and ``kl``), all in nats per example, plus a code penalty's term.

    A point-mass encoder (``probae.DeterministicEncoder``) has no prior unless one is
    given: its objective is the reconstruction log-likelihood (binary cross-entropy for a
    Bernoulli decoder, half the squared error plus a constant for a unit-scale Gaussian
    one), and it logs ``loss`` and ``reconstruction`` only.

    The code z may be one tensor ``[batch, latent_dim]`` or a dict of named tensors (a
    hierarchy of latents, see docs/design.md): the encoder's distribution decides, and
    the model passes its samples to the decoder and the prior as they are.

    Args:
        encoder: a ``probae`` encoder (x -> q(z|x)).
        decoder: a ``probae`` decoder (z -> p(x|z)).
        prior: a ``probae`` prior; None gives N(0, I), or no prior for a point-mass
            encoder.
        beta, num_samples, free_bits, gradient_estimator: shorthand options of a string
            ``objective`` (see ``probae.objectives.get``); None leaves the objective's
            default. An objective object carries its own options.
        objective: a ``probae`` objective (``probae.ELBO(beta=4.0)``,
            ``probae.IWAE(num_samples=5)``, ...) or the shorthand "elbo", "iwae",
            "renyi".
        penalty: None or a code penalty (for example ``probae.SparsityPenalty``)
            subtracted from the objective; logged under its name (e.g. ``sparsity``).
        corruption: None, a rate in [0, 1) (masking noise) or a ``probae`` corruption
            (``GaussianNoise``, ``MaskingNoise``, ``SaltAndPepperNoise``) applied to the
            encoder's input in training only; the likelihood is of the clean input.
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
        beta=None,
        num_samples=None,
        objective="elbo",
        free_bits=None,
        condition_shape=None,
        input_shape=None,
        seed=None,
        penalty=None,
        corruption=None,
        gradient_estimator=None,
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
        if beta is not None:
            beta = check_non_negative_float(beta, "beta")
        if num_samples is not None:
            num_samples = check_positive_int(num_samples, "num_samples")
        self.objective = objectives.get(
            objective,
            beta=beta,
            num_samples=num_samples,
            free_bits=free_bits,
            gradient_estimator=gradient_estimator,
        )
        if prior is None and not encoder.point_mass:
            prior = StandardNormalPrior()
        self.objective.check(encoder, prior)
        self.penalty = get_penalty(penalty)
        self.corruption = get_corruption(corruption)
        self.seed = check_seed(seed)
        self.condition_shape = (
            None if condition_shape is None else check_shape(condition_shape, "condition_shape")
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
        self.prior = prior
        # The KL weight lives in a variable (saved with the model) that schedules anneal.
        initial_beta = (
            self.objective.initial_value("beta") if "beta" in self.objective.annealable else 1.0
        )
        self.beta_variable = keras.Variable(
            initial_beta, trainable=False, name="beta", dtype="float32"
        )
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        names = ("loss",) + tuple(self.objective.metric_names(prior is not None))
        if self.penalty is not None:
            names += (self.penalty.name,)
        self._trackers = [keras.metrics.Mean(name=n) for n in names]
        # tf.functions (and has_density), untracked by Keras
        object.__setattr__(self, "_traced", {})
        object.__setattr__(self, "_step_grouping", None)
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
        code_input_shape = _map_code(lambda s: (None, *s), self.encoder.code_shape)
        self.decoder.set_event_shape(event_shape)
        if not self.decoder.built:
            self.decoder.build(code_input_shape)
        if self.prior is not None:
            self.prior.set_data_shape(event_shape)
            if not self.prior.built:
                self.prior.build(code_input_shape)
        self.built = True

    def get_build_config(self):
        if self.event_shape is None:
            return None
        return {"input_shape": [None, *self.event_shape]}

    @property
    def latent_dim(self):
        """The size of a flat code (None for a structured one)."""
        return getattr(self.encoder, "latent_dim", None)

    @property
    def code_shape(self):
        """The shape of one code: a tuple, or a dict of named shapes."""
        return self.encoder.code_shape

    @property
    def num_samples(self):
        """Posterior samples per example in training (the objective's)."""
        return self.objective.num_samples

    @property
    def gradient_estimator(self):
        """The objective's gradient estimator ("iwae", "dreg"), or None."""
        return getattr(self.objective, "gradient_estimator", None)

    @property
    def free_bits(self):
        """The objective's free-bits floor, or None."""
        return getattr(self.objective, "free_bits", None)

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

    def summary(self, *args, print_fn=None, **kwargs):
        """Keras' summary, then a line for each head probae added to a user's network."""
        super().summary(*args, print_fn=print_fn, **kwargs)
        notes = [
            f"probae added a Dense head ({part.head.count_params()} parameters) on top of "
            f"your {name} network: its output did not fit the {type(part).__name__}'s "
            "parameters (head=False makes that an error)."
            for name, part in (("encoder", self.encoder), ("decoder", self.decoder))
            if getattr(part, "added_head", False)
        ]
        for note in notes:
            (print_fn or print)(note)

    # ------------------------------------------------------------------ public accessors
    def posterior(self, x, condition=None, training=False):
        """q(z|x) for a batch of tensors (no validation; see ``encode`` for arrays)."""
        return self.encoder(x, condition=condition, training=training)

    def decoder_fn(self, condition=None, num_samples=1, training=False):
        """A callable z -> p(x|z) for codes with k samples folded into the batch.

        The condition of a conditional model is repeated k times (sample-major), to match
        codes ``[k * batch, ...]`` (``probae.estimators.merge_sample_axis``).
        """
        if condition is not None:
            condition = estimators.tile_samples(condition, num_samples)
        return lambda z: self.decoder(z, condition=condition, training=training)

    def prior_distribution(self):
        """p(z) as a distribution, or None for a model without a prior."""
        return None if self.prior is None else self.prior.distribution(self.encoder)

    def traced(self, key, python_fn):
        """A ``tf.function`` of ``python_fn``, traced once per ``key`` for this model."""
        if key not in self._traced:
            self._traced[key] = tf.function(python_fn, reduce_retracing=True)
        return self._traced[key]

    def check_inputs(self, x, condition=None, name="x"):
        """Validates arrays for this model: returns ``(x, condition)`` as float32 arrays.

        Raises:
            ValueError, TypeError: see ``probae.inputs.check_x``.
        """
        x = inputs.check_x(self, x, name)
        return x, inputs.check_condition(self, condition, len(x))

    @property
    def has_density(self):
        """Whether q(z|x) has a density and a prior exists, so that bounds on log p(x)
        (``elbo``, ``log_likelihood``) are defined. False for a point-mass encoder."""
        self._require_built()
        if "has_density" not in self._traced:  # a property of the layers: asked once
            if self.prior is None:
                self._traced["has_density"] = False
            else:
                x = tf.zeros((1, *self.event_shape))
                c = None if self.condition_shape is None else tf.zeros((1, *self.condition_shape))
                posterior = self.posterior(x, condition=c)
                self._traced["has_density"] = not posteriors.is_point_mass(posterior)
        return self._traced["has_density"]

    def _require_density(self, what):
        if not self.has_density:
            raise ValueError(
                f"{what} needs a model whose q(z|x) has a density and a prior p(z). This "
                "model's encoder is a point mass"
                + (" without a prior" if self.prior is None else "")
                + ": its log p(x, z) at one code is not a bound on log p(x). Use "
                "model.evaluate (reconstruction) or anomaly_scores(method='reconstruction')."
            )

    # ------------------------------------------------------------------ the maths
    def compute_terms(
        self, x, condition=None, seed=None, training=False, num_samples=None, target=None
    ):
        """Per-example objective terms on a batch of tensors (no validation).

        The encoder reads x (corrupted in training when the model has a corruption); the
        likelihood scores ``target`` (default x: an autoencoder; paired data otherwise).

        Returns:
            The objective's dict of ``[batch]`` terms (plus ``penalty`` with a penalty).
        """
        objective = self.objective
        if num_samples is not None and num_samples != objective.num_samples:
            objective = type(objective).from_config(
                {**objective.get_config(), "num_samples": int(num_samples)}
            )
        encoder_input = x
        if training and self.corruption is not None:
            encoder_input = self.corruption(x, seed)
        posterior = self.posterior(encoder_input, condition=condition, training=training)
        weights = {}
        if "beta" in objective.annealable:
            weights["beta"] = tf.convert_to_tensor(self.beta_variable)
        terms = objective(
            x if target is None else target,
            posterior,
            self.decoder_fn(condition, objective.num_samples, training),
            self.prior_distribution(),
            seed,
            **weights,
        )
        if self.penalty is not None:
            penalty = self.penalty(posteriors.point_estimate(posterior))
            terms["penalty"] = penalty
            for key in ("objective", *objective.surrogates.values()):
                terms[key] = terms[key] - penalty
        return terms

    def call(self, inputs, training=None):
        """Returns p(x|z) for z drawn from q(z|x) in training, the point estimate otherwise.

        ``inputs`` is x, or ``(x, condition)`` for a conditional model.
        """
        x, condition = inputs, None
        if self.condition_shape is not None and isinstance(inputs, (tuple, list)):
            x, condition = inputs[0], inputs[1]
        posterior = self.posterior(x, condition=condition, training=training)
        z = (
            posterior.sample(seed=self._next_seed())
            if training
            else posteriors.point_estimate(posterior)
        )
        return self.decoder(z, condition=condition, training=training)

    def _next_seed(self):
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        # Under a distribution strategy every replica reads the same generator state:
        # fold in the replica's index so replicas draw independent noise for their shards.
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            seed = batch_seed(seed, ctx.replica_id_in_sync_group)
        return seed

    # ------------------------------------------------------------------ Keras steps
    def _loss(self, objective, sample_weight):
        """(the batch loss, the per-example loss) of a per-example objective.

        With sample weights the loss is the weighted mean sum(w l) / sum(w), so a weight
        of 2 counts an example twice and zero weights contribute nothing.
        """
        per_example_loss = -objective
        if sample_weight is None:
            loss = tf.nn.compute_average_loss(per_example_loss)
        else:
            w = tf.reshape(tf.cast(sample_weight, per_example_loss.dtype), [-1])
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss = (
                tf.math.divide_no_nan(tf.reduce_sum(w * per_example_loss), tf.reduce_sum(w))
                / replicas
            )
        if self.losses:
            regularization = tf.add_n(self.losses)
            loss += tf.nn.scale_regularization_loss(regularization)
            per_example_loss = per_example_loss + regularization
        return loss, per_example_loss

    def _update_metrics(self, per_example_loss, terms, sample_weight):
        values = dict(terms, loss=per_example_loss)
        if self.penalty is not None:
            values[self.penalty.name] = terms["penalty"]
        for tracker in self._trackers:
            tracker.update_state(values[tracker.name], sample_weight=sample_weight)
        results = {t.name: t.result() for t in self._trackers}
        return execution.worker_results(self.distribute_strategy, results)

    def _gradients(self, tape, losses, variables):
        """Each variable's gradient from its part's surrogate loss, or the main loss."""
        if len(losses) == 1:
            return tape.gradient(losses[None], variables)
        owner = {}
        for part in losses:
            layer = getattr(self, part, None) if part is not None else None
            for v in getattr(layer, "trainable_variables", ()):
                owner[id(v)] = part
        by_id = {}
        for part, loss in losses.items():
            group = [v for v in variables if owner.get(id(v)) == part]
            by_id.update(zip(map(id, group), tape.gradient(loss, group)))
        return [by_id[id(v)] for v in variables]

    def train_step(self, data):
        x, condition, target, sample_weight = inputs.unpack(self, data)
        surrogates = {p: k for p, k in self.objective.surrogates.items() if p in _PARTS}
        with tf.GradientTape(persistent=bool(surrogates)) as tape:
            terms = self.compute_terms(
                x, condition, seed=self._next_seed(), training=True, target=target
            )
            loss, per_example_loss = self._loss(terms["objective"], sample_weight)
            losses = {None: self.optimizer.scale_loss(loss)}
            for part, key in surrogates.items():
                losses[part] = self.optimizer.scale_loss(self._loss(terms[key], sample_weight)[0])
        variables = self.trainable_variables
        grads = self._gradients(tape, losses, variables)
        del tape
        self.optimizer.apply(grads, variables)
        return self._update_metrics(per_example_loss, terms, sample_weight)

    def test_step(self, data):
        x, condition, target, sample_weight = inputs.unpack(self, data)
        terms = self.compute_terms(
            x, condition, seed=self._next_seed(), training=False, target=target
        )
        _, per_example_loss = self._loss(terms["objective"], sample_weight)
        return self._update_metrics(per_example_loss, terms, sample_weight)

    def predict_step(self, data):
        x, condition, _, _ = inputs.unpack(self, data)
        posterior = self.posterior(x, condition=condition)
        return self.decoder(posteriors.point_estimate(posterior), condition=condition).mean()

    def compile(self, optimizer="adam", loss=None, steps_per_execution="auto", **kwargs):
        """Configures training. The loss comes from the likelihood: ``loss`` must be None.

        Args:
            optimizer: a Keras optimizer or its name (default Adam, learning rate 1e-3).
            loss: must be None.
            steps_per_execution: how many batches one call of the compiled step runs
                (Keras' option), or "auto" (the default): ``fit`` and ``evaluate`` run
                ``probae.execution.AUTO_STEPS_PER_EXECUTION`` batches per call when every
                callback supports it, otherwise 1 (see
                ``probae.execution.supports_steps_per_execution``), and 1 under a
                ``tf.distribute`` strategy. With ``steps_per_epoch`` (or ``steps``,
                ``validation_steps``) the group is the largest size up to 10 that divides
                it, because Keras always runs whole groups. Grouping steps
                removes Keras' per-batch Python work (BENCHMARKS.md, "Throughput", has
                its cost) and changes nothing in the maths: the same batches, seeds and
                updates in the same order. A callback with batch hooks of its own (a
                per-step beta schedule, ``BackupAndRestore(save_freq=<batches>)``, a
                user's ``on_train_batch_end``) keeps seeing every batch.
            **kwargs: passed to ``keras.Model.compile`` (for example ``jit_compile``).

        Raises:
            ValueError: the optimizer is unknown, or its learning rate (the first value
                of a schedule) is not a finite number > 0: a NaN, infinite, zero or
                negative rate would make every update break or undo training.
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
                "metrics must be empty: the model reports its objective's terms "
                f"({', '.join(t.name for t in self._trackers)}) itself. Received: "
                f"metrics={kwargs['metrics']!r}"
            )
        optimizer = _checked_optimizer(optimizer)
        super().compile(
            optimizer=optimizer, steps_per_execution=1 if auto else steps_per_execution, **kwargs
        )
        object.__setattr__(self, "_step_grouping", execution.StepGrouping() if auto else None)
        if auto:  # saved with the model, so a loaded model keeps choosing
            self._compile_config.config["steps_per_execution"] = "auto"

    def compile_from_config(self, config):
        """Restores the compiled state (optimizer and its slots) when a model is loaded."""
        config = keras.saving.deserialize_keras_object(config)
        config = {
            k: v
            for k, v in config.items()
            if k not in ("loss", "metrics", "loss_weights", "weighted_metrics")
        }
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------ fit / evaluate
    def _group_steps(self, callbacks, step_counts, epoch_steps=None):
        if self._step_grouping is not None:
            self._step_grouping.choose(self, callbacks, step_counts, epoch_steps)

    @staticmethod
    def _array_steps(x, kwargs):
        """Batches per epoch of array data (None for datasets): a group of steps never
        exceeds it, so Keras' progress bar counts the epoch's real batches."""
        first = x[0] if isinstance(x, tuple) else x
        if not isinstance(first, np.ndarray):
            return None
        return -(-len(first) // (kwargs.get("batch_size") or 32))

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        *args: Any,
        validation_data: Any = None,
        stop_on_nan: bool = True,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        """Trains the model (``keras.Model.fit``), validating array inputs first.

        ``x`` may be an array, ``(x, condition)`` for conditional models, or a
        ``tf.data.Dataset``. ``y``: for an unconditional model, the target the model
        learns to reconstruct from x (paired denoising or translation: ``fit(noisy,
        clean)``, of the same shape as x; ``fit(x, x)`` is the plain autoencoder); for a
        conditional model, the condition (``fit(x, condition)``; one-hot rows or integer
        class labels), with ``fit((x, condition), y)`` for a target. A dataset's
        ``(x, y)`` pairs are read the same way. ``sample_weight`` weights each example's
        loss (the weighted mean sum(w l) / sum(w)). With ``stop_on_nan`` (the default) a
        ``probae.StopOnNaN`` callback runs first: training raises
        ``probae.NonFiniteLossError`` at the first step whose loss is NaN or infinite,
        before later callbacks can checkpoint the broken weights.
        """
        inputs.check_loop_options(kwargs, "epochs")
        if stop_on_nan:
            kwargs["callbacks"] = callbacks_lib.with_nan_guard(kwargs.get("callbacks"))
        x, y, sample_weight = inputs.keras_inputs(self, x, y, kwargs.pop("sample_weight", None))
        if not inputs.is_array_like(x):  # datasets and generators come shuffled or not
            kwargs.setdefault("shuffle", False)
        validation_data = inputs.validation_inputs(self, validation_data)
        if not self.built:
            raise ValueError(
                "The model is not built and its input shape cannot be read from x (a "
                f"{type(x).__name__}: a Python generator cannot be inspected without "
                "consuming it): pass input_shape=... to the model or call "
                "model.build((None, *shape)) first."
            )
        if not self.compiled:
            self.compile()
        self._group_steps(
            kwargs.get("callbacks"),
            (kwargs.get("steps_per_epoch"), kwargs.get("validation_steps")),
            self._array_steps(x, kwargs),
        )
        try:
            return super().fit(
                x, y, *args, validation_data=validation_data, sample_weight=sample_weight, **kwargs
            )
        except tf.errors.InvalidArgumentError as err:
            message = inputs.stream_error(err)
            if message is None:
                raise
            raise ValueError(message) from None

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Evaluates the loss and the objective's terms (``keras.Model.evaluate``); x, y
        and ``sample_weight`` as in ``fit``."""
        inputs.check_loop_options(kwargs)
        x, y, sample_weight = inputs.keras_inputs(self, x, y, kwargs.pop("sample_weight", None))
        if not self.compiled:
            self.compile()
        if not kwargs.get("_use_cached_eval_dataset", False):  # fit's validation: fit chose
            self._group_steps(
                kwargs.get("callbacks"), (kwargs.get("steps"),), self._array_steps(x, kwargs)
            )
        try:
            return super().evaluate(x, y, *args, sample_weight=sample_weight, **kwargs)
        except tf.errors.InvalidArgumentError as err:
            message = inputs.stream_error(err)
            if message is None:
                raise
            raise ValueError(message) from None

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        steps: int | None = None,
        callbacks: list[keras.callbacks.Callback] | None = None,
    ) -> Any:
        """The decoder's mean at the posterior's point estimate, per example (Keras'
        ``predict``; the same as ``reconstruct``), with x validated first: an array,
        ``(x, condition)`` for conditional models, or a ``tf.data.Dataset`` checked as it
        streams."""
        if inputs.is_array_like(x):
            condition = None
            if self.condition_shape is not None and isinstance(x, tuple) and len(x) == 2:
                x, condition = x
            x, condition = self.check_inputs(x, condition)
            x = x if condition is None else (x, condition)
        else:
            x, _, _ = inputs.keras_inputs(self, x, None)
        try:
            return super().predict(
                x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
            )
        except tf.errors.InvalidArgumentError as err:
            message = inputs.stream_error(err)
            if message is None:
                raise
            raise ValueError(message) from None

    def feature_extractor(self, output: str = "mean", seed: int | None = None) -> keras.Layer:
        """The encoder as a tensor-to-tensor Keras layer (``probae.CodeLayer``) for
        functional and Sequential models: x -> the posterior's point estimate
        (``output="mean"``) or a reparameterised draw (``output="sample"``). It shares the
        encoder's weights, so a model built on it fine-tunes this model's encoder."""
        from probae.encoders import CodeLayer

        return CodeLayer(self.encoder, output=output, seed=seed)

    def export(
        self, filepath: str, format: str = "tf_saved_model", verbose: bool = True, **kwargs: Any
    ) -> None:
        """Writes a TensorFlow SavedModel that serves tensors, loadable without probae.

        Endpoints (each takes a float32 batch ``x`` ``[n, *event_shape]``, plus
        ``condition`` for a conditional model): ``encode`` (the posterior's point
        estimate), ``reconstruct`` (the decoder's mean at it; also the default ``serve``),
        and ``elbo`` (the per-example ELBO in nats, the reconstruction term from one draw
        with a fixed seed, so the same x gives the same value) when the model has a
        density, else ``reconstruction_log_prob`` (log p(x|z) at the code). Load with
        ``tf.saved_model.load(filepath)`` and call ``loaded.encode(x)``.

        Raises:
            ValueError: a format other than "tf_saved_model", or an unbuilt model.
        """
        if format != "tf_saved_model":
            raise ValueError(f'format must be "tf_saved_model". Received: format={format!r}')
        self._require_built()
        specs = [tf.TensorSpec((None, *self.event_shape), tf.float32, name="x")]
        if self.condition_shape is not None:
            specs.append(tf.TensorSpec((None, *self.condition_shape), tf.float32, name="condition"))

        def encode(x, condition=None):
            return posteriors.point_estimate(self.posterior(x, condition=condition))

        def reconstruct(x, condition=None):
            return self.decoder(encode(x, condition), condition=condition, training=False).mean()

        def bound(x, condition=None):
            terms = estimators.importance_sampling(
                x,
                self.posterior(x, condition=condition),
                self.decoder_fn(condition),
                self.prior_distribution(),
                1,
                1,
                tf.constant([0, 0], tf.int32),
            )
            return terms["elbo"] if self.has_density else terms["reconstruction"]

        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", reconstruct, input_signature=specs)
        archive.add_endpoint("encode", encode, input_signature=specs)
        archive.add_endpoint("reconstruct", reconstruct, input_signature=specs)
        archive.add_endpoint(
            "elbo" if self.has_density else "reconstruction_log_prob", bound, input_signature=specs
        )
        archive.write_out(filepath, verbose=verbose)

    # ------------------------------------------------------------------ user methods
    def encode(
        self,
        x: Any,
        condition: ArrayLike | None = None,
        batch_size: int = 256,
        verbose: int | str = "auto",
    ) -> Any:
        """Returns the posterior q(z|x), a distribution with batch shape ``[n]``.

        Args:
            x: data ``[n, *event_shape]``, or a ``tf.data.Dataset`` of ``x`` or
                ``(x, condition)`` batches.
            condition: for conditional models with array ``x``.
            batch_size: examples per network call (memory is bounded by one batch's
                activations); the batches' distributions are joined into one.
            verbose: "auto" (a progress bar, Keras' convention), 0, 1 or 2.

        Raises:
            ValueError: invalid data, or a posterior family whose batches cannot be
                joined (a flow or a joint distribution over several latents) when x
                spans more than one batch: pass a larger batch_size.
        """
        batches, total = inputs.batches(self, x, condition, batch_size)
        progbar = estimators.progress(total, verbose)
        parts = []
        for xb, cb in batches:
            parts.append(self.posterior(xb, condition=cb))
            if progbar is not None:
                progbar.add(len(xb))
        if not parts:
            raise ValueError("x must hold at least one example. Received: no batches")
        if len(parts) == 1:
            return parts[0]
        try:
            return _join_batches(parts)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError):
            raise ValueError(
                f"encode cannot join the batches of a {type(parts[0]).__name__} posterior. "
                f"Pass batch_size >= the number of examples (received batch_size={batch_size}), "
                "or encode batch by batch."
            ) from None

    def decode(self, z: Any, condition: ArrayLike | None = None) -> Any:
        """Returns the likelihood p(x|z), a distribution with batch shape ``[len(z)]``.

        ``z`` is a code array ``[n, *code_shape]`` (a dict of arrays for a structured
        code).
        """
        self._require_built()
        z = self._check_code(z)
        n = len(tf.nest.flatten(z)[0])
        c = inputs.check_condition(self, condition, n)
        return self.decoder(z, condition=c, training=False)

    def _check_code(self, z):
        shape = self.code_shape
        if isinstance(shape, dict):
            if not isinstance(z, dict) or set(z) != set(shape):
                raise ValueError(
                    f"z must be a dict with keys {sorted(shape)} (this model's code). "
                    f"Received: z of type {type(z).__name__}"
                )
            return {k: as_float_array(z[k], f"z[{k!r}]", event_shape=shape[k]) for k in shape}
        return as_float_array(z, "z", event_shape=shape)

    def _require_built(self):
        if not self.built:
            raise ValueError(
                "The model is not built: train it, pass input_shape=..., or call "
                "model.build((None, *shape)) first."
            )

    def reconstruct(
        self,
        x: Any,
        condition: ArrayLike | None = None,
        batch_size: int = 256,
        sample: bool = False,
        seed: int | None = None,
        verbose: int | str = "auto",
    ) -> np.ndarray:
        """Reconstructs x: the decoder's mean at the posterior's point estimate (by default).

        Args:
            x: data ``[n, *event_shape]``, or a ``tf.data.Dataset`` of ``x`` or
                ``(x, condition)`` batches.
            condition: condition ``[n, *condition_shape]`` for conditional models.
            batch_size: examples per network call.
            sample: draw z from q(z|x) instead of taking its point estimate.
            seed: seed of that draw (batch i uses ``probae.seeds.batch_seed(seed, i)``).
            verbose: "auto" (a progress bar, Keras' convention), 0, 1 or 2.

        Returns:
            A NumPy array of the same shape as x.
        """
        batches, total = inputs.batches(self, x, condition, batch_size)
        progbar = estimators.progress(total, verbose)
        base = seed_tensor(seed)

        def run(xb, cb, seed):
            posterior = self.posterior(xb, condition=cb)
            z = posterior.sample(seed=seed) if sample else posteriors.point_estimate(posterior)
            return self.decoder(z, condition=cb, training=False).mean()

        fn = self.traced(("reconstruct", bool(sample)), run)
        parts = []
        for i, (xb, cb) in enumerate(batches):
            parts.append(np.asarray(fn(xb, cb, batch_seed(base, i))))
            if progbar is not None:
                progbar.add(len(xb))
        if not parts:
            raise ValueError("x must hold at least one example. Received: no batches")
        return np.concatenate(parts)

    def sample(
        self,
        n: int,
        seed: int | None = None,
        condition: ArrayLike | None = None,
        mean: bool = False,
        temperature: float = 1.0,
    ) -> np.ndarray:
        """Generates n examples: z ~ p(z), then x ~ p(x|z) (or its mean).

        Args:
            n: number of examples.
            seed: int seed, or None.
            condition: for conditional models, ``[n, *condition_shape]``, one condition
                ``[*condition_shape]`` used for all n, or for a one-hot condition an
                integer class label (``sample(10, condition=7)``) or n labels.
            mean: return the decoder's mean E[x|z] (smooth images) instead of a draw.
            temperature: t > 0 scales the prior's spread (``probae.priors.sample``: the
                scale of N(0, I), or of each mixture component, times t); t < 1 gives
                more typical samples.

        Returns:
            A NumPy array ``[n, *event_shape]``.

        Raises:
            ValueError: the model has no prior (a point-mass encoder without one), or n
                examples would exceed ``MAX_ELEMENTS`` (2**30) values.
        """
        self._require_built()
        n = check_positive_int(n, "n")
        check_array_size(n, self.event_shape)
        if self.prior is None:
            raise ValueError(
                "sample needs a prior p(z): this model has none (a point-mass encoder is "
                "given no prior unless you pass prior=..., for example "
                "probae.StandardNormalPrior())."
            )
        if condition is not None and self.condition_shape is not None:
            c = np.asarray(condition)
            if c.shape == tuple(self.condition_shape) and c.dtype.kind not in "iu":
                condition = np.broadcast_to(c, (n, *c.shape))
        c = inputs.check_condition(self, condition, n)
        z_seed, x_seed = split_seed(seed_tensor(seed))
        z = priors.sample(
            self.prior_distribution(), n, z_seed, check_positive_float(temperature, "temperature")
        )
        likelihood = self.decoder(z, condition=c, training=False)
        x = likelihood.mean() if mean else likelihood.sample(seed=x_seed)
        return keras.ops.convert_to_numpy(x)

    def _estimate(self, x, condition, num_samples, seed, batch_size, verbose, what):
        self._require_density(what)
        k = check_positive_int(num_samples, "num_samples")
        batch_size = check_positive_int(batch_size, "batch_size")
        if self.built and not isinstance(x, tf.data.Dataset):
            batch_size = estimators.plan(np.prod(self.event_shape), k, batch_size)[0]
        batches, total = inputs.batches(self, x, condition, batch_size)
        return estimators.estimate(
            self, batches, k, seed=check_seed(seed), total=total, verbose=verbose
        )

    def elbo(
        self,
        x: Any,
        condition: ArrayLike | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        batch_size: int = 256,
        return_terms: bool = False,
        verbose: int | str = "auto",
    ) -> np.ndarray | dict[str, np.ndarray]:
        """The ELBO per example (beta = 1), in nats (``probae.estimators.estimate``).

        Args:
            x: data ``[n, *event_shape]``, or a ``tf.data.Dataset`` of ``x`` or
                ``(x, condition)`` batches.
            condition: for conditional models with array ``x``.
            num_samples: samples for the reconstruction term (the KL is analytic where
                possible).
            seed: int seed or None.
            batch_size: examples per network call.
            return_terms: also return the reconstruction and KL terms.
            verbose: "auto" (a progress bar, Keras' convention), 0, 1 or 2.

        Returns:
            ``[n]`` NumPy array, or with ``return_terms`` a dict of ``[n]`` arrays with keys
            ``elbo``, ``reconstruction`` and ``kl``.

        Raises:
            ValueError: a point-mass encoder or a model without a prior (no bound
                exists), or invalid data.
        """
        if self.built:
            self._require_density("elbo")
        terms = self._estimate(x, condition, num_samples, seed, batch_size, verbose, "elbo")
        terms = {key: terms[key] for key in ("elbo", "reconstruction", "kl")}
        return terms if return_terms else terms["elbo"]

    def log_likelihood(
        self,
        x: Any,
        condition: ArrayLike | None = None,
        num_samples: int = 1000,
        seed: int | None = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        return_terms: bool = False,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Importance-sampling estimate of log p(x) per example, in nats.

        log p(x) ~= log (1/k) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): the IWAE
        bound with k = ``num_samples``, from ``probae.estimators.estimate``. It is biased
        low (by O(1/k)) and rises to log p(x) as k grows. The k samples are drawn in
        chunks with a running log-sum-exp, so memory stays bounded for any k.

        Args:
            x: data ``[n, *event_shape]``, or a ``tf.data.Dataset`` of ``x`` or
                ``(x, condition)`` batches.
            condition: for conditional models with array ``x``.
            num_samples: k, importance samples per example.
            seed: int seed (the same seed and batch_size give the same estimates) or None.
            batch_size: examples per chunk (default 100).
            verbose: "auto" (a progress bar, Keras' convention), 0, 1 or 2.
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

        Raises:
            ValueError: a point-mass encoder or a model without a prior, or invalid data.

        References: Burda, Grosse and Salakhutdinov 2016, Importance Weighted Autoencoders.
        """
        if self.built:
            self._require_density("log_likelihood")
        batch_size = 100 if batch_size is None else batch_size
        terms = self._estimate(
            x, condition, num_samples, seed, batch_size, verbose, "log_likelihood"
        )
        return terms if return_terms else terms["log_likelihood"]

    # ------------------------------------------------------------------ saving
    def save(self, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
        """Saves the model to a ``.keras`` file, atomically (``probae.atomic_save``).

        The file is written beside the target under a temporary name and renamed over
        it, so an interrupted save never leaves a corrupt file in place of a good one.
        Load it with ``probae.load_model``.
        """
        saving.atomic_save(super().save, filepath, overwrite=overwrite, **kwargs)

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
            "prior": None
            if self.prior is None
            else keras.saving.serialize_keras_object(self.prior),
            "objective": keras.saving.serialize_keras_object(self.objective),
            "condition_shape": None if self.condition_shape is None else list(self.condition_shape),
            "input_shape": None if self.event_shape is None else list(self.event_shape),
            "seed": self.seed,
            "penalty": None
            if self.penalty is None
            else keras.saving.serialize_keras_object(self.penalty),
            "corruption": (
                None
                if self.corruption is None
                else keras.saving.serialize_keras_object(self.corruption)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "prior"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
