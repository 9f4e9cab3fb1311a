"""The RNN functions beyond dynamic_rnn, checked against plain NumPy.

bidirectional_dynamic_rnn, static_rnn, raw_rnn (with TensorArray) and state_saving_rnn
(with StateSaver): each result is compared with NumPy built on ``tests/reference.py``
(its dynamic_rnn and cell steps), and every bad argument must give a clear error.
"""

import numba
import numpy as np
import pytest
from reference import reference_dynamic_rnn, reference_step

import numba_rnn as nr
from numba_rnn import nest, rnn

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}


# ------------------------------------------------------------------------------ helpers
def randomised(cell, depth, dtype, seed):
    """``cell`` built for ``depth`` with every weight random (biases too)."""
    rng = np.random.default_rng(seed)
    cell.build(depth, dtype)
    cell.set_weights([0.6 * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


def random_state(cell, batch, dtype, rng):
    return nest.map_structure(lambda s: (0.5 * rng.standard_normal(np.shape(s))).astype(dtype),
                              cell.zero_state(batch, dtype))


def assert_close(actual, expected, atol, what=""):
    nest.assert_same_structure(expected, actual, what or "result")
    for i, (a, e) in enumerate(zip(nest.flatten(actual), nest.flatten(expected))):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{what} leaf {i}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{what} leaf {i}: dtype {a.dtype} != {e.dtype}"
        np.testing.assert_allclose(a, e, rtol=0, atol=atol, err_msg=f"{what} leaf {i}")


class PairOutputCell(nr.RNNCell):
    """A custom cell with a tuple output_size: output (h, 2 * h[:, :1]), state h."""

    @property
    def state_size(self):
        return 3

    @property
    def output_size(self):
        return (3, 1)

    def __call__(self, inputs, state):
        h = np.tanh(state + inputs.sum(axis=1, keepdims=True))
        return (h, 2 * h[:, :1]), h


def container_types(structure):
    """The tuple/namedtuple types of a nested structure (leaves ignored)."""
    if not nest.is_sequence(structure):
        return None
    return type(structure), tuple(container_types(s) for s in structure)


# ---------------------------------------------------------------- bidirectional_dynamic_rnn
def reference_bidirectional(cell_fw, cell_bw, inputs, lengths, state_fw, state_bw, time_major):
    """Forward: the reference dynamic_rnn. Backward: each sequence reversed within its
    own length, run, and its outputs reversed back; padding steps give zeros."""
    x = np.moveaxis(inputs, 0, 1) if time_major else inputs
    batch, steps = x.shape[:2]
    lengths = np.full(batch, steps) if lengths is None else lengths

    def reversed_within_lengths(a):  # [B, T, ...], padding left as zeros
        out = np.zeros_like(a)
        for b, n in enumerate(lengths):
            out[b, :n] = a[b, :n][::-1]
        return out

    out_fw, final_fw = reference_dynamic_rnn(cell_fw, x, lengths, state_fw)
    out_rev, final_bw = reference_dynamic_rnn(cell_bw, reversed_within_lengths(x), lengths,
                                              state_bw)
    out_bw = nest.map_structure(reversed_within_lengths, out_rev)
    if time_major:
        out_fw, out_bw = nest.map_structure(lambda a: np.moveaxis(a, 0, 1), (out_fw, out_bw))
    return (out_fw, out_bw), (final_fw, final_bw)


DIRECTION_CELLS = {
    "lstm_gru": lambda: (nr.LSTMCell(4), nr.GRUCell(3)),
    "rnn_lstm": lambda: (nr.BasicRNNCell(2), nr.BasicLSTMCell(5)),
    "peephole_projection_multi": lambda: (
        nr.LSTMCell(4, use_peepholes=True, num_proj=2),
        nr.MultiRNNCell([nr.GRUCell(3, reset_after=True), nr.BasicRNNCell(2)])),
    "custom_tuple_output": lambda: (PairOutputCell(), nr.GRUCell(2)),
}
LENGTHS = {"full": None, "ragged_with_zeros": np.array([6, 0, 3, 1, 0])}


def bidirectional_problem(cells, dtype, time_major, seed=0):
    rng = np.random.default_rng(seed)
    batch, steps, depth = 5, 6, 3
    cell_fw, cell_bw = cells
    for i, cell in enumerate(cells):
        if isinstance(cell, (nr.KernelCell, nr.MultiRNNCell)):
            randomised(cell, depth, dtype, seed + 1 + i)
    shape = (steps, batch, depth) if time_major else (batch, steps, depth)
    inputs = rng.standard_normal(shape).astype(dtype)
    return cell_fw, cell_bw, inputs, random_state(cell_fw, batch, dtype, rng), \
        random_state(cell_bw, batch, dtype, rng)


@pytest.mark.parametrize("lengths", LENGTHS.values(), ids=LENGTHS.keys())
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("cells", DIRECTION_CELLS.values(), ids=DIRECTION_CELLS.keys())
def test_bidirectional_matches_reference(cells, dtype, time_major, lengths):
    cell_fw, cell_bw, inputs, state_fw, state_bw = bidirectional_problem(cells(), dtype,
                                                                         time_major)
    inputs_before = inputs.copy()
    expected = reference_bidirectional(cell_fw, cell_bw, inputs, lengths, state_fw, state_bw,
                                       time_major)
    # Given initial states per direction.
    result = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=lengths,
                                          initial_state_fw=state_fw, initial_state_bw=state_bw,
                                          time_major=time_major)
    assert_close(result, expected, ATOL[dtype], "given states")
    np.testing.assert_array_equal(inputs, inputs_before)
    # Default zero states, dtype given explicitly.
    expected = reference_bidirectional(cell_fw, cell_bw, inputs, lengths, None, None, time_major)
    result = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=lengths,
                                          dtype=dtype, time_major=time_major)
    assert_close(result, expected, ATOL[dtype], "zero states")
    if lengths is not None:  # zero-length entries: zero outputs, initial states kept
        outputs, finals = result
        empty = np.flatnonzero(lengths == 0)
        for leaf in nest.flatten(outputs):
            assert not np.take(leaf, empty, axis=1 if time_major else 0).any()
        for leaf in nest.flatten(finals):
            assert not leaf[empty].any()


