"""A codec from a trained model: bits-back coding (lossless) and a quantised code (lossy).

``compress(model, x) -> bytes`` and ``decompress(model, data) -> x``.

Lossless (the default) is bits-back coding with asymmetric numeral systems (BB-ANS,
Townsend et al. 2019) on ``constriction``'s ANS stack, for a model whose decoder has a
discrete likelihood (``decoder.discrete_support`` is ``(low, high)``: Bernoulli for binary
data, an 8-bit likelihood for 0..255 pixels). Each latent dimension is cut into
``2 ** latent_bits`` buckets of equal mass under the prior (its quantiles), and for each
image x the coder

1. pops the buckets of z from the stream under q(z|x) (the posterior mass of each
   bucket): this takes back bits that earlier images left on the stack;
2. pushes x under p(x|z), z being the buckets' centres (the pmf over the support,
   ``log_prob`` evaluated at every support value);
3. pushes the buckets under the prior (``latent_bits`` bits per dimension).

The net cost per image is -log p(x|z) - log P(z) + log Q(z|x): the negative ELBO of the
discretised latent, so the stream approaches the model's -ELBO. The first block of images
has nothing to take bits back from: the stack starts with pseudo-random words (a fixed
sequence both sides regenerate), and the ones still untouched at the end are not written,
so what the stream pays is the bits the first pops consumed (``stream_info``'s
``initial_bits``), once per stream. Blocks start at one image and grow to a quarter of the
images coded before them (up to ``batch_size``), so that later pops take back bits that
earlier images left and this start-up cost stays near one image's posterior entropy.

Lossy (``lossy=True``): the posterior mean, quantised with a step of ``step`` prior
standard deviations, entropy-coded under the prior's mass per bin, and decoded to the
likelihood's mean. It works for any decoder (continuous ones too); there is no bits-back.

Exactness. Encoder and decoder must compute the same integer probabilities. The networks
always run on exactly ``batch_size`` rows (the last block padded), the probabilities are
computed from their float32 outputs in float64 NumPy on arrays of the same shapes on both
sides, and ``constriction`` quantises them deterministically. Decoding is therefore exact
on the machine and software (TensorFlow, NumPy) that wrote the stream, in any process
and with any number of threads; another CPU, library version or kernel choice may round
the networks' floats differently (decoding a stream written with oneDNN's kernels under
TF_ENABLE_ONEDNN_OPTS=0 fails, for one), which makes decoding fail with a ValueError
(the stream's end state is checked), never silently wrong. Integer networks (Balle et al.
2019) would remove this limit; probae's networks are float.

The stream: a header (magic ``PBAE``, format version, mode, a fingerprint of the model's
weights, dtype, example shape, count, batch size and coding parameters), the ANS words,
and a CRC-32 of everything before it. A wrong model, a truncated or a corrupted stream is
a ValueError.

References: Townsend, Bird and Barber 2019, Practical lossless compression with latent
variables using bits back coding (BB-ANS); Bamler 2022, constriction.
"""

import hashlib
import struct
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from probae._validation import check_positive_float, check_positive_int

tfd = tfp.distributions

