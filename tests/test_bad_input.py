"""Bad input to the core's public entry points: one row per case, each asserting the
exception type and that the message names the argument (issue 7).

Plus property-based tests (hypothesis) over random shapes and values: the validation and
the estimators either raise a documented error or return finite values.
"""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import probae
from probae import _validation

GOOD = np.random.default_rng(0).integers(0, 2, (4, 6)).astype("float32")
IMG = np.random.default_rng(0).integers(0, 2, (4, 8, 8, 1)).astype("float32")
COND = np.eye(3, dtype="float32")[[0, 1, 2, 0]]


@pytest.fixture(scope="module")
def models():
    """Small built models: Bernoulli, continuous Bernoulli, Gaussian, image, conditional."""
    kw = {"hidden_units": (8,)}
    return {
        "bern": probae.VAE((6,), 2, **kw),
        "cb": probae.VAE((6,), 2, likelihood="continuous_bernoulli", **kw),
        "gauss": probae.VAE((6,), 2, likelihood="gaussian", **kw),
        "img": probae.VAE((8, 8, 1), 2, filters=(4,), **kw),
        "cond": probae.VAE((6,), 2, condition_shape=(3,), **kw),
    }


def with_value(base, index, value):
    x = np.array(base, copy=True)
    x[index] = value
    return x


