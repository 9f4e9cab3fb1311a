"""Threads of an RNN call: Numba's for the kernels, NumPy's BLAS kept on one.

Every matrix product of a call runs on Numba's threads, each computing its share with
the panel micro-kernel or NumPy's OpenBLAS (``kernels.products``). OpenBLAS's own worker
threads, after a multi-threaded product, keep spinning for a while and take a core from
the kernel that follows; on 2 cores that can double a call's time. One BLAS thread during
our calls avoids it (measured: a W3 training step 560 -> 330-385 ms on a busy 2-core
machine).

Only the OpenBLAS that NumPy wheels bundle is recognised; with any other BLAS this does
nothing.
"""
import contextlib
import ctypes
import numbers

import numba

from .kernels.blas import LIBRARY

# (set, get) symbol pairs of the OpenBLAS builds NumPy wheels have shipped.
_SYMBOLS = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads")]


def _find_openblas():
    if LIBRARY is None:
        return None
    for set_name, get_name in _SYMBOLS:
        if hasattr(LIBRARY, set_name) and hasattr(LIBRARY, get_name):
            setter, getter = getattr(LIBRARY, set_name), getattr(LIBRARY, get_name)
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


_OPENBLAS = _find_openblas()


def set_blas_threads(n):
    """Set NumPy's OpenBLAS thread count until changed again; False if it was not found."""
    if _OPENBLAS is None:
        return False
    _OPENBLAS[0](int(n))
    return True


@contextlib.contextmanager
def single_threaded():
    """Run the body with NumPy's OpenBLAS on one thread (if it is found)."""
    if _OPENBLAS is None:
        yield
        return
    setter, getter = _OPENBLAS
    previous = getter()
    setter(1)
    try:
        yield
    finally:
        setter(previous)


@contextlib.contextmanager
def thread_limit(parallel_iterations):
    """Cap the kernels' threads at ``parallel_iterations`` for the duration of a call, and
    keep BLAS on one thread; yields the number of kernel threads."""
    if parallel_iterations is None:
        with single_threaded():
            yield numba.get_num_threads()
        return
    if (isinstance(parallel_iterations, bool)
            or not isinstance(parallel_iterations, numbers.Integral) or parallel_iterations <= 0):
        raise ValueError(f"parallel_iterations must be a positive integer, got "
                         f"{parallel_iterations!r}")
    n_threads = min(int(parallel_iterations), numba.get_num_threads())
    with kernel_threads(n_threads), single_threaded():
        yield n_threads


@contextlib.contextmanager
def kernel_threads(n):
    """Run the body's kernels on ``n`` Numba threads (BLAS left as it is: inside
    ``thread_limit`` it is on one thread already)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
