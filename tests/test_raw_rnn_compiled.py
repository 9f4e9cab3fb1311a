"""raw_rnn with a Numba-compiled loop_fn: the whole loop runs compiled, same results."""
import importlib

import numba
import numpy as np
import pytest

import numba_rnn as nr

raw_rnn_module = importlib.import_module("numba_rnn.raw_rnn")  # the name is also a function

T, B, D, H = 6, 3, 4, 5
X = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
LENGTHS = np.array([6, 0, 3])
CELL = nr.LSTMCell(H, use_peepholes=True, num_proj=3, seed=0)
STATE0 = CELL.zero_state(B, np.float32)


@numba.njit
def read_inputs(time, cell_output, cell_state, loop_state):
    """The TensorFlow docs' dynamic_rnn-through-raw_rnn loop_fn, plus a step counter."""
    finished = time >= LENGTHS
    if cell_output is None:
        return finished, X[0], STATE0, None, 0
    next_input = np.zeros_like(X[0]) if time >= X.shape[0] else X[time]
    return finished, next_input, cell_state, cell_output, loop_state + 1


# With NUMBA_DISABLE_JIT, @numba.njit gives back the plain function and raw_rnn takes its
# Python loop: the results are still checked, the compiled loop's own traits are not.
JIT_DISABLED = numba.config.DISABLE_JIT


def test_compiled_loop_runs_and_reproduces_dynamic_rnn(monkeypatch):
    calls = []
    compiled = raw_rnn_module._compiled_loop
    monkeypatch.setattr(raw_rnn_module, "_compiled_loop",
                        lambda *args: calls.append(1) or compiled(*args))
    emit_ta, state, loop_state = nr.raw_rnn(CELL, read_inputs)
    assert calls == ([] if JIT_DISABLED else [1])  # one call for the loop, not one per step
    outputs, final = nr.dynamic_rnn(CELL, X, sequence_length=LENGTHS, time_major=True)
    np.testing.assert_allclose(emit_ta.stack(), outputs, atol=1e-6)
    assert isinstance(state, nr.LSTMStateTuple)
    np.testing.assert_allclose(state.c, final.c, atol=1e-6)
    np.testing.assert_allclose(state.h, final.h, atol=1e-6)
    assert loop_state == T
    # The same loop_fn as plain Python takes the Python loop and agrees.
    python_ta, python_state, _ = nr.raw_rnn(CELL, getattr(read_inputs, "py_func", read_inputs))
    np.testing.assert_allclose(emit_ta.stack(), python_ta.stack(), atol=1e-6)


@numba.njit
def never_finishes(time, cell_output, cell_state, loop_state):
    if cell_output is None:
        return np.zeros(B, np.bool_), X[0], STATE0, None, 0
    return np.zeros(B, np.bool_), X[0], cell_state, cell_output, 0


@numba.njit
def changes_the_emit_shape(time, cell_output, cell_state, loop_state):
    if cell_output is None:
        return np.zeros(B, np.bool_), X[0], STATE0, None, 0
    return np.ones(B, np.bool_), X[0], cell_state, cell_output[:, :1], 0


@numba.njit
def four_values(time, cell_output, cell_state, loop_state):
    if cell_output is None:
        return np.zeros(B, np.bool_), X[0], STATE0, None, 0
    return np.ones(B, np.bool_), X[0], cell_state, cell_output


@pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT: no compiled loop_fn")
def test_compiled_loop_errors():
    with pytest.raises(RuntimeError, match="did not finish within maximum_iterations=4"):
        nr.raw_rnn(CELL, never_finishes, maximum_iterations=4)
    with pytest.raises(ValueError, match="shape differs from the one fixed at time 0"):
        nr.raw_rnn(CELL, changes_the_emit_shape)
    with pytest.raises(ValueError, match="the compiled loop cannot use it"):
        nr.raw_rnn(CELL, four_values)