M = "bern"
# (id, model key or None, call(model), exception type, text the message must contain)
CASES = [
    # --- wrong rank / shape for a built model
    ("x one example", M, lambda m: m.elbo(GOOD[0]), ValueError, "x[None]"),
    ("x rank 3", M, lambda m: m.elbo(GOOD[:, :, None]), ValueError, "x must have shape"),
    ("x scalar", M, lambda m: m.encode(1.0), ValueError, "x"),
    (
        "x features",
        M,
        lambda m: m.reconstruct(GOOD[:, :5]),
        ValueError,
        "x must have shape (batch, 6)",
    ),
    (
        "x image shape",
        "img",
        lambda m: m.elbo(IMG[:, :, :7]),
        ValueError,
        "x must have shape (batch, 8, 8, 1)",
    ),
    (
        "x flat image",
        "img",
        lambda m: m.encode(IMG.reshape(4, 64)),
        ValueError,
        "x must have shape",
    ),
    ("fit features", M, lambda m: m.fit(GOOD[:, :5], verbose=0), ValueError, "x must have shape"),
    (
        "evaluate features",
        M,
        lambda m: m.evaluate(GOOD[:, :5], verbose=0),
        ValueError,
        "x must have shape",
    ),
    (
        "validation features",
        M,
        lambda m: m.fit(GOOD, validation_data=(GOOD[:, :5],), verbose=0),
        ValueError,
        "validation_data",
    ),
    (
        "z width",
        M,
        lambda m: m.decode(np.zeros((4, 3))),
        ValueError,
        "z must have shape (batch, 2)",
    ),
    ("z rank", M, lambda m: m.decode(np.zeros(2)), ValueError, "z"),
    # --- NaN and inf
    (
        "x nan",
        M,
        lambda m: m.elbo(with_value(GOOD, (1, 2), np.nan)),
        ValueError,
        "x must contain only finite",
    ),
    (
        "x inf",
        "gauss",
        lambda m: m.log_likelihood(with_value(GOOD, (0, 0), np.inf), num_samples=2),
        ValueError,
        "x must contain only finite",
    ),
    (
        "fit nan",
        "gauss",
        lambda m: m.fit(with_value(GOOD, (0, 0), np.nan), verbose=0),
        ValueError,
        "x must contain only finite",
    ),
    (
        "evaluate -inf",
        "gauss",
        lambda m: m.evaluate(with_value(GOOD, (0, 0), -np.inf), verbose=0),
        ValueError,
        "x must contain only finite",
    ),
    (
        "validation nan",
        "gauss",
        lambda m: m.fit(GOOD, validation_data=with_value(GOOD, (0, 0), np.nan), verbose=0),
        ValueError,
        "validation_data must contain only finite",
    ),
    (
        "x float64 overflow",
        "gauss",
        lambda m: m.elbo(with_value(GOOD.astype("float64"), (0, 0), 1e300)),
        ValueError,
        "x must fit in float32",
    ),
    (
        "z nan",
        M,
        lambda m: m.decode(np.full((2, 2), np.nan)),
        ValueError,
        "z must contain only finite",
    ),
    (
        "condition nan",
        "cond",
        lambda m: m.elbo(GOOD, condition=with_value(COND, (0, 0), np.nan)),
        ValueError,
        "condition must contain only finite",
    ),
    # --- outside the decoder's support
    (
        "bernoulli > 1",
        M,
        lambda m: m.elbo(GOOD * 1.5),
        ValueError,
        "x must lie in [0, 1] for a Bernoulli",
    ),
    (
        "bernoulli < 0",
        M,
        lambda m: m.fit(GOOD - 0.5, verbose=0),
        ValueError,
        "x must lie in [0, 1] for a Bernoulli",
    ),
    (
        "cb > 1",
        "cb",
        lambda m: m.log_likelihood(GOOD + 0.5, num_samples=2),
        ValueError,
        "x must lie in [0, 1] for a continuous Bernoulli",
    ),
    (
        "cb < 0",
        "cb",
        lambda m: m.reconstruct(-GOOD),
        ValueError,
        "x must lie in [0, 1] for a continuous Bernoulli",
    ),
    (
        "0-255 images",
        M,
        lambda m: m.fit((GOOD * 255).astype("uint8"), verbose=0),
        ValueError,
        "x / 255.0",
    ),
    (
        "0-255 validation",
        M,
        lambda m: m.fit(GOOD, validation_data=(GOOD * 200,), verbose=0),
        ValueError,
        "validation_data / 255.0",
    ),
    # --- empty arrays
    (
        "x empty",
        M,
        lambda m: m.elbo(np.zeros((0, 6))),
        ValueError,
        "x must hold at least one example",
    ),
    (
        "fit empty",
        M,
        lambda m: m.fit(np.zeros((0, 6)), verbose=0),
        ValueError,
        "x must hold at least one example",
    ),
    (
        "z empty",
        M,
        lambda m: m.decode(np.zeros((0, 2))),
        ValueError,
        "z must hold at least one example",
    ),
    # --- strings and objects
    (
        "x strings",
        M,
        lambda m: m.elbo(np.array([["a"] * 6])),
        TypeError,
        "x must be a numeric array",
    ),
    ("x objects", M, lambda m: m.encode([[object()] * 6]), TypeError, "x must be a numeric array"),
    (
        "x ragged",
        M,
        lambda m: m.encode([[0.0] * 6, [0.0] * 5]),
        TypeError,
        "x must be a numeric array",
    ),
    ("x complex", "gauss", lambda m: m.elbo(GOOD + 1j), TypeError, "x must be real-valued"),
    ("x None", M, lambda m: m.elbo(None), TypeError, "x must be a numeric array"),
    ("x dict", M, lambda m: m.reconstruct({"x": GOOD}), TypeError, "x must be a numeric array"),
    (
        "fit strings",
        M,
        lambda m: m.fit(np.array([["0"] * 6] * 4), verbose=0),
        TypeError,
        "x must be a numeric array",
    ),
    ("z strings", M, lambda m: m.decode([["a", "b"]]), TypeError, "z must be a numeric array"),
    (
        "condition strings",
        "cond",
        lambda m: m.encode(GOOD, condition=np.array([["a"] * 3] * 4)),
        TypeError,
        "condition must be a numeric array",
    ),
    # --- non-positive counts
    (
        "elbo num_samples 0",
        M,
        lambda m: m.elbo(GOOD, num_samples=0),
        ValueError,
        "num_samples must be a positive integer",
    ),
    (
        "ll num_samples -1",
        M,
        lambda m: m.log_likelihood(GOOD, num_samples=-1),
        ValueError,
        "num_samples must be a positive integer",
    ),
    (
        "ll num_samples float",
        M,
        lambda m: m.log_likelihood(GOOD, num_samples=2.5),
        ValueError,
        "num_samples must be a positive integer",
    ),
    (
        "ll batch_size 0",
        M,
        lambda m: m.log_likelihood(GOOD, num_samples=2, batch_size=0),
        ValueError,
        "batch_size must be a positive integer",
    ),
    (
        "elbo batch_size -3",
        M,
        lambda m: m.elbo(GOOD, batch_size=-3),
        ValueError,
        "batch_size must be a positive integer",
    ),
    (
        "reconstruct batch_size 0",
        M,
        lambda m: m.reconstruct(GOOD, batch_size=0),
        ValueError,
        "batch_size must be a positive integer",
    ),
    (
        "fit batch_size 0",
        M,
        lambda m: m.fit(GOOD, batch_size=0, verbose=0),
        ValueError,
        "batch_size must be a positive integer",
    ),
    (
        "fit batch_size str",
        M,
        lambda m: m.fit(GOOD, batch_size="8", verbose=0),
        ValueError,
        "batch_size must be a positive integer",
    ),
    (
        "fit epochs 0",
        M,
        lambda m: m.fit(GOOD, epochs=0, verbose=0),
        ValueError,
        "epochs must be a positive integer",
    ),
    (
        "evaluate batch_size 0",
        M,
        lambda m: m.evaluate(GOOD, batch_size=0, verbose=0),
        ValueError,
        "batch_size must be a positive integer",
    ),
    ("sample n 0", M, lambda m: m.sample(0), ValueError, "n must be a positive integer"),
    ("sample n float", M, lambda m: m.sample(2.0), ValueError, "n must be a positive integer"),
    (
        "seed negative",
        M,
        lambda m: m.sample(2, seed=-1),
        ValueError,
        "seed must be None or a non-negative integer",
    ),
    (
        "seed string",
        M,
        lambda m: m.elbo(GOOD, seed="a"),
        ValueError,
        "seed must be None or a non-negative integer",
    ),
    # --- conditions
    (
        "condition width",
        "cond",
        lambda m: m.elbo(GOOD, condition=COND[:, :2]),
        ValueError,
        "condition must have shape (batch, 3)",
    ),
    (
        "condition rows",
        "cond",
        lambda m: m.reconstruct(GOOD, condition=COND[:3]),
        ValueError,
        "condition must have one row per example",
    ),
    ("condition missing", "cond", lambda m: m.encode(GOOD), ValueError, "condition is required"),
    (
        "condition missing fit",
        "cond",
        lambda m: m.fit(GOOD, verbose=0),
        ValueError,
        "condition is required",
    ),
    (
        "condition width fit",
        "cond",
        lambda m: m.fit(GOOD, COND[:, :2], verbose=0),
        ValueError,
        "condition must have shape (batch, 3)",
    ),
    (
        "condition width sample",
        "cond",
        lambda m: m.sample(2, condition=np.ones((2, 4))),
        ValueError,
        "condition must have shape (batch, 3)",
    ),
    (
        "condition unwanted",
        M,
        lambda m: m.elbo(GOOD, condition=COND),
        ValueError,
        "condition must be None",
    ),
    (
        "decode condition width",
        "cond",
        lambda m: m.decode(np.zeros((4, 2)), condition=COND[:, :1]),
        ValueError,
        "condition must have shape",
    ),
    # --- files
    (
        "load text file",
        None,
        lambda tmp: probae.load_model(_text_file(tmp)),
        probae.InvalidModelFileError,
        "path=",
    ),
    (
        "load missing file",
        None,
        lambda tmp: probae.load_model(tmp / "missing.keras"),
        FileNotFoundError,
        "path=",
    ),
    (
        "load npz file",
        None,
        lambda tmp: probae.load_model(_npz_file(tmp)),
        probae.InvalidModelFileError,
        "path=",
    ),
    (
        "load directory",
        None,
        lambda tmp: probae.load_model(tmp),
        probae.InvalidModelFileError,
        "path=",
    ),
    ("load not a path", None, lambda tmp: probae.load_model(3), TypeError, "path"),
    ("save wrong suffix", M, lambda m: m.save("model.h5"), ValueError, "filepath"),
    ("save not a path", M, lambda m: m.save(None), TypeError, "filepath"),
    # --- model-level options
    ("beta setter", M, lambda m: setattr(m, "beta", -1.0), ValueError, "beta"),
]


