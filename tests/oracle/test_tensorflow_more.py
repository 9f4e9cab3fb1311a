"""numba_rnn against the real TensorFlow, beyond ``dynamic_rnn``'s forward pass.

- Gradients: ``numba_rnn.vjp`` of ``dynamic_rnn``, ``bidirectional_dynamic_rnn`` and
  ``static_rnn`` against ``tf.gradients`` of the same loss through the ``tf.compat.v1.nn``
  function, with respect to the inputs, every initial-state leaf and every variable. The
  loss is ``sum(outputs * W_o) + sum(state * W_s)`` over every output and final-state
  leaf, with fixed random ``W``, so numba_rnn's cotangents are exactly those ``W``.
- Forward passes of ``bidirectional_dynamic_rnn``, ``static_rnn``, ``raw_rnn`` (the
  TensorArray ``loop_fn`` of TensorFlow's docs, written once for each library) and
  ``state_saving_rnn`` (``tf.compat.v1.nn.static_state_saving_rnn`` with a state saver
  that keeps the states in TensorFlow variables between ``Session.run`` calls).

As in ``test_tensorflow.py``, TensorFlow runs in graph mode with its variables set to
random values and read back by name; numba_rnn must name its weights the same way and
then agree to ``ATOL`` (forward) and, for gradients, ``GRAD_RTOL`` times the size of the
gradient (``max(1, max |TensorFlow's gradient|)``, per compared array).

The whole module is skipped without TensorFlow and tf-keras (see ``tf_helpers``).
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

GRAD_RTOL = {F32: 1e-4, F64: 1e-9}
DTYPE_IDS = ["float32", "float64"]
# One of each cell kind, the LSTM with every option (peepholes, cell_clip, num_proj,
# proj_clip: SCALE makes both clips bite, see test_clips_bite_in_the_gradient_case).
GRAD_CASES = ["basic_rnn", "gru", "basic_lstm", "lstm_all", "multi_mixed"]
# (sequence_length, time_major)
LAYOUTS = {
    "full": (None, False),
    "lengths": (LENGTHS_WITH_ZEROS, False),
    "lengths_time_major": (LENGTHS_WITH_ZEROS, True),
}
# Different cell types (and state structures) in the two directions.
BIDIRECTIONAL_PAIRS = {
    "lstm_all+gru": ("lstm_all", "gru"),
    "basic_rnn+multi_mixed": ("basic_rnn", "multi_mixed"),
    "basic_lstm+lstm_all_concat": ("basic_lstm", "lstm_all_concat"),
}


# ----------------------------------------------------------------------------- helpers
def weighted_sum(tensors, seed=7):
    """``sum_i sum(tensors[i] * W_i)`` with fixed random ``W_i``; returns (loss, [W_i])."""
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=t.shape.as_list()).astype(t.dtype.as_numpy_dtype) for t in tensors]
    return tf.add_n([tf.reduce_sum(t * w) for t, w in zip(tensors, ws)]), ws


def run_graph(build, dtype, gradients):
    """Build a TensorFlow graph, give its variables random values and run it.

    ``build()`` returns (placeholders, feed values, result tensors). With ``gradients``,
    also ``tf.gradients`` of ``weighted_sum(flatten(result))`` with respect to the
    placeholders, then every variable. Returns ({variable name: value}, result,
    [gradients] or None, [W] or None).
    """
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        placeholders, values, result_t = build()
        variables = v1.trainable_variables()
        fetches = {"result": result_t}
        ws = None
        if gradients:
            loss_t, ws = weighted_sum(tf.nest.flatten(result_t))
            fetches["grads"] = tf.gradients(loss_t, placeholders + variables,
                                            unconnected_gradients="zero")
        sess.run(v1.global_variables_initializer())
        weights = randomise_variables(sess, variables, dtype)
        out = sess.run(fetches, dict(zip(placeholders, values)))
    return weights, out["result"], out.get("grads"), ws


def state_placeholders(structure, state, dtype, name):
    """Placeholders for the flat list of state leaves ``state``, nested like ``structure``."""
    leaves = [v1.placeholder(dtype, s.shape, name=f"{name}_{i}") for i, s in enumerate(state)]
    return leaves, tf.nest.pack_sequence_as(structure, leaves)


def split_weights(weights, *prefixes):
    """TensorFlow's {name: value} split by scope prefix, each part in TensorFlow's order;
    every variable falls under exactly one prefix, the parts in ``prefixes`` order."""
    parts = [{k: v for k, v in weights.items() if k.startswith(p + "/")} for p in prefixes]
    assert [k for part in parts for k in part] == list(weights), list(weights)
    return parts


def as_tuples(value):
    """Lists (static_rnn's per-step outputs) as tuples, for ``assert_matches``."""
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return tuple(as_tuples(v) for v in value)
    if isinstance(value, tuple):  # namedtuple: keep the type
        return type(value)(*(as_tuples(v) for v in value))
    return value


def grad_atol(dtype, *tf_values):
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in tf.nest.flatten(tf_values)
                         if np.size(v)])
    return GRAD_RTOL[dtype] * scale