__all__ = ["compress", "decompress", "stream_info", "model_fingerprint", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MAGIC = b"PBAE"
_LOSSLESS, _LOSSY = 0, 1
_SEED = b"probae bits-back initial words"
# Most bits one symbol can cost under constriction's default 24-bit probabilities.
_MAX_SYMBOL_BITS = 24
# The stack must keep this many bits after every pop (else it ran dry: more initial words).
_MIN_STACK_BITS = 64
# A coding block holds at most 1 / _RAMP of the images coded before it: its pops then take
# bits the earlier images left on the stack (about their -ELBO each) as long as the
# posterior's entropy over the buckets is under _RAMP times the -ELBO, instead of
# consuming initial words (on binarized MNIST the ratio is about 2.4).
_RAMP = 4
# Lossy codes are clipped to |k| <= _LOSSY_RANGE / step (the prior's mass beyond is < 1e-15).
_LOSSY_RANGE = 8.0


def _ans():
    import constriction  # imported here: `import probae.compression` stays cheap

    return constriction.stream


# --------------------------------------------------------------------------- model parts
def model_fingerprint(model):
    """16 bytes: SHA-256 of the shapes, dtypes and values of all the model's weights, in
    order (names are left out: Keras numbers layers differently in each process)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(str((value.shape, value.dtype.str)).encode())
        digest.update(value.tobytes())
    return digest.digest()[:16]


def _check_model(model):
    from probae.model import ProbabilisticAutoencoder

    if not isinstance(model, ProbabilisticAutoencoder):
        raise TypeError(
            f"model must be a probae.ProbabilisticAutoencoder. Received: {type(model).__name__}"
        )
    if not model.built:
        raise ValueError("model must be built and trained before it can code data.")
    if model.condition_shape is not None:
        raise ValueError(
            "compress supports unconditional models only. Received: a model with "
            f"condition_shape={model.condition_shape}"
        )
    prior = model.prior_distribution()
    if not isinstance(prior, tfd.MultivariateNormalDiag):
        raise ValueError(
            "compress needs a diagonal Gaussian prior (probae.StandardNormalPrior). "
            f"Received: a prior distribution of type {type(prior).__name__}"
        )
    loc = np.asarray(prior.mean(), np.float64)
    scale = np.asarray(prior.stddev(), np.float64)
    return loc, scale


def _encoder_fn(model, batch_size):
    def run(x):
        q = model.posterior(x, training=False)
        if not isinstance(q, tfd.MultivariateNormalDiag):
            raise ValueError(
                "compress needs an encoder whose q(z|x) is a diagonal Gaussian "
                f"(tfd.MultivariateNormalDiag). Received: {type(q).__name__}"
            )
        return q.mean(), q.stddev()

    return model.traced(("compression", "encoder", batch_size), run)


def _support_fn(model, low, high, batch_size):
    """z -> log p(x_i = v | z) for v = low..high: [num_values, rows, *event_shape]."""
    values = tf.range(low, high + 1, dtype=tf.float32)
    shape = [high - low + 1] + [1] * (1 + len(model.event_shape))

    def run(z):
        likelihood = model.decoder(z, training=False)
        if not isinstance(likelihood, tfd.Independent):
            raise ValueError(
                "compress needs a decoder that returns tfd.Independent over the data's "
                f"elements. Received: {type(likelihood).__name__}"
            )
        return likelihood.distribution.log_prob(tf.reshape(values, shape))

    return model.traced(("compression", "support", low, high, batch_size), run)


def _mean_fn(model, batch_size):
    def run(z):
        return model.decoder(z, training=False).mean()

    return model.traced(("compression", "mean", batch_size), run)


# Each network function is traced for one batch size (its key holds it): a graph traced
# for a relaxed shape [None, ...] might pick other kernels, hence other floats.
def _padded(fn, rows, batch_size):
    """fn on exactly batch_size rows (zero padding); a tuple of outputs is cut back to
    len(rows) rows, a single output is returned whole (its row axis may not be first)."""
    n = len(rows)
    if n < batch_size:
        rows = np.concatenate([rows, np.zeros((batch_size - n, *rows.shape[1:]), rows.dtype)])
    out = fn(tf.constant(rows))
    if isinstance(out, tuple):
        return tuple(np.asarray(o)[:n] for o in out)
    return np.asarray(out)


def _blocks(n, batch_size):
    """(start, stop) of the coding blocks: a block holds a quarter of the images coded
    before it (at least 1, at most batch_size)."""
    blocks, start = [], 0
    while start < n:
        stop = min(start + min(max(start // _RAMP, 1), batch_size), n)
        blocks.append((start, stop))
        start = stop
    return blocks


# --------------------------------------------------------------------------- probabilities
def _bucket_edges(latent_bits):
    """Standard-normal quantiles at j / K, j = 0..K (K = 2 ** latent_bits), and the
    centres (the quantiles at (j + 1/2) / K)."""
    k = 2**latent_bits
    edges = special.ndtri(np.arange(k + 1, dtype=np.float64) / k)
    centres = special.ndtri((np.arange(k, dtype=np.float64) + 0.5) / k)
    return edges, centres


def _posterior_masses(mean, std, loc, scale, edges):
    """[rows * d, K]: the mass of q(z_d|x) = N(mean, std) on each prior bucket."""
    # Bucket edges in z are loc + scale * edges; standardise under the posterior.
    t = (loc[None, :, None] + scale[None, :, None] * edges[None, None, :] - mean[..., None]) / (
        std[..., None]
    )
    # One tail probability per edge, ndtr(-|t|), keeps the tails accurate (no 1 - 1):
    # above the mean a bucket's mass is a difference of upper tails, below it of lower
    # tails, and the bucket holding the mean gets 1 minus both tails.
    tail = special.ndtr(-np.abs(t))
    lower, upper = t[..., :-1], t[..., 1:]
    tail_lower, tail_upper = tail[..., :-1], tail[..., 1:]
    masses = np.where(
        lower >= 0,
        tail_lower - tail_upper,
        np.where(upper <= 0, tail_upper - tail_lower, 1.0 - tail_lower - tail_upper),
    )
    return np.ascontiguousarray(masses.reshape(-1, masses.shape[-1]))


def _data_pmf(log_probs):
    """[num_values, rows, *event] log-probabilities -> [rows * elements, num_values]."""
    logp = np.asarray(log_probs, np.float64)
    logp = np.moveaxis(logp.reshape(logp.shape[0], -1), 0, -1)
    logp = logp - logp.max(axis=-1, keepdims=True)
    p = np.exp(logp)
    # C order: constriction reads the buffer row by row.
    return np.ascontiguousarray(p / p.sum(axis=-1, keepdims=True))


def _initial_words(count):
    """A fixed pseudo-random uint32 sequence (SHAKE-256 of a constant): the same in every
    process and version."""
    raw = hashlib.shake_256(_SEED).digest(4 * count)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


# --------------------------------------------------------------------------- the header
def _pack_header(fields):
    out = bytearray(_MAGIC)
    out += struct.pack("<BB", FORMAT_VERSION, fields["mode"])
    out += fields["fingerprint"]
    dtype = fields["dtype"].encode("ascii")
    out += struct.pack("<B", len(dtype)) + dtype
    shape = fields["shape"]
    out += struct.pack(f"<B{len(shape)}I", len(shape), *shape)
    out += struct.pack("<QI", fields["count"], fields["batch_size"])
    if fields["mode"] == _LOSSLESS:
        out += struct.pack(
            "<BqqII",
            fields["latent_bits"],
            fields["low"],
            fields["high"],
            fields["initial_words"],
            fields["untouched_words"],
        )
    else:
        out += struct.pack("<dI", fields["step"], fields["max_code"])
    return bytes(out)


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(
                f"data is truncated: the stream ends inside its header ({len(self.data)} bytes)."
            )
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values


def _parse(data):
    """(header fields, ANS words) of a stream, after checking magic, version and CRC."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes. Received: {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != _MAGIC:
        raise ValueError(
            "data is not a probae stream: it does not start with the bytes b'PBAE'. "
            f"Received: {data[:4]!r}"
        )
    reader = _Reader(data)
    reader.take("<4s")
    version, mode = reader.take("<BB")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"data is a probae stream of format version {version}; this probae reads "
            f"version {FORMAT_VERSION}."
        )
    if mode not in (_LOSSLESS, _LOSSY):
        raise ValueError(f"data is corrupted: unknown mode {mode}.")
    fields = {"mode": mode}
    (fields["fingerprint"],) = reader.take("<16s")
    (length,) = reader.take("<B")
    (dtype,) = reader.take(f"<{length}s")
    (ndim,) = reader.take("<B")
    shape = reader.take(f"<{ndim}I")
    fields["count"], fields["batch_size"] = reader.take("<QI")
    if mode == _LOSSLESS:
        keys = ("latent_bits", "low", "high", "initial_words", "untouched_words")
        fields.update(zip(keys, reader.take("<BqqII")))
    else:
        fields["step"], fields["max_code"] = reader.take("<dI")
    (num_words,) = reader.take("<Q")
    end = reader.pos + 4 * num_words
    if end + 4 != len(data):
        raise ValueError(
            f"data is truncated or has extra bytes: its header announces {end + 4} bytes, "
            f"received {len(data)}."
        )
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise ValueError("data is corrupted: its CRC-32 checksum does not match.")
    try:
        fields["dtype"] = np.dtype(dtype.decode("ascii")).str
    except (TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"data is corrupted: unreadable dtype {dtype!r}.") from err
    fields["shape"] = tuple(shape)
    fields["header_bytes"] = reader.pos
    words = np.frombuffer(data, dtype="<u4", count=num_words, offset=reader.pos)
    return fields, words.astype(np.uint32)


