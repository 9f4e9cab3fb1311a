"""nr.vjp(nr.dynamic_rnn) against the NumPy BPTT reference in reference_backward.py.

The loss is <d_outputs, outputs> + <d_state, final state> with random cotangents, so the
gradients compared are exactly what ``backward((d_outputs, d_state))`` returns. The
reference runs in float64 on the same weights and inputs; float64 runs must agree to 1e-10
of the gradient's magnitude, float32 runs to 1e-4. The reference itself is checked against
central finite differences of its own forward pass, element by element, on a tiny case.
"""
import zlib

import numpy as np
import pytest
from reference_backward import dynamic_rnn_vjp

import numba_rnn as nr
from numba_rnn import nest

F32, F64 = np.float32, np.float64
BATCH, STEPS, DEPTH = 4, 5, 3
LENGTHS = {"full": None, "ragged": np.array([5, 0, 2, 4])}

CELLS = {
    "basic_tanh": lambda dt: nr.BasicRNNCell(3, dtype=dt),
    "basic_relu": lambda dt: nr.BasicRNNCell(3, activation="relu", dtype=dt),
    "basic_sigmoid": lambda dt: nr.BasicRNNCell(3, activation="sigmoid", dtype=dt),
    "basic_linear": lambda dt: nr.BasicRNNCell(3, activation="linear", dtype=dt),
    "gru": lambda dt: nr.GRUCell(3, dtype=dt),
    "gru_relu": lambda dt: nr.GRUCell(3, activation="relu", dtype=dt),
    "gru_reset_after": lambda dt: nr.GRUCell(3, reset_after=True, dtype=dt),
    "gru_reset_after_linear": lambda dt: nr.GRUCell(2, reset_after=True, activation="linear",
                                                    dtype=dt),
    "basic_lstm": lambda dt: nr.BasicLSTMCell(3, forget_bias=0.5, dtype=dt),
    "basic_lstm_concat_relu": lambda dt: nr.BasicLSTMCell(3, state_is_tuple=False,
                                                          activation="relu", dtype=dt),
    "lstm": lambda dt: nr.LSTMCell(3, dtype=dt),
    "lstm_peepholes": lambda dt: nr.LSTMCell(3, use_peepholes=True, forget_bias=0.0,
                                             dtype=dt),
    "lstm_cell_clip": lambda dt: nr.LSTMCell(3, cell_clip=0.4, dtype=dt),
    "lstm_projection": lambda dt: nr.LSTMCell(4, num_proj=2, dtype=dt),
    "lstm_proj_clip": lambda dt: nr.LSTMCell(4, num_proj=3, proj_clip=0.25, dtype=dt),
    "lstm_everything": lambda dt: nr.LSTMCell(4, use_peepholes=True, cell_clip=0.5,
                                              num_proj=3, proj_clip=0.3, forget_bias=0.3,
                                              activation="sigmoid", dtype=dt),
    "lstm_concat": lambda dt: nr.LSTMCell(3, use_peepholes=True, num_proj=2,
                                          state_is_tuple=False, dtype=dt),
    "multi": lambda dt: nr.MultiRNNCell([
        nr.LSTMCell(3, use_peepholes=True, cell_clip=0.6, dtype=dt),
        nr.GRUCell(2, reset_after=True, dtype=dt),
        nr.BasicRNNCell(3, activation="relu", dtype=dt)]),
    "multi_concat": lambda dt: nr.MultiRNNCell([
        nr.GRUCell(3, dtype=dt),
        nr.LSTMCell(3, num_proj=2, state_is_tuple=False, dtype=dt),
        nr.BasicRNNCell(2, dtype=dt)], state_is_tuple=False),
    "multi_nested": lambda dt: nr.MultiRNNCell([
        nr.MultiRNNCell([nr.BasicLSTMCell(2, dtype=dt), nr.GRUCell(3, dtype=dt)]),
        nr.BasicRNNCell(2, activation="sigmoid", dtype=dt)]),
}


def seeded(*names):
    return np.random.default_rng(zlib.crc32("/".join(map(str, names)).encode()))