def assert_gradients(tf_grads, grads, tf_state, dtype, weight_names):
    """numba_rnn's ``Gradients`` against tf.gradients' flat [inputs..., state leaves...,
    variables...]; ``tf_state`` (TensorFlow's final state) gives the state's nesting."""
    assert isinstance(grads, nr.Gradients)
    n_x = len(nr.nest.flatten(grads.inputs))
    n_s = len(tf.nest.flatten(tf_state))
    assert len(tf_grads) == n_x + n_s + len(weight_names)

    tf_dx = tf_grads[:n_x]
    tf_dx = tf_dx[0] if n_x == 1 and not isinstance(grads.inputs, list) else tuple(tf_dx)
    assert_matches(tf_dx, as_tuples(grads.inputs), dtype, "d_inputs",
                   grad_atol(dtype, tf_dx))

    tf_ds = tf.nest.pack_sequence_as(tf_state, tf_grads[n_x:n_x + n_s])
    assert_matches(tf_ds, grads.initial_state, dtype, "d_initial_state",
                   grad_atol(dtype, tf_ds))

    assert isinstance(grads.weights, list) and len(grads.weights) == len(weight_names)
    for name, tf_dw, dw in zip(weight_names, tf_grads[n_x + n_s:], grads.weights):
        assert_matches(tf_dw, dw, dtype, f"d {name}", grad_atol(dtype, tf_dw))


def nr_cell(name, dtype):
    cell = CASES[name].nr_cell()
    cell.build(D, dtype=dtype)
    return cell


# ------------------------------------------------------------- dynamic_rnn: gradients
def check_dynamic_rnn_gradients(name, dtype, sequence_length, time_major, initial_state=True,
                                swap_memory=False):
    case = CASES[name]
    x = random_inputs(dtype, time_major)
    state = random_state(case, dtype) if initial_state else \
        [np.zeros_like(s) for s in random_state(case, dtype)]

    def build():
        cell = case.tf_cell()
        x_t = v1.placeholder(dtype, x.shape, name="inputs")
        leaves_t, state_t = state_placeholders(cell.state_size, state, dtype, "state")
        lengths = None if sequence_length is None else tf.constant(sequence_length, tf.int32)
        result = v1.nn.dynamic_rnn(cell, x_t, sequence_length=lengths, initial_state=state_t,
                                   dtype=dtype, time_major=time_major)
        return [x_t] + leaves_t, [x] + state, result

    weights, tf_result, tf_grads, ws = run_graph(build, dtype, gradients=True)

    cell = nr_cell(name, dtype)
    nr_state = nr.nest.pack_sequence_as(cell.state_size, state) if initial_state else None
    kwargs = dict(sequence_length=sequence_length, initial_state=nr_state,
                  time_major=time_major)
    nr.dynamic_rnn(cell, x, **kwargs)  # fixes the scope of named_weights()
    load_weights(cell, weights, dtype)
    result, backward = nr.vjp(nr.dynamic_rnn, cell, x, swap_memory=swap_memory, **kwargs)
    assert_matches(tf_result, result, dtype, "result")
    grads = backward(nr.nest.pack_sequence_as(result, ws))
    assert_gradients(tf_grads, grads, tf_result[1], dtype, list(weights))
    return tf_result, tf_grads


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", GRAD_CASES)
def test_dynamic_rnn_gradients(name, dtype, layout):
    sequence_length, time_major = LAYOUTS[layout]
    check_dynamic_rnn_gradients(name, dtype, sequence_length, time_major)


