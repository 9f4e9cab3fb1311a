"""dynamic_rnn forward results against the NumPy reference in tests/reference.py.

Every built-in cell and option, both layouts, sequence lengths, initial states, float32
and float64, empty shapes, memory layouts, the cells' one-step call, weight names,
initialisers and custom cells.
"""
import importlib

import numpy as np
import pytest
from random_arrays import random_state
from reference import reference_dynamic_rnn, reference_step, sigmoid

import numba_rnn as nr
from numba_rnn import nest
from numba_rnn.cells.lstm import PROJECT_FIRST_BELOW

rnn_module = importlib.import_module("numba_rnn.rnn")  # nr.rnn may name a function

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}
B, T, D = 5, 7, 3


def relu(x):  # a function named like a supported activation
    return np.maximum(x, 0.0)


CELLS = {
    "basic_tanh": lambda dt: nr.BasicRNNCell(4, dtype=dt),
    "basic_relu": lambda dt: nr.BasicRNNCell(4, activation="relu", dtype=dt),
    "basic_sigmoid": lambda dt: nr.BasicRNNCell(4, activation="sigmoid", dtype=dt),
    "basic_linear": lambda dt: nr.BasicRNNCell(4, activation="linear", dtype=dt),
    "basic_np_tanh": lambda dt: nr.BasicRNNCell(4, activation=np.tanh, dtype=dt),
    "gru": lambda dt: nr.GRUCell(4, dtype=dt),
    "gru_relu_fn": lambda dt: nr.GRUCell(4, activation=relu, dtype=dt),
    "gru_sigmoid": lambda dt: nr.GRUCell(4, activation="sigmoid", dtype=dt),
    "gru_linear": lambda dt: nr.GRUCell(4, activation="linear", dtype=dt),
    "gru_reset_after": lambda dt: nr.GRUCell(4, reset_after=True, dtype=dt),
    "gru_reset_after_relu": lambda dt: nr.GRUCell(3, reset_after=True, activation="relu",
                                                  dtype=dt),
    "basic_lstm": lambda dt: nr.BasicLSTMCell(4, dtype=dt),
    "basic_lstm_fb0_relu": lambda dt: nr.BasicLSTMCell(4, forget_bias=0.0, activation="relu",
                                                       dtype=dt),
    "basic_lstm_concat": lambda dt: nr.BasicLSTMCell(3, state_is_tuple=False, dtype=dt),
    "lstm": lambda dt: nr.LSTMCell(4, dtype=dt),
    "lstm_peepholes": lambda dt: nr.LSTMCell(4, use_peepholes=True, dtype=dt),
    "lstm_cell_clip": lambda dt: nr.LSTMCell(4, cell_clip=0.3, dtype=dt),
    "lstm_proj": lambda dt: nr.LSTMCell(5, num_proj=3, dtype=dt),
    "lstm_proj_clip": lambda dt: nr.LSTMCell(5, num_proj=3, proj_clip=0.15, dtype=dt),
    "lstm_sigmoid": lambda dt: nr.LSTMCell(4, activation="sigmoid", forget_bias=0.5, dtype=dt),
    "lstm_linear": lambda dt: nr.LSTMCell(4, activation="linear", dtype=dt),
    "lstm_all": lambda dt: nr.LSTMCell(5, use_peepholes=True, cell_clip=0.4, num_proj=2,
                                       proj_clip=0.2, forget_bias=-0.3, dtype=dt),
    "lstm_all_concat": lambda dt: nr.LSTMCell(4, use_peepholes=True, cell_clip=0.5, num_proj=6,
                                              state_is_tuple=False, dtype=dt),
    "multi_mixed": lambda dt: nr.MultiRNNCell([
        nr.LSTMCell(4, use_peepholes=True, num_proj=2, dtype=dt),
        nr.GRUCell(3, reset_after=True, dtype=dt),
        nr.BasicRNNCell(5, activation="relu", dtype=dt),
        nr.BasicLSTMCell(2, dtype=dt)]),
    "multi_concat": lambda dt: nr.MultiRNNCell([
        nr.GRUCell(3, dtype=dt), nr.LSTMCell(4, num_proj=2, state_is_tuple=False, dtype=dt),
        nr.BasicRNNCell(2, dtype=dt)], state_is_tuple=False),
    "multi_nested": lambda dt: nr.MultiRNNCell([
        nr.BasicRNNCell(2, dtype=dt),
        nr.MultiRNNCell([nr.GRUCell(3, dtype=dt), nr.LSTMCell(4, cell_clip=0.3, dtype=dt)])]),
}