def _text_file(tmp):
    path = tmp / "model.keras"
    path.write_text("not a model")
    return path


def _npz_file(tmp):
    path = tmp / "weights.keras"
    with open(path, "wb") as f:
        np.savez(f, a=np.zeros(3))
    return path


@pytest.mark.parametrize(
    "key, call, error, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_to_a_model(models, tmp_path, key, call, error, text):
    target = tmp_path if key is None else models[key]
    with pytest.raises(error) as info:
        call(target)
    assert text in str(info.value), str(info.value)


def _plotting():
    import probae.plotting

    return probae.plotting


def _tiny():
    return probae.VAE((6,), 2, hidden_units=(4,))


def _enc(**kw):
    return probae.GaussianEncoder(**{"latent_dim": 2, **kw})


# (id, constructor call, exception type, text the message must contain)
CONSTRUCTORS = [
    (
        "encoder latent_dim 0",
        lambda: probae.GaussianEncoder(0),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "encoder latent_dim -2",
        lambda: probae.DeterministicEncoder(-2),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "encoder latent_dim float",
        lambda: probae.GaussianEncoder(2.0),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "encoder latent_dim str",
        lambda: probae.GaussianEncoder("2"),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "encoder min_scale 0",
        lambda: _enc(min_scale=0.0),
        ValueError,
        "min_scale must be a finite number > 0",
    ),
    ("encoder min_scale nan", lambda: _enc(min_scale=float("nan")), ValueError, "min_scale"),
    (
        "encoder hidden 0",
        lambda: _enc(hidden_units=(8, 0)),
        ValueError,
        "hidden_units must be a positive integer",
    ),
    ("encoder hidden str", lambda: _enc(hidden_units="8"), TypeError, "hidden_units"),
    ("encoder filters", lambda: _enc(filters=(-1,)), ValueError, "filters"),
    (
        "encoder architecture",
        lambda: _enc(architecture="rnn"),
        ValueError,
        "architecture must be one of",
    ),
    (
        "encoder activation",
        lambda: _enc(activation="nope"),
        ValueError,
        "activation must be a Keras activation name",
    ),
    (
        "decoder activation",
        lambda: probae.BernoulliDecoder(activation=3),
        ValueError,
        "Received: activation=3",
    ),
    ("encoder network", lambda: _enc(network="mlp"), TypeError, "network must be a Keras layer"),
    ("encoder condition_shape", lambda: _enc(condition_shape=(0,)), ValueError, "condition_shape"),
    (
        "encoder code_activation",
        lambda: probae.DeterministicEncoder(2, code_activation="nope"),
        ValueError,
        "code_activation",
    ),
    (
        "decoder event_shape 0",
        lambda: probae.BernoulliDecoder(event_shape=(0,)),
        ValueError,
        "event_shape must be",
    ),
    (
        "decoder event_shape str",
        lambda: probae.BernoulliDecoder(event_shape="abc"),
        ValueError,
        "event_shape",
    ),
    (
        "decoder scale -1",
        lambda: probae.GaussianDecoder(scale=-1.0),
        ValueError,
        "scale must be a finite number > 0",
    ),
    (
        "decoder scale name",
        lambda: probae.LaplaceDecoder(scale="learned"),
        ValueError,
        "scale must be a positive number or one of",
    ),
    ("decoder min_scale 0", lambda: probae.GaussianDecoder(min_scale=0), ValueError, "min_scale"),
    (
        "decoder architecture",
        lambda: probae.BernoulliDecoder(event_shape=(4,), architecture="conv").build((None, 2)),
        ValueError,
        "architecture='conv'",
    ),
    (
        "prior latent_dim 0",
        lambda: probae.StandardNormalPrior(latent_dim=0),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "prior components 0",
        lambda: probae.MixtureOfGaussiansPrior(num_components=0),
        ValueError,
        "num_components must be a positive integer",
    ),
    (
        "prior min_scale",
        lambda: probae.MixtureOfGaussiansPrior(min_scale=-1.0),
        ValueError,
        "min_scale",
    ),
    (
        "prior latent mismatch",
        lambda: probae.VAE((6,), 2, prior=probae.StandardNormalPrior(3), hidden_units=(4,)),
        ValueError,
        "latent_dim=3",
    ),
    (
        "model encoder",
        lambda: probae.ProbabilisticAutoencoder("enc", probae.BernoulliDecoder()),
        TypeError,
        "encoder must be a probae encoder",
    ),
    (
        "model decoder",
        lambda: probae.ProbabilisticAutoencoder(_enc(), None),
        TypeError,
        "decoder must be a probae decoder",
    ),
    (
        "model prior",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), prior="normal"),
        TypeError,
        "prior must be None or a probae prior",
    ),
    (
        "model num_samples 0",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), num_samples=0),
        ValueError,
        "num_samples must be a positive integer",
    ),
    (
        "model objective",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), objective="mse"),
        ValueError,
        "objective must be one of",
    ),
    (
        "model beta -1",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), beta=-1.0),
        ValueError,
        "beta must be a finite number >= 0",
    ),
    (
        "model beta str",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), beta="1"),
        TypeError,
        "beta must be a number",
    ),
    (
        "model free_bits",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), free_bits=-0.1),
        ValueError,
        "free_bits",
    ),
    (
        "model seed",
        lambda: probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder(), seed=-5),
        ValueError,
        "seed must be None",
    ),
    (
        "model input_shape",
        lambda: probae.ProbabilisticAutoencoder(
            _enc(), probae.BernoulliDecoder(), input_shape=(0, 3)
        ),
        ValueError,
        "input_shape",
    ),
    (
        "model loss",
        lambda: probae.VAE((6,), 2, hidden_units=(4,)).compile(loss="mse"),
        ValueError,
        "loss must be None",
    ),
    (
        "compile steps_per_execution 0",
        lambda: probae.VAE((6,), 2, hidden_units=(4,)).compile(steps_per_execution=0),
        ValueError,
        "steps_per_execution must be a positive integer",
    ),
    (
        "compile steps_per_execution str",
        lambda: probae.VAE((6,), 2, hidden_units=(4,)).compile(steps_per_execution="fast"),
        ValueError,
        "steps_per_execution must be a positive integer",
    ),
    (
        "compile learning_rate nan",
        lambda: _tiny().compile(keras.optimizers.Adam(float("nan"))),
        ValueError,
        "learning_rate must be a finite number > 0. Received: learning_rate=nan",
    ),
    (
        "compile learning_rate -1",
        lambda: _tiny().compile(keras.optimizers.SGD(-1.0)),
        ValueError,
        "learning_rate must be a finite number > 0. Received: learning_rate=-1.0",
    ),
    (
        "compile learning_rate 0",
        lambda: _tiny().compile(keras.optimizers.Adam(0.0)),
        ValueError,
        "learning_rate must be a finite number > 0",
    ),
    (
        "compile learning_rate inf",
        lambda: _tiny().compile(keras.optimizers.RMSprop(float("inf"))),
        ValueError,
        "learning_rate must be a finite number > 0",
    ),
    ("compile optimizer name", lambda: _tiny().compile("adamm"), ValueError, "optimizer"),
    (
        "encoder latent_dim 1e9",
        lambda: probae.GaussianEncoder(10**9),
        ValueError,
        "latent_dim must be at most 1048576 (larger sizes would exhaust memory). Received: latent_dim=1000000000",
    ),
    (
        "preset latent_dim 1e9",
        lambda: probae.VAE((6,), 10**9),
        ValueError,
        "latent_dim must be at most",
    ),
    (
        "prior latent_dim 1e9",
        lambda: probae.StandardNormalPrior(latent_dim=10**9),
        ValueError,
        "latent_dim must be at most",
    ),
    (
        "encoder hidden 1e9",
        lambda: _enc(hidden_units=(10**9,)),
        ValueError,
        "hidden_units must be at most",
    ),
    (
        "encoder hidden '64'",
        lambda: _enc(hidden_units="64"),
        TypeError,
        "hidden_units must be a sequence of positive integers, not a string. Received: hidden_units='64'",
    ),
    (
        "encoder filters '32'",
        lambda: _enc(filters="32"),
        TypeError,
        "filters must be a sequence of positive integers, not a string",
    ),
    (
        "sample n 1e9",
        lambda: _tiny().sample(10**9),
        ValueError,
        "n=1000000000 examples of shape (6,)",
    ),
    (
        "plot_anomaly_scores labels",
        lambda: _plotting().plot_anomaly_scores([1.0, 2.0], [3.0], labels=("a",)),
        ValueError,
        "labels must be two names",
    ),
    (
        "plot_traversals values []",
        lambda: _plotting().plot_traversals(_tiny(), values=[]),
        ValueError,
        "values must be a non-empty list of finite numbers. Received: values=[]",
    ),
    (
        "anomaly_scores unbuilt",
        lambda: probae.anomaly_scores(
            probae.ProbabilisticAutoencoder(_enc(), probae.BernoulliDecoder()), GOOD
        ),
        ValueError,
        "model is not built",
    ),
    (
        "preset latent_dim 0",
        lambda: probae.VAE((6,), 0),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    (
        "preset latent_dim ae",
        lambda: probae.Autoencoder((6,), -1),
        ValueError,
        "latent_dim must be a positive integer",
    ),
    ("preset input_shape", lambda: probae.VAE((28, 0), 2), ValueError, "input_shape"),
    ("preset input_shape str", lambda: probae.BetaVAE("784", 2), ValueError, "input_shape"),
    (
        "preset likelihood",
        lambda: probae.VAE((6,), 2, likelihood="poisson"),
        ValueError,
        "likelihood must be one of",
    ),
    (
        "preset num_samples",
        lambda: probae.VAE((6,), 2, objective="iwae", num_samples=0),
        ValueError,
        "num_samples must be a positive integer",
    ),
    (
        "preset beta",
        lambda: probae.BetaVAE((6,), 2, beta=float("inf")),
        ValueError,
        "beta must be a finite number",
    ),
    (
        "preset iwae beta",
        lambda: probae.VAE((6,), 2, objective="iwae", beta=2.0),
        ValueError,
        "beta must be 1.0",
    ),
    (
        "preset hidden_units",
        lambda: probae.VAE((6,), 2, hidden_units=(-4,)),
        ValueError,
        "hidden_units",
    ),
    (
        "backup save_freq",
        lambda: probae.BackupAndRestore("/tmp/x", save_freq=0),
        ValueError,
        "save_freq must be a positive integer",
    ),
    ("set_seed", lambda: probae.set_seed(-1), ValueError, "seed must be a non-negative integer"),
    (
        "digits test_fraction",
        lambda: probae.datasets.load_digits(test_fraction=1.5),
        ValueError,
        "test_fraction must be",
    ),
    ("digits seed", lambda: probae.datasets.load_digits(seed=-1), ValueError, "seed"),
    (
        "fashion test_fraction",
        lambda: probae.datasets.load_fashion_mnist(test_fraction=0.0),
        ValueError,
        "test_fraction must be",
    ),
    (
        "mnist data_dir",
        lambda: probae.datasets.load_mnist(data_dir="/no/such/dir"),
        ValueError,
        "data_dir",
    ),
]