@pytest.mark.parametrize("swap_memory", [False, True], ids=["", "swap_memory"])
@pytest.mark.parametrize("name", ["gru", "lstm_all", "multi_mixed"])
def test_dynamic_rnn_gradients_default_initial_state(name, swap_memory):
    """No initial_state: numba_rnn's gradient for its zero state equals TensorFlow's for an
    explicit zero state (which is what TensorFlow's default is)."""
    check_dynamic_rnn_gradients(name, F64, np.array([2, 0, T, 5, 1]), True,
                                initial_state=False, swap_memory=swap_memory)


def test_clips_bite_in_the_gradient_case():
    """lstm_all's clips are hit in the gradient problem, so their gradients are tested."""
    (outputs, final), tf_grads = check_dynamic_rnn_gradients("lstm_all", F64, None, False)
    assert np.max(np.abs(final.c)) == pytest.approx(0.4)  # cell_clip
    assert np.max(np.abs(outputs)) == pytest.approx(0.2)  # proj_clip
    clipped = np.isclose(np.abs(outputs), 0.2, rtol=0, atol=1e-12)
    assert 0.05 < np.mean(clipped) < 0.95  # clipped and unclipped outputs both occur


# ------------------------------------------------------------- bidirectional_dynamic_rnn
def check_bidirectional(pair, dtype, sequence_length, time_major, initial_state=True,
                        scope=None, gradients=False):
    case_fw, case_bw = (CASES[n] for n in BIDIRECTIONAL_PAIRS[pair])
    x = random_inputs(dtype, time_major)
    state_fw = random_state(case_fw, dtype, seed=2) if initial_state else None
    state_bw = random_state(case_bw, dtype, seed=3) if initial_state else None

    def build():
        cell_fw, cell_bw = case_fw.tf_cell(), case_bw.tf_cell()
        x_t = v1.placeholder(dtype, x.shape, name="inputs")
        placeholders, values = [x_t], [x]
        states_t = [None, None]
        if initial_state:
            for i, (cell, state) in enumerate([(cell_fw, state_fw), (cell_bw, state_bw)]):
                leaves_t, states_t[i] = state_placeholders(cell.state_size, state, dtype,
                                                           f"state{i}")
                placeholders += leaves_t
                values += state
        lengths = None if sequence_length is None else tf.constant(sequence_length, tf.int32)
        result = v1.nn.bidirectional_dynamic_rnn(
            cell_fw, cell_bw, x_t, sequence_length=lengths, initial_state_fw=states_t[0],
            initial_state_bw=states_t[1], dtype=dtype, time_major=time_major, scope=scope)
        return placeholders, values, result

    weights, tf_result, tf_grads, ws = run_graph(build, dtype, gradients)
    prefix = scope or "bidirectional_rnn"
    weights_fw, weights_bw = split_weights(weights, f"{prefix}/fw", f"{prefix}/bw")
    assert weights_fw and weights_bw

    cell_fw, cell_bw = (nr_cell(n, dtype) for n in BIDIRECTIONAL_PAIRS[pair])
    kwargs = dict(sequence_length=sequence_length, time_major=time_major, scope=scope)
    if initial_state:
        kwargs.update(initial_state_fw=nr.nest.pack_sequence_as(cell_fw.state_size, state_fw),
                      initial_state_bw=nr.nest.pack_sequence_as(cell_bw.state_size, state_bw))
    nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, x, **kwargs)  # fixes the scopes
    load_weights(cell_fw, weights_fw, dtype)
    load_weights(cell_bw, weights_bw, dtype)
    if not gradients:
        result = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, x, **kwargs)
        assert_matches(tf_result, result, dtype, "result")
        return weights, tf_result
    result, backward = nr.vjp(nr.bidirectional_dynamic_rnn, cell_fw, cell_bw, x, **kwargs)
    assert_matches(tf_result, result, dtype, "result")
    grads = backward(nr.nest.pack_sequence_as(result, ws))
    assert_gradients(tf_grads, grads, tf_result[1], dtype, list(weights))
    return weights, tf_result


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pair", list(BIDIRECTIONAL_PAIRS))
def test_bidirectional_dynamic_rnn(pair, dtype, time_major):
    _, ((output_fw, output_bw), _) = check_bidirectional(pair, dtype, LENGTHS_WITH_ZEROS,
                                                         time_major)
    if time_major:
        output_fw, output_bw = output_fw.swapaxes(0, 1), output_bw.swapaxes(0, 1)
    for b, length in enumerate(LENGTHS_WITH_ZEROS):  # the oracle itself: zeros past the end
        assert not np.any(output_fw[b, length:]) and not np.any(output_bw[b, length:])
        assert np.all(np.any(output_bw[b, :length], axis=-1))


