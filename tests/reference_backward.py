"""A plain NumPy reference for the gradients of dynamic_rnn (backpropagation through time).

Written from the cells' equations, one time step at a time, batch-major, in float64,
independently of the kernels. Each cell has one function: it runs the forward pass over the
whole sequence, keeping what the backward pass needs, and returns a ``backward`` closure
whose loop walks the steps in reverse. Each gradient line sits under a comment quoting the
forward line it differentiates (in the style of Karpathy's min-char-rnn).

dynamic_rnn's sequence_length semantics: at step t, row b runs the cell only while
t < length[b]; past its end the state is copied through and the output is zero. So the
gradient of a copied state goes straight to the previous state, which carries the gradient
of the final state back to the step where the sequence ended (to the initial state for a
zero length), and the gradients of the zero outputs go nowhere.

Usage, like ``nr.vjp(nr.dynamic_rnn, ...)``::

    (outputs, state), backward = dynamic_rnn_vjp(cell, x, sequence_length=lengths,
                                                 initial_state=state0)
    grads = backward((d_outputs, d_state))   # Gradients(inputs, initial_state, weights)

``cell`` supplies the options (num_units, activation, forget_bias, ...) and, unless
``weights`` is given, the weights through ``get_weights()``; gradients are returned in
that order.
"""
import collections

import numpy as np

import numba_rnn as nr

Gradients = collections.namedtuple("Gradients", ("inputs", "initial_state", "weights"))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# name: (act(z), d act / dz at z)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z))),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "linear": (lambda z: z, np.ones_like),
}


def activation(cell):
    """The cell's activation and its derivative (None means tanh; callables by name)."""
    act = cell.activation or "tanh"
    return ACTIVATIONS[act if isinstance(act, str) else act.__name__]


def clip(z, limit):
    """clip_by_value(z, -limit, limit) and where its gradient passes (None: no clipping)."""
    if limit is None:
        return z, np.ones_like(z, dtype=bool)
    return np.clip(z, -limit, limit), (z >= -limit) & (z <= limit)


def run_or_copy(alive, new, old):
    """Forward of one masked step: the cell's value while alive, else the old one copied."""
    return np.where(alive, new, old)


def split_run_or_copy(alive, d_state, d_output=0.0):
    """Backward of ``state = run_or_copy(alive, new, old)`` and ``output = run_or_copy(alive,
    new, 0)``: the gradients of (new, old). A copied step's output is a constant zero."""
    return np.where(alive, d_state + d_output, 0.0), np.where(alive, 0.0, d_state)


# ----------------------------------------------------------------------------- BasicRNNCell
def basic_rnn(cell, weights, x, h0, alive):
    """h = act([x, h_prev] @ kernel + bias). x [B, T, D], h0 [B, H], alive [B, T, 1]."""
    kernel, bias = weights
    act, d_act = activation(cell)
    batch, steps, depth = x.shape
    outputs = np.zeros((batch, steps, cell.num_units))
    h, tape = h0, []
    for t in range(steps):
        xh = np.concatenate([x[:, t], h], axis=1)
        z = xh @ kernel + bias
        h_new = act(z)
        outputs[:, t] = run_or_copy(alive[:, t], h_new, 0.0)
        tape.append((xh, z))
        h = run_or_copy(alive[:, t], h_new, h)

    def backward(d_outputs, d_h):
        d_x, d_kernel, d_bias = np.zeros_like(x), np.zeros_like(kernel), np.zeros_like(bias)
        dh = d_h
        for t in reversed(range(steps)):
            xh, z = tape[t]
            # h = run_or_copy(alive, h_new, h);  outputs[:, t] = run_or_copy(alive, h_new, 0)
            dh_new, dh = split_run_or_copy(alive[:, t], dh, d_outputs[:, t])
            # h_new = act(z)
            dz = dh_new * d_act(z)
            # z = xh @ kernel + bias
            d_kernel += xh.T @ dz
            d_bias += dz.sum(axis=0)
            d_xh = dz @ kernel.T
            # xh = [x, h]
            d_x[:, t] = d_xh[:, :depth]
            dh = dh + d_xh[:, depth:]
        return d_x, dh, [d_kernel, d_bias]

    return outputs, h, backward