def test_bidirectional_directions_are_not_mixed_up():
    """The backward direction really runs on reversed inputs: output_bw is not the backward
    cell run forward, and its last step is that cell's first step, taken on x[:, -1]."""
    cell_fw, cell_bw, inputs, _, _ = bidirectional_problem(
        (nr.GRUCell(3), nr.GRUCell(3)), F64, False)
    (out_fw, out_bw), _ = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs)
    forward_bw, _ = reference_dynamic_rnn(cell_bw, inputs)
    assert not np.allclose(out_bw, forward_bw, atol=1e-3)
    # The last step of output_bw is the backward cell's first step: one step on x[:, -1].
    first, _ = reference_step(cell_bw, inputs[:, -1], cell_bw.zero_state(5, F64))
    np.testing.assert_allclose(out_bw[:, -1], first, atol=1e-12)


@pytest.mark.parametrize("scope, prefix", [(None, "bidirectional_rnn"), ("encoder", "encoder")])
def test_bidirectional_named_weights(scope, prefix):
    cell_fw, cell_bw = nr.LSTMCell(3, seed=0), nr.GRUCell(2, seed=1)
    nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, np.ones((2, 3, 4), F32), scope=scope)
    assert sorted(cell_fw.named_weights()) == [f"{prefix}/fw/lstm_cell/bias",
                                               f"{prefix}/fw/lstm_cell/kernel"]
    assert sorted(cell_bw.named_weights()) == [f"{prefix}/bw/gru_cell/candidate/bias",
                                               f"{prefix}/bw/gru_cell/candidate/kernel",
                                               f"{prefix}/bw/gru_cell/gates/bias",
                                               f"{prefix}/bw/gru_cell/gates/kernel"]


def test_bidirectional_parallel_iterations_one_equals_default(monkeypatch):
    """Both directions run concurrently (each on half the threads) when the threading
    layer allows it; one thread runs them one after the other. Same numbers."""
    cell_fw, cell_bw, inputs, state_fw, state_bw = bidirectional_problem(
        (nr.LSTMCell(4), nr.GRUCell(3)), F32, False)
    lengths = np.array([6, 0, 3, 1, 5])
    kwargs = dict(sequence_length=lengths, initial_state_fw=state_fw, initial_state_bw=state_bw)
    expected = reference_bidirectional(cell_fw, cell_bw, inputs, lengths, state_fw, state_bw,
                                       False)
    threads_before = numba.get_num_threads()
    pools = []  # one entry per direction sent to another thread
    real_pool = rnn._direction_threads()

    class CountingPool:
        def submit(self, *args, **kw):
            pools.append(1)
            return real_pool.submit(*args, **kw)

    monkeypatch.setattr(rnn, "_direction_threads", CountingPool)
    # The threading layer is known only once a parallel kernel has run: call twice.
    nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, **kwargs)
    default = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, **kwargs)
    concurrent_calls = len(pools)
    single = nr.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, parallel_iterations=1,
                                          **kwargs)
    assert len(pools) == concurrent_calls, "parallel_iterations=1 must not use another thread"
    assert numba.get_num_threads() == threads_before
    assert_close(default, expected, ATOL[F32], "default")
    assert_close(single, expected, ATOL[F32], "parallel_iterations=1")
    assert_close(single, default, 1e-6, "parallel_iterations=1 vs default")
    if threads_before >= 2 and numba.threading_layer() in ("omp", "tbb"):
        assert concurrent_calls >= 1, "the directions did not run concurrently"


def test_bidirectional_inputs_disagree_with_a_built_cell():
    x = np.zeros((2, 3, 4), F32)
    built = nr.GRUCell(3, seed=0)
    built.build(5, F32)
    with pytest.raises(ValueError, match="cell_bw 'gru_cell' was built for inputs of depth 5, "
                                         "got inputs of depth 4"):
        nr.bidirectional_dynamic_rnn(nr.LSTMCell(3), built, x)
    with pytest.raises(ValueError, match="cell_fw 'gru_cell' was built for inputs of depth 5"):
        nr.bidirectional_dynamic_rnn(built, nr.LSTMCell(3), x)
    with pytest.raises(ValueError, match="cell_fw .* holds float32 weights but the inputs are "
                                         "float64"):
        nr.bidirectional_dynamic_rnn(nr.LSTMCell(3, dtype=F32), nr.LSTMCell(3),
                                     np.zeros((2, 3, 5), F64))
    with pytest.raises(TypeError, match="cell_bw must be an instance of RNNCell"):
        nr.bidirectional_dynamic_rnn(nr.LSTMCell(3), "lstm", x)