@pytest.mark.parametrize("pair", ["lstm_all+gru", "basic_rnn+multi_mixed"])
def test_bidirectional_dynamic_rnn_no_lengths_zero_state(pair):
    check_bidirectional(pair, F64, None, False, initial_state=False)


@pytest.mark.parametrize("scope", [None, "encoder/birnn"])
def test_bidirectional_weight_names(scope):
    weights, _ = check_bidirectional("basic_rnn+multi_mixed", F32, LENGTHS_WITH_ZEROS, False,
                                     scope=scope)
    prefix = scope or "bidirectional_rnn"
    assert list(weights) == [
        f"{prefix}/fw/basic_rnn_cell/kernel",
        f"{prefix}/fw/basic_rnn_cell/bias",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/kernel",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/bias",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/w_f_diag",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/w_i_diag",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/w_o_diag",
        f"{prefix}/bw/multi_rnn_cell/cell_0/lstm_cell/projection/kernel",
        f"{prefix}/bw/multi_rnn_cell/cell_1/gru_cell/gates/kernel",
        f"{prefix}/bw/multi_rnn_cell/cell_1/gru_cell/gates/bias",
        f"{prefix}/bw/multi_rnn_cell/cell_1/gru_cell/candidate/kernel",
        f"{prefix}/bw/multi_rnn_cell/cell_1/gru_cell/candidate/bias",
    ]


@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pair", ["lstm_all+gru", "basic_rnn+multi_mixed"])
def test_bidirectional_dynamic_rnn_gradients(pair, dtype, time_major):
    check_bidirectional(pair, dtype, LENGTHS_WITH_ZEROS, time_major, gradients=True)


# ------------------------------------------------------------------------- static_rnn
def check_static_rnn(name, dtype, sequence_length, initial_state, gradients=False):
    assert initial_state or not gradients, "gradients need the initial state's placeholders"
    case = CASES[name]
    steps = list(random_inputs(dtype, time_major=True))  # T arrays [B, D]
    state = random_state(case, dtype) if initial_state else None

    def build():
        cell = case.tf_cell()
        steps_t = [v1.placeholder(dtype, (B, D), name=f"input_{t}") for t in range(T)]
        placeholders, values = list(steps_t), list(steps)
        state_t = None
        if initial_state:
            leaves_t, state_t = state_placeholders(cell.state_size, state, dtype, "state")
            placeholders += leaves_t
            values += state
        lengths = None if sequence_length is None else tf.constant(sequence_length, tf.int32)
        result = v1.nn.static_rnn(cell, steps_t, initial_state=state_t, dtype=dtype,
                                  sequence_length=lengths)
        return placeholders, values, result

    weights, tf_result, tf_grads, ws = run_graph(build, dtype, gradients)

    cell = nr_cell(name, dtype)
    kwargs = dict(sequence_length=sequence_length, initial_state=None if state is None else
                  nr.nest.pack_sequence_as(cell.state_size, state))
    nr.static_rnn(cell, steps, **kwargs)  # fixes the scope of named_weights()
    load_weights(cell, weights, dtype)
    if gradients:
        result, backward = nr.vjp(nr.static_rnn, cell, steps, **kwargs)
    else:
        result = nr.static_rnn(cell, steps, **kwargs)
    outputs, final = result
    assert isinstance(outputs, list) and len(outputs) == T
    assert_matches(as_tuples(tf_result), as_tuples(result), dtype, "result")
    if gradients:
        grads = backward(nr.nest.pack_sequence_as(result, ws))
        assert_gradients(tf_grads, grads, tf_result[1], dtype, list(weights))
    return weights, tf_result


