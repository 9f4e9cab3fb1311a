"""raw_rnn: the RNN loop driven by a user's ``loop_fn``, and the TensorArray it emits into."""
import numbers

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from . import checks, nest, threads
from .cells.base import KernelCell, size_shape


class TensorArray:
    """A growable list of equally shaped arrays, like TensorFlow's ``TensorArray``.

    ``write`` returns the array itself, so TensorFlow's ``ta = ta.write(t, x)`` style works
    unchanged. ``element_shape`` (optional) is checked on every write and gives ``stack``
    its shape when nothing was written.
    """

    def __init__(self, dtype=None, size=0, dynamic_size=True, element_shape=None):
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.dynamic_size = bool(dynamic_size)
        self.element_shape = None if element_shape is None else tuple(element_shape)
        self._items = [None] * int(size)

    def size(self):
        return len(self._items)

    def write(self, index, value):
        index = self._index(index, writing=True)
        value = np.array(value, dtype=self.dtype, copy=True)
        if self.element_shape is None:
            self.element_shape = value.shape
        elif value.shape != self.element_shape:
            raise ValueError(f"TensorArray holds elements of shape {self.element_shape}, got "
                             f"shape {value.shape} at index {index}")
        if self.dtype is None:
            self.dtype = value.dtype
        if index >= len(self._items):
            self._items.extend([None] * (index + 1 - len(self._items)))
        self._items[index] = value
        return self

    def read(self, index):
        index = self._index(index)
        if self._items[index] is None:
            raise ValueError(f"TensorArray index {index} has not been written")
        return self._items[index]

    def gather(self, indices):
        """The elements at ``indices`` as one array ``[len(indices), *element_shape]``."""
        items = [self.read(i) for i in indices]
        if not items:
            dtype = np.float32 if self.dtype is None else self.dtype
            return np.zeros((0,) + (self.element_shape or ()), dtype=dtype)
        return np.stack(items)

    def stack(self):
        """All elements as one array ``[size, *element_shape]``."""
        return self.gather(range(len(self._items)))

    def unstack(self, value):
        """Write ``value[i]`` at index i for every i; returns the array."""
        value = np.asarray(value)
        if self.element_shape is None:
            self.element_shape = value.shape[1:]
        for i, item in enumerate(value):
            self.write(i, item)
        return self

    def _index(self, index, writing=False):
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
            raise TypeError(f"TensorArray index must be an integer, got {index!r}")
        index = int(index)
        limit = len(self._items)
        if index < 0 or (index >= limit and not (writing and self.dynamic_size)):
            raise IndexError(f"TensorArray index {index} is out of range for size {limit}")
        return index

    def __repr__(self):
        return f"TensorArray(size={self.size()}, element_shape={self.element_shape})"


