"""numba_rnn against the real TensorFlow: ``tf.compat.v1.nn.dynamic_rnn`` and its cells.

Each test builds the same network twice. TensorFlow runs in graph mode (a fresh
``tf.Graph`` and ``Session`` per test); its variables are initialised, overwritten with
random values (biases included, so no weight is left at a trivial value) and read back
by name. numba_rnn must name its weights exactly as TensorFlow names its variables, in
the same order, and then gives the same outputs and final states from those values.

Optional: the whole module is skipped when TensorFlow is not installed
(``tox -e oracle`` installs tensorflow-cpu and tf-keras). TensorFlow 2.16+ needs
tf-keras and ``TF_USE_LEGACY_KERAS=1`` for ``tf.compat.v1.nn.rnn_cell``.
"""
import numpy as np
import pytest

import numba_rnn as nr

from .tf_helpers import (  # importing tf_helpers skips this module without TensorFlow
    CASES,
    DTYPES,
    F32,
    F64,
    FILTERWARNINGS,
    LENGTHS_WITH_ZEROS,
    SCALE,
    B,
    D,
    T,
    assert_matches,
    load_weights,
    random_inputs,
    random_state,
    randomise_variables,
    tf,
    v1,
)

pytestmark = FILTERWARNINGS

# A smaller set for the options of dynamic_rnn: one of each cell kind and state layout.
OPTION_CASES = ["basic_rnn", "gru", "basic_lstm", "lstm_all", "lstm_all_concat",
                "multi_mixed", "multi_concat"]


# ----------------------------------------------------------------------------- helpers
def run_tensorflow(case, x, dtype, sequence_length=None, initial_state=None, time_major=False,
                   scope=None, seed=0):
    """tf.compat.v1.nn.dynamic_rnn with random weights.

    Returns ({variable name: value} in TensorFlow's variable order, outputs, state).
    """
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        cell = case.tf_cell()
        x_t = v1.placeholder(dtype, x.shape, name="inputs")
        state_t = None
        if initial_state is not None:
            state_t = tf.nest.pack_sequence_as(cell.state_size,
                                               [tf.constant(s) for s in initial_state])
        lengths_t = None if sequence_length is None else tf.constant(sequence_length, tf.int32)
        outputs_t, final_t = v1.nn.dynamic_rnn(cell, x_t, sequence_length=lengths_t,
                                               initial_state=state_t, dtype=dtype,
                                               time_major=time_major, scope=scope)
        variables = v1.global_variables()
        assert [v.name for v in variables] == [v.name for v in v1.trainable_variables()]
        sess.run(v1.global_variables_initializer())
        weights = randomise_variables(sess, variables, dtype, seed)
        outputs, final = sess.run([outputs_t, final_t], {x_t: x})
    return weights, outputs, final


def run_numba(case, x, dtype, tf_weights, sequence_length=None, initial_state=None,
              time_major=False, scope=None):
    """numba_rnn.dynamic_rnn with TensorFlow's weights, loaded after checking their names."""
    cell = case.nr_cell()
    cell.build(x.shape[-1], dtype=dtype)
    state = (None if initial_state is None
             else nr.nest.pack_sequence_as(cell.state_size, initial_state))
    kwargs = dict(sequence_length=sequence_length, initial_state=state, time_major=time_major,
                  scope=scope)
    nr.dynamic_rnn(cell, x, **kwargs)  # the first run fixes the scope in named_weights()

    load_weights(cell, tf_weights, dtype)
    return nr.dynamic_rnn(cell, x, **kwargs)


def check_against_tensorflow(name, dtype, sequence_length=None, initial_state=False,
                             time_major=False, scope=None):
    case = CASES[name]
    x = random_inputs(dtype, time_major)
    state = random_state(case, dtype) if initial_state else None
    kwargs = dict(sequence_length=sequence_length, initial_state=state, time_major=time_major,
                  scope=scope)
    weights, tf_outputs, tf_final = run_tensorflow(case, x, dtype, **kwargs)
    outputs, final = run_numba(case, x, dtype, weights, **kwargs)
    assert_matches(tf_outputs, outputs, dtype, "outputs")
    assert_matches(tf_final, final, dtype, "state")
    return weights, tf_outputs, tf_final


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_cell(name, dtype):
    check_against_tensorflow(name, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPTION_CASES)
def test_sequence_length_with_zero_lengths(name, dtype):
    _, tf_outputs, _ = check_against_tensorflow(name, dtype, sequence_length=LENGTHS_WITH_ZEROS)
    for b, length in enumerate(LENGTHS_WITH_ZEROS):  # the oracle itself: zeros past the end
        assert not np.any(tf.nest.flatten(tf_outputs)[0][b, length:])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPTION_CASES)
def test_time_major(name, dtype):
    check_against_tensorflow(name, dtype, time_major=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPTION_CASES)
def test_initial_state(name, dtype):
    check_against_tensorflow(name, dtype, initial_state=True)


@pytest.mark.parametrize("name", OPTION_CASES)
def test_initial_state_with_zero_lengths(name):
    """A zero-length sequence's final state is its (non-zero) initial state."""
    check_against_tensorflow(name, F64, sequence_length=LENGTHS_WITH_ZEROS, initial_state=True)


