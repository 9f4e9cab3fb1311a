"""NumPy's own OpenBLAS, callable from compiled kernels.

The recurrent products are small (rows of one chunk times W_h) and repeated every step,
so they run inside the kernels. Hand-written loops reach about a third of what OpenBLAS
does on these shapes; calling the BLAS that NumPy wheels bundle gets the rest without
a new dependency.

The routines are registered with LLVM under names of our own (``numba_rnn_sgemm`` ...),
whatever the library calls them, so kernels compiled against them can be cached on disk
and relinked in the next process. Only the ILP64 CBLAS interface of NumPy's wheels is
recognised; with any other BLAS, ``FOUND`` is False and the kernels use their own loops.

Which of the two a kernel uses is fixed when it compiles, and Numba's disk cache does not
notice if NumPy is later swapped for a build without these routines: then delete the
package's ``__pycache__`` folders (or set NUMBA_CACHE_DIR) so the kernels recompile.
"""
import ctypes
import glob
import os

import llvmlite.binding as llvm
import numpy as np
from numba import types

# CBLAS enum values.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

# The prefixes NumPy's wheels have exported their ILP64 CBLAS under.
_PREFIXES = ("scipy_cblas_", "cblas_")
_ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")


def _find():
    """(ctypes library, {routine: address}) of NumPy's bundled OpenBLAS, or (None, {})."""
    base = os.path.dirname(os.path.dirname(np.__file__))
    for path in sorted(glob.glob(os.path.join(base, "numpy.libs", "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            names = {r: f"{prefix}{r}64_" for r in _ROUTINES}
            if all(hasattr(lib, name) for name in names.values()):
                return lib, {r: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                             for r, name in names.items()}
        return lib, {}
    return None, {}


LIBRARY, _ADDRESSES = _find()
FOUND = bool(_ADDRESSES)

if FOUND:
    for _routine, _address in _ADDRESSES.items():
        llvm.add_symbol(f"numba_rnn_{_routine}", _address)

# Pointers are passed as int64 (the same register as a pointer on 64-bit ABIs), so
# kernels hand over ``array.ctypes.data`` plus an offset.
_i32, _i64 = types.int32, types.int64


def _gemm(float_type):
    # order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
    return types.ExternalFunction(f"numba_rnn_{'s' if float_type == types.float32 else 'd'}gemm",
                                  types.void(_i32, _i32, _i32, _i64, _i64, _i64, float_type,
                                             _i64, _i64, _i64, _i64, float_type, _i64, _i64))


def _gemv(float_type):
    # order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy
    return types.ExternalFunction(f"numba_rnn_{'s' if float_type == types.float32 else 'd'}gemv",
                                  types.void(_i32, _i32, _i64, _i64, float_type, _i64, _i64,
                                             _i64, _i64, float_type, _i64, _i64))


sgemm, dgemm = _gemm(types.float32), _gemm(types.float64)
sgemv, dgemv = _gemv(types.float32), _gemv(types.float64)
