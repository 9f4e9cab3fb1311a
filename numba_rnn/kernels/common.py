"""Building blocks shared by the cell kernels.

Every kernel works on the *plan* layout made by ``numba_rnn.plan``: time-major arrays
``[T, B, ...]`` whose batch rows are grouped into chunks (one per thread), each chunk
sorted by decreasing sequence length. A chunk's active rows at step ``t`` are therefore
its first ``active_rows(...)`` rows, and finished sequences simply drop out of the work.
"""
import math

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

# Reassociation lets LLVM vectorise the loops; no 'nnan'/'ninf' so NaN and inf propagate.
FASTMATH = {"contract", "reassoc", "nsz"}

ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "linear": 3}


# error_model="numpy": float division by zero gives inf/NaN as in NumPy instead of a
# check that raises ZeroDivisionError, a branch that keeps loops from vectorising.
OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy"}


def jit(parallel=False):
    """The one way kernels are compiled: nopython, cached on disk, vectorisable math."""
    return numba.njit(cache=True, parallel=parallel, nogil=True, **OPTIONS)


def inline(function):
    """A helper of the kernels, inlined into them."""
    return numba.njit(inline="always", **OPTIONS)(function)


def activation_code(activation):
    """Map a cell's ``activation`` argument to the integer the kernels switch on."""
    if activation is None:
        return ACTIVATIONS["tanh"]
    name = getattr(activation, "__name__", activation)
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    raise ValueError(f"activation must be None or one of {sorted(ACTIVATIONS)} "
                     f"(or a function with one of those names), got {activation!r}")


# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 9 (beyond, tanh is 1 to float32 precision). A
# rational fit of our own (weighted least squares iterated towards equal ripple); maximum
# error 1.6e-7 in exact arithmetic, 4.0e-7 evaluated in float32. Only multiplications,
# additions and one division, so the gate loops vectorise (Numba here has no vector
# exp/tanh). float64 kernels use math.tanh/math.exp instead, to stay within 1e-10.
TANH_P = (9.99999797e-01, 1.38415541e-01, 4.07587467e-03, 3.25989753e-05, 4.45188636e-08,
          -3.01887843e-11, 2.37388463e-14)
TANH_Q = (1.0, 4.71748886e-01, 2.79921757e-02, 4.31722715e-04, 1.63910648e-06)


def tanh(x):
    """tanh for the kernels: exact in float64, the rational approximation in float32."""
    return math.tanh(x)


@overload(tanh, inline="always", jit_options=OPTIONS)
def _tanh(x):
    if x != types.float32:
        return lambda x: math.tanh(x)
    p0, p1, p2, p3, p4, p5, p6 = (np.float32(c) for c in TANH_P)
    q0, q1, q2, q3, q4 = (np.float32(c) for c in TANH_Q)
    bound = np.float32(9.0)

    def impl(x):
        x = min(max(x, -bound), bound)
        x2 = x * x
        p = p0 + x2 * (p1 + x2 * (p2 + x2 * (p3 + x2 * (p4 + x2 * (p5 + x2 * p6)))))
        q = q0 + x2 * (q1 + x2 * (q2 + x2 * (q3 + x2 * q4)))
        return x * p / q
    return impl


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@overload(sigmoid, inline="always", jit_options=OPTIONS)
def _sigmoid(x):
    if x != types.float32:
        return lambda x: 1.0 / (1.0 + math.exp(-x))
    half = np.float32(0.5)
    return lambda x: half + half * tanh(half * x)  # the same identity, in float32


@inline
def sigmoid_all(v):
    """v = sigmoid(v), element by element, for a 1-D array."""
    for k in range(v.shape[0]):
        v[k] = sigmoid(v[k])


@inline
def tanh_all(v):
    """v = tanh(v), element by element, for a 1-D array."""
    for k in range(v.shape[0]):
        v[k] = tanh(v[k])


def like(x, value):
    """``value`` as a scalar of the float type of ``x`` (a scalar or an array), so that
    float32 arithmetic stays float32 instead of being promoted by float64 literals."""
    return np.asarray(x).dtype.type(value)


@overload(like, inline="always")
def _like(x, value):
    if (x.dtype if isinstance(x, types.Array) else x) == types.float32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)


@inline
def activate(x, code):
    if code == 0:
        return tanh(x)
    if code == 1:
        return sigmoid(x)
    if code == 2:
        zero = like(x, 0.0)
        return x if x > zero else zero * x  # zero * x keeps NaN a NaN
    return x


@inline
def activate_grad(y, code):
    """Derivative of the activation, written in terms of its output ``y``."""
    one = like(y, 1.0)
    if code == 0:
        return one - y * y
    if code == 1:
        return y * (one - y)
    if code == 2:
        return one if y > like(y, 0.0) else like(y, 0.0)
    return one


@inline
def activate_all(v, code):
    """v = activate(v, code) for a 1-D array, the switch outside the loops so they
    vectorise."""
    if code == 0:
        tanh_all(v)
    elif code == 1:
        sigmoid_all(v)
    elif code == 2:
        for k in range(v.shape[0]):
            v[k] = activate(v[k], 2)


@inline
def times_activate_grad(d, y, code):
    """d *= activate_grad(y, code) for 1-D arrays (y the activation's output)."""
    one = like(d, 1.0)
    if code == 0:
        for k in range(d.shape[0]):
            d[k] *= one - y[k] * y[k]
    elif code == 1:
        for k in range(d.shape[0]):
            d[k] *= y[k] * (one - y[k])
    elif code == 2:
        for k in range(d.shape[0]):
            d[k] *= activate_grad(y[k], 2)


@inline
def copy_rows(dst, src):
    """dst[...] = src for 2-D arrays of one shape. Slice assignment would do, but it
    compiles a shape-mismatch error message: seconds on a cold start."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@inline
def chunk_span(chunk_starts, lengths, chunk):
    """Rows [start, stop) of a chunk and the number of steps of its longest sequence."""
    start = chunk_starts[chunk]
    stop = chunk_starts[chunk + 1]
    return start, stop, (lengths[start] if stop > start else 0)


@inline
def active_rows(lengths, start, stop, t):
    """Number of rows of chunk [start, stop) still running at step ``t``."""
    n = stop - start
    while n > 0 and lengths[start + n - 1] <= t:
        n -= 1
    return n


@inline
def one_step_plan(batch):
    """(lengths, chunk_starts) of a one-chunk plan where every length is 1, so the
    sequence kernels run a single step of a whole batch."""
    return np.ones(batch, dtype=np.int64), np.array([0, batch], dtype=np.int64)


def activate_numpy(x, code):
    """``activate`` on whole arrays, outside the kernels."""
    if code == 0:
        return np.tanh(x)
    if code == 1:
        return 1.0 / (1.0 + np.exp(-x))
    if code == 2:
        return np.maximum(x, 0.0)
    return x


def previous_steps(sequence, first):
    """[T, B, ...] values at step t - 1 for every t: ``first`` then sequence[:-1]."""
    return np.concatenate([first[None], sequence[:-1]], axis=0)


def empty_like_rows(n_rows, dtype):
    """A placeholder for an optional per-step array the kernel should not fill."""
    return np.empty((0, n_rows, 0), dtype=dtype)
