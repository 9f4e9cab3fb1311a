"""Basic RNN recurrence, forward and backward: h = act(x W_x + b + h_prev W_h).

Arrays are in the plan layout (see ``kernels.common``).
"""
import numpy as np
from numba import prange

from .common import (
    activate_all,
    active_rows,
    chunk_span,
    jit,
    one_step_plan,
    times_activate_grad,
)
from .panels import matmul_panels_acc
from .products import step_projection


@jit(parallel=True)
def basic_rnn_forward(xw, w_h_panels, act, lengths, chunk_starts, h, out):
    """Run the recurrence; ``h`` [B, H] holds the initial state and receives the final one.

    xw [T, B, H] (input projection plus bias); w_h_panels = ``pack_panels(W_h)``, W_h
    [H, H]; out [T, B, H] zero-initialised.
    The outputs are the states, so the backward pass needs nothing saved beyond ``out``.
    """
    hidden = h.shape[1]
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        z = np.empty((stop - start, hidden), dtype=xw.dtype)
        for t in range(steps):
            n = active_rows(lengths, start, stop, t)
            z[:n] = xw[t, start:start + n]
            matmul_panels_acc(h, start, n, w_h_panels, z)
            for i in range(n):
                activate_all(z[i], act)
                h[start + i] = z[i]
            out[t, start:start + n] = h[start:start + n]


@jit(parallel=True)
def basic_rnn_backward(w_h_t_panels, act, lengths, chunk_starts, out, d_out, dh, dz):
    """Backpropagate from the last step to the first: ``dh`` [B, H] holds the gradient of
    the final state and receives that of the initial one; ``dz`` [T, B, H]
    (zero-initialised) receives the gradient of the pre-activations. ``w_h_t_panels``
    is ``pack_panels(W_h.T)``.
    """
    hidden = dh.shape[1]
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        for t in range(steps - 1, -1, -1):
            n = active_rows(lengths, start, stop, t)
            for i in range(n):
                r = start + i
                dz_row, dh_row, d_out_row = dz[t, r], dh[r], d_out[t, r]
                for k in range(hidden):
                    dz_row[k] = dh_row[k] + d_out_row[k]
                times_activate_grad(dz_row, out[t, r], act)
            dh[start:start + n] = 0.0
            matmul_panels_acc(dz[t], start, n, w_h_t_panels, dh[start:start + n])


@jit()
def basic_rnn_step(params, x, h):
    """One step for a whole batch, callable from compiled code: x [B, D], h [B, H] ->
    (output, new h), the output being the new h."""
    w_x_panels, bias, w_h_panels, act = params
    lengths, chunk_starts = one_step_plan(x.shape[0])
    xw = step_projection(x, w_x_panels, bias)
    h = h.copy()
    out = np.zeros((1, x.shape[0], h.shape[1]), dtype=x.dtype)
    basic_rnn_forward(xw, w_h_panels, act, lengths, chunk_starts, h, out)
    return out[0], h
