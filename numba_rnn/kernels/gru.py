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
    activate_all,
    active_rows,
    chunk_span,
    jit,
    like,
    one_step_plan,
    sigmoid_all,
    times_activate_grad,
)
from .panels import matmul_panels_acc
from .products import step_projection


@jit(parallel=True)
def gru_forward(xw, w_ru_panels, w_c_panels, b_c_rec, reset_after, act, lengths,
                chunk_starts, h, out, save_gates, save_hc):
    """Run the recurrence; ``h`` [B, H] holds the initial state and receives the final one.

    xw [T, B, 3H]; w_ru_panels, w_c_panels = ``pack_panels`` of W_ru [H, 2H] and W_c
    [H, H]; b_c_rec [H] (used when reset_after);
    out [T, B, H] zero-initialised. When ``save_gates`` is [T, B, 3H] it receives (r, u, c)
    of every step and ``save_hc`` [T, B, H] the recurrent candidate term
    (h_prev W_c + b_c_rec) of the reset_after form, for the backward pass.
    """
    hidden = h.shape[1]
    save = save_gates.shape[0] > 0
    one = like(h, 1.0)
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        z_ru = np.empty((stop - start, 2 * hidden), dtype=xw.dtype)
        z_c = np.empty((stop - start, hidden), dtype=xw.dtype)
        rh = np.empty((stop - start, hidden), dtype=xw.dtype)
        for t in range(steps):
            n = active_rows(lengths, start, stop, t)
            z_ru[:n] = xw[t, start:start + n, :2 * hidden]
            matmul_panels_acc(h, start, n, w_ru_panels, z_ru)
            for i in range(n):
                sigmoid_all(z_ru[i])  # the gates r, u in place
            if reset_after:
                for i in range(n):
                    z_c[i] = b_c_rec
                matmul_panels_acc(h, start, n, w_c_panels, z_c)
                for i in range(n):
                    if save:
                        save_hc[t, start + i] = z_c[i]
                    x_c, g_r, c = xw[t, start + i, 2 * hidden:], z_ru[i, :hidden], z_c[i]
                    for k in range(hidden):
                        c[k] = x_c[k] + g_r[k] * c[k]
            else:
                for i in range(n):
                    g_r, h_prev, reset_h = z_ru[i, :hidden], h[start + i], rh[i]
                    for k in range(hidden):
                        reset_h[k] = g_r[k] * h_prev[k]
                z_c[:n] = xw[t, start:start + n, 2 * hidden:]
                matmul_panels_acc(rh, 0, n, w_c_panels, z_c)
            for i in range(n):
                r = start + i
                activate_all(z_c[i], act)  # the candidate in place
                g_u, g_c, h_row = z_ru[i, hidden:], z_c[i], h[r]
                for k in range(hidden):
                    h_row[k] = g_u[k] * h_row[k] + (one - g_u[k]) * g_c[k]
                if save:
                    save_gates[t, r, :2 * hidden] = z_ru[i]
                    save_gates[t, r, 2 * hidden:] = g_c
            out[t, start:start + n] = h[start:start + n]


@jit(parallel=True)
def gru_backward(w_ru_t_panels, w_c_t_panels, reset_after, act, lengths, chunk_starts,
                 gates, hc, out, h0, d_out, dh, dz, d_hc):
    """Backpropagate through the recurrence, from the last step to the first.

    ``gates`` [T, B, 3H] (r, u, c) and ``hc`` are what ``gru_forward`` saved, ``out`` its
    outputs and ``h0`` the state before the first step. ``dh`` [B, H] holds the gradient
    of the final state and receives that of the initial state. ``dz`` [T, B, 3H]
    (zero-initialised) receives the gradients of the pre-activations of r, u and the
    candidate; with ``reset_after``, ``d_hc`` [T, B, H] that of h_prev W_c + b_c_rec.
    ``w_ru_t_panels`` and ``w_c_t_panels`` are ``pack_panels`` of the recurrent weights
    transposed (W_ru^T [2H, H], W_c^T [H, H]).
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
                h_prev = out[t - 1, r] if t > 0 else h0[r]
                g_u, g_c = gates[t, r, hidden:2 * hidden], gates[t, r, 2 * hidden:]
                dz_u, dz_c = dz[t, r, hidden:2 * hidden], dz[t, r, 2 * hidden:]
                dh_row, d_out_row, dh_prev_row = dh[r], d_out[t, r], dh_prev[i]
                for k in range(hidden):
                    d_h = dh_row[k] + d_out_row[k]
                    dz_u[k] = d_h * (h_prev[k] - g_c[k]) * g_u[k] * (one - g_u[k])
                    dh_prev_row[k] = d_h * g_u[k]
                for k in range(hidden):
                    dz_c[k] = (dh_row[k] + d_out_row[k]) * (one - g_u[k])
                times_activate_grad(dz_c, g_c, act)
            if reset_after:
                for i in range(n):
                    r = start + i
                    g_r, hc_row = gates[t, r, :hidden], hc[t, r]
                    dz_r, dz_c, d_hc_row = dz[t, r, :hidden], dz[t, r, 2 * hidden:], d_hc[t, r]
                    for k in range(hidden):
                        d_hc_row[k] = dz_c[k] * g_r[k]
                        dz_r[k] = dz_c[k] * hc_row[k] * g_r[k] * (one - g_r[k])
                matmul_panels_acc(d_hc[t], start, n, w_c_t_panels, dh_prev)
            else:
                d_rh[:n] = 0.0
                matmul_panels_acc(dz[t, :, 2 * hidden:], start, n, w_c_t_panels, d_rh)
                for i in range(n):
                    r = start + i
                    h_prev = out[t - 1, r] if t > 0 else h0[r]
                    g_r, dz_r = gates[t, r, :hidden], dz[t, r, :hidden]
                    d_rh_row, dh_prev_row = d_rh[i], dh_prev[i]
                    for k in range(hidden):
                        dz_r[k] = d_rh_row[k] * h_prev[k] * g_r[k] * (one - g_r[k])
                        dh_prev_row[k] += d_rh_row[k] * g_r[k]
            matmul_panels_acc(dz[t, :, :2 * hidden], start, n, w_ru_t_panels, dh_prev)
            dh[start:start + n] = dh_prev[:n]


@jit()
def gru_step(params, x, h):
    """One step for a whole batch, callable from compiled code: x [B, D], h [B, H] ->
    (output, new h), the output being the new h."""
    w_x_panels, bias, w_ru_panels, w_c_panels, b_c_rec, reset_after, act = params
    lengths, chunk_starts = one_step_plan(x.shape[0])
    xw = step_projection(x, w_x_panels, bias)
    h = h.copy()
    out = np.zeros((1, x.shape[0], h.shape[1]), dtype=x.dtype)
    none = np.empty((0, x.shape[0], 0), dtype=x.dtype)
    gru_forward(xw, w_ru_panels, w_c_panels, b_c_rec, reset_after, act, lengths, chunk_starts,
                h, out, none, none)
    return out[0], h