# ---------------------------------------------------------------------------------- GRUCell
def gru(cell, weights, x, h0, alive):
    """r, u = sigmoid([x, h_prev] @ gates/kernel + gates/bias)
    c = act([x, r * h_prev] @ candidate/kernel + candidate/bias)              (TF form)
    c = act(x @ Wc_x + candidate/bias + r * (h_prev @ Wc_h + recurrent_bias))  (reset_after)
    h = u * h_prev + (1 - u) * c
    """
    gates_kernel, gates_bias, cand_kernel, cand_bias = weights[:4]
    reset_after = cell.reset_after
    rec_bias = weights[4] if reset_after else None
    act, d_act = activation(cell)
    batch, steps, depth = x.shape
    units = cell.num_units
    wc_x, wc_h = cand_kernel[:depth], cand_kernel[depth:]
    outputs = np.zeros((batch, steps, units))
    h, tape = h0, []
    for t in range(steps):
        xt = x[:, t]
        xh = np.concatenate([xt, h], axis=1)
        g = xh @ gates_kernel + gates_bias
        r, u = sigmoid(g[:, :units]), sigmoid(g[:, units:])
        if reset_after:
            hc = h @ wc_h + rec_bias
            cz = xt @ wc_x + cand_bias + r * hc
        else:
            hc = None
            cz = np.concatenate([xt, r * h], axis=1) @ cand_kernel + cand_bias
        c = act(cz)
        h_new = u * h + (1 - u) * c
        outputs[:, t] = run_or_copy(alive[:, t], h_new, 0.0)
        tape.append((h, xh, r, u, hc, cz, c))
        h = run_or_copy(alive[:, t], h_new, h)

    def backward(d_outputs, d_h):
        d_x = np.zeros_like(x)
        d_gates_kernel, d_gates_bias = np.zeros_like(gates_kernel), np.zeros_like(gates_bias)
        d_wc_x, d_wc_h = np.zeros_like(wc_x), np.zeros_like(wc_h)
        d_cand_bias = np.zeros_like(cand_bias)
        d_rec_bias = np.zeros(units)
        dh = d_h
        for t in reversed(range(steps)):
            h, xh, r, u, hc, cz, c = tape[t]
            # h = run_or_copy(alive, h_new, h);  outputs[:, t] = run_or_copy(alive, h_new, 0)
            dh_new, dh = split_run_or_copy(alive[:, t], dh, d_outputs[:, t])
            # h_new = u * h + (1 - u) * c
            du = dh_new * (h - c)
            dc = dh_new * (1 - u)
            dh = dh + dh_new * u
            # c = act(cz)
            dcz = dc * d_act(cz)
            d_cand_bias += dcz.sum(axis=0)
            d_wc_x += x[:, t].T @ dcz
            d_x[:, t] += dcz @ wc_x.T
            if reset_after:
                # cz = x @ wc_x + cand_bias + r * hc
                dr = dcz * hc
                d_hc = dcz * r
                # hc = h @ wc_h + rec_bias
                d_wc_h += h.T @ d_hc
                d_rec_bias += d_hc.sum(axis=0)
                dh = dh + d_hc @ wc_h.T
            else:
                # cz = [x, r * h] @ cand_kernel + cand_bias
                d_wc_h += (r * h).T @ dcz
                d_rh = dcz @ wc_h.T
                dr = d_rh * h
                dh = dh + d_rh * r
            # r, u = sigmoid(g[:, :units]), sigmoid(g[:, units:])
            dg = np.concatenate([dr * r * (1 - r), du * u * (1 - u)], axis=1)
            # g = xh @ gates_kernel + gates_bias;  xh = [x, h]
            d_gates_kernel += xh.T @ dg
            d_gates_bias += dg.sum(axis=0)
            d_xh = dg @ gates_kernel.T
            d_x[:, t] += d_xh[:, :depth]
            dh = dh + d_xh[:, depth:]
        d_weights = [d_gates_kernel, d_gates_bias, np.concatenate([d_wc_x, d_wc_h]),
                     d_cand_bias]
        return d_x, dh, d_weights + ([d_rec_bias] if reset_after else [])

    return outputs, h, backward