def test_bidirectional_bad_initial_states():
    x = np.zeros((2, 3, 4), F32)
    with pytest.raises(ValueError, match=r"initial_state_bw must have shape \(2, 3\) "
                                         r"\(batch_size, state size\), got \(2, 4\)"):
        nr.bidirectional_dynamic_rnn(nr.LSTMCell(4), nr.GRUCell(3), x,
                                     initial_state_bw=np.zeros((2, 4), F32))
    with pytest.raises(ValueError, match="initial_state_fw must have the structure of "
                                         "cell.state_size"):
        nr.bidirectional_dynamic_rnn(nr.LSTMCell(4), nr.GRUCell(3), x,
                                     initial_state_fw=np.zeros((2, 4), F32))


def test_bidirectional_same_cell_for_both_directions():
    cell = nr.LSTMCell(3)
    with pytest.raises(ValueError, match="cell_fw and cell_bw must be two cell objects"):
        nr.bidirectional_dynamic_rnn(cell, cell, np.zeros((2, 3, 4), F32))


# ---------------------------------------------------------------------------- static_rnn
@pytest.mark.parametrize("lengths", [None, np.array([4, 0, 2])], ids=["full", "ragged"])
def test_static_rnn_equals_dynamic_rnn_on_stacked_inputs(lengths):
    rng = np.random.default_rng(3)
    cell = randomised(nr.LSTMCell(3), 2, F64, 4)
    steps = [rng.standard_normal((3, 2)) for _ in range(4)]
    state = random_state(cell, 3, F64, rng)
    outputs, final = nr.static_rnn(cell, steps, initial_state=state, sequence_length=lengths)
    assert isinstance(outputs, list) and len(outputs) == 4
    dyn_outputs, dyn_final = nr.dynamic_rnn(cell, np.stack(steps, axis=1), initial_state=state,
                                            sequence_length=lengths)
    assert_close(np.stack(outputs, axis=1), dyn_outputs, 1e-12, "outputs vs dynamic_rnn")
    assert_close(final, dyn_final, 1e-12, "final state vs dynamic_rnn")
    ref_outputs, ref_final = reference_dynamic_rnn(cell, np.stack(steps, axis=1), lengths, state)
    assert_close(np.stack(outputs, axis=1), ref_outputs, ATOL[F64], "outputs vs reference")
    assert_close(final, ref_final, ATOL[F64], "final state vs reference")
    assert sorted(cell.named_weights()) == ["rnn/lstm_cell/bias", "rnn/lstm_cell/kernel"]


def test_static_rnn_bad_inputs():
    with pytest.raises(ValueError, match="inputs must not be an empty list"):
        nr.static_rnn(nr.GRUCell(2), [])
    with pytest.raises(TypeError, match="inputs must be a list .* got ndarray"):
        nr.static_rnn(nr.GRUCell(2), np.zeros((3, 2, 4), F32))
    with pytest.raises(ValueError, match=r"same batch size: inputs\[0\] has shape \(2, 4\), "
                                         r"inputs\[2\] has shape \(3, 4\)"):
        nr.static_rnn(nr.GRUCell(2), [np.zeros((2, 4), F32)] * 2 + [np.zeros((3, 4), F32)])


# ------------------------------------------------------------------------------- raw_rnn
def dynamic_rnn_loop_fn(cell, inputs, lengths):
    """The TensorArray example of the TensorFlow docs: dynamic_rnn through raw_rnn."""
    steps, batch, depth = inputs.shape
    inputs_ta = nr.TensorArray(inputs.dtype, size=steps).unstack(inputs)

    def loop_fn(time, cell_output, cell_state, loop_state):
        emit_output = cell_output  # None at time 0
        if cell_output is None:
            next_cell_state = cell.zero_state(batch, inputs.dtype)
        else:
            next_cell_state = cell_state
        elements_finished = time >= lengths
        finished = np.all(elements_finished)
        next_input = (np.zeros((batch, depth), inputs.dtype) if finished
                      else inputs_ta.read(time))
        return elements_finished, next_input, next_cell_state, emit_output, None

    return loop_fn


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("make_cell", [
    lambda: nr.LSTMCell(3, use_peepholes=True), lambda: nr.GRUCell(3),
    lambda: nr.MultiRNNCell([nr.BasicLSTMCell(3), nr.BasicRNNCell(2)])],
    ids=["lstm", "gru", "multi"])
