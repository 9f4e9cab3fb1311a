"""Shared test setup."""
import numba
import numpy as np
import pytest

from numba_rnn import rnn, workspace
from numba_rnn.plan import SplitGuard

# Scratch memory handed out full of NaN: a kernel that reads scratch it did not write
# gives wrong results in every test, not only when the memory happens to hold garbage.
workspace.POISON = True


@pytest.fixture(autouse=True)
def numba_thread_count():
    """Every test starts with Numba's full thread count and leaves it so: some code under
    test (the benchmark's engine adapters) sets the count for the process."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


class AlwaysSplit(SplitGuard):
    def allows(self):
        return True


@pytest.fixture
def always_split(monkeypatch):
    """The column split is never turned off for a busy machine (``rnn.SPLIT_GUARD``):
    tests of the split path must take it on a loaded test machine too."""
    monkeypatch.setattr(rnn, "SPLIT_GUARD", AlwaysSplit())


@pytest.fixture
def poison_np_empty(monkeypatch):
    """A function that makes ``np.empty`` hand out float arrays full of NaN for the rest
    of the test, as ``workspace.POISON`` does for scratch memory: code that reads memory
    it did not write shows. Call it once the kernels are compiled (Numba would compile
    the patched function)."""
    empty = np.empty

    def nan_empty(*args, **kwargs):
        array = empty(*args, **kwargs)
        if array.dtype.kind == "f":
            array.fill(np.nan)
        return array

    return lambda: monkeypatch.setattr(np, "empty", nan_empty)
