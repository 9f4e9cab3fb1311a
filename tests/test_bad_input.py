"""Bad arguments get a clear error naming the argument; nothing is written to the caller."""
import numpy as np
import pytest

import numba_rnn as nr


def lstm(units=4, **kwargs):
    return nr.LSTMCell(units, seed=0, **kwargs)


X = np.zeros((2, 3, 5), np.float32)


def test_cell_must_be_an_rnn_cell():
    with pytest.raises(TypeError, match="cell must be an instance of RNNCell, got function"):
        nr.dynamic_rnn(lambda x, s: (x, s), X)


@pytest.mark.parametrize("inputs, message", [
    (None, "inputs must be an array .* got None"),
    ((), "inputs must not be an empty list or tuple"),
    ([], "inputs must not be an empty list or tuple"),
])
def test_missing_inputs(inputs, message):
    with pytest.raises(ValueError, match=message):
        nr.dynamic_rnn(lstm(), inputs)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.complex64, np.bool_, np.float16])
def test_non_float_inputs(dtype):
    with pytest.raises(ValueError, match=f"inputs must hold float32 or float64 values, got dtype "
                                         f"{np.dtype(dtype)}"):
        nr.dynamic_rnn(lstm(), X.astype(dtype))


def test_inputs_of_wrong_rank():
    with pytest.raises(ValueError, match=r"must have shape \[batch_size, max_time, ...\], got "
                                         r"shape \(5,\)"):
        nr.dynamic_rnn(lstm(), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"must be 3-D .* got shape \(2, 3\)"):
        nr.dynamic_rnn(lstm(), np.zeros((2, 3), np.float32))


def test_zero_depth():
    with pytest.raises(ValueError, match="depth 0"):
        nr.dynamic_rnn(lstm(), np.zeros((2, 3, 0), np.float32))


def test_depth_does_not_match_a_built_cell():
    cell = lstm()
    nr.dynamic_rnn(cell, X)
    with pytest.raises(ValueError, match="built for inputs of depth 5, got inputs of depth 7"):
        nr.dynamic_rnn(cell, np.zeros((2, 3, 7), np.float32))


def test_dtype_argument_disagrees_with_inputs():
    with pytest.raises(ValueError, match="dtype is float64 but the inputs are float32"):
        nr.dynamic_rnn(lstm(), X, dtype=np.float64)
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int32"):
        nr.dynamic_rnn(lstm(), X, dtype=np.int32)


def test_cell_dtype_disagrees_with_inputs():
    cell = nr.GRUCell(3, dtype=np.float64)
    with pytest.raises(ValueError, match="holds float64 weights but the inputs are float32"):
        nr.dynamic_rnn(cell, X)


class PairCell(nr.RNNCell):
    """A custom cell with a tuple input: output = x0 + x1 summed into the state."""

    state_size = 2
    output_size = 2

    def __call__(self, inputs, state):
        x0, x1 = inputs
        new = state + x0 + x1
        return new, new


def test_nested_inputs_disagree_on_batch_or_time():
    a = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match="agree on max_time and batch_size: leaf 0 has max_time 3 "
                                         "and batch_size 2, leaf 1 has max_time 4"):
        nr.dynamic_rnn(PairCell(), (a, np.zeros((2, 4, 2))))
    with pytest.raises(ValueError, match="leaf 1 has max_time 3 and batch_size 5"):
        nr.dynamic_rnn(PairCell(), (a, np.zeros((5, 3, 2))))
    with pytest.raises(ValueError, match="one dtype"):
        nr.dynamic_rnn(PairCell(), (a, np.zeros((2, 3, 2), np.float32)))


def test_nested_inputs_to_a_built_in_cell():
    with pytest.raises(ValueError, match="takes a single input array, got a nested structure"):
        nr.dynamic_rnn(lstm(), (X, X))


@pytest.mark.parametrize("lengths, message", [
    ([3], r"shape \[batch_size\] = \(2,\), got shape \(1,\)"),
    ([[3, 3]], r"got shape \(1, 2\)"),
    (3, r"got shape \(\)"),
    ([3, -1], "must be >= 0, got -1"),
    ([3, 4], "must be <= max_time = 3, got 4"),
    ([3.0, np.nan], "whole numbers, got NaN"),
    ([3.0, 1.5], "whole numbers"),
    (["a", "b"], "integer vector"),
])
def test_bad_sequence_length(lengths, message):
    with pytest.raises(ValueError, match=f"sequence_length .*{message}"):
        nr.dynamic_rnn(lstm(), X, sequence_length=lengths)