# ----------------------------------------------------------------------------- helpers
def randomize(cell, depth, dtype, seed=0, scale=0.7):
    """Build ``cell`` and give it random weights (biases too, so none are left at zero)."""
    rng = np.random.default_rng(seed)
    cell.build(depth, dtype=dtype)
    cell.set_weights([rng.uniform(-scale, scale, w.shape) for w in cell.get_weights()])
    return cell


def make_cell(name, dtype, depth=D, seed=0):
    return randomize(CELLS[name](dtype), depth, dtype, seed)


def random_inputs(dtype, batch=B, steps=T, depth=D, time_major=False, seed=1):
    shape = (steps, batch, depth) if time_major else (batch, steps, depth)
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def as64(structure):
    return None if structure is None else nest.map_structure(
        lambda a: np.asarray(a, dtype=F64), structure)


def expected(cell, inputs, lengths=None, state=None, time_major=False):
    """The reference in float64 (float32 weights are exact in float64)."""
    return reference_dynamic_rnn(cell, as64(inputs), lengths, as64(state), time_major)


def assert_same_structure(actual, wanted):
    assert type(actual) is type(wanted), (type(actual), type(wanted))
    if nest.is_sequence(wanted):
        assert len(actual) == len(wanted)
        for a, w in zip(actual, wanted):
            assert_same_structure(a, w)


def assert_close(actual, wanted, dtype, what=""):
    assert_same_structure(actual, wanted)
    for a, w in zip(nest.flatten(actual), nest.flatten(wanted)):
        assert isinstance(a, np.ndarray) and a.dtype == dtype, (what, type(a), a.dtype)
        assert a.shape == w.shape, (what, a.shape, w.shape)
        np.testing.assert_allclose(a, w, rtol=ATOL[dtype], atol=ATOL[dtype], err_msg=what)


def assert_identical(actual, wanted):
    assert_same_structure(actual, wanted)
    for a, w in zip(nest.flatten(actual), nest.flatten(wanted)):
        assert a.dtype == w.dtype
        np.testing.assert_array_equal(a, w)


def copies(structure):
    return nest.map_structure(np.copy, structure)


LENGTHS = {
    "none": None,
    "mixed": np.array([T, 0, 3, 1, T - 1]),
    "equal": np.full(B, 4, dtype=np.int32),
    "all_full": [T] * B,
    "all_zero": np.zeros(B, dtype=np.int64),
}


# ------------------------------------------------------------------ agreement with reference
@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_reference(name, dtype, time_major, lengths):
    cell = make_cell(name, dtype)
    x = random_inputs(dtype, time_major=time_major)
    state = random_state(cell, B, dtype)
    lengths = LENGTHS[lengths]
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                                    time_major=time_major)
    want_outputs, want_final = expected(cell, x, lengths, state, time_major)
    assert outputs.shape == ((T, B) if time_major else (B, T)) + (cell.output_size,)
    assert_close(outputs, want_outputs, dtype, "outputs")
    assert_close(final, want_final, dtype, "final state")


LSTM_CELLS = [name for name in CELLS if "lstm" in name]


@pytest.mark.parametrize("parallel_iterations", [1, 2])
@pytest.mark.parametrize("batch", [1, PROJECT_FIRST_BELOW - 1, PROJECT_FIRST_BELOW,
                                   2 * PROJECT_FIRST_BELOW + 3])
@pytest.mark.parametrize("name", LSTM_CELLS)
def test_lstm_projection_first_or_in_kernel(name, batch, parallel_iterations):
    """Chunks of fewer rows than PROJECT_FIRST_BELOW project all steps' inputs first,
    larger ones in the kernel, step by step: both match the reference, with and without
    gradients' saved activations."""
    cell = make_cell(name, F64)
    x = random_inputs(F64, batch=batch, steps=6)
    state = random_state(cell, batch, F64)
    lengths = np.random.default_rng(batch).integers(0, 7, batch)
    want_outputs, want_final = expected(cell, x, lengths, state)
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                         parallel_iterations=parallel_iterations)
    (outputs, final), _ = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                                 initial_state=state, parallel_iterations=parallel_iterations)
    for result in (got, (outputs, final)):
        assert_close(result[0], want_outputs, F64, "outputs")
        assert_close(result[1], want_final, F64, "final state")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_default_initial_state_is_zero(name, dtype):
    cell = make_cell(name, dtype)
    x = random_inputs(dtype)
    lengths = LENGTHS["mixed"]
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths)
    want_outputs, want_final = expected(cell, x, lengths)
    assert_close(outputs, want_outputs, dtype, "outputs")
    assert_close(final, want_final, dtype, "final state")
    # A zero-length sequence ends in the zero state.
    for leaf in nest.flatten(final):
        assert not leaf[1].any()


