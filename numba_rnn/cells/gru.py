"""GRUCell: the gated recurrent unit, in TensorFlow's form or the cuDNN/Keras form."""
import numpy as np

from ..kernels.common import empty_like_rows, previous_steps
from ..kernels.gru import gru_backward, gru_forward, gru_step
from ..kernels.products import add_matmul_t
from .base import KernelCell, gate_gradients


class GRUCell(KernelCell):
    """Gated recurrent unit.

    ::

        r, u = sigmoid([x, h_prev] @ gates/kernel + gates/bias)
        c = act([x, r * h_prev] @ candidate/kernel + candidate/bias)         # reset_after=False
        c = act(x @ Wc_x + candidate/bias + r * (h_prev @ Wc_h + b_rec))     # reset_after=True
        h = u * h_prev + (1 - u) * c

    Weights (TensorFlow layout): gates/kernel [D + H, 2H] (columns r then u), gates/bias [2H]
    (initialised to 1.0), candidate/kernel [D + H, H] (rows for x, then for h: Wc_x, Wc_h),
    candidate/bias [H]; with ``reset_after=True`` also candidate/recurrent_bias [H], the
    bias inside the reset product that Keras and PyTorch GRUs carry.
    """

    _default_name = "gru_cell"

    def __init__(self, num_units, activation=None, reset_after=False, name=None, dtype=None,
                 seed=None):
        super().__init__(num_units, activation=activation, name=name, dtype=dtype, seed=seed)
        self.reset_after = bool(reset_after)

    @property
    def state_size(self):
        return self.num_units

    @property
    def output_size(self):
        return self.num_units

    def _weight_specs(self, input_depth):
        h, rows = self.num_units, input_depth + self.num_units
        specs = [("gates/kernel", (rows, 2 * h), "glorot"), ("gates/bias", (2 * h,), "ones"),
                 ("candidate/kernel", (rows, h), "glorot"), ("candidate/bias", (h,), "zeros")]
        if self.reset_after:
            specs.append(("candidate/recurrent_bias", (h,), "zeros"))
        return specs

    def _input_projection(self):
        d, w = self.input_depth, self._kernel_weights
        return (np.concatenate([w["gates/kernel"][:d], w["candidate/kernel"][:d]], axis=1),
                np.concatenate([w["gates/bias"], w["candidate/bias"]]))

    def _saved(self, steps, batch, dtype):
        h = self.num_units
        # Zeros, not empty: rows past a sequence's end are never written but enter sums.
        hc = np.zeros((steps, batch, h), dtype) if self.reset_after else empty_like_rows(batch,
                                                                                        dtype)
        return np.zeros((steps, batch, 3 * h), dtype), hc

    def _recur(self, xw, plan, arrays, out, saved=None):
        (h,) = arrays
        w = self._kernel_weights
        b_rec = w.get("candidate/recurrent_bias", w["candidate/bias"])
        none = empty_like_rows(xw.shape[1], xw.dtype)
        gates, hc = saved if saved else (none, none)
        gru_forward(xw, self._packed_recurrent("gates/kernel", transient=True),
                    self._packed_recurrent("candidate/kernel", transient=True), b_rec,
                    self.reset_after, self._act, plan.lengths, plan.chunk_starts, h, out, gates,
                    hc)

    def _step_function(self, dtype):
        w = self._kernel_weights
        w_x_panels, bias = self._packed_input_projection()
        b_rec = w.get("candidate/recurrent_bias", w["candidate/bias"])
        return gru_step, (w_x_panels, bias, self._packed_recurrent("gates/kernel"),
                          self._packed_recurrent("candidate/kernel"), b_rec, self.reset_after,
                          self._act)

    def _recur_backward(self, plan, saved, out, arrays0, d_out, d_arrays, grads):
        (gates, hc), (h0,), (dh,) = saved, arrays0, d_arrays
        d, h = self.input_depth, self.num_units
        dz = gate_gradients("gru", gates, plan)
        d_hc = gate_gradients("gru candidate", hc, plan)
        gru_backward(self._packed_recurrent("gates/kernel", transposed=True, transient=True),
                     self._packed_recurrent("candidate/kernel", transposed=True,
                                            transient=True),
                     self.reset_after, self._act, plan.lengths, plan.chunk_starts, gates, hc,
                     out, h0, d_out, dh, dz, d_hc)
        h_prev = previous_steps(out, h0).reshape(-1, h)
        dz_flat = dz.reshape(-1, 3 * h)
        add_matmul_t(h_prev, dz_flat[:, :2 * h], grads["gates/kernel"][d:])
        if self.reset_after:
            d_hc = d_hc.reshape(-1, h)
            add_matmul_t(h_prev, d_hc, grads["candidate/kernel"][d:])
            grads["candidate/recurrent_bias"] += d_hc.sum(axis=0)
        else:
            reset_h_prev = gates[:, :, :h].reshape(-1, h) * h_prev
            add_matmul_t(reset_h_prev, dz_flat[:, 2 * h:], grads["candidate/kernel"][d:])
        return dz

    def _input_projection_grads(self, grads, d_w_x, d_b):
        d, h = self.input_depth, self.num_units
        grads["gates/kernel"][:d] += d_w_x[:, :2 * h]
        grads["candidate/kernel"][:d] += d_w_x[:, 2 * h:]
        grads["gates/bias"] += d_b[:2 * h]
        grads["candidate/bias"] += d_b[2 * h:]
