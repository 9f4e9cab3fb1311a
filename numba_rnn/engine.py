"""The engine: run a cell over whole sequences that are already in the plan layout.

Input: time-major leaves ``[T, B, ...]`` whose batch rows are in plan order (see
``numba_rnn.plan``) and a state in the same row order. Output: time-major outputs and the
final state, still in plan order; the API layer puts them back in the caller's layout.

- Built-in cells (``KernelCell``): the input projection of all steps is one large
  product (``KernelCell._project``, split across Numba's threads), then the cell's
  compiled kernel runs the whole time loop; the LSTM's kernels compute the projection
  themselves instead.
- ``MultiRNNCell``: one layer over the whole sequence, then the next.
- Any other ``RNNCell``: its Python ``__call__`` once per step, with finished sequences
  masked as ``dynamic_rnn`` specifies (the slow path for custom cells).
"""
import numpy as np

from . import nest
from .cells.base import KernelCell, size_shape
from .cells.multi import MultiRNNCell
from .kernels.products import add_matmul, add_matmul_t


class Tape:
    """What a training forward pass keeps for the backward pass.

    ``checkpoint_every=None`` keeps every step's activations. With an integer K only the
    state every K steps is kept, and the backward pass recomputes each K-step segment's
    activations from its checkpoint: memory O(K) instead of O(T) per layer, for one more
    forward pass.
    """

    def __init__(self, checkpoint_every=None):
        self.checkpoint_every = checkpoint_every
        self.records = []  # one per built-in cell run, in run order


def run_cell(cell, inputs, plan, state, tape=None):
    """Run ``cell`` over ``inputs`` (nested like the cell's inputs, leaves [T, B, ...]).

    ``state`` is nested like ``cell.state_size`` with leaves [B, ...]; the leaves are
    not modified. Returns (outputs nested like ``cell.output_size``, final state). With a
    ``Tape``, built-in cells also record what ``backward_cell`` needs.
    """
    if isinstance(cell, MultiRNNCell):
        states = []
        for layer, layer_state in zip(cell.cells, cell._layer_states(state)):
            inputs, layer_state = run_cell(layer, inputs, plan, layer_state, tape)
            states.append(layer_state)
        return inputs, cell._join_layer_states(states)
    if isinstance(cell, KernelCell):
        return _run_kernel_cell(cell, inputs, plan, state, tape)
    if tape is not None:
        raise NotImplementedError(f"gradients need built-in cells; cell {cell.name!r} "
                                  f"({type(cell).__name__}) is a custom cell")
    return _run_python_cell(cell, inputs, plan, state)


def backward_cell(cell, records, plan, d_out, d_state):
    """Backpropagate through what ``run_cell`` recorded (a list of a tape's records,
    consumed from its end).

    ``d_out`` [T, B, O] and ``d_state`` (nested like the state) are the gradients of the
    outputs and of the final state, in plan order. Returns the gradients of the inputs,
    of the initial state and of the weights (in ``get_weights()`` order).
    """
    if isinstance(cell, MultiRNNCell):
        d_states, grads = [], []
        for layer, d_layer_state in reversed(list(zip(cell.cells, cell._layer_states(d_state)))):
            d_out, d_layer_state, layer_grads = backward_cell(layer, records, plan, d_out,
                                                              d_layer_state)
            d_states.insert(0, d_layer_state)
            grads[:0] = layer_grads
        return d_out, cell._join_layer_states(d_states), grads
    return _backward_kernel_cell(records.pop(), plan, d_out, d_state)


def _copies(arrays):
    return [np.array(a, order="C", copy=True) for a in arrays]


def _run_kernel_cell(cell, x, plan, state, tape):
    steps, batch, _ = x.shape
    arrays = _copies(cell._state_arrays(nest.flatten(state)))
    # Outputs past a sequence's end are zero; without such steps the kernel writes all.
    new = np.zeros if tape is not None or (batch and plan.lengths.min() < steps) else np.empty
    if x.flags.c_contiguous:
        out = new((steps, batch, cell.output_size), dtype=x.dtype)
    else:  # x is batch-major memory seen time-major (rnn._Run._in_place): out too
        out = new((batch, steps, cell.output_size), dtype=x.dtype).transpose(1, 0, 2)
    if tape is None:
        cell._recur(cell._recur_inputs(x), plan, arrays, out)
    else:
        every = tape.checkpoint_every or max(steps, 1)
        segments = []
        for t0 in range(0, steps, every):
            t1 = min(t0 + every, steps)
            saved = None if tape.checkpoint_every else cell._saved(t1 - t0, batch, x.dtype)
            segments.append((t0, t1, _copies(arrays), saved))
            cell._recur(cell._recur_inputs(x[t0:t1]), plan.segment(t0, t1), arrays,
                        out[t0:t1], saved)
        tape.records.append((cell, x, out, segments))
    return out, nest.pack_sequence_as(cell.state_size, cell._state_leaves(arrays))


