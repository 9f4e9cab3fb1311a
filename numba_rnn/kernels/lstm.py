"""LSTM recurrence (BasicLSTMCell and LSTMCell), forward.

Per step, with z = x W_x + b (precomputed for all steps, forget_bias folded into b) plus
m_prev W_h, gate order i, j, f, o as in TensorFlow:

    i = sigmoid(z_i + w_i * c_prev)          # peephole terms only with use_peepholes
    f = sigmoid(z_f + w_f * c_prev)
    c = f * c_prev + i * act(z_j)            # then clipped to +-cell_clip
    o = sigmoid(z_o + w_o * c)
    m = o * act(c)                           # then m @ W_proj, clipped to +-proj_clip

Arrays are in the plan layout (see ``kernels.common``). Optional parts are switched off
by empty arrays and negative clip values, so one compiled function per dtype serves
every option.
"""
import numpy as np
from numba import prange

from .common import activate, active_rows, jit, matmul_acc, sigmoid


@jit(parallel=True)
def lstm_forward(xw, w_h, w_peep, w_proj, cell_clip, proj_clip, act,
                 lengths, chunk_starts, c, m, out, save_gates, save_c):
    """Run the recurrence; ``c`` and ``m`` hold the initial state and receive the final one.

    xw [T, B, 4H]; w_h [P, 4H]; w_peep [3, H] rows (f, i, o) or [0, H]; w_proj [H, P] or
    [0, 0]; c [B, H]; m [B, P]; out [T, B, P] zero-initialised. When ``save_gates`` is
    [T, B, 4H] it receives (i, act(j), f, o) and ``save_c`` [T, B, H] the cell state of
    every step, for the backward pass.
    """
    hidden = c.shape[1]
    use_peep = w_peep.shape[0] > 0
    use_proj = w_proj.shape[0] > 0
    save = save_gates.shape[0] > 0
    for chunk in prange(chunk_starts.shape[0] - 1):
        start = chunk_starts[chunk]
        stop = chunk_starts[chunk + 1]
        z = np.empty((stop - start, 4 * hidden), dtype=xw.dtype)
        m_full = np.empty((stop - start, hidden), dtype=xw.dtype)
        steps = lengths[start] if stop > start else 0
        for t in range(steps):
            n = active_rows(lengths, start, stop, t)
            z[:n] = xw[t, start:start + n]
            matmul_acc(m, start, n, w_h, z)
            for i in range(n):
                r = start + i
                for k in range(hidden):
                    c_prev = c[r, k]
                    z_i = z[i, k]
                    z_f = z[i, 2 * hidden + k]
                    z_o = z[i, 3 * hidden + k]
                    if use_peep:
                        z_f += w_peep[0, k] * c_prev
                        z_i += w_peep[1, k] * c_prev
                    g_i = sigmoid(z_i)
                    g_j = activate(z[i, hidden + k], act)
                    g_f = sigmoid(z_f)
                    c_new = g_f * c_prev + g_i * g_j
                    if cell_clip >= 0.0:
                        if c_new > cell_clip:
                            c_new = cell_clip
                        elif c_new < -cell_clip:
                            c_new = -cell_clip
                    if use_peep:
                        z_o += w_peep[2, k] * c_new
                    g_o = sigmoid(z_o)
                    c[r, k] = c_new
                    m_full[i, k] = g_o * activate(c_new, act)
                    if save:
                        save_gates[t, r, k] = g_i
                        save_gates[t, r, hidden + k] = g_j
                        save_gates[t, r, 2 * hidden + k] = g_f
                        save_gates[t, r, 3 * hidden + k] = g_o
                        save_c[t, r, k] = c_new
            if use_proj:
                # m_prev has been consumed by the matmul above, so m can be overwritten.
                m[start:start + n] = 0.0
                matmul_acc(m_full, 0, n, w_proj, m[start:start + n])
                if proj_clip >= 0.0:
                    for i in range(n):
                        for k in range(m.shape[1]):
                            if m[start + i, k] > proj_clip:
                                m[start + i, k] = proj_clip
                            elif m[start + i, k] < -proj_clip:
                                m[start + i, k] = -proj_clip
            else:
                m[start:start + n] = m_full[:n]
            out[t, start:start + n] = m[start:start + n]