def raw_rnn(cell, loop_fn, parallel_iterations=None, swap_memory=False, scope=None,
            maximum_iterations=None):
    """The RNN loop with inputs, state and stopping decided by ``loop_fn`` at every step.

    ``loop_fn(time, cell_output, cell_state, loop_state)`` returns
    ``(finished, next_input, next_cell_state, emit_output, next_loop_state)``. Its first
    call has ``time=0`` and None for the rest: it gives the initial state and first
    input, and its ``emit_output`` fixes the structure, per-entry shapes and dtypes of what
    is emitted (None: ``cell.output_size`` in the state's dtype). Then, while some entry
    is not finished::

        output, cell_state = cell(next_input, state)
        finished_now, next_input, next_state, emit, loop_state = loop_fn(
            time + 1, output, cell_state, loop_state)
        state = where(finished, state, next_state)     # finished entries keep their state
        emit = where(finished, 0, emit)                # ... and emit zeros
        emit_ta.write(time, emit); finished |= finished_now; time += 1

    Returns ``(emit_ta, final_state, final_loop_state)``: a ``TensorArray`` (or a
    structure of them nested like the emit) whose ``stack()`` is ``[time, batch, ...]``.
    A ``next_loop_state`` of None keeps the previous loop state. ``loop_fn`` may be plain
    Python; the cell step runs compiled.

    Going further than TensorFlow: when ``loop_fn`` is a Numba ``@njit`` function, the
    whole loop runs compiled, without returning to Python between steps. This applies
    when the cell is a ``BasicRNNCell``, ``GRUCell`` or ``LSTMCell`` with
    ``state_is_tuple=True`` (not a stack), ``next_input`` is a [batch, depth] array, the
    emit is a single array (``cell_output`` or its own [batch, ...] array), and every
    call after the first returns the same types (a ``loop_state`` of None must stay
    None). Other cases run the Python loop. The compiled loop is compiled for each
    ``loop_fn`` on first use (a few seconds) and not cached on disk.

    ``maximum_iterations`` is an addition to TensorFlow's signature: a loop that has not
    finished after that many steps raises a RuntimeError instead of running forever
    (None: no limit). ``parallel_iterations`` caps the threads; ``swap_memory`` is
    accepted; ``scope`` prefixes variable names (default "rnn").
    """
    checks.check_cell(cell)
    if not callable(loop_fn):
        raise TypeError(f"loop_fn must be callable, got {type(loop_fn).__name__}")
    if maximum_iterations is not None:
        maximum_iterations = _non_negative_int(maximum_iterations, "maximum_iterations")
    scope = checks.check_scope(scope, "rnn")

    first = _call(loop_fn, 0, None, None, None)
    finished, next_input, state, emit_spec, loop_state = first
    if state is None:
        raise ValueError("loop_fn must return the initial cell state as next_cell_state when "
                         "called with time=0; got None")
    state_leaves = [np.asarray(s) for s in nest.flatten(state)]
    batch, dtype = state_leaves[0].shape[0], state_leaves[0].dtype
    state = checks.check_state(cell, state, batch, dtype, "next_cell_state at time 0")
    finished = _check_finished(finished, batch, 0)
    zero_emit, emit_ta = _emit_structure(cell, emit_spec, batch, dtype)
    step = _compiled_step(cell, loop_fn, zero_emit, next_input, dtype)
    if step is not None:
        return _run_compiled(loop_fn, step, state, next_input, finished, loop_state, zero_emit,
                             emit_ta, maximum_iterations, scope, cell)

    time = 0
    with threads.thread_limit(parallel_iterations):
        while not finished.all():
            if maximum_iterations is not None and time >= maximum_iterations:
                raise RuntimeError(f"raw_rnn did not finish within maximum_iterations="
                                   f"{maximum_iterations} steps: {int((~finished).sum())} of "
                                   f"{batch} entries never reported finished")
            cell._set_scope(scope)
            output, cell_state = cell(next_input, state)
            result = _call(loop_fn, time + 1, output, cell_state, loop_state)
            finished_now, next_input, next_state, emit, next_loop_state = result
            if next_loop_state is not None:  # None keeps the previous loop state
                loop_state = next_loop_state
            next_state = checks.check_state(cell, next_state, batch, dtype,
                                            f"next_cell_state at time {time + 1}")
            state = _where_finished(finished, state, next_state)
            emit = _check_emit(emit, zero_emit, time + 1)
            emit = _where_finished(finished, zero_emit, emit)
            for ta, value in zip(nest.flatten(emit_ta), nest.flatten(emit)):
                ta.write(time, value)
            finished = finished | _check_finished(finished_now, batch, time + 1)
            time += 1
    return emit_ta, state, loop_state


def _call(loop_fn, time, cell_output, cell_state, loop_state):
    result = loop_fn(time, cell_output, cell_state, loop_state)
    if not isinstance(result, (tuple, list)) or len(result) != 5:
        got = f"{len(result)} values" if isinstance(result, (tuple, list)) else \
            type(result).__name__
        raise ValueError(f"loop_fn must return 5 values (finished, next_input, "
                         f"next_cell_state, emit_output, next_loop_state); at time {time} it "
                         f"returned {got}")
    return result


def _check_finished(finished, batch, time):
    finished = np.asarray(finished)
    if finished.dtype != np.bool_ or finished.shape != (batch,):
        raise ValueError(f"finished returned by loop_fn at time {time} must be a boolean "
                         f"vector of shape ({batch},), got dtype {finished.dtype} and shape "
                         f"{finished.shape}")
    return finished


def _emit_structure(cell, emit_spec, batch, dtype):
    """Zero emit [batch, ...] per leaf and one TensorArray per leaf, nested like the emit."""
    if emit_spec is None:
        structure = cell.output_size
        shapes = [size_shape(s) for s in nest.flatten(structure)]
        dtypes = [dtype] * len(shapes)
    else:
        structure = emit_spec
        leaves = [np.asarray(e) for e in nest.flatten(emit_spec)]
        shapes, dtypes = [leaf.shape for leaf in leaves], [leaf.dtype for leaf in leaves]
    zeros = [np.zeros((batch,) + shape, dtype=dt) for shape, dt in zip(shapes, dtypes)]
    arrays = [TensorArray(dt, element_shape=(batch,) + shape) for shape, dt in zip(shapes, dtypes)]
    return (nest.pack_sequence_as(structure, zeros), nest.pack_sequence_as(structure, arrays))


def _check_emit(emit, zero_emit, time):
    if emit is None:
        raise ValueError(f"emit_output returned by loop_fn at time {time} is None; after time "
                         f"0 it must be the emit (usually cell_output)")
    if not nest.same_structure(zero_emit, emit):
        raise ValueError(f"emit_output returned by loop_fn at time {time} does not have the "
                         f"structure fixed at time 0 (or by cell.output_size)")
    leaves = []
    for zero, value in zip(nest.flatten(zero_emit), nest.flatten(emit)):
        value = np.asarray(value)
        if value.shape != zero.shape:
            raise ValueError(f"emit_output returned by loop_fn at time {time} has shape "
                             f"{value.shape}; the emit structure fixed at time 0 means "
                             f"{zero.shape}")
        leaves.append(value)
    return nest.pack_sequence_as(zero_emit, leaves)