def _finish(fields, words):
    words = np.ascontiguousarray(words, dtype="<u4")
    body = _pack_header(fields) + struct.pack("<Q", len(words)) + words.tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def stream_info(data):
    """What a stream's header says, and its size.

    Returns:
        dict: ``mode`` ("lossless" or "lossy"), ``format_version``, ``fingerprint``
        (hex), ``dtype``, ``shape`` (of one example), ``count``, ``batch_size``,
        ``total_bytes``, ``header_bytes`` (header, word count and checksum), ``payload_bits``
        (the ANS words); lossless: ``latent_bits``, ``support``, ``initial_bits`` (the
        bits-back start-up cost: initial bits consumed, hence written, once per stream);
        lossy: ``step`` and ``max_code``.

    Raises:
        ValueError: not a probae stream, truncated or corrupted.
    """
    fields, words = _parse(data)
    info = {
        "mode": "lossless" if fields["mode"] == _LOSSLESS else "lossy",
        "format_version": FORMAT_VERSION,
        "fingerprint": fields["fingerprint"].hex(),
        "dtype": fields["dtype"],
        "shape": fields["shape"],
        "count": fields["count"],
        "batch_size": fields["batch_size"],
        "total_bytes": len(data),
        "header_bytes": len(data) - 4 * len(words),
        "payload_bits": 32 * len(words),
    }
    if fields["mode"] == _LOSSLESS:
        info["latent_bits"] = fields["latent_bits"]
        info["support"] = (fields["low"], fields["high"])
        info["initial_bits"] = 32 * (fields["initial_words"] - fields["untouched_words"])
    else:
        info["step"] = fields["step"]
        info["max_code"] = fields["max_code"]
    return info


