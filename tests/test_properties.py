"""Property tests of dynamic_rnn over random shapes, cells, layouts, dtypes and lengths."""
import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import reference_dynamic_rnn

import numba_rnn as nr
from numba_rnn import nest

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}
MANY = int(os.environ.get("NUMBA_RNN_EXAMPLES", 300))  # examples of the main property
ACTIVATIONS = [None, "tanh", "relu", "sigmoid", "linear"]

units = st.integers(1, 5)
clip = st.none() | st.floats(0.05, 2.0)
CELL_SPECS = st.one_of(
    st.tuples(st.just("BasicRNNCell"),
              st.fixed_dictionaries({"num_units": units,
                                     "activation": st.sampled_from(ACTIVATIONS)})),
    st.tuples(st.just("GRUCell"),
              st.fixed_dictionaries({"num_units": units, "reset_after": st.booleans(),
                                     "activation": st.sampled_from(ACTIVATIONS)})),
    st.tuples(st.just("BasicLSTMCell"),
              st.fixed_dictionaries({"num_units": units, "forget_bias": st.floats(-1, 1),
                                     "state_is_tuple": st.booleans(),
                                     "activation": st.sampled_from(ACTIVATIONS)})),
    st.tuples(st.just("LSTMCell"),
              st.fixed_dictionaries({"num_units": units, "use_peepholes": st.booleans(),
                                     "cell_clip": clip, "num_proj": st.none() | units,
                                     "proj_clip": clip, "forget_bias": st.floats(-1, 1),
                                     "state_is_tuple": st.booleans(),
                                     "activation": st.sampled_from(ACTIVATIONS)})),
)


@st.composite
def cases(draw, max_layers=3):
    """A random network and data: returned as plain values so failures print readably."""
    batch = draw(st.integers(0, 9))
    steps = draw(st.integers(0, 12))
    lengths = draw(st.none() | st.lists(st.integers(0, steps), min_size=batch,
                                        max_size=batch).map(np.array))
    return {
        "batch": batch, "steps": steps, "depth": draw(st.integers(1, 4)),
        "dtype": draw(st.sampled_from([F32, F64])), "time_major": draw(st.booleans()),
        "layers": draw(st.lists(CELL_SPECS, min_size=1, max_size=max_layers)),
        "stack": draw(st.booleans()),  # a MultiRNNCell even for one layer
        "stack_state_is_tuple": draw(st.booleans()),
        "lengths": lengths, "initial_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def build(case):
    """(cell, inputs, initial state or None) for a case, with random weights and data."""
    dtype, rng = case["dtype"], np.random.default_rng(case["seed"])
    layers = [getattr(nr, kind)(dtype=dtype, **kwargs) for kind, kwargs in case["layers"]]
    if len(layers) == 1 and not case["stack"]:
        cell = layers[0]
    else:
        single_array = not any(nest.is_sequence(layer.state_size) for layer in layers)
        cell = nr.MultiRNNCell(layers, state_is_tuple=case["stack_state_is_tuple"]
                               or not single_array)
    cell.build(case["depth"], dtype=dtype)
    for layer in layers:
        layer.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in layer.get_weights()])
    batch, steps = case["batch"], case["steps"]
    shape = (steps, batch) if case["time_major"] else (batch, steps)
    inputs = rng.normal(size=shape + (case["depth"],)).astype(dtype)
    state = None
    if case["initial_state"]:
        state = nest.map_structure(lambda z: rng.uniform(-1, 1, z.shape).astype(dtype),
                                   cell.zero_state(batch, dtype))
    return cell, inputs, state


def batch_major(outputs, case):
    return np.swapaxes(outputs, 0, 1) if case["time_major"] else outputs


def lengths_of(case):
    return np.full(case["batch"], case["steps"]) if case["lengths"] is None else case["lengths"]


def as64(structure):
    return None if structure is None else nest.map_structure(lambda a: a.astype(F64), structure)


def assert_close(actual, wanted, dtype):
    assert nest.same_structure(actual, wanted)
    for a, w in zip(nest.flatten(actual), nest.flatten(wanted)):
        assert a.dtype == dtype and a.shape == w.shape
        np.testing.assert_allclose(a, w, rtol=ATOL[dtype], atol=ATOL[dtype])


def last_output_in_state(cell, state):
    """The part of a final state that is the last output: h of the (last) layer."""
    if isinstance(cell, nr.MultiRNNCell):
        last = cell.cells[-1]
        last_state = state[-1] if cell.state_is_tuple else state[:, -last.state_size:]
        return last_output_in_state(last, last_state)
    if isinstance(cell, nr.LSTMCell):
        return state.h if cell.state_is_tuple else state[:, cell.num_units:]
    return state


# ------------------------------------------------------------------------------ properties
@settings(max_examples=MANY, deadline=None)
@given(cases())
def test_agrees_with_reference(case):
    cell, inputs, state = build(case)
    dtype = case["dtype"]
    outputs, final = nr.dynamic_rnn(cell, inputs, sequence_length=case["lengths"],
                                    initial_state=state, time_major=case["time_major"])
    want_outputs, want_final = reference_dynamic_rnn(
        cell, inputs.astype(F64), case["lengths"], as64(state), case["time_major"])
    assert_close(outputs, want_outputs, dtype)
    assert_close(final, want_final, dtype)


@settings(max_examples=MANY // 2, deadline=None)
@given(cases())
def test_outputs_past_each_length_are_zero_and_final_state_is_last_output(case):
    cell, inputs, state = build(case)
    outputs, final = nr.dynamic_rnn(cell, inputs, sequence_length=case["lengths"],
                                    initial_state=state, time_major=case["time_major"])
    outputs = batch_major(outputs, case)
    lengths = lengths_of(case)
    if state is None:
        state = cell.zero_state(case["batch"], case["dtype"])
    last = last_output_in_state(cell, final)
    for b, length in enumerate(lengths):
        assert not outputs[b, length:].any()
        if length > 0:
            np.testing.assert_array_equal(last[b], outputs[b, length - 1])
        else:  # nothing ran: the initial state comes back unchanged
            for got, initial in zip(nest.flatten(final), nest.flatten(state)):
                np.testing.assert_array_equal(got[b], initial[b])


@settings(max_examples=MANY // 2, deadline=None)
@given(cases(), st.floats(0, 1))
def test_two_segments_equal_one_run(case, split_fraction):
    """Running [0, k) then [k, T) with the first final state as the second initial state."""
    cell, inputs, state = build(case)
    dtype, time_major = case["dtype"], case["time_major"]
    steps, lengths = case["steps"], lengths_of(case)
    k = int(round(split_fraction * steps))
    x = batch_major(inputs, case)
    first, second = x[:, :k], x[:, k:]
    if time_major:
        first, second = np.swapaxes(first, 0, 1), np.swapaxes(second, 0, 1)

    outputs, final = nr.dynamic_rnn(cell, inputs, sequence_length=lengths,
                                    initial_state=state, time_major=time_major)
    out1, mid = nr.dynamic_rnn(cell, first, sequence_length=np.minimum(lengths, k),
                               initial_state=state, time_major=time_major)
    out2, end = nr.dynamic_rnn(cell, second, sequence_length=np.maximum(lengths - k, 0),
                               initial_state=mid, time_major=time_major)
    joined = np.concatenate([batch_major(out1, case), batch_major(out2, case)], axis=1)
    assert_close(joined, batch_major(outputs, case), dtype)
    assert_close(end, final, dtype)
