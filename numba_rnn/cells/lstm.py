"""BasicLSTMCell and LSTMCell: long short-term memory, TensorFlow's two LSTM cells."""
import numpy as np

from ..kernels.common import activate_numpy, empty_like_rows, previous_steps
from ..kernels.lstm import (
    lstm_backward,
    lstm_forward,
    lstm_forward_split,
    lstm_step,
    pack_split,
)
from ..kernels.products import add_matmul_t
from ..kernels.sync import step_flags, waited_share
from .base import KernelCell, LSTMStateTuple, gate_gradients, positive_int

# Chunks of fewer rows than this project every step's input first, in one product:
# in the kernel they would read all of W_x at every step for a few rows' work.
PROJECT_FIRST_BELOW = 8


def _clip_value(value, what):
    if value is None:
        return -1.0  # the kernels read a negative clip as "no clipping"
    value = float(value)
    if not value >= 0.0:
        raise ValueError(f"{what} must be None or >= 0, got {value!r}")
    return value


class LSTMCell(KernelCell):
    """LSTM with optional peepholes, cell clipping and an output projection.

    ::

        i, j, f, o = split([x, m_prev] @ kernel + bias, 4)
        c = sigmoid(f + forget_bias + w_f_diag * c_prev) * c_prev
            + sigmoid(i + w_i_diag * c_prev) * act(j)          # peepholes if use_peepholes
        c = clip(c, -cell_clip, cell_clip)                       # if cell_clip
        m = sigmoid(o + w_o_diag * c) * act(c)
        m = clip(m @ projection/kernel, -proj_clip, proj_clip)   # if num_proj (, proj_clip)

    The state is ``LSTMStateTuple(c, m)`` with c of size num_units and m (the output) of
    size P = num_proj or num_units; with ``state_is_tuple=False`` it is the concatenation
    [c, m]. Weights (TensorFlow layout): kernel [D + P, 4H], bias [4H], then w_f_diag,
    w_i_diag, w_o_diag [H] with peepholes, then projection/kernel [H, P] with num_proj.
    """

    _default_name = "lstm_cell"

    def __init__(self, num_units, use_peepholes=False, cell_clip=None, num_proj=None,
                 proj_clip=None, forget_bias=1.0, state_is_tuple=True, activation=None,
                 name=None, dtype=None, seed=None):
        super().__init__(num_units, activation=activation, name=name, dtype=dtype, seed=seed)
        self.use_peepholes = bool(use_peepholes)
        self.cell_clip = cell_clip
        self.num_proj = None if num_proj is None else positive_int(num_proj, "num_proj")
        self.proj_clip = proj_clip
        self.forget_bias = float(forget_bias)
        self.state_is_tuple = bool(state_is_tuple)
        self._cell_clip = _clip_value(cell_clip, "cell_clip")
        self._proj_clip = _clip_value(proj_clip if num_proj is not None else None, "proj_clip")

    @property
    def _out_units(self):
        return self.num_proj or self.num_units

    @property
    def state_size(self):
        if self.state_is_tuple:
            return LSTMStateTuple(self.num_units, self._out_units)
        return self.num_units + self._out_units

    @property
    def output_size(self):
        return self._out_units

    def _weight_specs(self, input_depth):
        h, p = self.num_units, self._out_units
        specs = [("kernel", (input_depth + p, 4 * h), "glorot"), ("bias", (4 * h,), "zeros")]
        if self.use_peepholes:
            specs += [(name, (h,), "glorot") for name in ("w_f_diag", "w_i_diag", "w_o_diag")]
        if self.num_proj is not None:
            specs.append(("projection/kernel", (h, p), "glorot"))
        return specs

    def _input_projection(self):
        h = self.num_units
        w = self._kernel_weights
        bias = w["bias"].copy()
        bias[2 * h:3 * h] += self.forget_bias  # folded here so the kernel adds nothing
        return w["kernel"][:self.input_depth], bias

    def _state_arrays(self, leaves):
        if self.state_is_tuple:
            return list(leaves)
        (state,) = leaves
        return [np.ascontiguousarray(state[:, :self.num_units]),
                np.ascontiguousarray(state[:, self.num_units:])]

    def _state_leaves(self, arrays):
        return list(arrays) if self.state_is_tuple else [np.concatenate(arrays, axis=1)]

    def _peepholes(self, dtype):
        """The kernels' w_peep: [3, H] rows (f, i, o), or [0, H] without peepholes; None
        for their short gate math (no peepholes, no cell clipping, tanh), which then
        does not compile the general one."""
        if self.use_peepholes:
            w = self._kernel_weights
            return np.stack([w["w_f_diag"], w["w_i_diag"], w["w_o_diag"]])
        if self._cell_clip < 0 and self._act == 0:
            return None
        return np.empty((0, self.num_units), dtype=dtype)

    def _saved(self, steps, batch, dtype):
        # Zeros, not empty: rows past a sequence's end are never written but enter sums.
        h = self.num_units
        return np.zeros((steps, batch, 4 * h), dtype), np.zeros((steps, batch, h), dtype)

    def _splits_columns(self):
        # Below ~256 units a step's share of work is too small to pay for the barrier
        # (measured: break-even between 128 and 256 units on 2 threads).
        return self.num_proj is None and self.num_units >= 256

    # Each step's x W_x + b is computed in the kernel (see ``lstm_forward``), unless the
    # threads' chunks have fewer rows than PROJECT_FIRST_BELOW.
    _projects_in_kernel = True

    def _recur(self, x, plan, arrays, out, saved=None):
        c, m = arrays
        w = self._kernel_weights
        dtype = x.dtype
        w_proj = w.get("projection/kernel", np.empty((0, 0), dtype=dtype))
        none = empty_like_rows(x.shape[1], dtype)
        gates, cs = saved if saved else (none, none)
        if plan.column_parts > 1 and not saved and not w_proj.size:
            w_x, bias = self._kept("input projection rows", self._input_projection)
            packed_x, packed_h = self._split_panels(plan.column_parts, dtype)
            flags = step_flags(plan.column_parts)
            # x and out are time-major, or the caller's batch-major memory seen time-major
            # (rnn._Run._in_place): the kernel takes either as rows, in memory order.
            batch_major = not x.flags.c_contiguous
            x_rows, out_rows = (a.swapaxes(0, 1) if batch_major else a for a in (x, out))
            lstm_forward_split(x_rows.reshape(-1, x.shape[2]), batch_major, w_x, bias,
                               w["kernel"][self.input_depth:], packed_x, packed_h,
                               self._peepholes(dtype),
                               dtype.type(self._cell_clip), self._act, plan.lengths, c, m,
                               out_rows.reshape(-1, out.shape[2]), flags)
            plan.waited = max(plan.waited, waited_share(flags))
            return
        if plan.chunk_starts[1] < PROJECT_FIRST_BELOW:
            x = self._project(x)  # with no W_x panels, the kernel takes x as x W_x + b
            w_x_panels, bias = np.empty((0, 0, 0), dtype), np.empty(0, dtype)
        else:
            w_x_panels, bias = self._packed_input_projection(transient=True)
        lstm_forward(x, w_x_panels, bias, self._packed_recurrent("kernel", transient=True),
                     self._peepholes(dtype), w_proj,
                     dtype.type(self._cell_clip), dtype.type(self._proj_clip), self._act,
                     plan.lengths, plan.chunk_starts, c, m, out, gates, cs)

    def _split_panels(self, n_parts, dtype):
        """``lstm_forward_split``'s packed W_x and W_h: made once while frozen, else
        packed by the kernel itself (two empty arrays)."""
        if not self._frozen:
            none = np.empty((0, 0, 0, 0), dtype)
            return none, none
        kernel = self._kernel_weights["kernel"]
        return self._kept(("column split", n_parts), lambda: (
            pack_split(kernel[:self.input_depth], n_parts),
            pack_split(kernel[self.input_depth:], n_parts)))

    def _step_function(self, dtype):
        if not self.state_is_tuple:
            return None  # the compiled loop passes LSTMStateTuple states only
        w_x_panels, bias = self._packed_input_projection()
        w = self._kernel_weights
        w_proj = w.get("projection/kernel", np.empty((0, 0), dtype=dtype))
        w_h_panels = self._packed_recurrent("kernel")
        return lstm_step, (w_x_panels, bias, w_h_panels, self._peepholes(dtype),
                           w_proj, dtype.type(self._cell_clip), dtype.type(self._proj_clip),
                           self._act)

    def _recur_backward(self, plan, saved, out, arrays0, d_out, d_arrays, grads):
        (gates, cs), (c0, m0), (dc, dm) = saved, arrays0, d_arrays
        d, h, p = self.input_depth, self.num_units, self._out_units
        w = self._kernel_weights
        dtype = out.dtype
        use_proj = self.num_proj is not None
        w_proj_t = (np.ascontiguousarray(w["projection/kernel"].T) if use_proj
                    else np.empty((0, 0), dtype))
        dz = gate_gradients("lstm", gates, plan)
        dm_proj = np.zeros_like(out) if use_proj else empty_like_rows(out.shape[1], dtype)
        lstm_backward(self._packed_recurrent("kernel", transposed=True, transient=True),
                      self._peepholes(dtype), w_proj_t,
                      dtype.type(self._cell_clip), dtype.type(self._proj_clip), self._act,
                      plan.lengths, plan.chunk_starts, gates, cs, out, c0, d_out, dc, dm, dz,
                      dm_proj)
        dz_flat = dz.reshape(-1, 4 * h)
        add_matmul_t(previous_steps(out, m0).reshape(-1, p), dz_flat, grads["kernel"][d:])
        if self.use_peepholes:
            c_prev = previous_steps(cs, c0)
            grads["w_i_diag"] += (dz[:, :, :h] * c_prev).sum(axis=(0, 1))
            grads["w_f_diag"] += (dz[:, :, 2 * h:3 * h] * c_prev).sum(axis=(0, 1))
            grads["w_o_diag"] += (dz[:, :, 3 * h:] * cs).sum(axis=(0, 1))
        if use_proj:
            m_full = gates[:, :, 3 * h:] * activate_numpy(cs, self._act)
            add_matmul_t(m_full.reshape(-1, h), dm_proj.reshape(-1, p), grads["projection/kernel"])
        return dz


class BasicLSTMCell(LSTMCell):
    """The basic LSTM: LSTMCell without peepholes, clipping or projection.

    ``c = c_prev * sigmoid(f + forget_bias) + sigmoid(i) * act(j)``,
    ``h = act(c) * sigmoid(o)``. Weights (TensorFlow layout): kernel [D + H, 4H],
    bias [4H], gate order i, j, f, o. State ``LSTMStateTuple(c, h)``.
    """

    _default_name = "basic_lstm_cell"

    def __init__(self, num_units, forget_bias=1.0, state_is_tuple=True, activation=None,
                 name=None, dtype=None, seed=None):
        super().__init__(num_units, forget_bias=forget_bias, state_is_tuple=state_is_tuple,
                         activation=activation, name=name, dtype=dtype, seed=seed)

