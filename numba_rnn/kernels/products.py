"""Matrix products of the kernels and of the engine.

``matmul_acc`` and ``matmul_t_acc`` are the smaller products inside the kernels (one
chunk's rows at a time: the LSTM's output projection, a compiled step's input
projection; the recurrent products use ``panels.matmul_panels_acc`` instead);
``project``, ``matmul_rows`` and ``matmul_t`` are the large products of a whole sequence
(input projections, input and weight gradients), split across Numba's threads. The
first two run on W packed in panels (``kernels.panels``); the others call NumPy's
OpenBLAS (``kernels.blas``), which the engine keeps on one thread
(``threads.thread_limit``): BLAS's own threads would spin after each product and take
a core from the recurrence that follows. Without a usable BLAS (``blas.FOUND``),
``matmul_acc`` falls back to loops and ``add_matmul_t`` to NumPy.

The Python bodies run only with NUMBA_DISABLE_JIT.
"""
import numba
import numpy as np
from numba import prange
from numba.core import types
from numba.extending import overload

from .. import workspace
from . import blas
from .common import OPTIONS, inline, jit
from .panels import matmul_panels_acc, pack_panels_into, panels_shape

# Below this many rows, one matrix-vector product per row beats a matrix product: GEMM
# packs W into its own layout on every call, which small products do not pay back.
GEMV_ROWS = 8


def matmul_acc(a, row0, n, w, z):
    """z[i, :] += a[row0 + i, :] @ w for i < n (a, w, z 2-D of one float dtype)."""
    z[:n] += a[row0:row0 + n] @ w


def matmul_t_acc(a, col0, n, w, z):
    """z[i, :] += a[:, col0 + i] @ w for i < n: a slice of a^T @ w."""
    z[:n] += a[:, col0:col0 + n].T @ w


def _blas_routines(*arrays):
    """(gemm, gemv, one) for the arrays' common dtype, or None when kernels must use their
    own loops."""
    dtype = arrays[0].dtype
    if (not blas.FOUND or dtype not in (types.float32, types.float64)
            or any(a.dtype != dtype for a in arrays)):
        return None
    if dtype == types.float32:
        return blas.sgemm, blas.sgemv, np.float32(1.0)
    return blas.dgemm, blas.dgemv, np.float64(1.0)


_ROW_MAJOR, _NO_TRANS, _TRANS = (np.int32(v) for v in (blas.ROW_MAJOR, blas.NO_TRANS,
                                                       blas.TRANS))


@inline
def _blas_layout(a, w, z, a_cols, g_dim):
    """Leading dimensions (lda, ldw, ldz), or lda = -1 if a layout BLAS cannot take."""
    item = a.itemsize
    lda, ldw, ldz = a.strides[0] // item, w.strides[0] // item, z.strides[0] // item
    if (a.strides[1] != item or w.strides[1] != item or z.strides[1] != item
            or lda < a_cols or ldw < g_dim or ldz < g_dim):
        return -1, ldw, ldz
    return lda, ldw, ldz


@overload(matmul_acc, jit_options=OPTIONS)
def _matmul_acc(a, row0, n, w, z):
    routines = _blas_routines(a, w, z)
    if routines is None:
        return lambda a, row0, n, w, z: matmul_loops(a, row0, n, w, z)
    gemm, gemv, one = routines

    def impl(a, row0, n, w, z):
        k_dim, g_dim = w.shape
        if n <= 0 or k_dim == 0 or g_dim == 0:
            return
        lda, ldw, ldz = _blas_layout(a, w, z, k_dim, g_dim)
        if lda < 0:
            _simple_loops(a, row0, n, w, z)  # rare layouts, never on a hot path
            return
        a_ptr = np.int64(a.ctypes.data) + row0 * a.strides[0]
        w_ptr, z_ptr = np.int64(w.ctypes.data), np.int64(z.ctypes.data)
        if n < GEMV_ROWS:
            for i in range(n):  # z_i += W^T a_i, W [K, G] row-major read as its transpose
                gemv(_ROW_MAJOR, _TRANS, np.int64(k_dim), np.int64(g_dim), one, w_ptr,
                     np.int64(ldw), a_ptr + i * a.strides[0], np.int64(1), one,
                     z_ptr + i * z.strides[0], np.int64(1))
        else:
            gemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, np.int64(n), np.int64(g_dim),
                 np.int64(k_dim), one, a_ptr, np.int64(lda), w_ptr, np.int64(ldw), one,
                 z_ptr, np.int64(ldz))
    return impl


