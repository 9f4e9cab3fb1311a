"""BasicRNNCell: the plain (Elman) recurrent cell."""

from ..kernels.basic_rnn import basic_rnn_backward, basic_rnn_forward, basic_rnn_step
from ..kernels.common import previous_steps
from ..kernels.products import add_matmul_t
from .base import KernelCell, gate_gradients


class BasicRNNCell(KernelCell):
    """``h = act([x, h_prev] @ kernel + bias)``; the output is the new state.

    Weights (TensorFlow layout): kernel [D + H, H], bias [H]. ``activation`` defaults to
    tanh; 'sigmoid', 'relu' and 'linear' are also accepted.

    >>> import numpy as np, numba_rnn as nr
    >>> cell = nr.BasicRNNCell(8, seed=0)
    >>> outputs, state = nr.dynamic_rnn(cell, np.ones((2, 5, 3), np.float32))
    >>> outputs.shape, state.shape
    ((2, 5, 8), (2, 8))
    """

    _default_name = "basic_rnn_cell"

    @property
    def state_size(self):
        return self.num_units

    @property
    def output_size(self):
        return self.num_units

    def _weight_specs(self, input_depth):
        h = self.num_units
        return [("kernel", (input_depth + h, h), "glorot"), ("bias", (h,), "zeros")]

    def _input_projection(self):
        w = self._kernel_weights
        return w["kernel"][:self.input_depth], w["bias"]

    def _recur(self, xw, plan, arrays, out, saved=None):
        (h,) = arrays  # the outputs are the states: nothing else to save
        basic_rnn_forward(xw, self._packed_recurrent("kernel", transient=True), self._act,
                          plan.lengths, plan.chunk_starts, h, out)

    def _step_function(self, dtype):
        w_x_panels, bias = self._packed_input_projection()
        return basic_rnn_step, (w_x_panels, bias,
                                self._packed_recurrent("kernel"),
                                self._act)

    def _recur_backward(self, plan, saved, out, arrays0, d_out, d_arrays, grads):
        (h0,), (dh,) = arrays0, d_arrays
        dz = gate_gradients("basic rnn", out, plan)
        w_h_t_panels = self._packed_recurrent("kernel", transposed=True, transient=True)
        basic_rnn_backward(w_h_t_panels, self._act, plan.lengths, plan.chunk_starts, out, d_out,
                           dh, dz)
        h_prev = previous_steps(out, h0).reshape(-1, self.num_units)
        add_matmul_t(h_prev, dz.reshape(-1, self.num_units), grads["kernel"][self.input_depth:])
        return dz