def test_reference_sanity():
    """The reference itself, on a case worked by hand: a linear basic RNN that sums."""
    cell = nr.BasicRNNCell(1, activation="linear", dtype=F64)
    cell.set_weights([np.array([[1.0], [1.0]]), np.array([0.5])])  # h = x + h + 0.5
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])[:, :, None]
    outputs, final = reference_dynamic_rnn(cell, x, [3, 1], np.array([[10.0], [0.0]]))
    np.testing.assert_array_equal(outputs[..., 0], [[11.5, 14.0, 17.5], [4.5, 0.0, 0.0]])
    np.testing.assert_array_equal(final, [[17.5], [4.5]])
    got_outputs, got_final = nr.dynamic_rnn(cell, x, [3, 1], np.array([[10.0], [0.0]]))
    assert_close(got_outputs, outputs, F64)
    assert_close(got_final, final, F64)


def test_clipping_is_active_in_these_tests():
    """The clip options would be untested if the values never reached the clip."""
    cell = make_cell("lstm_proj_clip", F64)
    outputs, _ = nr.dynamic_rnn(cell, random_inputs(F64))
    assert np.isclose(np.abs(outputs).max(), 0.15)
    cell = make_cell("lstm_cell_clip", F64)
    _, final = nr.dynamic_rnn(cell, random_inputs(F64))
    assert np.isclose(np.abs(final.c).max(), 0.3)


# -------------------------------------------------------------------------- empty shapes
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("batch, steps", [(0, 4), (3, 0), (0, 0)])
@pytest.mark.parametrize("name", ["basic_tanh", "gru_reset_after", "lstm_all", "lstm_all_concat",
                                  "multi_mixed", "multi_concat"])
def test_empty_batch_or_time(name, batch, steps, time_major):
    cell = make_cell(name, F32)
    x = random_inputs(F32, batch, steps, time_major=time_major)
    state = random_state(cell, batch, F32)
    lengths = np.zeros(batch, dtype=np.int64) if steps == 0 else None
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                                    time_major=time_major)
    size = cell.output_size
    assert outputs.shape == ((steps, batch, size) if time_major else (batch, steps, size))
    assert outputs.dtype == F32
    assert_identical(final, state)  # nothing to run: the final state is the initial state
    outputs, final = nr.dynamic_rnn(cell, x, time_major=time_major)
    assert_identical(final, cell.zero_state(batch, F32))


# ------------------------------------------------------------------------ memory layouts
@pytest.mark.parametrize("name", ["basic_relu", "gru", "gru_reset_after", "lstm_all",
                                  "lstm_all_concat", "multi_mixed", "multi_concat"])
def test_strided_and_fortran_inputs(name):
    cell = make_cell(name, F64)
    x = random_inputs(F64)
    state = random_state(cell, B, F64)
    lengths = LENGTHS["mixed"]
    want = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
    assert_close(want[0], expected(cell, x, lengths, state)[0], F64)

    big = np.zeros((2 * B, T + 3, 3 * D))
    big[::2, 1:T + 1, ::3] = x
    sliced = big[::2, 1:T + 1, ::3]
    assert not sliced.flags.c_contiguous and np.array_equal(sliced, x)
    fortran = np.asfortranarray(x)
    transposed_view = np.ascontiguousarray(np.swapaxes(x, 0, 1)).swapaxes(0, 1)
    reversed_view = np.ascontiguousarray(x[::-1])[::-1]
    for variant in (sliced, fortran, transposed_view, reversed_view):
        state_variant = nest.map_structure(np.asfortranarray, state)
        got = nr.dynamic_rnn(cell, variant, sequence_length=lengths,
                             initial_state=state_variant)
        assert_identical(got, want)
        got = nr.dynamic_rnn(cell, np.swapaxes(variant, 0, 1), sequence_length=lengths,
                             initial_state=state, time_major=True)
        assert_identical(got[1], want[1])
        assert_identical(got[0], np.swapaxes(want[0], 0, 1))


def test_strided_initial_state():
    cell = make_cell("lstm_proj", F32)
    x = random_inputs(F32)
    c, h = random_state(cell, B, F32)
    wide = nr.LSTMStateTuple(np.repeat(c, 2, axis=0)[::2], np.repeat(h, 3, axis=1)[:, ::3])
    assert not wide.c.flags.c_contiguous and not wide.h.flags.c_contiguous
    assert_identical(nr.dynamic_rnn(cell, x, initial_state=wide),
                     nr.dynamic_rnn(cell, x, initial_state=nr.LSTMStateTuple(c, h)))