@overload(matmul_t_acc, jit_options=OPTIONS)
def _matmul_t_acc(a, col0, n, w, z):
    routines = _blas_routines(a, w, z)
    if routines is None:
        return lambda a, col0, n, w, z: matmul_t_loops(a, col0, n, w, z)
    gemm, _, one = routines

    def impl(a, col0, n, w, z):
        k_dim, g_dim = w.shape
        if n <= 0 or k_dim == 0 or g_dim == 0:
            return
        lda, ldw, ldz = _blas_layout(a, w, z, col0 + n, g_dim)
        if lda < 0:
            matmul_t_loops(a, col0, n, w, z)  # rare layouts, never on a hot path
            return
        gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, np.int64(n), np.int64(g_dim), np.int64(k_dim),
             one, np.int64(a.ctypes.data) + col0 * a.itemsize, np.int64(lda),
             np.int64(w.ctypes.data), np.int64(ldw), one, np.int64(z.ctypes.data),
             np.int64(ldz))
    return impl


@inline
def matmul_loops(a, row0, n, w, z):
    """``matmul_acc`` in plain loops.

    Four rows share each load of a row of ``w``, so ``w`` streams through the cache
    n / 4 times per call instead of n times; the inner loop runs over contiguous
    columns and vectorises.
    """
    k_dim, g_dim = w.shape
    i = 0
    while i + 4 <= n:
        r = row0 + i
        for k in range(k_dim):
            a0 = a[r, k]
            a1 = a[r + 1, k]
            a2 = a[r + 2, k]
            a3 = a[r + 3, k]
            for j in range(g_dim):
                wkj = w[k, j]
                z[i, j] += a0 * wkj
                z[i + 1, j] += a1 * wkj
                z[i + 2, j] += a2 * wkj
                z[i + 3, j] += a3 * wkj
        i += 4
    while i < n:
        r = row0 + i
        for k in range(k_dim):
            a0 = a[r, k]
            for j in range(g_dim):
                z[i, j] += a0 * w[k, j]
        i += 1


@numba.njit(**OPTIONS)
def _simple_loops(a, row0, n, w, z):
    """``matmul_acc`` in the plainest loops: small to compile, for layouts BLAS cannot
    take, which the kernels never pass on their hot paths."""
    for i in range(n):
        for k in range(w.shape[0]):
            aik = a[row0 + i, k]
            for j in range(w.shape[1]):
                z[i, j] += aik * w[k, j]


@numba.njit(**OPTIONS)
def matmul_t_loops(a, col0, n, w, z):
    """``matmul_t_acc`` in plain loops."""
    for k in range(w.shape[0]):
        for i in range(n):
            aki = a[k, col0 + i]
            for j in range(w.shape[1]):
                z[i, j] += aki * w[k, j]


# Rows per block of the whole-sequence products: enough for GEMM to run at full speed,
# few enough that a block's output stays in the core's cache between filling it with
# the bias and accumulating the product into it.
BLOCK_ROWS = 128


@inline
def _thread_rows(n_rows, part, n_parts):
    return n_rows * part // n_parts, n_rows * (part + 1) // n_parts


