"""The RNN functions of TensorFlow 1.x ``tf.nn``, on NumPy arrays."""
import concurrent.futures
import contextlib
import functools
import math
import os
import time

import numba
import numpy as np

from . import checks, nest, threads
from .cells.base import KernelCell, size_shape
from .engine import backward_cell, run_cell
from .plan import Plan, SplitGuard


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
        swap_memory: an inference run keeps no activations, so here it changes nothing;
            under ``numba_rnn.vjp`` it selects the memory-saving training mode
            (checkpoints of the state, activations recomputed in the backward pass).
        time_major: layout of ``inputs`` and ``outputs``, see above. Time-major saves two
            transposes.
        scope: name prefix of the cell's variables in ``named_weights()`` (default "rnn").

    Returns:
        ``outputs``: ``[batch_size, max_time, cell.output_size]`` (time-major if
        ``time_major``), or a structure of such arrays nested like ``cell.output_size``;
        ``state``: the final state, nested like ``cell.state_size``.
    """
    run = _prepare(cell, inputs, sequence_length, initial_state, dtype, time_major,
                   checks.check_scope(scope, "rnn"))
    with threads.thread_limit(parallel_iterations) as n_threads:
        return run(n_threads)


def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None,
                              initial_state_fw=None, initial_state_bw=None, dtype=None,
                              parallel_iterations=None, swap_memory=False, time_major=False,
                              scope=None):
    """Run ``cell_fw`` forward and ``cell_bw`` backward in time over the same inputs.

    Returns ``((output_fw, output_bw), (state_fw, state_bw))``. The backward direction
    reads each sequence from its last valid step to its first (``sequence_length``
    reverses each sequence within its own length; padding stays at the end), and
    ``output_bw`` is reversed back, so ``output_fw[:, t]`` and ``output_bw[:, t]`` both
    belong to input step ``t``. The two cells may differ in type and size; concatenate
    the outputs with ``np.concatenate(outputs, axis=2)``. The other arguments are those
    of ``dynamic_rnn``, per direction where named so; ``scope`` defaults to
    "bidirectional_rnn", with the directions' variables under ``<scope>/fw`` and
    ``<scope>/bw``. The two directions run at the same time, each on half the threads.
    """
    bidirectional = _prepare_bidirectional(cell_fw, cell_bw, inputs, sequence_length,
                                           initial_state_fw, initial_state_bw, dtype,
                                           time_major, scope)
    with threads.thread_limit(parallel_iterations) as n_threads:
        return bidirectional(n_threads)


def static_rnn(cell, inputs, initial_state=None, dtype=None, sequence_length=None, scope=None):
    """The RNN over a Python list of per-step inputs (each ``[batch_size, depth]``).

    Returns ``(outputs, state)`` with ``outputs`` a list of ``[batch_size, output_size]``
    arrays, one per step: the same numbers as ``dynamic_rnn`` on the stacked inputs,
    including the ``sequence_length`` semantics. TensorFlow builds one graph node per
    step for this; here it runs the same compiled loop as ``dynamic_rnn``.
    """
    checks.check_cell(cell)
    stacked = stack_steps(inputs)
    outputs, state = dynamic_rnn(cell, stacked, sequence_length=sequence_length,
                                 initial_state=initial_state, dtype=dtype, time_major=True,
                                 scope=checks.check_scope(scope, "rnn"))
    return unstack_steps(outputs), state


def frozen_step(cell, inputs, state):
    """``cell(inputs, state)`` for a frozen built-in cell with a compiled one-step function
    (raw_rnn's): that function, called directly on one thread, without dynamic_rnn's plan
    and layout changes (an 8-unit LSTM step: 57 -> 31 us). None for other cells, and for
    steps large enough for dynamic_rnn to share among threads."""
    if not (isinstance(cell, KernelCell) and cell._keeps() and inputs.dtype == cell.dtype):
        return None  # dynamic_rnn runs it, or says what is wrong
    x = np.ascontiguousarray(inputs)
    step = cell._kept(("one step", x.dtype.str), lambda: cell._step_function(x.dtype))
    if step is None:
        return None
    run = _prepare(cell, inputs[None], None, state, None, True, cell._scope)
    if _recurrent_flops(cell, run.lengths) >= PARALLEL_MIN_FLOPS:
        return None  # worth dynamic_rnn's threads
    function, params = step
    # The state as raw_rnn's loop passes it (an LSTMStateTuple or one array): the same
    # compiled signature serves both.
    state = nest.map_structure(np.ascontiguousarray, run.state)
    with threads.single_threaded():  # the step functions are serial; BLAS is held to one
        output, new_state = function(params, x, state)
    return output, nest.pack_sequence_as(cell.state_size, nest.flatten(new_state))


def stack_steps(inputs):
    """static_rnn's list of per-step inputs as one time-major structure of arrays."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"inputs must be a list of [batch_size, depth] arrays, one per step, "
                        f"got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError("inputs must not be an empty list: static_rnn needs at least one step")
    steps = [nest.flatten(step) for step in inputs]
    for t, step in enumerate(inputs):
        nest.assert_same_structure(inputs[0], step, f"inputs[{t}]")
        for leaf, first in zip(steps[t], steps[0]):
            shape, first_shape = np.shape(leaf), np.shape(first)
            if shape[:1] != first_shape[:1]:
                raise ValueError(f"all inputs must have the same batch size: inputs[0] has "
                                 f"shape {first_shape}, inputs[{t}] has shape {shape}")
    return nest.pack_sequence_as(inputs[0], [np.stack(leaves) for leaves in zip(*steps)])


def unstack_steps(outputs):
    """Time-major outputs as a list with one structure per step."""
    flat = nest.flatten(outputs)
    return [nest.pack_sequence_as(outputs, [o[t] for o in flat]) for t in range(len(flat[0]))]


def reverse_sequence(x, lengths, time_axis):
    """``x`` with each sequence's first ``lengths[b]`` steps reversed (TensorFlow's
    ``reverse_sequence``); steps past a sequence's length stay where they are."""
    x = np.asarray(x)
    batch_axis = 1 - time_axis
    steps = x.shape[time_axis]
    t = np.arange(steps)[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # [T, B]
    rows = np.arange(x.shape[batch_axis])[None, :]
    tm = np.moveaxis(x, time_axis, 0)
    return np.moveaxis(tm[source, rows], 0, time_axis)


def _prepare(cell, inputs, sequence_length, initial_state, dtype, time_major, scope,
             cell_name="cell", state_name="initial_state"):
    """Check everything and build the cell; the returned ``_Run`` does the work."""
    checks.check_cell(cell, cell_name)
    if not isinstance(time_major, (bool, np.bool_)):
        raise ValueError(f"time_major must be True or False, got {time_major!r}")
    leaves, steps, batch, input_dtype = checks.check_inputs(inputs, time_major)
    dtype = checks.resolve_dtype(dtype, input_dtype)
    checks.check_cell_fits(cell, nest.pack_sequence_as(inputs, leaves), dtype, cell_name)
    lengths = checks.check_lengths(sequence_length, batch, steps)
    state = checks.check_state(cell, initial_state, batch, dtype, state_name)
    return _Run(cell, inputs, leaves, lengths, state, 0 if time_major else 1, scope)


# Below this many floating-point operations in the recurrence, waking a second thread
# costs more than it saves (tens of microseconds when idle, milliseconds on a busy machine).
PARALLEL_MIN_FLOPS = 5e6
# Turns the column split off for a while after calls whose threads waited for each other.
SPLIT_GUARD = SplitGuard()


def _recurrent_flops(cell, lengths):
    """Rough FLOP count of the recurrent matrix products: 2 S^2 per state width S, step
    and sequence (an order of magnitude is all the thread choice needs)."""
    width = sum(math.prod(size_shape(s)) for s in nest.flatten(cell.state_size))
    return 4.0 * width * width * float(lengths.sum())


def _one_thread_if(condition):
    """Run a one-chunk plan with one thread: a parallel region of one would still wake
    the others."""
    return threads.kernel_threads(1) if condition else contextlib.nullcontext()


class _Run:
    """One checked call: ``run(n_threads)`` gives (outputs, state) in the caller's layout;
    with a ``Tape`` it records for ``backward``."""

    def __init__(self, cell, inputs, leaves, lengths, state, time_axis, scope):
        self.cell, self.inputs, self.leaves, self.lengths = cell, inputs, leaves, lengths
        self.state, self.time_axis, self.scope = state, time_axis, scope
        self.plan = None

    def __call__(self, n_threads, tape=None):
        self.cell._set_scope(self.scope)
        if _recurrent_flops(self.cell, self.lengths) < PARALLEL_MIN_FLOPS:
            n_threads = 1
        started = time.monotonic()
        plan = self.plan = Plan(self.lengths, n_threads)
        if (tape is None and plan.n_chunks == 1 and n_threads > 1
                and isinstance(self.cell, KernelCell) and self.cell._splits_columns()
                and _barrier_safe(n_threads) and SPLIT_GUARD.allows()):
            plan.column_parts = n_threads
        if self._in_place(plan, tape):
            x = [leaf.swapaxes(0, 1) for leaf in self.leaves]
        else:
            x = [self.to_plan(leaf, copy=False) for leaf in self.leaves]
        with _one_thread_if(plan.n_chunks == 1 and not plan.column_parts):
            outputs, final = run_cell(self.cell, nest.pack_sequence_as(self.inputs, x), plan,
                                      nest.map_structure(self.state_rows, self.state), tape)
        SPLIT_GUARD.record(plan, started)
        return (nest.map_structure(self.from_plan, outputs),
                nest.map_structure(plan.unrows, final))

    def backward(self, tape, d_outputs, d_state):
        """Gradients of (inputs, initial state, weights) from those of (outputs, state)."""
        plan = self.plan
        records = list(tape.records)  # consumed from the end; the tape stays reusable
        with _one_thread_if(plan.n_chunks == 1):
            dx, d_state0, grads = backward_cell(self.cell, records, plan,
                                                self.to_plan(d_outputs),
                                                nest.map_structure(plan.rows, d_state))
        return self.from_plan(dx), nest.map_structure(plan.unrows, d_state0), grads

    def _in_place(self, plan, tape):
        """Whether the kernel reads the caller's batch-major inputs where they are, seen
        time-major, and writes its outputs into a batch-major buffer the same way (the
        engine lays out outputs like inputs): two whole-sequence copies saved. For
        inference of a cell whose kernel computes x W_x + b itself, rows in the caller's
        order, one C-contiguous input."""
        leaves = self.leaves
        return (tape is None and self.time_axis == 1 and plan.perm is None
                and isinstance(self.cell, KernelCell)
                and self.cell._projects_in_kernel and len(leaves) == 1
                and leaves[0].flags.c_contiguous)

    def state_rows(self, array):
        """A state leaf in plan row order: the caller's array itself if nothing moves (the
        engine copies what it writes to)."""
        return self.plan.rows(array, copy=False)

    def to_plan(self, array, copy=True):
        """Caller's layout -> time-major, plan row order, C-contiguous."""
        return self.plan.rows(array.swapaxes(0, self.time_axis), axis=1, copy=copy)

    def from_plan(self, array):
        array = self.plan.unrows(array, axis=1)
        return array if self.time_axis == 0 else np.ascontiguousarray(array.swapaxes(0, 1))


def _prepare_bidirectional(cell_fw, cell_bw, inputs, sequence_length, initial_state_fw,
                           initial_state_bw, dtype, time_major, scope):
    checks.check_cell(cell_fw, "cell_fw")
    checks.check_cell(cell_bw, "cell_bw")
    if cell_fw is cell_bw:
        raise ValueError("cell_fw and cell_bw must be two cell objects: each direction has "
                         "its own weights")
    scope = checks.check_scope(scope, "bidirectional_rnn")
    leaves, steps, batch, _ = checks.check_inputs(inputs, time_major)
    lengths = checks.check_lengths(sequence_length, batch, steps)
    time_axis = 0 if time_major else 1
    reversed_inputs = nest.pack_sequence_as(
        inputs, [reverse_sequence(leaf, lengths, time_axis) for leaf in leaves])
    forward = _prepare(cell_fw, inputs, lengths, initial_state_fw, dtype, time_major,
                       f"{scope}/fw", cell_name="cell_fw", state_name="initial_state_fw")
    backward = _prepare(cell_bw, reversed_inputs, lengths, initial_state_bw, dtype, time_major,
                        f"{scope}/bw", cell_name="cell_bw", state_name="initial_state_bw")
    return _Bidirectional(forward, backward, lengths, time_axis)


class _Bidirectional:
    """Two checked directions; the backward one sees and gives time-reversed sequences."""

    def __init__(self, forward, backward, lengths, time_axis):
        self.forward, self.backward_run = forward, backward
        self.lengths, self.time_axis = lengths, time_axis

    def reverse(self, x):
        return nest.map_structure(lambda a: reverse_sequence(a, self.lengths, self.time_axis), x)

    def __call__(self, n_threads, tapes=(None, None)):
        (output_fw, state_fw), (output_bw, state_bw) = _run_both(
            lambda n: self.forward(n, tapes[0]), lambda n: self.backward_run(n, tapes[1]),
            n_threads)
        return (output_fw, self.reverse(output_bw)), (state_fw, state_bw)

    def backward(self, tapes, d_outputs, d_states, n_threads):
        d_output_bw = self.reverse(d_outputs[1])
        (dx_fw, d_state_fw, grads_fw), (dx_bw, d_state_bw, grads_bw) = _run_both(
            lambda n: self.forward.backward(tapes[0], d_outputs[0], d_states[0]),
            lambda n: self.backward_run.backward(tapes[1], d_output_bw, d_states[1]),
            n_threads)
        return dx_fw + self.reverse(dx_bw), (d_state_fw, d_state_bw), grads_fw + grads_bw


def _run_both(forward, backward, n_threads):
    """Run ``forward(n)`` and ``backward(n)`` (the two directions, n their threads),
    concurrently when the threading layer allows it."""
    if n_threads < 2 or _threading_layer() not in ("omp", "tbb"):
        return forward(n_threads), backward(n_threads)

    def on_own_threads(run, share):
        numba.set_num_threads(share)  # per Python thread
        return run(share)

    first = _direction_threads().submit(on_own_threads, forward, n_threads // 2)
    try:
        second = backward(n_threads - n_threads // 2)
    finally:
        concurrent.futures.wait([first])  # nothing runs on after an error
    return first.result(), second


@functools.cache
def _direction_threads():
    """The threads that run a forward direction beside its caller's backward one: kept
    from call to call, and with them their scratch memory (``workspace``)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                 thread_name_prefix="numba_rnn")


def _barrier_safe(n_threads):
    """Whether each of ``n_threads`` parts of a parallel loop gets its own running thread,
    as the step barrier of a column split needs: compiled, with OpenMP or the workqueue
    layer, OpenMP not allowed to shrink its team and the process allowed on that many
    CPUs. (Otherwise two parts may run on one thread one after the other, the first
    waiting forever, or on one core, taking turns at every step.)"""
    layer = _threading_layer()
    return layer is not None and _barrier_safe_with(layer, n_threads)


@functools.cache
def _barrier_safe_with(layer, n_threads):
    """``_barrier_safe`` once the layer is known, kept for the process (10 us a call):
    OpenMP reads its environment once; the CPUs allowed are looked up once too."""
    if numba.config.DISABLE_JIT or layer not in ("omp", "workqueue"):
        return False
    if os.environ.get("OMP_DYNAMIC", "").strip().lower() in ("true", "1", "yes"):
        return False
    limit = os.environ.get("OMP_THREAD_LIMIT", "").strip()
    if limit and not (limit.isdigit() and int(limit) >= n_threads):
        return False
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(n_threads)
    return len(cpus) >= n_threads


def _threading_layer():
    """Numba's threading layer once a parallel kernel has run; None before that.

    The workqueue layer must not be entered from two threads at once; OpenMP and TBB can.
    """
    try:
        return numba.threading_layer()
    except ValueError:
        return None