# ------------------------------------------------------------------- arguments unchanged
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("name", ["basic_tanh", "gru_reset_after", "lstm_all", "lstm_all_concat",
                                  "multi_mixed", "multi_concat"])
def test_arguments_are_not_modified(name, time_major):
    cell = make_cell(name, F32)
    x = random_inputs(F32, time_major=time_major)
    state = random_state(cell, B, F32)
    lengths = np.array([T, 0, 3, 1, T - 1])
    weights = cell.get_weights()
    saved = copies((x, state, lengths))
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                                    time_major=time_major)
    assert_identical((x, state, lengths), saved)
    for w, before in zip(cell.get_weights(), weights):
        np.testing.assert_array_equal(w, before)
    # The results are fresh arrays, not views of the arguments.
    for leaf in nest.flatten((outputs, final)):
        for arg in nest.flatten((x, state)):
            assert not np.shares_memory(leaf, arg)


@pytest.mark.parametrize("lengths", ["none", "equal", "mixed"])
@pytest.mark.parametrize("name", ["lstm_all", "lstm_all_concat", "basic_lstm", "gru"])
def test_batch_major_inference_in_place(name, lengths, monkeypatch):
    """Batch-major LSTM inference with rows in the caller's order reads x where it is
    and writes a batch-major buffer (rnn._Run._in_place): taken exactly then, results as
    the reference, x unchanged, outputs C-contiguous and not sharing x's memory."""
    taken = []
    in_place = rnn_module._Run._in_place
    monkeypatch.setattr(rnn_module._Run, "_in_place",
                        lambda run, plan, tape: taken.append(in_place(run, plan, tape))
                        or taken[-1])
    cell = make_cell(name, F32)
    x = random_inputs(F32, time_major=False)
    saved = x.copy()
    lengths = LENGTHS[lengths]
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, dtype=F32)
    assert taken == [lengths is not LENGTHS["mixed"] and cell._projects_in_kernel]
    np.testing.assert_array_equal(x, saved)
    assert outputs.flags.c_contiguous and not np.shares_memory(outputs, x)
    want_outputs, want_final = expected(cell, x, lengths, cell.zero_state(B, F32), False)
    assert_close(outputs, want_outputs, F32, "outputs")
    assert_close(final, want_final, F32, "final state")


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("name", list(CELLS))
def test_outputs_of_full_sequences_are_all_written(name, time_major, poison_np_empty):
    """Without padded steps the engine leaves the outputs' buffer unfilled (np.empty), as
    the kernels write every row of every step: with np.empty giving NaNs, results are
    still the reference's."""
    cell = make_cell(name, F32)
    x = random_inputs(F32, time_major=time_major)
    want = expected(cell, x, None, cell.zero_state(B, F32), time_major)
    for lengths in (None, np.full(B, T)):  # compiled before NumPy is patched
        nr.dynamic_rnn(cell, x, sequence_length=lengths, dtype=F32, time_major=time_major)
    poison_np_empty()
    for lengths in (None, np.full(B, T)):
        outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, dtype=F32,
                                        time_major=time_major)
        assert_close(outputs, want[0], F32, "outputs")
        assert_close(final, want[1], F32, "final state")


# ------------------------------------------------------------------------- one-step call
@pytest.mark.parametrize("frozen", [False, True], ids=["unfrozen", "frozen"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(CELLS))
def test_one_step_call_matches_reference_step(name, dtype, frozen):
    cell = make_cell(name, dtype)
    if frozen:
        cell.freeze()
    x = random_inputs(dtype)[:, 0]
    state = random_state(cell, B, dtype)
    saved = copies((x, state))
    output, new_state = cell(x, state)
    want_output, want_state = reference_step(cell, as64(x), as64(state))
    assert_close(output, want_output, dtype, "output")
    assert_close(new_state, want_state, dtype, "state")
    assert_identical((x, state), saved)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["basic_tanh", "gru", "gru_reset_after", "basic_lstm",
                                  "lstm_all"])
def test_frozen_one_step_call_skips_dynamic_rnn_unless_worth_threads(name, dtype, monkeypatch):
    """A frozen built-in cell's small step calls its compiled one-step function directly,
    with dynamic_rnn's numbers bit for bit; a step with enough work for threads still goes
    through dynamic_rnn."""
    calls = []
    dynamic_rnn = rnn_module.dynamic_rnn
    monkeypatch.setattr(rnn_module, "dynamic_rnn",
                        lambda *args, **kwargs: calls.append(1) or dynamic_rnn(*args, **kwargs))
    cell = make_cell(name, dtype)
    x = random_inputs(dtype)[:, 0]
    state = random_state(cell, B, dtype)
    unfrozen = cell(x, state)
    assert calls == [1]
    cell.freeze()
    assert_identical(cell(x, state), unfrozen)
    assert calls == [1]
    big = nr.BasicLSTMCell(512)
    big.build(D)
    big.freeze()
    big(np.ones((8, D), F32), None)
    assert calls == [1, 1]


