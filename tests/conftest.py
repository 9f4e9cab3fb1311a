"""Shared test setup."""
import numba
import pytest


@pytest.fixture(autouse=True)
def numba_thread_count():
    """Every test starts with Numba's full thread count and leaves it so: some code under
    test (the benchmark's engine adapters) sets the count for the process."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
