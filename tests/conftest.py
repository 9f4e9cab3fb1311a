"""Shared test setup."""
import numba
import pytest

from numba_rnn import workspace

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