# ---------------------------------------------------------------- LSTMCell, BasicLSTMCell
def lstm(cell, weights, x, state, alive):
    """i, j, f, o = split([x, m_prev] @ kernel + bias, 4)
    c = sigmoid(f + forget_bias + w_f * c_prev) * c_prev + sigmoid(i + w_i * c_prev) * act(j)
    c = clip(c, cell_clip)
    m = sigmoid(o + w_o * c) * act(c)
    m = clip(m @ projection, proj_clip)
    Without peepholes w_f = w_i = w_o = 0; without a projection it is the identity.
    """
    units = cell.num_units
    use_peepholes = getattr(cell, "use_peepholes", False)
    num_proj = getattr(cell, "num_proj", None)
    cell_clip = getattr(cell, "cell_clip", None)
    proj_clip = getattr(cell, "proj_clip", None) if num_proj is not None else None
    kernel, bias, *rest = weights
    w_f, w_i, w_o = rest[:3] if use_peepholes else np.zeros((3, units))
    projection = rest[-1] if num_proj is not None else np.eye(units)
    act, d_act = activation(cell)
    batch, steps, depth = x.shape
    if cell.state_is_tuple:
        c, m = state
    else:
        c, m = state[:, :units], state[:, units:]
    outputs = np.zeros((batch, steps, projection.shape[1]))
    tape = []
    for t in range(steps):
        xm = np.concatenate([x[:, t], m], axis=1)
        z = xm @ kernel + bias
        i, j, f, o = np.split(z, 4, axis=1)
        s_f = sigmoid(f + cell.forget_bias + w_f * c)
        s_i = sigmoid(i + w_i * c)
        c_raw = s_f * c + s_i * act(j)
        c_new, c_passes = clip(c_raw, cell_clip)
        s_o = sigmoid(o + w_o * c_new)
        m_full = s_o * act(c_new)
        m_new, m_passes = clip(m_full @ projection, proj_clip)
        outputs[:, t] = run_or_copy(alive[:, t], m_new, 0.0)
        tape.append((xm, c, j, s_f, s_i, c_passes, c_new, s_o, m_full, m_passes))
        c = run_or_copy(alive[:, t], c_new, c)
        m = run_or_copy(alive[:, t], m_new, m)

    def backward(d_outputs, d_state):
        if cell.state_is_tuple:
            dc, dm = d_state
        else:
            dc, dm = d_state[:, :units], d_state[:, units:]
        d_x, d_kernel, d_bias = np.zeros_like(x), np.zeros_like(kernel), np.zeros_like(bias)
        d_w_f, d_w_i, d_w_o = np.zeros(units), np.zeros(units), np.zeros(units)
        d_projection = np.zeros_like(projection)
        for t in reversed(range(steps)):
            xm, c, j, s_f, s_i, c_passes, c_new, s_o, m_full, m_passes = tape[t]
            # m = run_or_copy(alive, m_new, m);  outputs[:, t] = run_or_copy(alive, m_new, 0)
            dm_new, dm = split_run_or_copy(alive[:, t], dm, d_outputs[:, t])
            # c = run_or_copy(alive, c_new, c)
            dc_new, dc = split_run_or_copy(alive[:, t], dc)
            # m_new, m_passes = clip(m_full @ projection, proj_clip)
            dm_proj = dm_new * m_passes
            d_projection += m_full.T @ dm_proj
            dm_full = dm_proj @ projection.T
            # m_full = s_o * act(c_new)
            ds_o = dm_full * act(c_new)
            dc_new = dc_new + dm_full * s_o * d_act(c_new)
            # s_o = sigmoid(o + w_o * c_new)
            do = ds_o * s_o * (1 - s_o)
            d_w_o += (do * c_new).sum(axis=0)
            dc_new = dc_new + do * w_o
            # c_new, c_passes = clip(c_raw, cell_clip)
            dc_raw = dc_new * c_passes
            # c_raw = s_f * c + s_i * act(j)
            ds_f = dc_raw * c
            dc = dc + dc_raw * s_f
            ds_i = dc_raw * act(j)
            dj = dc_raw * s_i * d_act(j)
            # s_i = sigmoid(i + w_i * c)
            di = ds_i * s_i * (1 - s_i)
            d_w_i += (di * c).sum(axis=0)
            dc = dc + di * w_i
            # s_f = sigmoid(f + forget_bias + w_f * c)
            df = ds_f * s_f * (1 - s_f)
            d_w_f += (df * c).sum(axis=0)
            dc = dc + df * w_f
            # i, j, f, o = split(z, 4);  z = xm @ kernel + bias;  xm = [x, m]
            dz = np.concatenate([di, dj, df, do], axis=1)
            d_kernel += xm.T @ dz
            d_bias += dz.sum(axis=0)
            d_xm = dz @ kernel.T
            d_x[:, t] = d_xm[:, :depth]
            dm = dm + d_xm[:, depth:]
        d_weights = [d_kernel, d_bias]
        if use_peepholes:
            d_weights += [d_w_f, d_w_i, d_w_o]
        if num_proj is not None:
            d_weights.append(d_projection)
        d_state0 = (nr.LSTMStateTuple(dc, dm) if cell.state_is_tuple
                    else np.concatenate([dc, dm], axis=1))
        return d_x, d_state0, d_weights

    state = nr.LSTMStateTuple(c, m) if cell.state_is_tuple else np.concatenate([c, m], axis=1)
    return outputs, state, backward