@pytest.mark.parametrize(
    "call, error, text", [c[1:] for c in CONSTRUCTORS], ids=[c[0] for c in CONSTRUCTORS]
)
def test_bad_constructor_arguments(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- properties
_FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

_DOCUMENTED = (TypeError, ValueError)


@_FAST
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.float16]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        elements=None,
    ),
    event=st.one_of(st.none(), hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)),
)
def test_as_float_array_accepts_or_explains(arr, event):
    try:
        out = _validation.as_float_array(arr, "x", event_shape=event)
    except _DOCUMENTED as err:
        assert "x" in str(err)
        return
    assert out.dtype == np.float32 and out.shape == arr.shape and len(out) >= 1
    assert np.all(np.isfinite(out))
    if event is not None:
        assert out.shape[1:] == tuple(event)


@_FAST
@given(
    value=st.one_of(
        st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans()
    )
)
def test_scalar_checks_accept_or_explain(value):
    for check in (
        _validation.check_positive_int,
        _validation.check_positive_float,
        _validation.check_non_negative_float,
        _validation.check_seed,
    ):
        try:
            out = check(value, "arg")
        except _DOCUMENTED as err:
            assert "arg" in str(err)
            continue
        assert out is None or np.isfinite(out)


@pytest.fixture(scope="module")
def gauss_model():
    model = probae.VAE((3,), 2, likelihood="gaussian", hidden_units=(8,))
    return model