def test_frozen_one_step_call_checks_its_arguments():
    cell = make_cell("basic_lstm", F32).freeze()
    x = random_inputs(F32)[:, 0]
    with pytest.raises(ValueError, match="initial_state"):
        cell(x, (np.zeros((B, 3), F32), np.zeros((B, 3), F32)))
    with pytest.raises(ValueError, match="dtype"):
        cell(x.astype(F64), None)
    with pytest.raises(ValueError, match="depth"):
        cell(x[:, 1:], None)


# ------------------------------------------------------------------------------ threads
@pytest.mark.parametrize("name", ["basic_tanh", "gru", "gru_reset_after", "lstm_all",
                                  "multi_mixed"])
def test_parallel_iterations_do_not_change_results(name):
    cell = make_cell(name, F32)
    batch = 17
    x = random_inputs(F32, batch=batch, steps=9)
    state = random_state(cell, batch, F32)
    lengths = np.random.default_rng(3).integers(0, 10, batch)
    default = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
    assert_close(default[0], expected(cell, x, lengths, state)[0], F32)
    for parallel_iterations in (1, 2, 32):
        got = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                             parallel_iterations=parallel_iterations)
        assert_identical(got, default)


# -------------------------------------------------------------------------- weight names
def run_once(cell, scope=None):
    nr.dynamic_rnn(cell, random_inputs(F32), scope=scope)
    return cell


def test_named_weights_single_cells():
    assert list(run_once(nr.LSTMCell(3)).named_weights()) == [
        "rnn/lstm_cell/kernel", "rnn/lstm_cell/bias"]
    assert list(run_once(nr.LSTMCell(3, use_peepholes=True, num_proj=2)).named_weights()) == [
        "rnn/lstm_cell/kernel", "rnn/lstm_cell/bias", "rnn/lstm_cell/w_f_diag",
        "rnn/lstm_cell/w_i_diag", "rnn/lstm_cell/w_o_diag", "rnn/lstm_cell/projection/kernel"]
    assert list(run_once(nr.BasicLSTMCell(3)).named_weights()) == [
        "rnn/basic_lstm_cell/kernel", "rnn/basic_lstm_cell/bias"]
    assert list(run_once(nr.GRUCell(3)).named_weights()) == [
        "rnn/gru_cell/gates/kernel", "rnn/gru_cell/gates/bias",
        "rnn/gru_cell/candidate/kernel", "rnn/gru_cell/candidate/bias"]
    assert list(run_once(nr.BasicRNNCell(3)).named_weights()) == [
        "rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"]
    assert list(run_once(nr.LSTMCell(3), scope="encoder").named_weights()) == [
        "encoder/lstm_cell/kernel", "encoder/lstm_cell/bias"]
    assert list(run_once(nr.GRUCell(3, name="my_gru"), scope="dec").named_weights()) == [
        "dec/my_gru/gates/kernel", "dec/my_gru/gates/bias",
        "dec/my_gru/candidate/kernel", "dec/my_gru/candidate/bias"]


def test_named_weights_multi_cell():
    cell = nr.MultiRNNCell([nr.LSTMCell(3), nr.GRUCell(2), nr.BasicRNNCell(2)])
    run_once(cell)
    assert list(cell.named_weights()) == [
        "rnn/multi_rnn_cell/cell_0/lstm_cell/kernel", "rnn/multi_rnn_cell/cell_0/lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel",
        "rnn/multi_rnn_cell/cell_1/gru_cell/gates/bias",
        "rnn/multi_rnn_cell/cell_1/gru_cell/candidate/kernel",
        "rnn/multi_rnn_cell/cell_1/gru_cell/candidate/bias",
        "rnn/multi_rnn_cell/cell_2/basic_rnn_cell/kernel",
        "rnn/multi_rnn_cell/cell_2/basic_rnn_cell/bias"]
    for (name, named), weight in zip(cell.named_weights().items(), cell.get_weights()):
        np.testing.assert_array_equal(named, weight, err_msg=name)
    run_once(cell, scope="encoder")
    assert list(cell.named_weights())[0] == "encoder/multi_rnn_cell/cell_0/lstm_cell/kernel"
    assert list(cell.named_weights())[-1] == "encoder/multi_rnn_cell/cell_2/basic_rnn_cell/bias"