# --------------------------------------------------------------------------- validation
def _check_data(model, x, support):
    """x as [n, *event_shape] float32 (and its dtype); integers in the support if given."""
    if isinstance(x, (tf.Tensor, tf.Variable)):
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"x must be a numeric array. Received: an array of dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"x must be a real array. Received: an array of dtype {arr.dtype}")
    event_shape = tuple(model.event_shape)
    if arr.shape[1:] != event_shape or arr.ndim != len(event_shape) + 1:
        raise ValueError(
            f"x must have shape (n, {', '.join(map(str, event_shape))}) for this model. "
            f"Received: x with shape {arr.shape}"
        )
    if len(arr) == 0:
        raise ValueError("x must hold at least one example. Received: 0 examples")
    values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("x must be finite: it holds NaN or infinite values.")
    if support is not None:
        low, high = support
        lo, hi = float(values.min()), float(values.max())
        integral = bool(np.all(values == np.round(values)))
        if lo < low or hi > high or not integral:
            raise ValueError(
                f"x must hold integers in {low}..{high}, the support of this model's "
                f"discrete likelihood, for lossless coding. Received: values in "
                f"[{lo:g}, {hi:g}]" + ("" if integral else ", not all integers") + "."
            )
    else:
        model.decoder.check_support(values.astype(np.float32), "x")
    return values.astype(np.float32), arr.dtype