@pytest.mark.parametrize("scope", ["encoder", "model/encoder_1"])
@pytest.mark.parametrize("name", ["basic_rnn", "gru", "lstm_all", "multi_mixed"])
def test_custom_scope(name, scope):
    weights, _, _ = check_against_tensorflow(name, F32, scope=scope)
    assert all(key.startswith(f"{scope}/") for key in weights)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", OPTION_CASES)
def test_all_options_together(name, dtype):
    check_against_tensorflow(name, dtype, sequence_length=np.array([2, 0, T, 5, 1]),
                             initial_state=True, time_major=True, scope="decoder")


def test_clips_are_exercised():
    """The clip cases above mean something only if the clips are hit."""
    _, outputs, final = check_against_tensorflow("lstm_all", F64)
    assert np.max(np.abs(final.c)) == pytest.approx(0.4)  # cell_clip
    assert np.max(np.abs(outputs)) == pytest.approx(0.2)  # proj_clip
    assert np.min(np.abs(final.c)) < 0.4 and np.min(np.abs(outputs)) < 0.2


def test_weight_names_of_a_stack():
    """TensorFlow's names for a stack under a custom scope, spelled out once."""
    weights, _, _ = check_against_tensorflow("multi_mixed", F32, scope="stack")
    assert list(weights) == [
        "stack/multi_rnn_cell/cell_0/lstm_cell/kernel",
        "stack/multi_rnn_cell/cell_0/lstm_cell/bias",
        "stack/multi_rnn_cell/cell_0/lstm_cell/w_f_diag",
        "stack/multi_rnn_cell/cell_0/lstm_cell/w_i_diag",
        "stack/multi_rnn_cell/cell_0/lstm_cell/w_o_diag",
        "stack/multi_rnn_cell/cell_0/lstm_cell/projection/kernel",
        "stack/multi_rnn_cell/cell_1/gru_cell/gates/kernel",
        "stack/multi_rnn_cell/cell_1/gru_cell/gates/bias",
        "stack/multi_rnn_cell/cell_1/gru_cell/candidate/kernel",
        "stack/multi_rnn_cell/cell_1/gru_cell/candidate/bias",
    ]


# ------------------------------------------------- GRUCell(reset_after=True) against Keras
def keras_gru_to_numba(kernel, recurrent_kernel, bias):
    """Keras GRU(reset_after=True) weights -> numba_rnn GRUCell(reset_after=True) weights.

    Keras: kernel [D, 3H] and recurrent_kernel [H, 3H] with columns (z, r, h), bias
    [2, 3H] (row 0 for the inputs, row 1 inside the recurrent product). numba_rnn:
    gates/kernel [D + H, 2H] with columns (r, u) where u is Keras's z, gates/bias [2H],
    candidate/kernel [D + H, H], candidate/bias [H] (input side), and
    candidate/recurrent_bias [H] (the bias multiplied by r).
    """
    w_z, w_r, w_h = np.split(kernel, 3, axis=1)
    u_z, u_r, u_h = np.split(recurrent_kernel, 3, axis=1)
    (bi_z, bi_r, bi_h), (br_z, br_r, br_h) = np.split(bias[0], 3), np.split(bias[1], 3)
    return [
        np.concatenate([np.concatenate([w_r, w_z], axis=1),
                        np.concatenate([u_r, u_z], axis=1)]),
        np.concatenate([bi_r.astype(F64) + br_r, bi_z.astype(F64) + br_z]),
        np.concatenate([w_h, u_h]),
        bi_h,
        br_h,
    ]


@pytest.mark.parametrize("initial_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_gru_reset_after_against_keras(dtype, initial_state):
    tf_keras = pytest.importorskip("tf_keras")
    units = 4
    x = random_inputs(dtype)
    rng = np.random.default_rng(3)
    h0 = rng.uniform(-1.0, 1.0, (B, units)).astype(dtype) if initial_state else None

    layer = tf_keras.layers.GRU(units, reset_after=True, return_sequences=True,
                                return_state=True, dtype=tf.as_dtype(dtype).name)
    layer.build((None, T, D))
    layer.set_weights([rng.uniform(-SCALE, SCALE, w.shape).astype(dtype)
                       for w in layer.get_weights()])
    kernel, recurrent_kernel, bias = layer.get_weights()
    assert bias.shape == (2, 3 * units)
    keras_outputs, keras_state = layer(tf.constant(x),
                                       initial_state=None if h0 is None else [tf.constant(h0)])

    cell = nr.GRUCell(units, reset_after=True)
    cell.set_weights(keras_gru_to_numba(kernel, recurrent_kernel, bias))
    outputs, state = nr.dynamic_rnn(cell, x, initial_state=h0)
    assert list(cell.named_weights()) == [
        "rnn/gru_cell/gates/kernel", "rnn/gru_cell/gates/bias", "rnn/gru_cell/candidate/kernel",
        "rnn/gru_cell/candidate/bias", "rnn/gru_cell/candidate/recurrent_bias"]
    assert_matches(np.asarray(keras_outputs), outputs, dtype, "outputs")
    assert_matches(np.asarray(keras_state), state, dtype, "state")
