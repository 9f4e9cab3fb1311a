"""The RNN functions of TensorFlow 1.x ``tf.nn``, on NumPy arrays."""
import numpy as np

from . import checks, nest
from .engine import run_cell
from .plan import Plan


def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=None,
                parallel_iterations=None, swap_memory=False, time_major=False, scope=None):
    """Run ``cell`` over whole sequences; returns ``(outputs, state)``.

    Args:
        cell: an ``RNNCell``. Built-in cells are built on first use for the depth and
            dtype of ``inputs``.
        inputs: ``[batch_size, max_time, depth]`` (``[max_time, batch_size, depth]`` when
            ``time_major``), float32 or float64; for custom cells also a nested tuple of
            arrays that agree on their first two dimensions, passed to the cell at each
            step with the time dimension removed. Any memory layout; never modified.
        sequence_length: optional integer vector ``[batch_size]`` with values in
            ``[0, max_time]``. Past each sequence's end its state is copied through
            unchanged and its outputs are zero; the final state is the state at step
            ``sequence_length - 1`` (the initial state for a zero length). Finished
            sequences cost nothing: unlike in TensorFlow, lengths also save time.
        initial_state: optional state nested like ``cell.state_size``, leaves
            ``[batch_size, s]`` of the inputs' dtype. Defaults to ``cell.zero_state``.
        dtype: optional dtype of the state and outputs. TensorFlow requires it when
            ``initial_state`` is not given; here it is inferred from the inputs, and if
            given it must equal their dtype.
        parallel_iterations: optional cap on the number of threads the kernels use
            (default: ``numba.get_num_threads()``).
        swap_memory: accepted for compatibility. An inference run keeps no activations,
            so there is nothing to swap; under ``numba_rnn.vjp`` it selects the
            memory-saving training mode.
        time_major: layout of ``inputs`` and ``outputs``, see above. Time-major saves two
            transposes.
        scope: name prefix of the cell's variables in ``named_weights()`` (default "rnn").

    Returns:
        ``outputs``: ``[batch_size, max_time, cell.output_size]`` (time-major if
        ``time_major``), or a structure of such arrays nested like ``cell.output_size``;
        ``state``: the final state, nested like ``cell.state_size``.
    """
    checks.check_cell(cell)
    if not isinstance(time_major, (bool, np.bool_)):
        raise ValueError(f"time_major must be True or False, got {time_major!r}")
    leaves, steps, batch, input_dtype = checks.check_inputs(inputs, time_major)
    dtype = checks.resolve_dtype(dtype, input_dtype)
    structured = nest.pack_sequence_as(inputs, leaves)
    checks.check_cell_fits(cell, structured, dtype)
    cell._set_scope(checks.check_scope(scope, "rnn"))
    lengths = checks.check_lengths(sequence_length, batch, steps)
    state = checks.check_state(cell, initial_state, batch, dtype)

    with checks.thread_limit(parallel_iterations) as n_threads:
        plan = Plan(lengths, n_threads)
        time_axis = 0 if time_major else 1
        x = [plan.rows(np.moveaxis(leaf, time_axis, 0), axis=1, copy=False) for leaf in leaves]
        state = nest.map_structure(lambda s: plan.rows(s, axis=0), state)
        outputs, state = run_cell(cell, nest.pack_sequence_as(inputs, x), plan, state)

    def to_caller_layout(out):
        out = plan.unrows(out, axis=1)
        return out if time_major else np.ascontiguousarray(np.moveaxis(out, 0, 1))

    outputs = nest.map_structure(to_caller_layout, outputs)
    state = nest.map_structure(lambda s: plan.unrows(s, axis=0), state)
    return outputs, state