def _check_fields(model, fields):
    if fields["fingerprint"] != model_fingerprint(model):
        raise ValueError(
            "data was compressed with a different model: the fingerprint of the model's "
            f"weights is {model_fingerprint(model).hex()}, the stream's is "
            f"{fields['fingerprint'].hex()}."
        )
    if tuple(fields["shape"]) != tuple(model.event_shape):
        raise ValueError(
            f"data holds examples of shape {fields['shape']}; the model's are "
            f"{tuple(model.event_shape)}."
        )


# --------------------------------------------------------------------------- the codec
def compress(model, x, *, batch_size=100, lossy=False, step=0.5, latent_bits=8):
    """Codes ``x`` with the model into bytes (see the module doc for the method).

    Args:
        model: a trained ``probae.ProbabilisticAutoencoder`` with a diagonal Gaussian
            encoder and prior (N(0, I) or any diagonal Gaussian), unconditional.
        x: ``[n, *event_shape]`` array. Lossless: integers in the decoder's
            ``discrete_support`` (any numeric dtype; ``decompress`` returns the same
            dtype). Lossy: any data the model takes.
        batch_size: images per coding block and rows per network call (the first blocks
            are smaller: see the module doc). Recorded in the stream.
        lossy: code the quantised posterior mean instead (``decompress`` then returns the
            likelihood's mean, float32).
        step: lossy only: the quantisation step of the code, in prior standard
            deviations (smaller: more bits, less distortion).
        latent_bits: lossless only: each latent dimension is cut into 2 ** latent_bits
            buckets of equal prior mass (BB-ANS uses 8 to 12; the default is 8).

    Returns:
        bytes: the stream (header, ANS words, CRC-32).

    Raises:
        ValueError: a model that cannot code (no discrete likelihood for lossless, a
            prior or posterior that is not a diagonal Gaussian, a conditional model), or
            invalid data (wrong shape, NaN, values outside the support or not integers).
        TypeError: a model that is not a probae model, non-numeric data.
    """
    loc, scale = _check_model(model)
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(lossy, (bool, np.bool_)):
        raise TypeError(f"lossy must be True or False. Received: lossy={lossy!r}")
    if lossy:
        step = check_positive_float(step, "step")
        xf, dtype = _check_data(model, x, None)
        return _compress_lossy(model, xf, batch_size, step, loc, scale)
    support = model.decoder.discrete_support
    if support is None:
        raise ValueError(
            f"Lossless coding needs a discrete likelihood; this model's decoder "
            f"({type(model.decoder).__name__}) is continuous (discrete_support is None). "
            "Use lossy=True, or a BernoulliDecoder (binary data) or an 8-bit decoder."
        )
    latent_bits = check_positive_int(latent_bits, "latent_bits")
    if latent_bits > 16:
        raise ValueError(f"latent_bits must be at most 16. Received: latent_bits={latent_bits}")
    xf, dtype = _check_data(model, x, support)
    fields = {
        "mode": _LOSSLESS,
        "fingerprint": model_fingerprint(model),
        "dtype": np.dtype(dtype).str,
        "shape": tuple(model.event_shape),
        "count": len(xf),
        "batch_size": batch_size,
        "latent_bits": latent_bits,
        "low": int(support[0]),
        "high": int(support[1]),
    }
    latent_dim = int(loc.shape[-1])
    # Enough initial words for the worst case of the first block, twice; the untouched
    # ones are not written, so a generous start costs nothing in the stream.
    count = _MAX_SYMBOL_BITS * latent_dim * batch_size // 32 + 64
    for _ in range(4):
        words, untouched = _bits_back_encode(model, xf, fields, loc, scale, count)
        if words is not None:
            fields["initial_words"], fields["untouched_words"] = count, untouched
            return _finish(fields, words)
        count *= 8
    raise RuntimeError(  # pragma: no cover - needs a posterior far beyond 24 bits/dim
        "bits-back coding ran out of initial bits four times; this should not happen."
    )


