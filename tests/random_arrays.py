"""Random arrays shared by the test modules."""
import numpy as np

from numba_rnn import nest


def random_state(cell, batch, dtype, seed=2):
    """A random initial state for ``cell`` (uniform in [-1, 1]), nested like its state."""
    rng = np.random.default_rng(seed)
    return nest.map_structure(lambda z: rng.uniform(-1, 1, z.shape).astype(dtype),
                              cell.zero_state(batch, dtype))