def test_raw_rnn_reproduces_dynamic_rnn(make_cell, dtype):
    rng = np.random.default_rng(5)
    cell = randomised(make_cell(), 2, dtype, 6)
    inputs = rng.standard_normal((5, 4, 2)).astype(dtype)  # time-major
    lengths = np.array([5, 0, 3, 1])
    emit_ta, final_state, final_loop_state = nr.raw_rnn(
        cell, dynamic_rnn_loop_fn(cell, inputs, lengths))
    assert isinstance(emit_ta, nr.TensorArray) and emit_ta.size() == 5
    assert final_loop_state is None
    expected_outputs, expected_state = reference_dynamic_rnn(cell, inputs, lengths,
                                                             time_major=True)
    assert_close(emit_ta.stack(), expected_outputs, ATOL[dtype], "outputs")
    assert_close(final_state, expected_state, ATOL[dtype], "state")
    assert container_types(final_state) == container_types(cell.zero_state(1))
    # The package's own dynamic_rnn agrees too.
    outputs, state = nr.dynamic_rnn(cell, inputs, sequence_length=lengths, time_major=True)
    assert_close(emit_ta.stack(), outputs, ATOL[dtype], "outputs vs dynamic_rnn")
    assert sorted(cell.named_weights())[0].startswith("rnn/")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_raw_rnn_all_lengths_zero_runs_no_step(dtype):
    cell = randomised(nr.LSTMCell(3), 2, dtype, 6)
    inputs = np.ones((4, 3, 2), dtype)
    emit_ta, final_state, _ = nr.raw_rnn(cell, dynamic_rnn_loop_fn(cell, inputs,
                                                                   np.zeros(3, int)))
    assert emit_ta.size() == 0
    stacked = emit_ta.stack()
    assert stacked.shape == (0, 3, 3) and stacked.dtype == dtype
    assert_close(final_state, cell.zero_state(3, dtype), 0, "state")


def test_raw_rnn_emit_structure_from_cell_output_size():
    lengths = np.array([2, 0, 3])

    def loop_fn(time, cell_output, cell_state, loop_state):
        state = np.zeros((3, 3), F64) if cell_state is None else cell_state
        return time >= lengths, np.ones((3, 2), F64), state, cell_output, None

    emit_ta, final_state, _ = nr.raw_rnn(PairOutputCell(), loop_fn)
    assert isinstance(emit_ta, tuple) and len(emit_ta) == 2
    h_all, first_all = emit_ta[0].stack(), emit_ta[1].stack()
    assert h_all.shape == (3, 3, 3) and first_all.shape == (3, 3, 1)
    assert h_all.dtype == F64 and first_all.dtype == F64  # the state's dtype
    h = np.zeros((3, 3))
    for t in range(3):
        h_new = np.tanh(h + 2)
        live = (t < lengths)[:, None]
        np.testing.assert_allclose(h_all[t], np.where(live, h_new, 0), atol=1e-15)
        np.testing.assert_allclose(first_all[t], np.where(live, 2 * h_new[:, :1], 0),
                                   atol=1e-15)
        h = np.where(live, h_new, h)
    np.testing.assert_allclose(final_state, h, atol=1e-15)


def test_raw_rnn_emit_structure_from_first_emit_output():
    """A first-call emit_output fixes structure, per-entry shapes and dtypes, not
    cell.output_size: here (float64 [2] head of the output, int32 scalar time stamp). As in
    TensorFlow, the first emit gives per-entry shapes; later emits have [batch_size] first."""
    cell = randomised(nr.GRUCell(4), 2, F32, 7)
    lengths = np.array([3, 1, 0])

    def loop_fn(time, cell_output, cell_state, loop_state):
        if cell_output is None:
            state = cell.zero_state(3, F32)
            emit = (np.zeros(2, F64), np.zeros((), np.int32))
        else:
            state = cell_state
            emit = (cell_output[:, :2].astype(F64), np.full(3, 10 + time, np.int32))
        return time >= lengths, np.full((3, 2), 0.5, F32), state, emit, None

    emit_ta, final_state, _ = nr.raw_rnn(cell, loop_fn)
    assert isinstance(emit_ta, tuple) and len(emit_ta) == 2
    heads, stamps = emit_ta[0].stack(), emit_ta[1].stack()
    assert heads.shape == (3, 3, 2) and heads.dtype == F64
    assert stamps.shape == (3, 3) and stamps.dtype == np.int32
    live = np.arange(3)[:, None] < lengths[None, :]  # [time, batch]
    np.testing.assert_array_equal(stamps, np.where(live, 11 + np.arange(3)[:, None], 0))
    x = np.full((3, 3, 2), 0.5, F32)
    outputs, state = reference_dynamic_rnn(cell, x, lengths, time_major=True)
    assert_close(heads, outputs[:, :, :2].astype(F64), 1e-6, "heads")
    assert_close(final_state, state, 1e-5, "state")


def test_raw_rnn_loop_state_is_carried_and_none_keeps_it():
    cell = randomised(nr.BasicRNNCell(2), 1, F64, 8)
    seen = []

    def loop_fn(time, cell_output, cell_state, loop_state):
        seen.append(loop_state)
        state = cell.zero_state(2, F64) if cell_state is None else cell_state
        if time == 0:
            next_loop_state = 100
        elif time % 2 == 0:
            next_loop_state = loop_state + time
        else:
            next_loop_state = None  # keep the previous loop state
        return np.full(2, time >= 5), np.ones((2, 1)), state, cell_output, next_loop_state

    _, _, final_loop_state = nr.raw_rnn(cell, loop_fn)
    assert seen == [None, 100, 100, 102, 102, 106]
    assert final_loop_state == 106


