"""GRUCell: the gated recurrent unit, in TensorFlow's form or the cuDNN/Keras form."""
import numpy as np

from ..kernels.common import empty_like_rows
from ..kernels.gru import gru_forward
from .base import KernelCell


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
        d, w = self.input_depth, self._weights
        return (np.concatenate([w["gates/kernel"][:d], w["candidate/kernel"][:d]], axis=1),
                np.concatenate([w["gates/bias"], w["candidate/bias"]]))

    def _recur(self, xw, plan, arrays, out):
        (h,) = arrays
        d, w = self.input_depth, self._weights
        b_rec = w.get("candidate/recurrent_bias", w["candidate/bias"])
        none = empty_like_rows(xw.shape[1], xw.dtype)
        gru_forward(xw, w["gates/kernel"][d:], w["candidate/kernel"][d:], b_rec,
                    self.reset_after, self._act, plan.lengths, plan.chunk_starts, h, out,
                    none, none)
