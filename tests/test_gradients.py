"""Gradients through the RNN functions, checked by central finite differences in float64.

For a loss L = <W_o, outputs> + <W_s, state> with fixed random W, the directional
derivative of L along a random direction v of each argument, (L(a + eps v) - L(a - eps v))
/ (2 eps), must equal <grad, v>. With eps = 1e-5 the truncation error is ~1e-10 relative;
the tolerance is 1e-7 relative to the size of the terms.
"""
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import nest

F64 = np.float64
EPS = 1e-5

CELLS = {
    "basic_tanh": lambda: nr.BasicRNNCell(3, dtype=F64),
    "basic_relu": lambda: nr.BasicRNNCell(3, activation="relu", dtype=F64),
    "basic_sigmoid": lambda: nr.BasicRNNCell(3, activation="sigmoid", dtype=F64),
    "gru": lambda: nr.GRUCell(3, dtype=F64),
    "gru_reset_after": lambda: nr.GRUCell(3, reset_after=True, dtype=F64),
    "basic_lstm": lambda: nr.BasicLSTMCell(3, forget_bias=0.5, dtype=F64),
    "lstm_peepholes_projection": lambda: nr.LSTMCell(3, use_peepholes=True, num_proj=2,
                                                     dtype=F64),
    "lstm_clipped": lambda: nr.LSTMCell(4, use_peepholes=True, cell_clip=0.4, num_proj=3,
                                        proj_clip=0.25, dtype=F64),
    "lstm_concatenated_state": lambda: nr.LSTMCell(3, state_is_tuple=False, dtype=F64),
    "multi": lambda: nr.MultiRNNCell([nr.LSTMCell(3, dtype=F64), nr.GRUCell(2, dtype=F64),
                                      nr.BasicRNNCell(2, dtype=F64)]),
}

LENGTH_CASES = {"full": None, "ragged": np.array([5, 0, 2, 4])}