def _bits_back_encode(model, xf, fields, loc, scale, count):
    stream = _ans()
    batch_size, low, high = fields["batch_size"], fields["low"], fields["high"]
    edges, centres = _bucket_edges(fields["latent_bits"])
    categorical = stream.model.Categorical(perfect=False)
    uniform = stream.model.Uniform(2 ** fields["latent_bits"])
    encoder, support = _encoder_fn(model, batch_size), _support_fn(model, low, high, batch_size)
    initial = _initial_words(count)
    coder = stream.stack.AnsCoder(initial, seal=True)
    for start, stop in _blocks(len(xf), batch_size):
        xb = xf[start:stop]
        mean, std = _padded(encoder, xb, batch_size)
        buckets = coder.decode(categorical, _posterior_masses(mean, std, loc, scale, edges))
        if coder.num_bits() < _MIN_STACK_BITS:
            return None, None
        z = (loc + scale * centres[buckets.reshape(mean.shape)]).astype(np.float32)
        pmf = _data_pmf(_padded(support, z, batch_size)[:, : stop - start])
        symbols = (xb.reshape(-1) - low).astype(np.int32)
        coder.encode_reverse(symbols, categorical, pmf)
        coder.encode_reverse(buckets, uniform)
    words = coder.get_compressed()
    # The bottom of the stack still holding the initial words is not written.
    same = np.cumprod(words[: len(initial)] == initial[: len(words)])
    untouched = int(same.sum())
    return words[untouched:], untouched


def _compress_lossy(model, xf, batch_size, step, loc, scale):
    stream = _ans()
    max_code = int(np.ceil(_LOSSY_RANGE / step))
    encoder = _encoder_fn(model, batch_size)
    codes = []
    for start in range(0, len(xf), batch_size):
        mean, _ = _padded(encoder, xf[start : start + batch_size], batch_size)
        k = np.rint((mean.astype(np.float64) - loc) / (scale * step))
        codes.append(np.clip(k, -max_code, max_code).astype(np.int32).reshape(-1))
    codes = np.concatenate(codes)
    coder = stream.stack.AnsCoder()
    family = stream.model.QuantizedGaussian(-max_code, max_code)
    coder.encode_reverse(codes, family, np.zeros(len(codes)), np.full(len(codes), 1.0 / step))
    fields = {
        "mode": _LOSSY,
        "fingerprint": model_fingerprint(model),
        "dtype": np.dtype(np.float32).str,
        "shape": tuple(model.event_shape),
        "count": len(xf),
        "batch_size": batch_size,
        "step": step,
        "max_code": max_code,
    }
    return _finish(fields, coder.get_compressed())


def decompress(model, data, *, batch_size=None):
    """Decodes a stream of ``compress`` with the same model.

    Args:
        model: the model that wrote the stream (checked by the fingerprint of its
            weights).
        data: bytes from ``compress``.
        batch_size: None (the stream's). A stream is decoded in the blocks it was coded
            in, so another value raises ValueError; the argument exists so that a caller
            can state what it expects.

    Returns:
        Lossless: ``[n, *event_shape]`` array of the original dtype, equal to the input of
        ``compress``. Lossy: float32 array of the likelihood's mean at the decoded codes.

    Raises:
        ValueError: not a probae stream, a truncated or corrupted one, one written by a
            different model, or (lossless) a stream whose decoding does not end in the
            initial state it started from (corruption, or floats that differ from the
            machine that wrote it).
    """
    loc, scale = _check_model(model)
    fields, words = _parse(data)
    _check_fields(model, fields)
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size != fields["batch_size"]:
            raise ValueError(
                f"batch_size must be None or the stream's ({fields['batch_size']}), the "
                f"blocks it was coded in. Received: batch_size={batch_size}"
            )
    if fields["mode"] == _LOSSY:
        return _decompress_lossy(model, fields, words, loc, scale)
    support = model.decoder.discrete_support
    if support is None or tuple(support) != (fields["low"], fields["high"]):
        raise ValueError(
            f"data was coded under a likelihood on {fields['low']}..{fields['high']}; this "
            f"model's decoder has discrete_support={support}."
        )
    return _bits_back_decode(model, fields, words, loc, scale)