@_FAST
@given(
    x=hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, 5), st.integers(2, 4)),
        elements=st.floats(-1e4, 1e4, width=32),
    ),
    num_samples=st.integers(-1, 4),
    batch_size=st.integers(-1, 6),
    seed=st.one_of(st.none(), st.integers(0, 2**40)),
)
def test_estimators_finite_or_documented_error(gauss_model, x, num_samples, batch_size, seed):
    """Random batch sizes, feature counts, values, k and chunk sizes: finite or a clear error."""
    for method in ("elbo", "log_likelihood"):
        try:
            out = getattr(gauss_model, method)(
                x, num_samples=num_samples, batch_size=batch_size, seed=seed
            )
        except _DOCUMENTED as err:
            message = str(err)
            assert any(a in message for a in ("x", "num_samples", "batch_size")), message
            valid = x.shape[0] > 0 and x.shape[1] == 3 and num_samples > 0 and batch_size > 0
            assert not valid, message
            continue
        assert out.shape == (len(x),)
        assert np.all(np.isfinite(out)), (method, out)
    try:
        rec = gauss_model.reconstruct(x, batch_size=max(batch_size, 1))
    except _DOCUMENTED:
        assert x.shape[0] == 0 or x.shape[1] != 3
    else:
        assert rec.shape == x.shape and np.all(np.isfinite(rec))


