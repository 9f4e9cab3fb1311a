"""The cells: one step of a recurrent network, with TensorFlow's weight layout."""
from .base import KernelCell, LSTMStateTuple, RNNCell
from .basic_rnn import BasicRNNCell
from .gru import GRUCell
from .lstm import BasicLSTMCell, LSTMCell
from .multi import MultiRNNCell

__all__ = ["RNNCell", "KernelCell", "LSTMStateTuple", "BasicRNNCell", "GRUCell",
           "BasicLSTMCell", "LSTMCell", "MultiRNNCell"]