@pytest.mark.parametrize("initial_state", [False, True], ids=["zero_state", "initial_state"])
@pytest.mark.parametrize("lengths", [None, LENGTHS_WITH_ZEROS], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["gru", "lstm_all", "multi_mixed"])
def test_static_rnn(name, dtype, lengths, initial_state):
    weights, _ = check_static_rnn(name, dtype, lengths, initial_state)
    assert all(key.startswith("rnn/") for key in weights)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["basic_lstm", "lstm_all"])
def test_static_rnn_gradients(name, dtype):
    check_static_rnn(name, dtype, LENGTHS_WITH_ZEROS, initial_state=True, gradients=True)


# ---------------------------------------------------------------------------- raw_rnn
def numba_loop_fn(cell, inputs, sequence_length, initial_state):
    """The TensorArray example of TensorFlow's raw_rnn docs, in numba_rnn (NumPy)."""
    max_time, batch_size, input_depth = inputs.shape
    inputs_ta = nr.TensorArray(inputs.dtype, size=max_time).unstack(inputs)

    def loop_fn(time, cell_output, cell_state, loop_state):
        emit_output = cell_output  # == None for time == 0
        if cell_output is None:  # time == 0
            next_cell_state = (cell.zero_state(batch_size, inputs.dtype)
                               if initial_state is None else initial_state)
        else:
            next_cell_state = cell_state
        elements_finished = time >= sequence_length
        finished = np.all(elements_finished)
        next_input = (np.zeros([batch_size, input_depth], dtype=inputs.dtype) if finished
                      else inputs_ta.read(time))
        next_loop_state = None
        return (elements_finished, next_input, next_cell_state, emit_output, next_loop_state)

    return loop_fn


def tensorflow_loop_fn(cell, inputs, sequence_length, initial_state):
    """The same loop_fn in TensorFlow, as written in the raw_rnn docs."""
    max_time, batch_size, input_depth = inputs.shape.as_list()
    inputs_ta = tf.TensorArray(dtype=inputs.dtype, size=max_time)
    inputs_ta = inputs_ta.unstack(inputs)

    def loop_fn(time, cell_output, cell_state, loop_state):
        emit_output = cell_output  # == None for time == 0
        if cell_output is None:  # time == 0
            next_cell_state = (cell.zero_state(batch_size, inputs.dtype)
                               if initial_state is None else initial_state)
        else:
            next_cell_state = cell_state
        elements_finished = (time >= sequence_length)
        finished = tf.reduce_all(elements_finished)
        next_input = tf.cond(
            finished,
            lambda: tf.zeros([batch_size, input_depth], dtype=inputs.dtype),
            lambda: inputs_ta.read(time))
        next_loop_state = None
        return (elements_finished, next_input, next_cell_state,
                emit_output, next_loop_state)

    return loop_fn


RAW_RNN_VARIANTS = {
    # name: (sequence_length, random initial state, scope)
    "lengths": (LENGTHS_WITH_ZEROS, False, None),  # longest = T
    "stops_early_initial_state_scope": (np.array([0, 3, 5, 0, 1]), True, "decoder"),
    "all_zero_lengths": (np.zeros(B, np.int64), True, None),  # no step at all
}