@pytest.fixture(scope="module")
def conditional_bernoulli():
    return probae.VAE((4,), 2, condition_shape=(2,), hidden_units=(8,))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=st.integers(1, 6),
    binary=st.booleans(),
    data=st.data(),
    num_samples=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_valid_input_gives_finite_bounded_outputs(
    conditional_bernoulli, n, binary, data, num_samples, seed
):
    """Random valid data and conditions: every estimator is finite, and the ELBO of a
    Bernoulli model is <= 0 (its reconstruction term is a log-probability, its KL >= 0)."""
    model = conditional_bernoulli
    unit = st.floats(0, 1, width=32)
    x = data.draw(
        hnp.arrays(np.float32, (n, 4), elements=st.sampled_from([0.0, 1.0]) if binary else unit)
    )
    c = data.draw(hnp.arrays(np.float32, (n, 2), elements=st.floats(-10, 10, width=32)))
    terms = model.elbo(x, condition=c, num_samples=num_samples, seed=seed, return_terms=True)
    assert np.all(np.isfinite(terms["elbo"])) and np.all(terms["elbo"] <= 1e-5)
    assert np.all(terms["kl"] >= -1e-5) and np.all(terms["reconstruction"] <= 1e-5)
    ll = model.log_likelihood(x, condition=c, num_samples=num_samples, seed=seed)
    assert np.all(np.isfinite(ll))
    rec = model.reconstruct(x, condition=c)
    assert np.all((rec >= 0) & (rec <= 1))
    samples = model.sample(n, seed=seed, condition=c, mean=True)
    assert samples.shape == (n, 4) and np.all((samples >= 0) & (samples <= 1))
    codes = model.encode(x, condition=c).mean().numpy()
    assert np.all(np.isfinite(codes))
    assert np.all(np.isfinite(model.decode(codes, condition=c).mean().numpy()))