@pytest.mark.parametrize("name", list(CELLS))
def test_named_weights_match_get_weights(name):
    cell = make_cell(name, F64)
    nr.dynamic_rnn(cell, random_inputs(F64))
    named = cell.named_weights()
    assert len(named) == len(cell.get_weights())
    for got, want in zip(named.values(), cell.get_weights()):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- initialisers
def glorot_limit(shape):
    fan_in, fan_out = (shape[0], shape[0]) if len(shape) == 1 else shape
    return np.sqrt(6.0 / (fan_in + fan_out))


def check_glorot(w):
    limit = glorot_limit(w.shape)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() >= 0.7 * limit  # uses the range, not a narrower one
    assert abs(w.mean()) < 4 * limit / np.sqrt(3 * w.size)  # centred: 4 standard errors
    assert len(np.unique(w)) == w.size


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_default_initialisers(dtype):
    depth, units = 9, 16
    gru = nr.GRUCell(units, seed=1, dtype=dtype)
    gru.build(depth)
    gates_kernel, gates_bias, cand_kernel, cand_bias = gru.get_weights()
    assert gates_kernel.shape == (depth + units, 2 * units)
    assert cand_kernel.shape == (depth + units, units)
    np.testing.assert_array_equal(gates_bias, np.ones(2 * units))
    np.testing.assert_array_equal(cand_bias, np.zeros(units))
    check_glorot(gates_kernel)
    check_glorot(cand_kernel)

    gru_ra = nr.GRUCell(units, reset_after=True, seed=1, dtype=dtype)
    gru_ra.build(depth)
    *_, recurrent_bias = gru_ra.get_weights()
    assert len(gru_ra.get_weights()) == 5
    np.testing.assert_array_equal(recurrent_bias, np.zeros(units))

    lstm = nr.LSTMCell(units, use_peepholes=True, num_proj=7, seed=1, dtype=dtype)
    lstm.build(depth)
    kernel, bias, w_f, w_i, w_o, proj = lstm.get_weights()
    assert kernel.shape == (depth + 7, 4 * units) and proj.shape == (units, 7)
    np.testing.assert_array_equal(bias, np.zeros(4 * units))
    for w in (kernel, proj, w_f, w_i, w_o):
        assert w.shape[0] > 1
        check_glorot(w)

    basic = nr.BasicRNNCell(units, seed=1, dtype=dtype)
    basic.build(depth)
    kernel, bias = basic.get_weights()
    assert kernel.shape == (depth + units, units)
    np.testing.assert_array_equal(bias, np.zeros(units))
    check_glorot(kernel)
    for cell in (gru, gru_ra, lstm, basic):
        assert all(w.dtype == dtype for w in cell.get_weights())


def test_default_dtype_is_float32():
    cell = nr.LSTMCell(3)
    cell.build(2)
    assert all(w.dtype == F32 for w in cell.get_weights())
    cell = nr.GRUCell(3)
    nr.dynamic_rnn(cell, random_inputs(F64))  # built by the first call, for its dtype
    assert all(w.dtype == F64 for w in cell.get_weights())


@pytest.mark.parametrize("make", [
    lambda seed: nr.LSTMCell(5, use_peepholes=True, num_proj=3, seed=seed),
    lambda seed: nr.GRUCell(5, seed=seed),
    lambda seed: nr.BasicRNNCell(5, seed=seed),
    lambda seed: nr.MultiRNNCell([nr.GRUCell(4, seed=seed), nr.LSTMCell(3, seed=seed + 1)]),
])
def test_same_seed_same_weights(make):
    a, b, c = make(7), make(7), make(8)
    for cell in (a, b, c):
        cell.build(4)
    for wa, wb, wc in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(wa, wb)
        if wa.ndim == 2:
            assert not np.array_equal(wa, wc)
    x = random_inputs(F32, depth=4)
    assert_identical(nr.dynamic_rnn(a, x), nr.dynamic_rnn(b, x))


# --------------------------------------------------------------------------- set_weights
@pytest.mark.parametrize("name", list(CELLS))
def test_set_weights_round_trip(name):
    source = make_cell(name, F64, seed=5)
    weights = source.get_weights()
    # Into an unbuilt cell of the same configuration: it builds from the weights.
    target = CELLS[name](F64)
    target.set_weights(weights)
    assert target.input_depth == D
    for got, want in zip(target.get_weights(), weights):
        assert got.dtype == F64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    # get_weights returns copies.
    target.get_weights()[0][...] = 99.0
    np.testing.assert_array_equal(target.get_weights()[0], weights[0])
    # The caller's arrays are copied in, not aliased.
    weights[0][...] = 42.0
    assert not np.array_equal(target.get_weights()[0], weights[0])
    x = random_inputs(F64)
    assert_identical(nr.dynamic_rnn(target, x), nr.dynamic_rnn(source, x))