def test_whole_float_lengths_are_accepted():
    outputs, _ = nr.dynamic_rnn(lstm(), X + 1, sequence_length=np.array([3.0, 1.0]))
    assert np.all(outputs[1, 1:] == 0) and np.any(outputs[1, 0] != 0)


def test_bad_initial_state():
    cell = lstm()
    zeros = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"initial_state must have the structure of "
                                         r"cell.state_size LSTMStateTuple\(c=4, h=4\), got "
                                         r"array\(2, 4\)"):
        nr.dynamic_rnn(cell, X, initial_state=zeros)
    with pytest.raises(ValueError, match=r"initial_state leaf 1 must have shape \(2, 4\) "
                                         r"\(batch_size, state size\), got \(3, 4\)"):
        nr.dynamic_rnn(cell, X, initial_state=(zeros, np.zeros((3, 4), np.float32)))
    with pytest.raises(ValueError, match="initial_state leaf 0 has dtype float64 but the inputs "
                                         "are float32"):
        nr.dynamic_rnn(cell, X, initial_state=(zeros.astype(np.float64), zeros))
    with pytest.raises(ValueError, match=r"initial_state must have shape \(2, 4\)"):
        nr.dynamic_rnn(nr.GRUCell(4), X, initial_state=np.zeros((2, 5), np.float32))


def test_bad_parallel_iterations_time_major_and_scope():
    with pytest.raises(ValueError, match="parallel_iterations must be a positive integer, got 0"):
        nr.dynamic_rnn(lstm(), X, parallel_iterations=0)
    with pytest.raises(ValueError, match="time_major must be True or False"):
        nr.dynamic_rnn(lstm(), X, time_major="yes")
    with pytest.raises(ValueError, match="scope must be a non-empty string"):
        nr.dynamic_rnn(lstm(), X, scope=3)


def test_bad_cell_arguments():
    with pytest.raises(ValueError, match="num_units must be a positive integer, got 0"):
        nr.LSTMCell(0)
    with pytest.raises(ValueError, match="num_units must be a positive integer, got 2.5"):
        nr.GRUCell(2.5)
    with pytest.raises(ValueError, match="cell_clip must be None or >= 0"):
        nr.LSTMCell(3, cell_clip=-1.0)
    with pytest.raises(ValueError, match="activation must be None or one of"):
        nr.BasicRNNCell(3, activation="softsign")
    with pytest.raises(ValueError, match="cells must be a non-empty list"):
        nr.MultiRNNCell([])
    with pytest.raises(TypeError, match=r"cells\[1\] must be an RNNCell"):
        nr.MultiRNNCell([lstm(), "lstm"])
    cell = lstm()
    with pytest.raises(ValueError, match="cells must be distinct objects"):
        nr.MultiRNNCell([cell, cell])


def test_bad_weights():
    cell = nr.GRUCell(3)
    cell.build(2)
    weights = cell.get_weights()
    with pytest.raises(ValueError, match="has 4 weights .* got 3 arrays"):
        cell.set_weights(weights[:3])
    weights[2] = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"'candidate/kernel' .* must have shape \(5, 3\), "
                                         r"got \(5, 4\)"):
        cell.set_weights(weights)
    with pytest.raises(ValueError, match="no weights yet"):
        nr.LSTMCell(3).get_weights()


def test_custom_cell_returning_the_wrong_shape():
    class Bad(nr.RNNCell):
        state_size = 2
        output_size = 2

        def __call__(self, inputs, state):
            return inputs, state

    with pytest.raises(ValueError, match=r"returned an output of shape \(2, 5\) at step 0; its "
                                         r"output_size 2 means \(2, 2\)"):
        nr.dynamic_rnn(Bad(), X)


def test_caller_arrays_are_not_written():
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    state = nr.LSTMStateTuple(np.ones((3, 4), np.float32), np.ones((3, 4), np.float32))
    lengths = np.array([4, 0, 2])
    copies = [x.copy(), state.c.copy(), state.h.copy(), lengths.copy()]
    for a in (x, state.c, state.h, lengths):
        a.flags.writeable = False  # any write raises
    nr.dynamic_rnn(lstm(), x, sequence_length=lengths, initial_state=state)
    nr.dynamic_rnn(lstm(), np.swapaxes(x, 0, 1), initial_state=state, time_major=True)
    for before, after in zip(copies, (x, state.c, state.h, lengths)):
        np.testing.assert_array_equal(before, after)
