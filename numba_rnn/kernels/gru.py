"""GRU recurrence, forward, in both of its forms.

With x W_x + b precomputed for all steps (columns r, u, then candidate):

    r, u = sigmoid(xw_ru + h_prev W_ru)
    reset_after=False (TensorFlow):  c = act(xw_c + (r * h_prev) W_c)
    reset_after=True (cuDNN/Keras):  c = act(xw_c + r * (h_prev W_c + b_c_rec))
    h = u * h_prev + (1 - u) * c

Arrays are in the plan layout (see ``kernels.common``).
"""
import numpy as np
from numba import prange

from .common import activate, active_rows, jit, matmul_acc, sigmoid


@jit(parallel=True)
def gru_forward(xw, w_ru, w_c, b_c_rec, reset_after, act, lengths, chunk_starts, h, out,
                save_gates, save_hc):
    """Run the recurrence; ``h`` [B, H] holds the initial state and receives the final one.

    xw [T, B, 3H]; w_ru [H, 2H]; w_c [H, H]; b_c_rec [H] (used when reset_after);
    out [T, B, H] zero-initialised. When ``save_gates`` is [T, B, 3H] it receives (r, u, c)
    of every step and ``save_hc`` [T, B, H] the recurrent candidate term
    (h_prev W_c + b_c_rec) of the reset_after form, for the backward pass.
    """
    hidden = h.shape[1]
    save = save_gates.shape[0] > 0
    for chunk in prange(chunk_starts.shape[0] - 1):
        start = chunk_starts[chunk]
        stop = chunk_starts[chunk + 1]
        z_ru = np.empty((stop - start, 2 * hidden), dtype=xw.dtype)
        z_c = np.empty((stop - start, hidden), dtype=xw.dtype)
        rh = np.empty((stop - start, hidden), dtype=xw.dtype)
        steps = lengths[start] if stop > start else 0
        for t in range(steps):
            n = active_rows(lengths, start, stop, t)
            z_ru[:n] = xw[t, start:start + n, :2 * hidden]
            matmul_acc(h, start, n, w_ru, z_ru)
            if reset_after:
                for i in range(n):
                    z_c[i] = b_c_rec
                matmul_acc(h, start, n, w_c, z_c)
            else:
                for i in range(n):
                    for k in range(hidden):
                        rh[i, k] = sigmoid(z_ru[i, k]) * h[start + i, k]
                z_c[:n] = xw[t, start:start + n, 2 * hidden:]
                matmul_acc(rh, 0, n, w_c, z_c)
            for i in range(n):
                r = start + i
                for k in range(hidden):
                    g_r = sigmoid(z_ru[i, k])
                    g_u = sigmoid(z_ru[i, hidden + k])
                    if reset_after:
                        g_c = activate(xw[t, r, 2 * hidden + k] + g_r * z_c[i, k], act)
                        if save:
                            save_hc[t, r, k] = z_c[i, k]
                    else:
                        g_c = activate(z_c[i, k], act)
                    h[r, k] = g_u * h[r, k] + (1.0 - g_u) * g_c
                    if save:
                        save_gates[t, r, k] = g_r
                        save_gates[t, r, hidden + k] = g_u
                        save_gates[t, r, 2 * hidden + k] = g_c
            out[t, start:start + n] = h[start:start + n]