def test_raw_rnn_loop_state_counter_and_scope():
    cell = randomised(nr.LSTMCell(2), 1, F64, 9)

    def loop_fn(time, cell_output, cell_state, loop_state):
        count = 0 if loop_state is None else loop_state + 1
        state = cell.zero_state(3, F64) if cell_state is None else cell_state
        finished = time >= np.array([1, 4, 2])
        return finished, np.ones((3, 1)), state, cell_output, count

    emit_ta, _, count = nr.raw_rnn(cell, loop_fn, scope="decoder")
    assert count == 4 and emit_ta.size() == 4
    assert sorted(cell.named_weights()) == ["decoder/lstm_cell/bias", "decoder/lstm_cell/kernel"]


# A greedy decoder: LSTM, NumPy projection to a vocabulary, argmax fed back one-hot.
VOCAB, GO, END, UNITS = 6, 0, 1, 5


def decoder_problem():
    rng = np.random.default_rng(14)  # a seed where entries stop both ways
    cell = randomised(nr.LSTMCell(UNITS), VOCAB, F64, 15)
    w_out = 2 * rng.standard_normal((UNITS, VOCAB))
    b_out = rng.standard_normal(VOCAB)
    initial = random_state(cell, 6, F64, rng)
    max_lengths = np.array([6, 7, 7, 3, 0, 2])
    return cell, w_out, b_out, initial, max_lengths


def numpy_greedy_decode(cell, w_out, b_out, initial, max_lengths):
    """Entry by entry, step by step, with the reference cell step."""
    results = []
    for b, max_length in enumerate(max_lengths):
        state = nest.map_structure(lambda s, b=b: s[b:b + 1], initial)
        token, tokens, logits_seen = GO, [], []
        while len(tokens) < max_length:
            output, state = reference_step(cell, np.eye(VOCAB)[[token]], state)
            logits = output @ w_out + b_out
            token = int(np.argmax(logits[0]))
            tokens.append(token)
            logits_seen.append(logits[0])
            if token == END:
                break
        results.append((tokens, logits_seen, state))
    return results


def test_raw_rnn_greedy_decoder_matches_numpy_decoder():
    cell, w_out, b_out, initial, max_lengths = decoder_problem()
    batch = len(max_lengths)

    def loop_fn(time, cell_output, cell_state, loop_state):
        if cell_output is None:
            emit = (np.zeros(VOCAB), np.int32(0))
            tokens = np.full(batch, GO)
            return time >= max_lengths, np.eye(VOCAB)[tokens], initial, emit, None
        logits = cell_output @ w_out + b_out
        tokens = np.argmax(logits, axis=1)
        finished = (tokens == END) | (time >= max_lengths)
        emit = (logits, tokens.astype(np.int32))
        return finished, np.eye(VOCAB)[tokens], cell_state, emit, None

    (logits_ta, tokens_ta), final_state, _ = nr.raw_rnn(cell, loop_fn)
    expected = numpy_greedy_decode(cell, w_out, b_out, initial, max_lengths)
    # The problem exercises both ways of finishing and a zero max length.
    by_end = [len(t) > 1 and t[-1] == END for t, _, _ in expected]
    by_length = [len(t) == m > 1 and END not in t for (t, _, _), m in zip(expected, max_lengths)]
    assert any(by_end) and any(by_length)
    steps = max(len(t) for t, _, _ in expected)
    tokens, logits = tokens_ta.stack(), logits_ta.stack()
    assert tokens.shape == (steps, batch) and logits.shape == (steps, batch, VOCAB)
    for b, (expected_tokens, expected_logits, expected_state) in enumerate(expected):
        n = len(expected_tokens)
        np.testing.assert_array_equal(tokens[:n, b], expected_tokens, err_msg=f"entry {b}")
        assert not tokens[n:, b].any() and not logits[n:, b].any()
        if n:
            np.testing.assert_allclose(logits[:n, b], np.stack(expected_logits), atol=1e-10)
        for leaf, expected_leaf in zip(final_state, expected_state):
            np.testing.assert_allclose(leaf[b], expected_leaf[0], atol=1e-10,
                                       err_msg=f"final state of entry {b}")
    np.testing.assert_array_equal(final_state.c[4], initial.c[4])  # max length 0


def test_raw_rnn_an_entry_once_finished_stays_finished():
    """finished is or-ed over time: an entry reported finished once emits zeros and keeps
    its state from then on, even if loop_fn later reports it unfinished."""
    cell = randomised(nr.GRUCell(3), 2, F64, 13)
    x = np.random.default_rng(13).standard_normal((5, 2, 2))

    def loop_fn(time, cell_output, cell_state, loop_state):
        state = cell.zero_state(2, F64) if cell_state is None else cell_state
        finished = np.array([time == 2, time >= 5])  # entry 0: finished only at time 2
        return finished, x[min(time, 4)], state, cell_output, None

    emit_ta, final_state, _ = nr.raw_rnn(cell, loop_fn, maximum_iterations=10)
    outputs, state = reference_dynamic_rnn(cell, x, np.array([2, 5]), time_major=True)
    assert_close(emit_ta.stack(), outputs, 1e-10, "outputs")
    assert_close(final_state, state, 1e-10, "state")