# ----------------------------------------------------------------------------- MultiRNNCell
def multi_rnn(cell, weights, x, state, alive):
    """Layer k's outputs are layer k+1's inputs; state: the layers' states (tuple or concat)."""
    if cell.state_is_tuple:
        states = list(state)
    else:
        bounds = np.cumsum([0] + [layer.state_size for layer in cell.cells])
        states = [state[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    counts = [len(layer.get_weights()) for layer in cell.cells]
    offsets = np.cumsum([0] + counts)
    backwards, final_states = [], []
    for k, layer in enumerate(cell.cells):
        x, layer_state, layer_backward = run_cell(layer, weights[offsets[k]:offsets[k + 1]],
                                                  x, states[k], alive)
        final_states.append(layer_state)
        backwards.append(layer_backward)

    def join(per_layer):
        return tuple(per_layer) if cell.state_is_tuple else np.concatenate(per_layer, axis=1)

    def backward(d_outputs, d_state):
        if cell.state_is_tuple:
            d_states = list(d_state)
        else:
            d_states = [d_state[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        d_weights, d_states0 = [None] * len(backwards), [None] * len(backwards)
        for k in reversed(range(len(backwards))):
            # x = layer_k(x)
            d_outputs, d_states0[k], d_weights[k] = backwards[k](d_outputs, d_states[k])
        return d_outputs, join(d_states0), [g for layer in d_weights for g in layer]

    return x, join(final_states), backward


def run_cell(cell, weights, x, state, alive):
    """(outputs, final state, backward) of ``cell`` over a batch-major sequence."""
    if isinstance(cell, nr.MultiRNNCell):
        return multi_rnn(cell, weights, x, state, alive)
    if isinstance(cell, nr.LSTMCell):  # BasicLSTMCell too
        return lstm(cell, weights, x, state, alive)
    if isinstance(cell, nr.GRUCell):
        return gru(cell, weights, x, state, alive)
    if isinstance(cell, nr.BasicRNNCell):
        return basic_rnn(cell, weights, x, state, alive)
    raise TypeError(f"no reference for {type(cell).__name__}")


# ----------------------------------------------------------------------------- dynamic_rnn
def as_float64(structure):
    """A state (array, LSTMStateTuple or tuple of states) with float64 copies of its arrays."""
    if isinstance(structure, nr.LSTMStateTuple):
        return nr.LSTMStateTuple(*map(as_float64, structure))
    if isinstance(structure, (tuple, list)):
        return tuple(map(as_float64, structure))
    return np.array(structure, dtype=np.float64)


def dynamic_rnn_vjp(cell, inputs, sequence_length=None, initial_state=None, time_major=False,
                    weights=None):
    """``((outputs, state), backward)`` of dynamic_rnn, computed in float64.

    ``cell`` must be built; ``weights`` (default ``cell.get_weights()``) overrides its
    weights. ``backward((d_outputs, d_state))`` returns Gradients(inputs, initial_state,
    weights) with weights aligned with ``cell.get_weights()``.
    """
    x = np.array(inputs, dtype=np.float64)
    if time_major:
        x = x.swapaxes(0, 1)
    batch, steps = x.shape[:2]
    lengths = np.full(batch, steps) if sequence_length is None else np.asarray(sequence_length)
    alive = (np.arange(steps)[None, :] < lengths[:, None])[:, :, None]  # [B, T, 1]
    if initial_state is None:
        initial_state = cell.zero_state(batch, np.float64)
    weights = [np.array(w, dtype=np.float64)
               for w in (cell.get_weights() if weights is None else weights)]
    outputs, state, cell_backward = run_cell(cell, weights, x, as_float64(initial_state), alive)

    def backward(d_result):
        d_outputs, d_state = d_result
        d_outputs = np.array(d_outputs, dtype=np.float64)
        if time_major:
            d_outputs = d_outputs.swapaxes(0, 1)
        d_x, d_state0, d_weights = cell_backward(d_outputs, as_float64(d_state))
        return Gradients(d_x.swapaxes(0, 1) if time_major else d_x, d_state0, d_weights)

    return (outputs.swapaxes(0, 1) if time_major else outputs, state), backward