def _backward_kernel_cell(record, plan, d_out, d_state):
    cell, x, out, segments = record
    steps, batch, depth = x.shape
    w_x, _ = cell._input_projection()
    w_x_t = w_x.T  # a view: add_matmul packs it as it is
    grads = {name: np.zeros_like(w) for name, w in cell._weights.items()}
    d_w_x = np.zeros_like(w_x)
    d_b = np.zeros(w_x.shape[1], dtype=x.dtype)
    d_arrays = _copies(cell._state_arrays(nest.flatten(d_state)))
    dx = np.zeros_like(x)
    for t0, t1, arrays0, saved in reversed(segments):
        part = plan.segment(t0, t1)
        if saved is None:  # checkpointed: recompute this segment's activations
            saved = cell._saved(t1 - t0, batch, x.dtype)
            cell._recur(cell._recur_inputs(x[t0:t1]), part, _copies(arrays0),
                        np.zeros_like(out[t0:t1]), saved)
        dz = cell._recur_backward(part, saved, out[t0:t1], arrays0, d_out[t0:t1], d_arrays,
                                  grads)
        dz = dz.reshape((t1 - t0) * batch, w_x.shape[1])
        add_matmul(dz, w_x_t, dx[t0:t1].reshape(-1, depth))
        add_matmul_t(x[t0:t1].reshape(-1, depth), dz, d_w_x)
        d_b += dz.sum(axis=0)
    cell._input_projection_grads(grads, d_w_x, d_b)
    d_state0 = nest.pack_sequence_as(cell.state_size, cell._state_leaves(d_arrays))
    return dx, d_state0, [grads[name] for name in cell._weights]


def _run_python_cell(cell, inputs, plan, state):
    state = nest.map_structure(np.copy, state)  # the cell may write to what it is given
    leaves = nest.flatten(inputs)
    steps, batch = leaves[0].shape[:2]
    lengths = plan.lengths
    outputs = None
    # As in TensorFlow, the loop stops once every sequence has ended.
    for t in range(int(lengths.max()) if batch else 0):
        step_inputs = nest.pack_sequence_as(inputs, [leaf[t] for leaf in leaves])
        result = cell(step_inputs, state)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError(f"cell {cell.name!r} must return (output, new_state) from "
                             f"__call__, got {type(result).__name__}")
        output, new_state = result
        output_leaves = _checked_step_output(cell, output, batch, t)
        if outputs is None:
            outputs = [np.zeros((steps,) + o.shape, dtype=o.dtype) for o in output_leaves]
        running = t < lengths
        for all_steps, o in zip(outputs, output_leaves):
            all_steps[t] = np.where(_rows(running, o.ndim), o, 0)
        nest.assert_same_structure(cell.state_size, new_state,
                                   f"state returned by cell {cell.name!r}")
        state = nest.map_structure(
            lambda new, old, keep=running: np.where(_rows(keep, np.ndim(new)), new, old),
            new_state, state)
    if outputs is None:  # no step ran: zero outputs shaped by output_size
        dtype = leaves[0].dtype
        outputs = [np.zeros((steps, batch) + size_shape(size), dtype=dtype)
                   for size in nest.flatten(cell.output_size)]
    return nest.pack_sequence_as(cell.output_size, outputs), state


def _checked_step_output(cell, output, batch, t):
    nest.assert_same_structure(cell.output_size, output, f"output of cell {cell.name!r}")
    leaves = []
    for size, o in zip(nest.flatten(cell.output_size), nest.flatten(output)):
        o = np.asarray(o)
        if o.shape != (batch,) + size_shape(size):
            raise ValueError(f"cell {cell.name!r} returned an output of shape {o.shape} at "
                             f"step {t}; its output_size {size!r} means "
                             f"{(batch,) + size_shape(size)}")
        leaves.append(o)
    return leaves


def _rows(mask, ndim):
    """A [B] mask shaped to broadcast over a [B, ...] array."""
    return mask.reshape(mask.shape + (1,) * (ndim - 1))
