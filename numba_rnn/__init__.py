"""numba_rnn: TensorFlow 1.x ``tf.nn`` recurrent networks on Numba kernels."""
from . import nest
from .cells import (
    BasicLSTMCell,
    BasicRNNCell,
    GRUCell,
    KernelCell,
    LSTMCell,
    LSTMStateTuple,
    MultiRNNCell,
    RNNCell,
)
from .rnn import dynamic_rnn

__version__ = "0.1.0"

__all__ = ["RNNCell", "KernelCell", "LSTMStateTuple", "BasicRNNCell", "GRUCell",
           "BasicLSTMCell", "LSTMCell", "MultiRNNCell", "dynamic_rnn", "nest"]
