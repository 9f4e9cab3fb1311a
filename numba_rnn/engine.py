"""The engine: run a cell over whole sequences that are already in the plan layout.

Input: time-major leaves ``[T, B, ...]`` whose batch rows are in plan order (see
``numba_rnn.plan``) and a state in the same row order. Output: time-major outputs and the
final state, still in plan order; the API layer puts them back in the caller's layout.

- Built-in cells (``KernelCell``): the input projection of all steps is one GEMM in NumPy
  (outside any parallel region, so BLAS threads never compete with the kernel's), then
  the cell's compiled kernel runs the whole time loop.
- ``MultiRNNCell``: one layer over the whole sequence, then the next.
- Any other ``RNNCell``: its Python ``__call__`` once per step, with finished sequences
  masked as ``dynamic_rnn`` specifies (the slow path for custom cells).
"""
import numpy as np

from . import nest
from .cells.base import KernelCell, size_shape
from .cells.multi import MultiRNNCell


def run_cell(cell, inputs, plan, state):
    """Run ``cell`` over ``inputs`` (nested like the cell's inputs, leaves [T, B, ...]).

    ``state`` is nested like ``cell.state_size`` with leaves [B, ...]; the leaves are
    not modified. Returns (outputs nested like ``cell.output_size``, final state).
    """
    if isinstance(cell, MultiRNNCell):
        states = []
        for layer, layer_state in zip(cell.cells, cell._layer_states(state)):
            inputs, layer_state = run_cell(layer, inputs, plan, layer_state)
            states.append(layer_state)
        return inputs, cell._join_layer_states(states)
    if isinstance(cell, KernelCell):
        return _run_kernel_cell(cell, inputs, plan, state)
    return _run_python_cell(cell, inputs, plan, state)


def _run_kernel_cell(cell, x, plan, state):
    steps, batch, depth = x.shape
    w_x, bias = cell._input_projection()
    xw = (x.reshape(steps * batch, depth) @ w_x).reshape(steps, batch, -1)
    xw += bias
    arrays = [np.array(a, order="C", copy=True)
              for a in cell._state_arrays(nest.flatten(state))]
    out = np.zeros((steps, batch, cell.output_size), dtype=x.dtype)
    cell._recur(xw, plan, arrays, out)
    return out, nest.pack_sequence_as(cell.state_size, cell._state_leaves(arrays))


def _run_python_cell(cell, inputs, plan, state):
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
        state = nest.map_structure(np.copy, state)
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
