"""A plain NumPy reference for dynamic_rnn and the built-in cells.

Written from the TensorFlow 1.x equations, one time step at a time, batch-major, reading
only each cell's ``get_weights()`` list and its constructor options; it shares nothing
with the kernels. Custom cells (plain NumPy ``RNNCell`` subclasses) are stepped by calling
them.
"""
import numpy as np

import numba_rnn as nr
from numba_rnn import nest


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "linear": lambda x: x,
}


def activation(cell):
    act = cell.activation
    if act is None:
        return np.tanh
    return act if callable(act) else ACTIVATIONS[act]


# ------------------------------------------------------------------------ one time step
def basic_rnn_step(cell, x, h):
    kernel, bias = cell.get_weights()
    h = activation(cell)(np.concatenate([x, h], axis=1) @ kernel + bias)
    return h, h


def gru_step(cell, x, h):
    gates_kernel, gates_bias, cand_kernel, cand_bias, *recurrent_bias = cell.get_weights()
    act = activation(cell)
    gates = sigmoid(np.concatenate([x, h], axis=1) @ gates_kernel + gates_bias)
    r, u = np.split(gates, 2, axis=1)
    if cell.reset_after:
        depth = x.shape[1]
        (b_rec,) = recurrent_bias
        c = act(x @ cand_kernel[:depth] + cand_bias + r * (h @ cand_kernel[depth:] + b_rec))
    else:
        c = act(np.concatenate([x, r * h], axis=1) @ cand_kernel + cand_bias)
    h = u * h + (1 - u) * c
    return h, h


def lstm_step(cell, x, state):
    weights = cell.get_weights()
    kernel, bias = weights[:2]
    units = cell.num_units
    if cell.use_peepholes:
        w_f, w_i, w_o = weights[2:5]
    else:
        w_f = w_i = w_o = np.zeros(units, dtype=x.dtype)
    if cell.state_is_tuple:
        c_prev, m_prev = state
    else:
        c_prev, m_prev = state[:, :units], state[:, units:]
    act = activation(cell)

    i, j, f, o = np.split(np.concatenate([x, m_prev], axis=1) @ kernel + bias, 4, axis=1)
    c = (sigmoid(f + cell.forget_bias + w_f * c_prev) * c_prev
         + sigmoid(i + w_i * c_prev) * act(j))
    if cell.cell_clip is not None:
        c = np.clip(c, -cell.cell_clip, cell.cell_clip)
    m = sigmoid(o + w_o * c) * act(c)
    if cell.num_proj is not None:
        m = m @ weights[-1]
        if cell.proj_clip is not None:
            m = np.clip(m, -cell.proj_clip, cell.proj_clip)

    new_state = nr.LSTMStateTuple(c, m) if cell.state_is_tuple else np.concatenate([c, m], 1)
    return m, new_state


def multi_step(cell, x, state):
    if cell.state_is_tuple:
        layer_states = list(state)
    else:
        bounds = np.cumsum([0] + [layer.state_size for layer in cell.cells])
        layer_states = [state[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    new_states = []
    for layer, layer_state in zip(cell.cells, layer_states):
        x, new = reference_step(layer, x, layer_state)
        new_states.append(new)
    if cell.state_is_tuple:
        return x, tuple(new_states)
    return x, np.concatenate(new_states, axis=1)


def reference_step(cell, x, state):
    """One step of ``cell``: (output, new state), batch-major."""
    if isinstance(cell, nr.MultiRNNCell):
        return multi_step(cell, x, state)
    if isinstance(cell, nr.LSTMCell):  # BasicLSTMCell included
        return lstm_step(cell, x, state)
    if isinstance(cell, nr.GRUCell):
        return gru_step(cell, x, state)
    if isinstance(cell, nr.BasicRNNCell):
        return basic_rnn_step(cell, x, state)
    return cell(x, state)  # a custom NumPy cell


# ---------------------------------------------------------------------------- the loop
def select(alive, new, old):
    """Leaf by leaf: rows of ``new`` where ``alive`` ([B, 1]), else rows of ``old``."""
    return nest.map_structure(lambda a, b: np.where(alive, a, b), new, old)


def reference_dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None,
                          time_major=False):
    """TensorFlow's dynamic_rnn semantics: past each sequence's end the state is copied
    through and the outputs are zero. ``cell`` must be built; inputs may be nested."""
    leaves = nest.flatten(inputs)
    if time_major:
        leaves = [np.swapaxes(leaf, 0, 1) for leaf in leaves]
    batch, steps = leaves[0].shape[:2]
    dtype = leaves[0].dtype
    lengths = np.full(batch, steps) if sequence_length is None else np.asarray(sequence_length)
    state = cell.zero_state(batch, dtype) if initial_state is None else initial_state

    outputs = []
    for t in range(steps):
        x = nest.pack_sequence_as(inputs, [leaf[:, t] for leaf in leaves])
        output, new_state = reference_step(cell, x, state)
        alive = (t < lengths)[:, None]
        state = select(alive, new_state, state)
        outputs.append(select(alive, output, nest.map_structure(np.zeros_like, output)))

    def stack(size, *per_step):
        if not per_step:  # zero steps
            return np.zeros((batch, 0, size), dtype)
        return np.stack(per_step, axis=1)

    stacked = nest.map_structure(stack, cell.output_size, *outputs)
    if time_major:
        stacked = nest.map_structure(lambda out: np.swapaxes(out, 0, 1), stacked)
    return stacked, state