def make_cell(name, dtype, depth, rng):
    """A cell built for ``depth`` with every weight random (biases and peepholes too)."""
    cell = CELLS[name](dtype)
    cell.build(depth, dtype)
    cell.set_weights([w + 0.5 * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


def random_like(structure, rng, dtype=F64):
    return nest.map_structure(lambda a: rng.standard_normal(np.shape(a)).astype(dtype),
                              structure)


def assert_close(actual, expected, dtype, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    tol = 1e-10 if dtype == F64 else 1e-4
    np.testing.assert_allclose(actual, expected, rtol=0 if dtype == F64 else tol,
                               atol=tol * scale, err_msg=what)


def compare_with_reference(cell, x, dtype, lengths, initial_state, time_major, rng, **kwargs):
    (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                                        initial_state=initial_state, time_major=time_major,
                                        dtype=dtype if initial_state is None else None,
                                        **kwargs)
    (ref_outputs, ref_state), ref_backward = dynamic_rnn_vjp(
        cell, x, sequence_length=lengths, initial_state=initial_state, time_major=time_major)
    assert_close(outputs, ref_outputs, dtype, "outputs")
    assert nest.same_structure(state, ref_state)
    for i, (a, b) in enumerate(zip(nest.flatten(state), nest.flatten(ref_state))):
        assert_close(a, b, dtype, f"final state leaf {i}")

    d_result = random_like((outputs, state), rng, dtype)
    grads, expected = backward(d_result), ref_backward(d_result)
    assert_close(grads.inputs, expected.inputs, dtype, "d inputs")
    assert nest.same_structure(grads.initial_state, expected.initial_state)
    for i, (a, b) in enumerate(zip(nest.flatten(grads.initial_state),
                                   nest.flatten(expected.initial_state))):
        assert_close(a, b, dtype, f"d initial_state leaf {i}")
    assert len(grads.weights) == len(expected.weights) == len(cell.get_weights())
    for i, (a, b) in enumerate(zip(grads.weights, expected.weights)):
        assert_close(a, b, dtype, f"d weights[{i}]")


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("lengths", LENGTHS.values(), ids=LENGTHS.keys())
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("name", CELLS)
def test_vjp_matches_reference(name, time_major, lengths, dtype):
    rng = seeded(name, time_major, lengths is None, dtype.__name__)
    cell = make_cell(name, dtype, DEPTH, rng)
    shape = (STEPS, BATCH, DEPTH) if time_major else (BATCH, STEPS, DEPTH)
    x = rng.standard_normal(shape).astype(dtype)
    state = random_like(cell.zero_state(BATCH, dtype), rng, dtype)
    compare_with_reference(cell, x, dtype, lengths, state, time_major, rng)


@pytest.mark.parametrize("variant", ["swap_memory", "zero_initial_state"])
@pytest.mark.parametrize("name", CELLS)
def test_vjp_matches_reference_variants(name, variant):
    """swap_memory (recomputation from checkpoints, longer sequences) and the default state."""
    rng = seeded(name, variant)
    if variant == "swap_memory":
        dtype, steps, lengths, time_major = F64, 11, np.array([11, 0, 6, 9]), False
    else:
        dtype, steps, lengths, time_major = F32, STEPS, np.array([1, 5, 0, 3]), True
    cell = make_cell(name, dtype, DEPTH, rng)
    shape = (steps, BATCH, DEPTH) if time_major else (BATCH, steps, DEPTH)
    x = rng.standard_normal(shape).astype(dtype)
    state = None if variant == "zero_initial_state" else random_like(
        cell.zero_state(BATCH, dtype), rng, dtype)
    compare_with_reference(cell, x, dtype, lengths, state, time_major, rng,
                           swap_memory=variant == "swap_memory")


@pytest.mark.parametrize("name", CELLS)
def test_reference_matches_finite_differences(name):
    """Every element of every gradient of the reference, by central differences (float64)."""
    eps = 1e-5
    rng = seeded("finite differences", name)
    cell = make_cell(name, F64, 2, rng)
    x = rng.standard_normal((3, 3, 2))
    lengths = np.array([3, 0, 2])
    state = random_like(cell.zero_state(3, F64), rng)
    weights = cell.get_weights()
    (outputs, final), backward = dynamic_rnn_vjp(cell, x, lengths, state)
    d_outputs, d_final = random_like((outputs, final), rng)
    grads = backward((d_outputs, d_final))

    def loss():
        (o, s), _ = dynamic_rnn_vjp(cell, x, lengths, state, weights=weights)
        return float(np.sum(o * d_outputs)) + sum(
            float(np.sum(a * b)) for a, b in zip(nest.flatten(s), nest.flatten(d_final)))

    arrays = [x, *nest.flatten(state), *weights]  # perturbed in place below
    analytic = [grads.inputs, *nest.flatten(grads.initial_state), *grads.weights]
    assert len(arrays) == len(analytic)
    for k, (a, g) in enumerate(zip(arrays, analytic)):
        assert g.shape == a.shape, f"array {k}: gradient shape {g.shape} != {a.shape}"
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            saved = a[idx]
            a[idx] = saved + eps
            plus = loss()
            a[idx] = saved - eps
            minus = loss()
            a[idx] = saved
            numeric[idx] = (plus - minus) / (2 * eps)
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(g, numeric, rtol=0, atol=1e-7 * scale,
                                   err_msg=f"array {k} of {name}")


def test_clipping_and_zero_lengths_are_exercised():
    """The test data really clip (cell_clip, proj_clip) and the zero length passes d_state."""
    rng = seeded("lstm_everything", False, False, "float64")
    cell = make_cell("lstm_everything", F64, DEPTH, rng)
    x = rng.standard_normal((BATCH, STEPS, DEPTH))
    state = random_like(cell.zero_state(BATCH, F64), rng)
    (outputs, final), backward = dynamic_rnn_vjp(cell, x, LENGTHS["ragged"], state)
    assert np.any(np.abs(outputs) == 0.3) and np.any(np.abs(final.c) == 0.5)
    d_final = random_like(final, rng)
    grads = backward((np.zeros_like(outputs), d_final))
    np.testing.assert_array_equal(grads.initial_state.c[1], d_final.c[1])
    np.testing.assert_array_equal(grads.initial_state.h[1], d_final.h[1])
    assert not np.any(grads.inputs[1]) and not np.any(grads.inputs[2, 2:])
