"""numba_rnn: TensorFlow 1.x ``tf.nn`` recurrent networks on Numba kernels."""
from . import interop, nest
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
from .grad import Gradients, vjp
from .io import WeightsFileError, load, save
from .raw_rnn import TensorArray, raw_rnn
from .rnn import bidirectional_dynamic_rnn, dynamic_rnn, static_rnn
from .state_saving import StateSaver, state_saving_rnn

__version__ = "0.1.0"

__all__ = ["RNNCell", "KernelCell", "LSTMStateTuple", "BasicRNNCell", "GRUCell",
           "BasicLSTMCell", "LSTMCell", "MultiRNNCell", "dynamic_rnn",
           "bidirectional_dynamic_rnn", "raw_rnn", "TensorArray", "static_rnn",
           "state_saving_rnn", "StateSaver", "vjp", "Gradients", "save", "load",
           "WeightsFileError", "interop", "nest"]