def raw_loop(batch=2, emit=lambda time, output: output, finished=None, state=None,
             result=None, steps=3, cell=None):
    """A loop_fn for the error tests, with one piece replaceable."""
    def loop_fn(time, cell_output, cell_state, loop_state):
        if result is not None and result(time) is not None:
            return result(time)
        fin = np.full(batch, time >= steps) if finished is None else finished(time)
        st = cell.zero_state(batch, F32) if cell_state is None else cell_state
        if state is not None:
            st = state(time, st)
        return fin, np.ones((batch, 2), F32), st, emit(time, cell_output), None
    return loop_fn


def built_lstm():
    return randomised(nr.LSTMCell(3), 2, F32, 0)


def test_raw_rnn_loop_fn_returning_four_values():
    cell = built_lstm()
    with pytest.raises(ValueError, match="loop_fn must return 5 values .* at time 0 it "
                                         "returned 4 values"):
        nr.raw_rnn(cell, lambda time, o, s, ls: (np.zeros(2, bool), None, None, None))
    four_later = raw_loop(cell=cell, result=lambda t: (None,) * 4 if t == 2 else None)
    with pytest.raises(ValueError, match="at time 2 it returned 4 values"):
        nr.raw_rnn(cell, four_later)


def test_raw_rnn_emit_changing_between_steps():
    cell = built_lstm()

    def structure_changes(time, output):
        return output if time < 2 else (output, output)

    with pytest.raises(ValueError, match="emit_output returned by loop_fn at time 2 does not "
                                         "have the structure"):
        nr.raw_rnn(cell, raw_loop(cell=cell, emit=structure_changes))

    def shape_changes(time, output):
        return output if time < 2 else output[:, :2]

    with pytest.raises(ValueError, match=r"emit_output returned by loop_fn at time 2 has shape "
                                         r"\(2, 2\); .* means \(2, 3\)"):
        nr.raw_rnn(cell, raw_loop(cell=cell, emit=shape_changes))

    def first_emit_fixes_shape(time, output):
        return np.zeros(5, F32) if output is None else output  # per-entry shape

    with pytest.raises(ValueError, match=r"at time 1 has shape \(2, 3\); .* means \(2, 5\)"):
        nr.raw_rnn(cell, raw_loop(cell=cell, emit=first_emit_fixes_shape))


@pytest.mark.parametrize("at_time", [0, 2])
@pytest.mark.parametrize("bad", [np.zeros(3, bool), np.zeros((2, 1), bool), np.zeros(2, int),
                                 [0, 0], False],
                         ids=["long", "column", "int", "list_of_int", "scalar"])
def test_raw_rnn_finished_of_wrong_shape_or_dtype(bad, at_time):
    cell = built_lstm()
    loop_fn = raw_loop(cell=cell, finished=lambda t: bad if t == at_time else np.zeros(2, bool))
    with pytest.raises(ValueError, match=f"finished returned by loop_fn at time {at_time} must "
                                         r"be a boolean vector of shape \(2,\)"):
        nr.raw_rnn(cell, loop_fn, maximum_iterations=10)


def test_raw_rnn_next_cell_state_not_matching_the_cell():
    cell = built_lstm()
    with pytest.raises(ValueError, match="next_cell_state at time 0 must have the structure "
                                         "of cell.state_size"):
        nr.raw_rnn(cell, raw_loop(cell=cell, state=lambda t, s: s.h))
    wrong_size = raw_loop(cell=cell, state=lambda t, s: nr.LSTMStateTuple(s.c, s.h[:, :2])
                          if t == 2 else s)
    with pytest.raises(ValueError, match=r"next_cell_state at time 2 leaf 1 must have shape "
                                         r"\(2, 3\)"):
        nr.raw_rnn(cell, wrong_size)
    with pytest.raises(ValueError, match="loop_fn must return the initial cell state"):
        nr.raw_rnn(cell, raw_loop(cell=cell, state=lambda t, s: None))


def test_raw_rnn_never_finishing_loop():
    cell = built_lstm()
    calls = []

    def loop_fn(time, cell_output, cell_state, loop_state):
        calls.append(time)
        return raw_loop(cell=cell, finished=lambda t: np.zeros(2, bool))(
            time, cell_output, cell_state, loop_state)

    with pytest.raises(RuntimeError, match="maximum_iterations=5 steps: 2 of 2 entries"):
        nr.raw_rnn(cell, loop_fn, maximum_iterations=5)
    assert calls == [0, 1, 2, 3, 4, 5]
    # A loop that finishes within the limit is fine.
    emit_ta, _, _ = nr.raw_rnn(cell, raw_loop(cell=cell, steps=5), maximum_iterations=5)
    assert emit_ta.size() == 5


def test_raw_rnn_bad_arguments():
    with pytest.raises(TypeError, match="loop_fn must be callable, got int"):
        nr.raw_rnn(built_lstm(), 3)
    with pytest.raises(TypeError, match="cell must be an instance of RNNCell"):
        nr.raw_rnn(object(), raw_loop())
    with pytest.raises(ValueError, match="maximum_iterations must be None or an integer >= 0"):
        nr.raw_rnn(built_lstm(), raw_loop(), maximum_iterations=-1)