def randomised(cell, depth, rng):
    """A built cell with all weights random (biases and peepholes too)."""
    cell.build(depth, F64)
    cell.set_weights([w + 0.5 * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


def leaves(structure):
    return [np.asarray(a) for a in nest.flatten(structure)]


def dot(a, b):
    return sum(float(np.sum(x * y)) for x, y in zip(leaves(a), leaves(b)))


class Problem:
    """A loss of one RNN call and the arguments it is differentiated with respect to."""

    def __init__(self, fn, cell_args, inputs, state_kwargs, **kwargs):
        self.fn, self.cell_args, self.kwargs = fn, cell_args, kwargs
        self.inputs, self.state_kwargs = inputs, state_kwargs
        rng = np.random.default_rng(1)
        result = fn(*cell_args, inputs, **state_kwargs, **kwargs)
        self.weights = nest.map_structure(lambda a: rng.standard_normal(np.shape(a)), result)

    def cells(self):
        return list(self.cell_args)

    def loss(self):
        return dot(self.fn(*self.cell_args, self.inputs, **self.state_kwargs, **self.kwargs),
                   self.weights)

    def gradients(self):
        result, backward = nr.vjp(self.fn, *self.cell_args, self.inputs, **self.state_kwargs,
                                  **self.kwargs)
        return backward(self.weights)

    def directional(self, arrays, directions):
        """Central difference of the loss along ``directions`` of ``arrays`` (in place)."""
        def shifted(sign):
            for a, v in zip(arrays, directions):
                a += sign * EPS * v
            value = self.loss()
            for a, v in zip(arrays, directions):
                a -= sign * EPS * v
            return value
        return (shifted(1) - shifted(-1)) / (2 * EPS)


def assert_directional(problem, arrays, grads, rng, what):
    directions = [rng.standard_normal(a.shape) for a in arrays]
    numeric = problem.directional(arrays, directions)
    analytic = dot(grads, directions)
    scale = 1.0 + sum(float(np.abs(g * v).sum()) for g, v in zip(grads, directions))
    assert abs(numeric - analytic) <= 1e-7 * scale, f"{what}: {numeric} vs {analytic}"


def check_all_gradients(problem, grads, cells, rng):
    assert_directional(problem, leaves(problem.inputs), leaves(grads.inputs), rng, "inputs")
    states = [s for s in problem.state_kwargs.values()]
    assert_directional(problem, leaves(states), leaves(grads.initial_state), rng,
                       "initial_state")
    # Weights: perturb the cell's own arrays through set_weights.
    weights = [w for cell in cells for w in cell.get_weights()]
    assert len(weights) == len(grads.weights)
    for i, (w, g) in enumerate(zip(weights, grads.weights)):
        assert g.shape == w.shape
        v = rng.standard_normal(w.shape)

        def loss_at(sign, i=i, v=v):
            shifted = [x.copy() for x in weights]
            shifted[i] = shifted[i] + sign * EPS * v
            offset = 0
            for cell in cells:
                n = len(cell.get_weights())
                cell.set_weights(shifted[offset:offset + n])
                offset += n
            return problem.loss()

        numeric = (loss_at(1) - loss_at(-1)) / (2 * EPS)
        loss_at(0)
        analytic = float(np.sum(g * v))
        assert abs(numeric - analytic) <= 1e-7 * (1 + np.abs(g * v).sum()), \
            f"weight {i}: {numeric} vs {analytic}"


@pytest.mark.parametrize("lengths", LENGTH_CASES.values(), ids=LENGTH_CASES.keys())
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("name", CELLS)
def test_dynamic_rnn_gradients(name, time_major, lengths):
    rng = np.random.default_rng(0)
    cell = randomised(CELLS[name](), 3, rng)
    x = rng.standard_normal((5, 4, 3) if time_major else (4, 5, 3))
    state = nest.map_structure(lambda s: rng.standard_normal(s.shape), cell.zero_state(4, F64))
    problem = Problem(nr.dynamic_rnn, (cell,), x, {"initial_state": state},
                      sequence_length=lengths, time_major=time_major)
    check_all_gradients(problem, problem.gradients(), [cell], rng)


def test_clipping_is_exercised_and_blocks_the_gradient():
    rng = np.random.default_rng(0)
    cell = randomised(CELLS["lstm_clipped"](), 3, rng)
    x = 3 * rng.standard_normal((4, 5, 3))
    (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x)
    assert np.any(np.abs(outputs) == 0.25) and np.any(np.abs(outputs) < 0.25)
    assert np.any(np.abs(state.c) == 0.4)
    d_out = np.zeros_like(outputs)
    clipped = np.abs(outputs[:, -1]) == 0.25
    d_out[:, -1][clipped] = 1.0  # only clipped outputs of the last step carry a gradient
    grads = backward((d_out, None))
    assert np.all(grads.inputs[:, -1] == 0) and np.all(grads.weights[-1] == 0)


def test_bidirectional_gradients():
    rng = np.random.default_rng(2)
    cell_fw = randomised(nr.LSTMCell(3, use_peepholes=True, dtype=F64), 2, rng)
    cell_bw = randomised(nr.GRUCell(2, dtype=F64), 2, rng)
    x = rng.standard_normal((4, 5, 2))
    states = {"initial_state_fw": nest.map_structure(lambda s: rng.standard_normal(s.shape),
                                                     cell_fw.zero_state(4, F64)),
              "initial_state_bw": rng.standard_normal((4, 2))}
    problem = Problem(nr.bidirectional_dynamic_rnn, (cell_fw, cell_bw), x, states,
                      sequence_length=np.array([5, 1, 0, 3]))
    grads = problem.gradients()
    assert_directional(problem, [x], [grads.inputs], rng, "inputs")
    d_fw, d_bw = grads.initial_state
    assert_directional(problem, leaves(states["initial_state_fw"]), leaves(d_fw), rng, "fw")
    assert_directional(problem, [states["initial_state_bw"]], [d_bw], rng, "bw")
    check_all_gradients(problem, grads, [cell_fw, cell_bw], rng)


def test_static_rnn_gradients_match_dynamic_rnn():
    rng = np.random.default_rng(3)
    cell = randomised(nr.GRUCell(3, reset_after=True, dtype=F64), 2, rng)
    x = rng.standard_normal((5, 4, 2))
    lengths = np.array([5, 2, 0, 3])
    (outputs, _), backward = nr.vjp(nr.static_rnn, cell, list(x), sequence_length=lengths)
    d_outputs = [rng.standard_normal(o.shape) for o in outputs]
    grads = backward((d_outputs, None))
    _, backward_dynamic = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                                 time_major=True)
    expected = backward_dynamic((np.stack(d_outputs), None))
    np.testing.assert_array_equal(np.stack(grads.inputs), expected.inputs)
    for g, e in zip(grads.weights, expected.weights):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("name", ["basic_lstm", "gru", "multi", "lstm_clipped"])
def test_swap_memory_gives_the_same_gradients(name):
    rng = np.random.default_rng(4)
    cell = randomised(CELLS[name](), 3, rng)
    x = rng.standard_normal((3, 23, 3))
    lengths = np.array([23, 9, 0])
    results = []
    for swap in (False, True):
        (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                                            swap_memory=swap)
        d = nest.map_structure(np.cos, (outputs, state))
        results.append((outputs, backward(d)))
    (out_a, grads_a), (out_b, grads_b) = results
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_allclose(grads_a.inputs, grads_b.inputs, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_a.weights, grads_b.weights):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_gradients_are_bitwise_reproducible_and_backward_is_reusable():
    rng = np.random.default_rng(5)
    cell = nr.LSTMCell(16, use_peepholes=True, num_proj=8, seed=0)
    x = rng.standard_normal((9, 12, 5)).astype(np.float32)
    lengths = rng.integers(0, 13, size=9)
    runs = []
    for _ in range(2):
        (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths)
        d = (np.ones_like(outputs), None)
        runs.append(backward(d))
        runs.append(backward(d))  # a second call on the same tape
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0].inputs, other.inputs)
        for a, b in zip(runs[0].weights, other.weights):
            np.testing.assert_array_equal(a, b)
    assert runs[0].inputs.dtype == np.float32