def _corrupted():
    return ValueError(
        "data does not decode: the stream is corrupted, or was written with floats that "
        "this machine computes differently (another CPU or library version)."
    )


def _bits_back_decode(model, fields, words, loc, scale):
    stream = _ans()
    batch_size, low, high = fields["batch_size"], fields["low"], fields["high"]
    count, untouched = fields["initial_words"], fields["untouched_words"]
    if untouched > count:
        raise _corrupted()
    edges, centres = _bucket_edges(fields["latent_bits"])
    categorical = stream.model.Categorical(perfect=False)
    uniform = stream.model.Uniform(2 ** fields["latent_bits"])
    encoder, support = _encoder_fn(model, batch_size), _support_fn(model, low, high, batch_size)
    initial = _initial_words(count)
    coder = stream.stack.AnsCoder(np.concatenate([initial[:untouched], words]))
    n, shape = fields["count"], tuple(fields["shape"])
    latent_dim = int(loc.shape[-1])
    out = np.empty((n, *shape), np.float32)
    try:
        for start, stop in reversed(_blocks(n, batch_size)):
            rows = stop - start
            buckets = coder.decode(uniform, rows * latent_dim)
            z = (loc + scale * centres[buckets.reshape(rows, latent_dim)]).astype(np.float32)
            pmf = _data_pmf(_padded(support, z, batch_size)[:, :rows])
            symbols = coder.decode(categorical, pmf)
            xb = (symbols.astype(np.float32) + low).reshape(rows, *shape)
            out[start:stop] = xb
            mean, std = _padded(encoder, xb, batch_size)
            coder.encode_reverse(
                buckets, categorical, _posterior_masses(mean, std, loc, scale, edges)
            )
        # The decoding must end in the state compress started from.
        intact = np.array_equal(coder.get_compressed(unseal=True), initial)
    except (ValueError, RuntimeError, OverflowError, AssertionError) as err:
        # constriction raises AssertionError when a state cannot be unsealed.
        raise _corrupted() from err
    if not intact:
        raise _corrupted()
    return out.astype(np.dtype(fields["dtype"]))


def _decompress_lossy(model, fields, words, loc, scale):
    stream = _ans()
    n, step, max_code = fields["count"], fields["step"], fields["max_code"]
    if not (np.isfinite(step) and step > 0):
        raise _corrupted()
    latent_dim = int(loc.shape[-1])
    coder = stream.stack.AnsCoder(words)
    family = stream.model.QuantizedGaussian(-max_code, max_code)
    total = n * latent_dim
    try:
        codes = coder.decode(family, np.zeros(total), np.full(total, 1.0 / step))
    except (ValueError, RuntimeError, OverflowError, AssertionError) as err:
        raise _corrupted() from err
    if not coder.is_empty():
        raise _corrupted()
    z = (loc + scale * step * codes.reshape(n, latent_dim).astype(np.float64)).astype(np.float32)
    batch_size = fields["batch_size"]
    mean = _mean_fn(model, batch_size)
    parts = [
        _padded(mean, z[start : start + batch_size], batch_size)[: min(batch_size, n - start)]
        for start in range(0, n, batch_size)
    ]
    return np.concatenate(parts).astype(np.float32)