def _parts(n_rows):
    """How many threads a whole-sequence product of ``n_rows`` rows is split across."""
    return max(1, min(numba.get_num_threads(), n_rows // 16))


def _same_float(a, w, z, a_rows, a_cols):
    """Whether a, w, z share a float dtype the kernels take; ValueError if the shapes of
    z (+)= op(a) @ w do not fit."""
    if a.ndim != 2 or w.shape[0] != a_rows or z.shape != (a_cols, w.shape[1]):
        raise ValueError(f"matrix shapes do not fit: {a.shape}, {w.shape} into {z.shape}")
    return a.dtype in (np.float32, np.float64) and w.dtype == a.dtype and z.dtype == a.dtype


@inline
def step_projection(x, w_x_panels, bias):
    """x W_x + b of one step, for a compiled step function: x [B, D] -> [1, B, G], as the
    sequence kernels take their input projection, with ``w_x_panels = pack_panels(W_x)``:
    the same arithmetic as ``project``, so a step gives dynamic_rnn's numbers bit for bit."""
    xw = np.empty((1, x.shape[0], bias.shape[0]), dtype=x.dtype)
    xw[0, :] = bias
    matmul_panels_acc(np.ascontiguousarray(x), 0, x.shape[0], w_x_panels, xw[0])
    return xw


def packed_scratch(w, key):
    """``pack_panels(w)`` in this thread's scratch memory (``workspace``) under ``key``:
    for panels that one kernel call uses and drops."""
    return pack_panels_into(w, workspace.scratch(("panels", key), panels_shape(w), w.dtype))


def affine(x, w, bias):
    """x @ w + bias for x [N, D], as a new [N, G] array."""
    out = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
    if (not _same_float(x, w, out, x.shape[1], x.shape[0]) or bias.dtype != x.dtype
            or bias.shape != (w.shape[1],)):
        return x @ w + bias
    return affine_panels(x, packed_scratch(w, "affine"), bias, out)


def affine_panels(x, w_panels, bias, out=None):
    """``affine`` with W given as ``pack_panels(W)``, of x's float dtype, and bias [G]."""
    if out is None:
        out = np.empty((x.shape[0], bias.shape[0]), dtype=x.dtype)
    project(np.ascontiguousarray(x), w_panels, bias, out, _parts(x.shape[0]))
    return out


def add_matmul(a, w, z):
    """z += a @ w in place (z C-contiguous; w may be a transposed view)."""
    if not _same_float(a, w, z, a.shape[1], a.shape[0]):
        z += a @ w
        return
    matmul_rows(np.ascontiguousarray(a), packed_scratch(w, "add_matmul"), z,
                _parts(a.shape[0]))


def add_matmul_t(a, w, z):
    """z += a^T @ w in place, for a [K, M] (z C-contiguous)."""
    if not (_same_float(a, w, z, a.shape[0], a.shape[1]) and blas.FOUND):
        z += a.T @ w
        return
    n_parts = _parts(a.shape[0])
    partial = workspace.scratch("partial sums", (n_parts - 1,) + z.shape, z.dtype)
    matmul_t(np.ascontiguousarray(a), np.ascontiguousarray(w), z, partial)


@jit(parallel=True)
def project(x, w_panels, bias, out, n_parts):
    """out = x @ W + bias for x [N, D], out [N, G], ``w_panels = pack_panels(W)`` (the
    input projection of every step)."""
    for part in prange(n_parts):
        r0, r1 = _thread_rows(x.shape[0], part, n_parts)
        for b0 in range(r0, r1, BLOCK_ROWS):
            b1 = min(b0 + BLOCK_ROWS, r1)
            for i in range(b0, b1):  # not out[b0:b1] = bias: that compiles seconds longer
                for j in range(out.shape[1]):
                    out[i, j] = bias[j]
            matmul_panels_acc(x, b0, b1 - b0, w_panels, out[b0:b1])


@jit(parallel=True)
def matmul_rows(a, w_panels, z, n_parts):
    """z += a @ W (``w_panels = pack_panels(W)``), the rows of ``a`` and ``z`` split
    across threads."""
    for part in prange(n_parts):
        r0, r1 = _thread_rows(a.shape[0], part, n_parts)
        matmul_panels_acc(a, r0, r1 - r0, w_panels, z[r0:r1])


@jit(parallel=True)
def matmul_t(a, w, z, partial):
    """z += a^T @ w for a [K, M], w [K, G], z [M, G] (weight gradients: inputs^T @ gate
    gradients, K = steps x batch). The long K axis is split across threads, each summing
    its share into its own copy of z: every thread reads only its share of a and w.
    ``partial`` [threads - 1, M, G] (any content) holds the copies."""
    n_parts = partial.shape[0] + 1
    for part in prange(n_parts):
        k0, k1 = _thread_rows(a.shape[0], part, n_parts)
        if part == 0:
            matmul_t_acc(a[k0:k1], 0, a.shape[1], w[k0:k1], z)
        else:
            partial[part - 1].fill(0.0)
            matmul_t_acc(a[k0:k1], 0, a.shape[1], w[k0:k1], partial[part - 1])
    for p in range(n_parts - 1):
        z += partial[p]