# --------------------------------------------------------------------------- TensorArray
def test_tensor_array_write_read_stack_gather_unstack():
    ta = nr.TensorArray(F32)
    value = np.arange(6, dtype=F64).reshape(2, 3)
    assert ta.write(0, value) is ta
    ta.write(2, value + 2)
    ta.write(1, value + 1)
    value[:] = -1  # writes keep a copy
    assert ta.size() == 3
    read = ta.read(1)
    assert read.dtype == F32 and read.shape == (2, 3)
    np.testing.assert_array_equal(read, np.arange(6).reshape(2, 3) + 1)
    stacked = ta.stack()
    assert stacked.shape == (3, 2, 3) and stacked.dtype == F32
    np.testing.assert_array_equal(stacked[:, 0, 0], [0, 1, 2])
    np.testing.assert_array_equal(ta.gather([2, 0])[:, 1, 2], [7, 5])
    same_dtype = nr.TensorArray(F64)
    value = np.ones(2)
    same_dtype.write(0, value)
    value[:] = 0
    np.testing.assert_array_equal(same_dtype.read(0), [1, 1])
    source = np.random.default_rng(0).standard_normal((4, 2))
    ta2 = nr.TensorArray(F64, size=4).unstack(source)
    assert ta2.size() == 4
    np.testing.assert_array_equal(ta2.read(3), source[3])
    np.testing.assert_array_equal(ta2.stack(), source)


def test_tensor_array_empty_stack():
    assert nr.TensorArray(F32).stack().shape == (0,)
    empty = nr.TensorArray(F64, element_shape=(2, 3)).stack()
    assert empty.shape == (0, 2, 3) and empty.dtype == F64
    empty = nr.TensorArray(np.int32, element_shape=(4,)).stack()
    assert empty.shape == (0, 4) and empty.dtype == np.int32


def test_tensor_array_bad_access():
    ta = nr.TensorArray(F32, size=2, dynamic_size=False)
    ta.write(0, np.zeros(3))
    with pytest.raises(IndexError, match="index 2 is out of range for size 2"):
        ta.read(2)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        ta.read(-1)
    with pytest.raises(IndexError, match="index 5 is out of range for size 2"):
        ta.write(5, np.zeros(3))
    with pytest.raises(ValueError, match="index 1 has not been written"):
        ta.read(1)
    with pytest.raises(ValueError, match="index 1 has not been written"):
        ta.stack()
    with pytest.raises(ValueError, match=r"elements of shape \(3,\), got shape \(4,\) at "
                                         r"index 1"):
        ta.write(1, np.zeros(4))
    with pytest.raises(ValueError, match=r"elements of shape \(2, 2\), got shape \(2,\)"):
        nr.TensorArray(F32, element_shape=(2, 2)).write(0, np.zeros(2))
    with pytest.raises(TypeError, match="index must be an integer"):
        ta.read(1.0)
    with pytest.raises(TypeError, match="index must be an integer"):
        ta.write(True, np.zeros(3))
    with pytest.raises(IndexError, match="out of range for size 0"):
        nr.TensorArray(F32).read(0)