def test_float32_gradients_agree_with_float64():
    rng = np.random.default_rng(6)
    cell64 = randomised(nr.LSTMCell(4, use_peepholes=True, dtype=F64), 3, rng)
    cell32 = nr.LSTMCell(4, use_peepholes=True, dtype=np.float32)
    cell32.set_weights([w.astype(np.float32) for w in cell64.get_weights()])
    x = rng.standard_normal((3, 6, 3))
    grads = []
    for cell, dtype in ((cell64, F64), (cell32, np.float32)):
        (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, x.astype(dtype),
                                        sequence_length=[6, 3, 0])
        grads.append(backward((np.ones_like(outputs), None)))
    np.testing.assert_allclose(grads[1].inputs, grads[0].inputs, atol=1e-5)
    for a, b in zip(grads[1].weights, grads[0].weights):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_zero_length_and_zero_size_batches():
    cell = nr.GRUCell(3, dtype=F64, seed=0)
    state = np.ones((2, 3))
    (outputs, final), backward = nr.vjp(nr.dynamic_rnn, cell, np.zeros((2, 4, 2)),
                                        sequence_length=[0, 0], initial_state=state)
    grads = backward((np.ones_like(outputs), np.full((2, 3), 7.0)))
    np.testing.assert_array_equal(grads.initial_state, np.full((2, 3), 7.0))
    assert not np.any(grads.inputs) and not any(np.any(g) for g in grads.weights)
    (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, np.zeros((0, 4, 2)))
    assert backward(None).inputs.shape == (0, 4, 2)
    (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, np.zeros((2, 0, 2)))
    assert backward((None, np.ones((2, 3)))).initial_state.shape == (2, 3)


def test_nan_cotangents_propagate():
    cell = nr.BasicLSTMCell(3, seed=0)
    (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, np.ones((2, 3, 2), np.float32))
    d = np.zeros_like(outputs)
    d[0, 2, 0] = np.nan
    grads = backward((d, None))
    assert np.isnan(grads.inputs[0]).any() and not np.isnan(grads.inputs[1]).any()


def test_bad_cotangents_and_functions():
    cell = nr.LSTMCell(3, seed=0)
    (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, np.ones((2, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"gradient of outputs must have shape \(2, 3, 3\), "
                                         r"got \(2, 3\)"):
        backward((np.ones((2, 3)), None))
    with pytest.raises(ValueError, match="gradient of state must be nested like state"):
        backward((None, np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"gradient of state leaf 1 must have shape \(2, 3\)"):
        backward((None, (np.ones((2, 3)), np.ones((2, 4)))))
    with pytest.raises(ValueError, match="a pair \\(outputs, state\\)"):
        backward(np.ones((2, 3, 3)))
    with pytest.raises(TypeError, match="vjp supports dynamic_rnn"):
        nr.vjp(nr.raw_rnn, cell, lambda *a: None)

    class Custom(nr.RNNCell):
        state_size = 2
        output_size = 2

        def __call__(self, inputs, state):
            return state, state

    with pytest.raises(NotImplementedError, match="gradients need built-in cells"):
        nr.vjp(nr.dynamic_rnn, Custom(), np.ones((2, 3, 2)))


def test_sgd_step_on_sum_of_squares_lowers_the_loss():
    rng = np.random.default_rng(7)
    cell = nr.LSTMCell(8, seed=0)
    x = rng.standard_normal((4, 10, 3)).astype(np.float32)
    losses = []
    for _ in range(2):
        (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, x)
        losses.append(0.5 * float(np.sum(outputs ** 2)))
        grads = backward((outputs, None))
        cell.set_weights([w - 0.05 * g for w, g in zip(cell.get_weights(), grads.weights)])
    assert losses[1] < losses[0]