def test_set_weights_nested_multi_cell():
    cell = nr.MultiRNNCell([nr.BasicRNNCell(2), nr.MultiRNNCell([nr.GRUCell(3)])])
    cell.build(3)
    weights = [w + 0.25 for w in cell.get_weights()]
    cell.set_weights(weights)
    for got, want in zip(cell.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_set_weights_builds_an_unbuilt_stack():
    source = nr.MultiRNNCell([nr.GRUCell(3, seed=0), nr.LSTMCell(2, seed=1)])
    source.build(4)
    target = nr.MultiRNNCell([nr.GRUCell(3), nr.LSTMCell(2)])
    with pytest.raises(ValueError):
        target.set_weights(source.get_weights()[:-1])
    target.set_weights(source.get_weights())
    assert target.input_depth == 4
    for got, want in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_set_weights_changes_results():
    cell = make_cell("lstm", F64)
    x = random_inputs(F64)
    before = nr.dynamic_rnn(cell, x)[0]
    weights = cell.get_weights()
    weights[1] = weights[1] + 0.5
    cell.set_weights(weights)
    after = nr.dynamic_rnn(cell, x)[0]
    assert not np.allclose(before, after)
    assert_close(after, expected(cell, x)[0], F64)


# -------------------------------------------------------------------------- custom cells
class Accumulator(nr.RNNCell):
    """state = state + x, output = 2 * state: easy to check by hand."""

    state_size = 2
    output_size = 2

    def __call__(self, inputs, state):
        new = state + inputs
        return 2 * new, new


class NestedCell(nr.RNNCell):
    """Nested tuple inputs (a, (b, c)), a tuple state and a nested output_size."""

    state_size = (2, 3)
    output_size = (2, (3, 1))

    def __call__(self, inputs, state):
        a, (b, c) = inputs
        s1, s2 = state
        s1 = np.tanh(s1 + a)
        s2 = 0.5 * s2 + b * c
        return (2 * s1, (s2, c + s1.sum(axis=1, keepdims=True))), (s1, s2)


class DenseTanhCell(nr.RNNCell):
    """A custom layer with its own fixed weights, usable inside a MultiRNNCell."""

    def __init__(self, depth, units, seed=0):
        super().__init__(name="dense_tanh")
        rng = np.random.default_rng(seed)
        self.w = rng.uniform(-0.7, 0.7, (depth + units, units))
        self.units = units

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def __call__(self, inputs, state):
        h = np.tanh(np.concatenate([inputs, state], axis=1) @ self.w.astype(inputs.dtype))
        return h, h


class NumpyLSTM(nr.RNNCell):
    """TensorFlow's BasicLSTMCell written again as a custom cell (fixed weights)."""

    def __init__(self, kernel, bias, forget_bias):
        super().__init__()
        self.kernel, self.bias, self.forget_bias = kernel, bias, forget_bias
        self.units = bias.shape[0] // 4

    @property
    def state_size(self):
        return nr.LSTMStateTuple(self.units, self.units)

    @property
    def output_size(self):
        return self.units

    def __call__(self, inputs, state):
        c, h = state
        z = np.concatenate([inputs, h], axis=1) @ self.kernel + self.bias
        i, j, f, o = np.split(z, 4, axis=1)
        c = sigmoid(f + self.forget_bias) * c + sigmoid(i) * np.tanh(j)
        h = sigmoid(o) * np.tanh(c)
        return h, nr.LSTMStateTuple(c, h)


class WrappedCell(nr.RNNCell):
    """A wrapper that delegates each step to a built-in cell's one-step call."""

    def __init__(self, inner):
        super().__init__(name="wrapper")
        self.inner = inner

    @property
    def state_size(self):
        return self.inner.state_size

    @property
    def output_size(self):
        return self.inner.output_size

    def __call__(self, inputs, state):
        return self.inner(inputs, state)


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_custom_cell_by_hand(time_major):
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    lengths = np.array([4, 0, 2])
    inputs = np.swapaxes(x, 0, 1) if time_major else x
    outputs, final = nr.dynamic_rnn(Accumulator(), inputs, sequence_length=lengths,
                                    time_major=time_major)
    if time_major:
        outputs = np.swapaxes(outputs, 0, 1)
    mask = (np.arange(4)[None, :] < lengths[:, None])[:, :, None]
    np.testing.assert_array_equal(outputs, 2 * np.cumsum(x * mask, axis=1) * mask)
    np.testing.assert_array_equal(final, (x * mask).sum(axis=1))


class InPlaceAccumulator(nr.RNNCell):
    """Accumulator that adds to the state it is given, in place."""

    state_size = 2
    output_size = 2

    def __call__(self, inputs, state):
        state += inputs
        return 2 * state, state


@pytest.mark.parametrize("lengths", [None, [4, 4, 4], [0, 0, 0]], ids=["none", "equal", "zero"])
def test_custom_cell_writing_its_state_leaves_initial_state_alone(lengths):
    x = np.random.default_rng(0).normal(size=(3, 4, 2))
    state = np.ones((3, 2))
    outputs, final = nr.dynamic_rnn(InPlaceAccumulator(), x, sequence_length=lengths,
                                    initial_state=state)
    np.testing.assert_array_equal(state, np.ones((3, 2)))
    assert not np.shares_memory(final, state)
    want = Accumulator()
    np.testing.assert_array_equal(final, nr.dynamic_rnn(want, x, sequence_length=lengths,
                                                        initial_state=np.ones((3, 2)))[1])


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_custom_cell_with_nested_inputs_and_outputs(time_major, dtype):
    rng = np.random.default_rng(0)
    shape = (T, B) if time_major else (B, T)
    inputs = tuple(rng.normal(size=shape + (d,)).astype(dtype) for d in (2, 3, 1))
    inputs = (inputs[0], (inputs[1], inputs[2]))
    cell = NestedCell()
    state = random_state(cell, B, dtype)
    lengths = LENGTHS["mixed"]
    saved = copies((inputs, state))
    outputs, final = nr.dynamic_rnn(cell, inputs, sequence_length=lengths, initial_state=state,
                                    time_major=time_major)
    want_outputs, want_final = reference_dynamic_rnn(cell, inputs, lengths, state, time_major)
    assert_close(outputs, want_outputs, dtype, "outputs")
    assert_close(final, want_final, dtype, "final")
    assert [o.shape[2] for o in nest.flatten(outputs)] == [2, 3, 1]
    assert_identical((inputs, state), saved)
    # Past each sequence's end: zero outputs.
    for out in nest.flatten(outputs):
        out = np.swapaxes(out, 0, 1) if time_major else out
        assert not out[1].any() and not out[2, 3:].any() and out[2, :3].all()


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_custom_layer_in_a_stack(time_major):
    cell = nr.MultiRNNCell([nr.LSTMCell(4, num_proj=3, dtype=F64), DenseTanhCell(3, 5),
                            nr.GRUCell(2, dtype=F64)])
    randomize(cell, D, F64)
    x = random_inputs(F64, time_major=time_major)
    state = random_state(cell, B, F64)
    lengths = LENGTHS["mixed"]
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                         time_major=time_major)
    want = reference_dynamic_rnn(cell, x, lengths, state, time_major)
    assert_close(got[0], want[0], F64, "outputs")
    assert_close(got[1], want[1], F64, "final")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_numpy_lstm_custom_cell_agrees_with_lstm_cell(dtype):
    lstm = randomize(nr.BasicLSTMCell(4, forget_bias=0.6, dtype=dtype), D, dtype)
    kernel, bias = lstm.get_weights()
    custom = NumpyLSTM(kernel, bias, 0.6)
    x = random_inputs(dtype)
    state = random_state(lstm, B, dtype)
    lengths = LENGTHS["mixed"]
    got = nr.dynamic_rnn(custom, x, sequence_length=lengths, initial_state=state)
    want = nr.dynamic_rnn(lstm, x, sequence_length=lengths, initial_state=state)
    assert_close(got[0], want[0], dtype, "outputs")
    assert_close(got[1], want[1], dtype, "final")
    assert not np.allclose(got[0], nr.dynamic_rnn(NumpyLSTM(kernel, bias, 1.0), x, lengths,
                                                  state)[0])


@pytest.mark.parametrize("name", ["lstm_all", "lstm_all_concat", "gru_reset_after",
                                  "multi_mixed"])
def test_wrapper_cell_agrees_with_the_wrapped_cell(name):
    cell = make_cell(name, F64)
    x = random_inputs(F64)
    state = random_state(cell, B, F64)
    lengths = LENGTHS["mixed"]
    got = nr.dynamic_rnn(WrappedCell(cell), x, sequence_length=lengths, initial_state=state)
    want = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
    assert_close(got[0], want[0], F64, "outputs")
    assert_close(got[1], want[1], F64, "final")