@pytest.mark.parametrize("variant", list(RAW_RNN_VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["basic_rnn", "gru", "lstm_all", "multi_mixed"])
def test_raw_rnn(name, dtype, variant):
    sequence_length, initial_state, scope = RAW_RNN_VARIANTS[variant]
    case = CASES[name]
    x = random_inputs(dtype, time_major=True)
    state = random_state(case, dtype) if initial_state else None

    def build():
        cell = case.tf_cell()
        x_t = v1.placeholder(dtype, x.shape, name="inputs")
        placeholders, values, state_t = [x_t], [x], None
        if initial_state:
            leaves_t, state_t = state_placeholders(cell.state_size, state, dtype, "state")
            placeholders += leaves_t
            values += state
        loop_fn = tensorflow_loop_fn(cell, x_t, tf.constant(sequence_length, tf.int32),
                                     state_t)
        outputs_ta, final_state, final_loop_state = v1.nn.raw_rnn(cell, loop_fn, scope=scope)
        assert final_loop_state is None
        return placeholders, values, (outputs_ta.stack(), final_state)

    weights, (tf_outputs, tf_final), _, _ = run_graph(build, dtype, gradients=False)
    steps = int(np.max(sequence_length))
    assert tf_outputs.shape[:2] == (steps, B)

    cell = nr_cell(name, dtype)
    nr_state = None if state is None else nr.nest.pack_sequence_as(cell.state_size, state)
    # A first run fixes the scope of named_weights(), then TensorFlow's weights go in.
    nr.raw_rnn(cell, numba_loop_fn(cell, x, LENGTHS_WITH_ZEROS, None), scope=scope)
    load_weights(cell, weights, dtype)
    emit_ta, final, final_loop_state = nr.raw_rnn(
        cell, numba_loop_fn(cell, x, sequence_length, nr_state), scope=scope)
    assert isinstance(emit_ta, nr.TensorArray) and emit_ta.size() == steps
    assert final_loop_state is None
    assert_matches(tf_outputs, emit_ta.stack(), dtype, "outputs")
    assert_matches(tf_final, final, dtype, "state")
    if scope is not None:
        assert all(key.startswith(f"{scope}/") for key in weights)


# ------------------------------------------------------------------- state_saving_rnn
class VariableStateSaver:
    """The smallest state saver for ``static_state_saving_rnn`` in graph mode: one
    non-trainable variable per state name, read by ``state`` and assigned by
    ``save_state``, so the state carries over from one ``Session.run`` to the next."""

    def __init__(self, initial_states):
        self.variables = {
            name: tf.Variable(value, trainable=False, name=f"saved_{name.replace('/', '_')}")
            for name, value in initial_states.items()}

    def state(self, name):
        return self.variables[name].read_value()

    def save_state(self, name, value):
        return self.variables[name].assign(value).op


STATE_NAMES = {
    "basic_rnn": "h",
    "gru": "h",
    "basic_lstm": ("c", "h"),
    "lstm_all": ("c", "h"),
    "lstm_all_concat": "ch",
    "multi_mixed": (("cell_0/c", "cell_0/h"), "cell_1/h"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(STATE_NAMES))
def test_state_saving_rnn(name, dtype):
    """Three segments of one batch of sequences: each continues from the state the previous
    one saved; the last has lengths with zeros (the saved state is then the state at each
    sequence's end, the carried-in one for a zero length)."""
    case, state_name = CASES[name], STATE_NAMES[name]
    names = tf.nest.flatten(state_name)
    initial = dict(zip(names, random_state(case, dtype)))
    segments = [list(random_inputs(dtype, time_major=True, seed=10 + i)) for i in range(3)]
    lengths = [None, np.array([T, 2, T, 6, 5]), LENGTHS_WITH_ZEROS]

    tf_results, saved = [], []
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
        cell = case.tf_cell()
        saver = VariableStateSaver(initial)
        steps_t = [v1.placeholder(dtype, (B, D), name=f"input_{t}") for t in range(T)]
        # One graph for all segments: sequence_length=None is fed as all lengths T (in
        # TensorFlow the two are the same computation; numba_rnn gets None).
        lengths_t = v1.placeholder(tf.int32, (B,), name="lengths")
        run_t = v1.nn.static_state_saving_rnn(cell, steps_t, saver, state_name,
                                              sequence_length=lengths_t)
        variables = v1.trainable_variables()
        sess.run(v1.global_variables_initializer())
        weights = randomise_variables(sess, variables, dtype)
        for segment, length in zip(segments, lengths):
            feed = dict(zip(steps_t, segment))
            feed[lengths_t] = np.full(B, T) if length is None else length
            tf_results.append(sess.run(run_t, feed))
            saved.append({n: sess.run(saver.variables[n]) for n in names})

    numba_cell = nr_cell(name, dtype)
    nr.static_rnn(numba_cell, segments[0])  # fixes the scope of named_weights()
    load_weights(numba_cell, weights, dtype)
    nr_saver = nr.StateSaver(initial)
    for i, (segment, length) in enumerate(zip(segments, lengths)):
        result = nr.state_saving_rnn(numba_cell, segment, nr_saver, state_name,
                                     sequence_length=length)
        assert_matches(as_tuples(tf_results[i]), as_tuples(result), dtype, f"segment {i}")
        for n in names:
            assert_matches(saved[i][n], nr_saver.state(n), dtype, f"saved {n!r} after {i}")
    for b in np.flatnonzero(LENGTHS_WITH_ZEROS == 0):  # the oracle: zero length keeps it
        for n in names:
            np.testing.assert_array_equal(saved[2][n][b], saved[1][n][b])