# ------------------------------------------------------------- state_saving_rnn, StateSaver
def segments_of(x, bounds):
    """Batch-major [B, T, D] -> per-segment lists of [B, D] steps."""
    return [[x[:, t] for t in range(a, b)] for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_saving_segments_equal_one_long_run(kind):
    rng = np.random.default_rng(20)
    batch, steps, depth = 3, 7, 2
    if kind == "lstm":
        cell, names = randomised(nr.LSTMCell(4), depth, F64, 21), ("c", "h")
        initial = {"c": rng.standard_normal(4), "h": rng.standard_normal(4)}
        long_initial = nr.LSTMStateTuple(np.tile(initial["c"], (batch, 1)),
                                         np.tile(initial["h"], (batch, 1)))
    else:
        cell, names = randomised(nr.GRUCell(3), depth, F64, 22), "state"
        initial = {"state": rng.standard_normal((batch, 3))}  # per batch row
        long_initial = initial["state"]
    saver = nr.StateSaver(initial, batch_size=batch)
    x = rng.standard_normal((batch, steps, depth))
    last_lengths = np.array([2, 0, 1])  # the last segment ends early for some rows
    outputs = []
    for segment, lengths in zip(segments_of(x, [0, 3, 5, 7]), [None, None, last_lengths]):
        out, state = nr.state_saving_rnn(cell, segment, saver, names, sequence_length=lengths)
        outputs += out
    expected_outputs, expected_state = reference_dynamic_rnn(cell, x, 5 + last_lengths,
                                                             long_initial)
    np.testing.assert_allclose(np.stack(outputs, axis=1), expected_outputs, atol=1e-10)
    assert_close(state, expected_state, 1e-10, "final state")
    for name, leaf in zip(nest.flatten(names), nest.flatten(expected_state)):
        np.testing.assert_allclose(saver.state(name), leaf, atol=1e-10)
    # reset() forgets everything: the next call starts from the initial states again.
    saver.reset()
    out, _ = nr.state_saving_rnn(cell, segments_of(x, [0, 3])[0], saver, names)
    np.testing.assert_allclose(np.stack(out, axis=1), expected_outputs[:, :3], atol=1e-10)


def test_state_saver_per_key_streams_in_any_order():
    """Two streams of sequences share one saver; each call's batch holds rows of one
    stream in its own order. Every sequence continues exactly where it stopped."""
    rng = np.random.default_rng(30)
    cell = randomised(nr.LSTMCell(3), 2, F64, 31)
    initial = {"c": 0.3 * rng.standard_normal(3), "h": 0.3 * rng.standard_normal(3)}
    saver = nr.StateSaver(initial)
    keys = ["a1", "a2", "b1", "b2", "b3"]
    data = {k: rng.standard_normal((6, 2)) for k in keys}  # each sequence: 6 steps
    calls = [  # (keys of the batch, segment of steps)
        (["a1", "a2"], (0, 2)), (["b3", "b1", "b2"], (0, 3)), (["a2", "a1"], (2, 4)),
        (["b2", "b3", "b1"], (3, 6)), (["a1", "a2"], (4, 6)),
    ]
    outputs = {k: [] for k in keys}
    for batch_keys, (a, b) in calls:
        saver.set_keys(batch_keys)
        x = np.stack([data[k][a:b] for k in batch_keys])  # [B, segment, D]
        out, _ = nr.state_saving_rnn(cell, [x[:, t] for t in range(b - a)], saver, ("c", "h"))
        for row, k in enumerate(batch_keys):
            outputs[k] += [o[row] for o in out]
    for k in keys:
        alone = nr.LSTMStateTuple(initial["c"][None], initial["h"][None])
        expected, final = reference_dynamic_rnn(cell, data[k][None], initial_state=alone)
        np.testing.assert_allclose(np.stack(outputs[k]), expected[0], atol=1e-10,
                                   err_msg=f"sequence {k}")
        saver.set_keys([k])
        np.testing.assert_allclose(saver.state("c"), final.c, atol=1e-10)


def test_state_saver_reset_keys_restarts_only_those_sequences():
    rng = np.random.default_rng(40)
    cell = randomised(nr.GRUCell(3), 2, F64, 41)
    h0 = rng.standard_normal(3)
    saver = nr.StateSaver({"h": h0})
    x = rng.standard_normal((3, 4, 2))  # rows: keys "x", "y", "z"
    saver.set_keys(["x", "y", "z"])
    nr.state_saving_rnn(cell, [x[:, t] for t in range(2)], saver, "h")
    saver.reset(["y"])
    saver.set_keys(["z", "y", "x"])
    order = [2, 1, 0]
    out, state = nr.state_saving_rnn(cell, [x[order, t] for t in range(2, 4)], saver, "h")
    out = np.stack(out, axis=1)
    continued, _ = reference_dynamic_rnn(cell, x, initial_state=np.tile(h0, (3, 1)))
    restarted, _ = reference_dynamic_rnn(cell, x[:, 2:], initial_state=np.tile(h0, (3, 1)))
    np.testing.assert_allclose(out[0], continued[2, 2:], atol=1e-10)   # z continues
    np.testing.assert_allclose(out[1], restarted[1], atol=1e-10)       # y restarts
    np.testing.assert_allclose(out[2], continued[0, 2:], atol=1e-10)   # x continues
    assert not np.allclose(out[1], continued[1, 2:], atol=1e-3)


def test_final_state_as_next_initial_state_equals_one_long_run():
    """The plain pattern, without a saver: dynamic_rnn's final state of one segment is the
    initial state of the next."""
    rng = np.random.default_rng(50)
    cell = randomised(nr.LSTMCell(4), 3, F32, 51)
    x = rng.standard_normal((2, 9, 3)).astype(F32)
    expected_outputs, expected_state = reference_dynamic_rnn(cell, x)
    state, outputs = None, []
    for a, b in [(0, 4), (4, 5), (5, 9)]:
        out, state = nr.dynamic_rnn(cell, x[:, a:b], initial_state=state)
        outputs.append(out)
    assert_close(np.concatenate(outputs, axis=1), expected_outputs, 1e-5, "outputs")
    assert_close(state, expected_state, 1e-5, "state")


def test_state_saving_bad_names():
    cell = nr.LSTMCell(3)
    saver = nr.StateSaver({"c": np.zeros(3, F32), "h": np.zeros(3, F32)}, batch_size=2)
    steps = [np.zeros((2, 2), F32)] * 2
    with pytest.raises(KeyError, match=r"no state named 'm'; this saver knows \['c', 'h'\]"):
        nr.state_saving_rnn(cell, steps, saver, ("c", "m"))
    for bad in ["h", ("c", "h", "x"), ("c", 1)]:
        with pytest.raises(ValueError, match="state_name must be strings nested like "
                                             "cell.state_size"):
            nr.state_saving_rnn(cell, steps, saver, bad)
    with pytest.raises(ValueError, match="state_name must be strings nested like"):
        nr.state_saving_rnn(nr.GRUCell(3), steps, saver, ("c", "h"))
    with pytest.raises(TypeError, match="state_saver must have a state"):
        nr.state_saving_rnn(cell, steps, {"c": 0}, ("c", "h"))


def test_tensor_array_gather_of_no_indices():
    ta = nr.TensorArray(F64, element_shape=(2, 3))
    ta.write(0, np.ones((2, 3)))
    gathered = ta.gather([])
    assert gathered.shape == (0, 2, 3) and gathered.dtype == F64


def test_tensor_array_unstack_of_an_empty_value_keeps_the_element_shape():
    ta = nr.TensorArray(F32, size=0).unstack(np.zeros((0, 2, 3), F32))
    assert ta.size() == 0
    assert ta.stack().shape == (0, 2, 3)
