"""LSTM recurrence (BasicLSTMCell and LSTMCell), forward and backward.

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
import numba
import numpy as np
from numba import prange

from .common import (
    OPTIONS,
    activate,
    activate_grad,
    active_rows,
    chunk_span,
    copy_rows,
    inline,
    jit,
    like,
    one_step_plan,
    sigmoid,
    sigmoid_all,
    tanh,
    tanh_all,
)
from .panels import matmul_panels_acc, pack_panels
from .products import matmul_acc
from .sync import SLOT, clock, finish_step, finish_steps, share_no_cpu


@numba.njit(**OPTIONS)
def _plain_cell_row(z, c, m):
    """``_cell_row`` without peepholes or clipping, with tanh: the common case, in short
    loops that vectorise. (One loop storing all four gates and c and m does not: the
    compiler gives up on proving that so many arrays do not overlap.) Called, not
    inlined: compiled once, not into every kernel (first W1 1.3 s shorter)."""
    hidden = c.shape[0]
    z_i, z_j = z[:hidden], z[hidden:2 * hidden]
    z_f, z_o = z[2 * hidden:3 * hidden], z[3 * hidden:]
    sigmoid_all(z_i)
    tanh_all(z_j)
    sigmoid_all(z[2 * hidden:])
    for k in range(hidden):
        c_new = z_f[k] * c[k] + z_i[k] * z_j[k]
        c[k] = c_new
        m[k] = z_o[k] * tanh(c_new)


@numba.njit(**OPTIONS)
def _cell_row(z, c, m, w_peep, cell_clip, act, use_peep):
    """The gate math of one row: pre-activations z [4H] in, gates (i, act(j), f, o) out in
    their place; c [H] the cell state, updated; m [H] receives o * act(c)."""
    hidden = c.shape[0]
    for k in range(hidden):
        c_prev = c[k]
        z_i = z[k]
        z_f = z[2 * hidden + k]
        z_o = z[3 * hidden + k]
        if use_peep:
            z_f += w_peep[0, k] * c_prev
            z_i += w_peep[1, k] * c_prev
        g_i = sigmoid(z_i)
        g_j = activate(z[hidden + k], act)
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
        c[k] = c_new
        m[k] = g_o * activate(c_new, act)
        z[k] = g_i
        z[hidden + k] = g_j
        z[2 * hidden + k] = g_f
        z[3 * hidden + k] = g_o


@jit(parallel=True)
def lstm_forward(x, w_x_panels, bias, w_h_panels, w_peep, w_proj, cell_clip, proj_clip, act,
                 lengths, chunk_starts, c, m, out, save_gates, save_c):
    """Run the recurrence; ``c`` and ``m`` hold the initial state and receive the final one.

    x [T, B, D]; w_x_panels, w_h_panels are ``pack_panels`` of W_x [D, 4H] and W_h
    [P, 4H]; bias [4H]. Each step computes its own x W_x + b with m W_h, rather than
    reading a projection made for all steps beforehand: the whole-sequence [T, B, 4H]
    array would be written and read once more (26 MB on W7). With ``w_x_panels`` of
    no panels, x [T, B, 4H] is that projection already (for chunks of a few rows, which
    would read all of W_x at every step for little work). w_peep [3, H] rows
    (f, i, o) or [0, H], or None for the short gate math (no peepholes, no clipping,
    tanh: then the general one, ``_cell_row``, is not compiled); w_proj [H, P] or
    [0, 0]; c [B, H]; m [B, P]; out [T, B, P] zero-initialised. When ``save_gates`` is
    [T, B, 4H] it receives (i, act(j), f, o) and ``save_c`` [T, B, H] the cell state of
    every step, for the backward pass.
    """
    hidden = c.shape[1]
    use_proj = w_proj.shape[0] > 0
    save = save_gates.shape[0] > 0
    projected = w_x_panels.shape[0] == 0
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        z = np.empty((stop - start, 4 * hidden), dtype=x.dtype)
        m_full = np.empty((stop - start, hidden), dtype=x.dtype)
        for t in range(steps):
            n = active_rows(lengths, start, stop, t)
            if projected:
                for i in range(n):
                    for j in range(4 * hidden):
                        z[i, j] = x[t, start + i, j]
            else:
                for i in range(n):
                    for j in range(4 * hidden):
                        z[i, j] = bias[j]
                matmul_panels_acc(x[t], start, n, w_x_panels, z)
            matmul_panels_acc(m, start, n, w_h_panels, z)
            for i in range(n):
                r = start + i
                if w_peep is None:
                    _plain_cell_row(z[i], c[r], m_full[i])
                else:
                    _cell_row(z[i], c[r], m_full[i], w_peep, cell_clip, act,
                              w_peep.shape[0] > 0)
                if save:
                    save_gates[t, r] = z[i]
                    save_c[t, r] = c[r]
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


@numba.njit(**OPTIONS)
def _cell_row_backward(g, c, c_prev, dm, dc, dz, w_peep, cell_clip, act, use_peep):
    """Backward of ``_cell_row`` for one row: the gates g (i, act(j), f, o) and cell
    states c, c_prev it saw, the gradient dm of its output; dc holds the gradient of c
    and receives that of c_prev; dz [4H] receives that of the pre-activations."""
    hidden = c.shape[0]
    one, zero = like(c, 1.0), like(c, 0.0)
    for k in range(hidden):
        g_i = g[k]
        g_j = g[hidden + k]
        g_f = g[2 * hidden + k]
        g_o = g[3 * hidden + k]
        act_c = activate(c[k], act)
        dz_o = dm[k] * act_c * g_o * (one - g_o)
        d_c = dc[k] + dm[k] * g_o * activate_grad(act_c, act)
        if use_peep:
            d_c += w_peep[2, k] * dz_o
        if cell_clip >= 0.0 and abs(c[k]) >= cell_clip:
            d_c = zero
        dz_i = d_c * g_j * g_i * (one - g_i)
        dz_j = d_c * g_i * activate_grad(g_j, act)
        dz_f = d_c * c_prev[k] * g_f * (one - g_f)
        d_c_prev = d_c * g_f
        if use_peep:
            d_c_prev += w_peep[0, k] * dz_f + w_peep[1, k] * dz_i
        dc[k] = d_c_prev
        dz[k] = dz_i
        dz[hidden + k] = dz_j
        dz[2 * hidden + k] = dz_f
        dz[3 * hidden + k] = dz_o


@inline
def _plain_cell_row_backward(g, c, c_prev, dm, dc, dz):
    """``_cell_row_backward`` without peepholes or clipping, with tanh, in short loops
    that vectorise (see ``_plain_cell_row``)."""
    hidden = c.shape[0]
    one = like(c, 1.0)
    g_i, g_j = g[:hidden], g[hidden:2 * hidden]
    g_f, g_o = g[2 * hidden:3 * hidden], g[3 * hidden:]
    dz_i, dz_j = dz[:hidden], dz[hidden:2 * hidden]
    dz_f, dz_o = dz[2 * hidden:3 * hidden], dz[3 * hidden:]
    for k in range(hidden):
        act_c = tanh(c[k])
        dz_o[k] = dm[k] * act_c * g_o[k] * (one - g_o[k])
        dc[k] += dm[k] * g_o[k] * (one - act_c * act_c)
    for k in range(hidden):
        dz_i[k] = dc[k] * g_j[k] * g_i[k] * (one - g_i[k])
        dz_j[k] = dc[k] * g_i[k] * (one - g_j[k] * g_j[k])
    for k in range(hidden):
        dz_f[k] = dc[k] * c_prev[k] * g_f[k] * (one - g_f[k])
        dc[k] *= g_f[k]


@inline
def split_units(hidden, n_parts, part):
    """Units [k0, k1) of ``part`` when ``hidden`` units are split across ``n_parts``."""
    per_part = -(-hidden // n_parts)
    k0 = min(part * per_part, hidden)
    return k0, min(k0 + per_part, hidden)


@numba.njit(**OPTIONS)
def _gate_columns_panels(w, k0, k1):
    """Columns k0:k1 of each of the 4 gate blocks of W [K, 4H], side by side, packed: a
    part's share of the weights in the column split. (Copied, then packed: faster than
    packing straight from the gate blocks, measured.)"""
    hidden, units = w.shape[1] // 4, k1 - k0
    columns = np.empty((w.shape[0], 4 * units), dtype=w.dtype)
    for gate in range(4):
        copy_rows(columns[:, gate * units:(gate + 1) * units],
                  w[:, gate * hidden + k0:gate * hidden + k1])
    return pack_panels(columns)


@jit()
def pack_split(w, n_parts):
    """``_gate_columns_panels`` of every part's units, [n_parts, panels, K, width], zero
    past a part's columns: what ``lstm_forward_split`` packs on each call, made once for
    a frozen cell."""
    hidden = w.shape[1] // 4
    width = 128 // w.itemsize
    n_panels = -(-4 * split_units(hidden, n_parts, 0)[1] // width)
    panels = np.zeros((n_parts, n_panels, w.shape[0], width), dtype=w.dtype)
    for part in range(n_parts):
        k0, k1 = split_units(hidden, n_parts, part)
        part_panels = _gate_columns_panels(w, k0, k1)
        for p in range(part_panels.shape[0]):
            copy_rows(panels[part, p], part_panels[p])
    return panels


@inline
def _part_panels(w, packed, part, k0, k1):
    """A part's packed columns of W: kept ones if given, else packed here, by the thread
    that reads them (faster than packing all parts beforehand, into fresh memory)."""
    if packed.shape[0] > 0:
        return packed[part]
    return _gate_columns_panels(w, k0, k1)


@jit(parallel=True)
def lstm_forward_split(x, batch_major, w_x, bias, w_h, packed_x, packed_h, w_peep, cell_clip,
                       act, lengths, c, m, out, flags):
    """``lstm_forward`` for a batch too small to split by rows: the hidden units are split
    across threads instead, which meet at a barrier after every step. No num_proj.

    The batch is one chunk, rows sorted by decreasing length. x [T * B, D] and out
    [T * B, H] hold the rows of the steps in time-major order, rows (t, b), or with
    ``batch_major`` in the caller's batch-major order, rows (b, t): the caller's arrays
    themselves, no transposed copies. w_x [D, 4H], bias [4H], w_h [H, 4H]. Each part
    (thread) owns a range of units (``split_units``) and packs its columns of W_x and
    W_h, unless ``packed_x`` and ``packed_h`` are their ``pack_split`` (else [0, 0, 0,
    0]). It computes x W_x + b for its columns of each gate, all steps in one product,
    before the first step (no other part needs them), then per step multiplies m by its
    columns of W_h. ``flags`` comes from ``sync.step_flags(parts)``.

    ``w_peep`` as in ``lstm_forward``: None for the short gate math.
    """
    n_parts = flags.shape[0] // SLOT
    batch, hidden = c.shape
    max_time = x.shape[0] // max(batch, 1)
    steps = lengths[0] if batch > 0 else 0
    # The projected rows: all steps' rows at once, or each sequence's first ``steps``
    # rows when batch-major rows run past the longest sequence.
    if batch_major and steps < max_time:
        n_runs, run_rows, run_stride = batch, steps, max_time
    else:
        n_runs, run_rows, run_stride = 1, (max_time if batch_major else steps) * batch, 0
    m_steps = np.empty((2, batch, hidden), dtype=m.dtype)  # m of steps t and t + 1
    copy_rows(m_steps[0], m)
    for part in prange(n_parts):
        share_no_cpu(flags, np.int64(part), n_parts)
        k0, k1 = split_units(hidden, n_parts, part)
        units = k1 - k0
        xw = np.empty((x.shape[0], 4 * units), dtype=x.dtype)  # in x's row order
        w_x_panels = _part_panels(w_x, packed_x, part, k0, k1)
        for run in range(n_runs):
            r0 = run * run_stride
            for r in range(r0, r0 + run_rows):
                for gate in range(4):
                    for u in range(units):
                        xw[r, gate * units + u] = bias[gate * hidden + k0 + u]
            # Typed as the steps' rows below (layout 'A', "::1"): one compiled product.
            matmul_panels_acc(x, r0, run_rows, w_x_panels, xw[r0:r0 + run_rows, ::1])
        w_h_panels = _part_panels(w_h, packed_h, part, k0, k1)
        c_part = c[:, k0:k1].copy()
        m_part = np.empty((batch, units), dtype=m.dtype)
        started = clock()
        for t in range(steps):
            n = active_rows(lengths, 0, batch, t)
            # This step's rows of xw, turned into gates in place.
            if batch_major:
                z = xw.reshape((batch, max_time, 4 * units))[:n, t]
            else:
                z = xw[t * batch:t * batch + n]
            matmul_panels_acc(m_steps[t % 2], 0, n, w_h_panels, z)
            for i in range(n):
                r = i * max_time + t if batch_major else t * batch + i
                if w_peep is None:
                    _plain_cell_row(xw[r], c_part[i], m_part[i])
                else:
                    _cell_row(xw[r], c_part[i], m_part[i], w_peep[:, k0:k1], cell_clip, act,
                              w_peep.shape[0] > 0)
                copy_rows(out[r:r + 1, k0:k1], m_part[i:i + 1])
            copy_rows(m_steps[(t + 1) % 2, :n, k0:k1], m_part[:n])
            finish_step(flags, part, n_parts, t + 1)
            if t == 0:  # the first wait also covers the other threads waking up
                started = clock()
        finish_steps(flags, part, started)
        copy_rows(c[:, k0:k1], c_part)
    for i in range(batch):
        copy_rows(m[i:i + 1], m_steps[lengths[i] % 2, i:i + 1])  # the row's last step


@jit(parallel=True)
def lstm_backward(w_h_t_panels, w_peep, w_proj_t, cell_clip, proj_clip, act, lengths, chunk_starts,
                  gates, cs, out, c0, d_out, dc, dm, dz, dm_proj):
    """Backpropagate through the recurrence, from the last step to the first.

    ``gates``/``cs``/``out`` are what ``lstm_forward`` saved; ``c0`` the cell state
    before the first step. ``dc`` [B, H] and ``dm`` [B, P] hold the gradient of the
    final state and receive that of the initial state. ``dz`` [T, B, 4H]
    (zero-initialised) receives the gradient of the gate pre-activations, from which
    the caller forms every weight and input gradient with large matrix products;
    ``dm_proj`` [T, B, P] (or [0, B, 0] without projection) that of the projection's
    output. ``w_h_t_panels`` is ``pack_panels(W_h.T)``, ``w_proj_t`` W_proj transposed,
    ``w_peep`` as in ``lstm_forward``.
    Nothing flows into steps past a sequence's end: its rows are not active there.
    """
    hidden = cs.shape[2]
    use_proj = w_proj_t.shape[0] > 0
    zero = like(cs, 0.0)
    for chunk in prange(chunk_starts.shape[0] - 1):
        start, stop, steps = chunk_span(chunk_starts, lengths, chunk)
        dm_full = np.empty((stop - start, hidden), dtype=cs.dtype)
        for t in range(steps - 1, -1, -1):
            n = active_rows(lengths, start, stop, t)
            for i in range(n):
                r = start + i
                for k in range(dm.shape[1]):
                    d = dm[r, k] + d_out[t, r, k]
                    if use_proj:
                        if proj_clip >= 0.0 and abs(out[t, r, k]) >= proj_clip:
                            d = zero  # clipped: no gradient through the clip
                        dm_proj[t, r, k] = d
                    else:
                        dm_full[i, k] = d
            if use_proj:
                dm_full[:n] = 0.0
                matmul_acc(dm_proj[t], start, n, w_proj_t, dm_full)
            for i in range(n):
                r = start + i
                c_prev = cs[t - 1, r] if t > 0 else c0[r]
                if w_peep is None:
                    _plain_cell_row_backward(gates[t, r], cs[t, r], c_prev, dm_full[i], dc[r],
                                             dz[t, r])
                else:
                    _cell_row_backward(gates[t, r], cs[t, r], c_prev, dm_full[i], dc[r],
                                       dz[t, r], w_peep, cell_clip, act, w_peep.shape[0] > 0)
            dm[start:start + n] = 0.0
            matmul_panels_acc(dz[t], start, n, w_h_t_panels, dm[start:start + n])


@jit()
def lstm_step(params, x, state):
    """One step for a whole batch, callable from compiled code (raw_rnn's compiled loop):
    x [B, D], state (c, m) -> (output [B, P], (new c, new m))."""
    w_x_panels, bias, w_h_panels, w_peep, w_proj, cell_clip, proj_clip, act = params
    batch = x.shape[0]
    lengths, chunk_starts = one_step_plan(batch)
    c, m = state[0].copy(), state[1].copy()
    out = np.zeros((1, batch, m.shape[1]), dtype=x.dtype)
    none = np.empty((0, batch, 0), dtype=x.dtype)
    lstm_forward(np.ascontiguousarray(x).reshape((1, batch, x.shape[1])), w_x_panels, bias,
                 w_h_panels, w_peep, w_proj, cell_clip, proj_clip, act, lengths, chunk_starts,
                 c, m, out, none, none)
    return out[0], (c, m)
