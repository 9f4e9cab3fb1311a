"""GRU recurrence, forward and backward, in both of its forms.

With x W_x + b precomputed for all steps (columns r, u, then candidate):

    r, u = sigmoid(xw_ru + h_prev W_ru)
    reset_after=False (TensorFlow):  c = act(xw_c + (r * h_prev) W_c)
    reset_after=True (cuDNN/Keras):  c = act(xw_c + r * (h_prev W_c + b_c_rec))
    h = u * h_prev + (1 - u) * c

Arrays are in the plan layout (see ``kernels.common``).
"""
import numpy as np
from numba import prange

from .common import (
    activate,
    activate_grad,
    active_rows,
    chunk_span,
    jit,
    like,
    one_step_plan,
    sigmoid,
)
from .products import matmul_acc


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
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        z_ru = np.empty((stop - start, 2 * hidden), dtype=xw.dtype)
        z_c = np.empty((stop - start, hidden), dtype=xw.dtype)
        rh = np.empty((stop - start, hidden), dtype=xw.dtype)
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
                    h[r, k] = g_u * h[r, k] + (like(g_u, 1.0) - g_u) * g_c
                    if save:
                        save_gates[t, r, k] = g_r
                        save_gates[t, r, hidden + k] = g_u
                        save_gates[t, r, 2 * hidden + k] = g_c
            out[t, start:start + n] = h[start:start + n]


@jit(parallel=True)
def gru_backward(w_ru_t, w_c_t, reset_after, act, lengths, chunk_starts, gates, hc, out, h0,
                 d_out, dh, dz, d_hc):
    """Backpropagate through the recurrence, from the last step to the first.

    ``gates`` [T, B, 3H] (r, u, c) and ``hc`` are what ``gru_forward`` saved, ``out`` its
    outputs and ``h0`` the state before the first step. ``dh`` [B, H] holds the gradient
    of the final state and receives that of the initial state. ``dz`` [T, B, 3H]
    (zero-initialised) receives the gradients of the pre-activations of r, u and the
    candidate; with ``reset_after``, ``d_hc`` [T, B, H] that of h_prev W_c + b_c_rec.
    ``w_ru_t`` [2H, H] and ``w_c_t`` [H, H] are the recurrent weights transposed.
    """
    hidden = h0.shape[1]
    one = like(h0, 1.0)
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        d_rh = np.empty((stop - start, hidden), dtype=h0.dtype)
        dh_prev = np.empty((stop - start, hidden), dtype=h0.dtype)
        for t in range(steps - 1, -1, -1):
            n = active_rows(lengths, start, stop, t)
            for i in range(n):
                r = start + i
                for k in range(hidden):
                    h_prev = out[t - 1, r, k] if t > 0 else h0[r, k]
                    g_u = gates[t, r, hidden + k]
                    g_c = gates[t, r, 2 * hidden + k]
                    d_h = dh[r, k] + d_out[t, r, k]
                    dz[t, r, hidden + k] = d_h * (h_prev - g_c) * g_u * (one - g_u)
                    dz[t, r, 2 * hidden + k] = d_h * (one - g_u) * activate_grad(g_c, act)
                    dh_prev[i, k] = d_h * g_u
            if reset_after:
                for i in range(n):
                    r = start + i
                    for k in range(hidden):
                        g_r = gates[t, r, k]
                        d_c = dz[t, r, 2 * hidden + k]
                        d_hc[t, r, k] = d_c * g_r
                        dz[t, r, k] = d_c * hc[t, r, k] * g_r * (one - g_r)
                matmul_acc(d_hc[t], start, n, w_c_t, dh_prev)
            else:
                d_rh[:n] = 0.0
                matmul_acc(dz[t, :, 2 * hidden:], start, n, w_c_t, d_rh)
                for i in range(n):
                    r = start + i
                    for k in range(hidden):
                        g_r = gates[t, r, k]
                        h_prev = out[t - 1, r, k] if t > 0 else h0[r, k]
                        dz[t, r, k] = d_rh[i, k] * h_prev * g_r * (one - g_r)
                        dh_prev[i, k] += d_rh[i, k] * g_r
            matmul_acc(dz[t, :, :2 * hidden], start, n, w_ru_t, dh_prev)
            dh[start:start + n] = dh_prev[:n]


@jit()
def gru_step(params, x, h):
    """One step for a whole batch, callable from compiled code: x [B, D], h [B, H] ->
    (output, new h), the output being the new h."""
    w_x, bias, w_ru, w_c, b_c_rec, reset_after, act = params
    xw, lengths, chunk_starts = one_step_plan(x, bias.shape[0])
    xw[0, :] = bias
    matmul_acc(x, 0, x.shape[0], w_x, xw[0])
    h = h.copy()
    out = np.zeros((1, x.shape[0], h.shape[1]), dtype=x.dtype)
    none = np.empty((0, x.shape[0], 0), dtype=x.dtype)
    gru_forward(xw, w_ru, w_c, b_c_rec, reset_after, act, lengths, chunk_starts, h, out, none,
                none)
    return out[0], h
