"""Weights in and out: TensorFlow 1.x variables, Keras layers and PyTorch modules.

Every converter returns a ``Converted`` network: the cells, with their weights, and how
to run them to get the framework's numbers. Calling it takes and returns what the
framework's layer does (its layout, masks or packed sequences, initial states); ``run``
is the numba_rnn function underneath (``dynamic_rnn``, ``bidirectional_dynamic_rnn`` or
``stack_bidirectional_dynamic_rnn``) and ``describe()`` says how one maps onto the other.

In (no framework needed unless said):

- ``from_torch(module)``: ``nn.LSTM`` (incl. ``proj_size``), ``nn.GRU``, ``nn.RNN``; any
  ``num_layers``, ``bidirectional``, ``batch_first``, ``bias``. ``from_torch_state_dict``
  does the same from a ``state_dict`` and the module's ``mode``.
- ``from_keras(layer)``: ``LSTM``, ``GRU`` (both ``reset_after`` forms), ``SimpleRNN``,
  ``RNN`` around one such cell, ``Bidirectional`` (Keras 3 or tf-keras).
  ``from_keras_config`` does the same from ``get_config()`` and ``get_weights()``.
- ``from_tensorflow(variables)``: a {name: array} mapping of TensorFlow 1.x variables, or
  a checkpoint path (TensorFlow needed to read it); ``read_checkpoint(path)``.

Out:

- ``to_torch(model)`` (PyTorch) / ``to_torch_state_dict(model)`` (no PyTorch);
- ``to_keras(model)`` (Keras) / ``to_keras_config(model)`` (no Keras);
- TensorFlow: ``cell.named_weights()`` gives TensorFlow's names and layout already.

Save and load numba_rnn's own cells with ``numba_rnn.save`` / ``numba_rnn.load``.

>>> import numpy as np, numba_rnn as nr
>>> from numba_rnn import interop
>>> cell = nr.GRUCell(4, reset_after=True, seed=0)
>>> cell.build(3)
>>> config, state_dict = interop.to_torch_state_dict(cell)   # what torch.nn.GRU(3, 4) holds
>>> config["mode"], state_dict["weight_ih_l0"].shape
('GRU', (12, 3))
>>> net = interop.from_torch_state_dict(state_dict, "GRU", batch_first=True)
>>> x = np.ones((2, 5, 3), np.float32)
>>> output, h_n = net(x, lengths=[5, 2])                      # as torch.nn.GRU returns them
>>> output.shape, h_n.shape
((2, 5, 4), (1, 2, 4))
>>> bool(np.array_equal(output, nr.dynamic_rnn(cell, x, sequence_length=[5, 2])[0]))
True
"""
from .keras_layers import KerasRNN, from_keras, from_keras_config, to_keras, to_keras_config
from .network import Converted, stack_bidirectional_dynamic_rnn
from .tf_variables import from_tensorflow, read_checkpoint
from .torch_modules import (
                            TorchRNN,
                            from_torch,
                            from_torch_state_dict,
                            to_torch,
                            to_torch_state_dict,
)

__all__ = ["Converted", "TorchRNN", "KerasRNN", "stack_bidirectional_dynamic_rnn",
           "from_torch", "from_torch_state_dict", "to_torch", "to_torch_state_dict",
           "from_keras", "from_keras_config", "to_keras", "to_keras_config",
           "from_tensorflow", "read_checkpoint"]