def _where_finished(finished, current, candidate):
    """Per entry: ``current`` where finished, else ``candidate`` (TensorFlow's copy-through)."""
    def pick(cur, cand):
        mask = finished.reshape(finished.shape + (1,) * (np.ndim(cand) - 1))
        return np.where(mask, cur, cand).astype(cur.dtype, copy=False)

    return nest.map_structure(pick, current, candidate)


def _non_negative_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{what} must be None or an integer >= 0, got {value!r}")
    return int(value)


# ------------------------------------------------------------------ the compiled loop
def _compiled_step(cell, loop_fn, zero_emit, next_input, dtype):
    """(step function, params) when the compiled loop can run this call, else None."""
    if not isinstance(loop_fn, numba.core.dispatcher.Dispatcher):
        return None
    if not isinstance(cell, KernelCell) or not isinstance(zero_emit, np.ndarray):
        return None
    next_input = np.asarray(next_input)
    if next_input.ndim != 2 or next_input.dtype != dtype:
        return None
    checks.check_cell_fits(cell, next_input[:, None], dtype)
    return cell._step_function(dtype)


def _run_compiled(loop_fn, step, state, next_input, finished, loop_state, zero_emit, emit_ta,
                  maximum_iterations, scope, cell):
    function, params = step
    limit = -1 if maximum_iterations is None else maximum_iterations
    cell._set_scope(scope)
    # One thread: a step is too small to share, and waking threads every step costs more.
    with threads.thread_limit(1):
        try:
            emits, state, loop_state, steps, done = _compiled_loop(
                loop_fn, function, params, state, np.ascontiguousarray(next_input),
                finished.copy(), loop_state, zero_emit, limit)
        except (numba.core.errors.NumbaError, ImportError) as error:  # compiling failed
            first_line = str(error).strip().splitlines()[0]
            raise ValueError(f"loop_fn is a Numba function but the compiled loop cannot use "
                             f"it (see raw_rnn's docstring for the forms that qualify): "
                             f"{first_line}") from None
    if not done:
        raise RuntimeError(f"raw_rnn did not finish within maximum_iterations="
                           f"{maximum_iterations} steps")
    for t, emit in enumerate(emits):
        emit_ta.write(t, emit)
    return emit_ta, state, loop_state


def _where_rows(finished, current, candidate):
    """``current`` in the finished rows, ``candidate`` elsewhere (arrays or (c, h))."""


@overload(_where_rows)
def _where_rows_impl(finished, current, candidate):
    if isinstance(current, types.Array):
        def rows(finished, current, candidate):
            if candidate.shape != current.shape:
                raise ValueError("loop_fn returned an array whose shape differs from the "
                                 "one fixed at time 0 (emit or next_cell_state)")
            result = candidate.copy()
            for i in range(finished.shape[0]):
                if finished[i]:
                    result[i] = current[i]
            return result
        return rows
    if isinstance(current, types.NamedUniTuple) and current.count == 2:
        state_class = current.instance_class

        def pair(finished, current, candidate):
            return state_class(_where_rows(finished, current[0], candidate[0]),
                               _where_rows(finished, current[1], candidate[1]))
        return pair
    return None


def _as_state(template, leaves):
    """The step function's new state leaves in the structure of ``template``."""


@overload(_as_state)
def _as_state_impl(template, leaves):
    if isinstance(template, types.NamedUniTuple):
        state_class = template.instance_class
        return lambda template, leaves: state_class(leaves[0], leaves[1])
    return lambda template, leaves: leaves


@numba.njit(nogil=True)
def _compiled_loop(loop_fn, step, params, state, next_input, finished, loop_state, zero_emit,
                   limit):
    """raw_rnn's loop, compiled; returns (emits, state, loop_state, steps, finished?)."""
    emits = numba.typed.List()
    time = 0
    while not finished.all():
        if 0 <= limit <= time:
            return emits, state, loop_state, time, False
        output, leaves = step(params, next_input, state)
        cell_state = _as_state(state, leaves)
        finished_now, next_input, next_state, emit, loop_state = loop_fn(
            time + 1, output, cell_state, loop_state)
        if finished_now.shape != finished.shape:
            raise ValueError("finished returned by loop_fn has the wrong shape")
        state = _where_rows(finished, state, next_state)
        emits.append(_where_rows(finished, zero_emit, emit))
        finished = finished | finished_now
        time += 1
    return emits, state, loop_state, time, True
