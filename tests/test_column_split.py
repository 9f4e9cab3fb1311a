"""The column split of the LSTM recurrence (``kernels.lstm.lstm_forward_split``).

For inference on a batch too small to split by rows (a one-chunk plan), an LSTMCell
without projection and with at least 256 units splits its hidden units across Numba's
threads, which meet at a spin barrier (``kernels.sync``) after every step. Checked here:

- results against the NumPy reference (tests/reference.py) for BasicLSTMCell and LSTMCell
  options, uneven splits (257 and 259 units), batches 1..7, ragged lengths including 0
  and the full length, given and zero initial states, float32 and float64, both layouts;
  the split path is really taken (calls counted) and agrees bit for bit with a
  one-thread run (``parallel_iterations=1``), which must not take it;
- the cases that must not split (projection, fewer units, training under ``vjp``, an
  unsafe threading layer, batches split by rows) still give correct results;
- the caller's arrays are not modified;
- many consecutive calls finish (no deadlock) and are reproducible bit for bit;
- a part whose thread finds another part's thread on its CPU moves to another CPU, and
  its affinity mask is what it was.

The split kernel's calls are counted by a wrapper that runs them on a helper thread with
a timeout, so that a deadlocked barrier fails a test instead of hanging the run.

With NUMBA_DISABLE_JIT the parallel loop runs its parts one after the other, so the
barrier would wait forever: only the check that the split is then never chosen runs.
"""
import os
import queue
import sys
import threading
import time

import numba
import numpy as np
import pytest
from random_arrays import random_state
from reference import reference_dynamic_rnn

import numba_rnn as nr
from numba_rnn import nest, rnn
from numba_rnn import plan as plan_module
from numba_rnn.cells import lstm as lstm_cells
from numba_rnn.kernels import sync
from numba_rnn.kernels.sync import SLOT
from numba_rnn.plan import Plan, SplitGuard

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}  # against the reference, as in test_forward.py
T, D = 30, 6
UNITS = [256, 257, 259]  # 2 threads: 128 + 128, 129 + 128, 130 + 129 units
HANG_SECONDS = 60  # a split kernel call still running by then has deadlocked

JIT_DISABLED = numba.config.DISABLE_JIT
needs_jit = pytest.mark.skipif(
    JIT_DISABLED, reason="NUMBA_DISABLE_JIT: the column split is never used (its barrier "
                         "would deadlock), see test_no_barrier_without_jit")
needs_threads = pytest.mark.skipif(
    numba.get_num_threads() < 2,
    reason=f"the column split needs >= 2 Numba threads, have {numba.get_num_threads()}")

OPTIONS = {
    "basic": lambda h, dt: nr.BasicLSTMCell(h, dtype=dt),
    "basic_relu_fb0": lambda h, dt: nr.BasicLSTMCell(h, forget_bias=0.0, activation="relu",
                                                     dtype=dt),
    "plain": lambda h, dt: nr.LSTMCell(h, dtype=dt),
    "peepholes": lambda h, dt: nr.LSTMCell(h, use_peepholes=True, dtype=dt),
    "cell_clip": lambda h, dt: nr.LSTMCell(h, cell_clip=0.3, dtype=dt),
    "sigmoid": lambda h, dt: nr.LSTMCell(h, activation="sigmoid", dtype=dt),
    "relu": lambda h, dt: nr.LSTMCell(h, activation="relu", dtype=dt),
    "forget_bias": lambda h, dt: nr.LSTMCell(h, forget_bias=-0.6, dtype=dt),
    "all": lambda h, dt: nr.LSTMCell(h, use_peepholes=True, cell_clip=0.2, activation="relu",
                                     forget_bias=0.4, dtype=dt),
    "concat_state": lambda h, dt: nr.LSTMCell(h, use_peepholes=True, state_is_tuple=False,
                                              dtype=dt),
}
CLIPPED = {"cell_clip": 0.3, "all": 0.2}


# ----------------------------------------------------------------------------- helpers
def randomize(cell, dtype, depth=D, seed=0):
    """Build ``cell`` with random weights (biases and peepholes too), scaled by
    1/sqrt(fan-in) so that 256+ units neither saturate nor blow up (relu)."""
    rng = np.random.default_rng(seed)
    cell.build(depth, dtype=dtype)
    scale = 1.5 / np.sqrt(depth + cell.output_size)
    cell.set_weights([rng.uniform(-scale, scale, w.shape) for w in cell.get_weights()])
    return cell


def make_cell(option, units, dtype, seed=0):
    return randomize(OPTIONS[option](units, dtype), dtype, seed=seed)


def random_inputs(dtype, batch, steps=T, time_major=False, seed=1):
    shape = (steps, batch, D) if time_major else (batch, steps, D)
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def ragged_lengths(batch, steps=T, seed=3):
    """Random lengths in [0, steps] with the full length and (batch >= 2) 0 among them,
    at random positions (so the plan must reorder the rows)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, steps + 1, batch)
    lengths[0] = steps
    if batch >= 2:
        lengths[1] = 0
    return rng.permutation(lengths)


def as64(structure):
    return None if structure is None else nest.map_structure(
        lambda a: np.asarray(a, dtype=F64), structure)


def expected(cell, x, lengths=None, state=None, time_major=False):
    """The reference in float64 (float32 weights are exact in float64)."""
    return reference_dynamic_rnn(cell, as64(x), lengths, as64(state), time_major)


def assert_close(actual, wanted, dtype, tol, what=""):
    assert type(actual) is type(wanted), (what, type(actual), type(wanted))
    actual_leaves, wanted_leaves = nest.flatten(actual), nest.flatten(wanted)
    assert len(actual_leaves) == len(wanted_leaves), what
    for a, w in zip(actual_leaves, wanted_leaves):
        assert isinstance(a, np.ndarray) and a.dtype == dtype, (what, type(a), a.dtype)
        assert a.shape == w.shape, (what, a.shape, w.shape)
        np.testing.assert_allclose(a, w, rtol=tol[dtype], atol=tol[dtype], err_msg=what)


def assert_identical(actual, wanted):
    for a, w in zip(nest.flatten(actual), nest.flatten(wanted), strict=True):
        assert a.dtype == w.dtype and a.shape == w.shape
        np.testing.assert_array_equal(a, w)


def run_lengths(lengths, batch, steps):
    return np.full(batch, steps) if lengths is None else np.asarray(lengths)


def split_possible():
    """Whether this process can take the split path at all (after ``warmed_up``)."""
    return numba.get_num_threads() >= 2 and rnn._barrier_safe(2)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def warmed_up():
    """Run one parallel kernel: ``numba.threading_layer()`` (which ``_barrier_safe``
    reads) is only known after that, so a process's first call never splits."""
    if JIT_DISABLED:
        return
    cell = make_cell("plain", 256, F32)
    nr.dynamic_rnn(cell, random_inputs(F32, 8, 40))
    if numba.get_num_threads() >= 2:
        assert rnn._threading_layer() is not None


@pytest.fixture
def split_ready(warmed_up):
    layer = rnn._threading_layer()
    if not rnn._barrier_safe(2):
        pytest.skip(f"threading layer {layer!r}: the column split needs 'omp' or "
                    f"'workqueue'")


class KernelThread:
    """Runs calls on one long-lived daemon thread, with the caller's Numba thread count,
    and waits at most HANG_SECONDS for each: a compiled kernel cannot be interrupted, so
    a deadlocked barrier would otherwise hang the whole run instead of failing a test."""

    def __init__(self):
        self.requests = queue.Queue()
        self.stuck = None
        threading.Thread(target=self._serve, name="split-kernel", daemon=True).start()

    def _serve(self):
        while True:
            function, args, n_threads, reply = self.requests.get()
            try:
                numba.set_num_threads(n_threads)  # a thread-local setting
                reply.put((True, function(*args)))
            except BaseException as error:  # re-raised on the calling thread
                reply.put((False, error))

    def call(self, function, *args):
        if self.stuck is not None:
            pytest.fail(f"the kernel thread is stuck since an earlier call: {self.stuck}")
        reply = queue.Queue(maxsize=1)
        self.requests.put((function, args, numba.get_num_threads(), reply))
        try:
            ok, value = reply.get(timeout=HANG_SECONDS)
        except queue.Empty:
            self.stuck = f"{function.__name__} did not return in {HANG_SECONDS} s"
            pytest.fail(f"{self.stuck}: the step barrier deadlocked")
        if not ok:
            raise value
        return value


_kernel_thread = None


@pytest.fixture
def split_calls(monkeypatch, always_split):
    """The parts (threads) of every call of ``lstm_forward_split``, in call order; the
    calls run on the KernelThread, so that a deadlock fails the test."""
    global _kernel_thread
    if _kernel_thread is None:
        _kernel_thread = KernelThread()
    calls = []
    original = lstm_cells.lstm_forward_split

    def counting(*args):
        flags = args[-1]
        calls.append(flags.shape[0] // SLOT)
        return _kernel_thread.call(original, *args)

    monkeypatch.setattr(lstm_cells, "lstm_forward_split", counting)
    return calls


def split_run(cell, x, calls, lengths=None, state=None, time_major=False):
    """dynamic_rnn through the split path: asserts it was taken (once, one part per
    thread), that a ``parallel_iterations=1`` run was not and agrees to rounding, and
    that both agree with the reference. Returns the split run's (outputs, state)."""
    dtype = x.dtype.type
    batch, steps = (x.shape[1], x.shape[0]) if time_major else x.shape[:2]
    flops = rnn._recurrent_flops(cell, run_lengths(lengths, batch, steps))
    assert flops >= rnn.PARALLEL_MIN_FLOPS, "test setup: too little work to use threads"
    before = len(calls)
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                         time_major=time_major)
    assert calls[before:] == [numba.get_num_threads()], \
        f"split path not taken once with {numba.get_num_threads()} parts: {calls[before:]}"
    one = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                         time_major=time_major, parallel_iterations=1)
    assert len(calls) == before + 1, "parallel_iterations=1 took the split path"
    assert_identical(got, one)  # the same arithmetic in the same order
    assert_close(got, expected(cell, x, lengths, state, time_major), dtype, ATOL,
                 "split vs reference")
    return got


def final_c(cell, state):
    return state.c if cell.state_is_tuple else state[:, :cell.num_units]


# -------------------------------------------------------------- agreement with reference
@needs_jit
@needs_threads
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", UNITS)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_options_match_reference(split_ready, split_calls, option, units, dtype, time_major):
    batch = 5
    cell = make_cell(option, units, dtype)
    x = random_inputs(dtype, batch, time_major=time_major)
    lengths = ragged_lengths(batch)
    state = random_state(cell, batch, dtype)
    for initial in (state, None):
        outputs, final = split_run(cell, x, split_calls, lengths, initial, time_major)
        assert outputs.shape == ((T, batch) if time_major else (batch, T)) + (units,)
        # Guards against a vacuous comparison: real, unsaturated values, and the clip
        # (where there is one) reached.
        assert 0.05 < np.abs(outputs).max() < 50
        if option in CLIPPED:  # rows that ran at least a step
            c_ran = final_c(cell, final)[lengths > 0]
            assert np.isclose(np.abs(c_ran).max(), CLIPPED[option])
    assert len(split_calls) == 2


@needs_jit
@needs_threads
@pytest.mark.parametrize("lengths_kind", ["ragged", "none", "equal"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("units", UNITS)
@pytest.mark.parametrize("batch", range(1, 8))
def test_batch_sizes_match_reference(split_ready, split_calls, batch, units, dtype,
                                     lengths_kind):
    option = "plain" if batch % 2 else "all"  # the vectorised and the general gate math
    cell = make_cell(option, units, dtype, seed=batch)
    x = random_inputs(dtype, batch, seed=batch)
    lengths = {"ragged": ragged_lengths(batch, seed=batch), "none": None,
               "equal": np.full(batch, T - 3, dtype=np.int32)}[lengths_kind]
    state = random_state(cell, batch, dtype, seed=batch) if batch % 3 else None
    outputs, final = split_run(cell, x, split_calls, lengths, state)
    want_lengths = run_lengths(lengths, batch, T)
    for b, n in enumerate(want_lengths):
        assert not outputs[b, n:].any(), "outputs past a sequence's end must be zero"
        if n == 0:
            initial = cell.zero_state(batch, dtype) if state is None else state
            assert_identical(nest.map_structure(lambda a, b=b: a[b], final),
                             nest.map_structure(lambda a, b=b: a[b], initial))


@needs_jit
@needs_threads
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_full_sequences_write_every_output(split_ready, split_calls, poison_np_empty,
                                           time_major):
    """Without padded steps the outputs' buffer is not zero-filled first: with np.empty
    giving NaNs, the split still gives the reference's numbers (every row of every step
    is written, in either layout)."""
    cell = make_cell("plain", 256, F32)
    x = random_inputs(F32, 3, time_major=time_major)
    split_run(cell, x, split_calls, time_major=time_major)  # compiled before the patch
    poison_np_empty()
    split_run(cell, x, split_calls, time_major=time_major)


SHORT_GATE_MATH = {"basic", "plain", "forget_bias"}  # no peepholes, clipping, other act


@needs_jit
@needs_threads
@pytest.mark.parametrize("option", list(OPTIONS))
def test_short_gate_math_only_without_options(split_ready, split_calls, monkeypatch, option):
    """The kernel gets w_peep None (the short gate math, and the general one not
    compiled) exactly for cells without peepholes, clipping or another activation."""
    given = []
    counting = lstm_cells.lstm_forward_split

    def peepholes_given(*args):
        given.append(args[7])  # w_peep
        return counting(*args)

    monkeypatch.setattr(lstm_cells, "lstm_forward_split", peepholes_given)
    nr.dynamic_rnn(make_cell(option, 256, F32), random_inputs(F32, 2))
    assert len(given) == 1
    assert (given[0] is None) == (option in SHORT_GATE_MATH)


@needs_jit
@needs_threads
def test_explicit_parallel_iterations(split_ready, split_calls):
    """parallel_iterations=2 (at most the thread count) splits in 2 parts."""
    cell = make_cell("peepholes", 259, F32)
    x = random_inputs(F32, 3)
    got = nr.dynamic_rnn(cell, x, parallel_iterations=2)
    assert split_calls == [2]
    assert_close(got, expected(cell, x), F32, ATOL)


@needs_jit
@needs_threads
def test_static_rnn_splits(split_ready, split_calls):
    cell = make_cell("basic", 257, F64)
    x = random_inputs(F64, 2, time_major=True)
    lengths = np.array([T, 11])
    outputs, final = nr.static_rnn(cell, list(x), sequence_length=lengths)
    assert split_calls == [numba.get_num_threads()]
    want_outputs, want_final = expected(cell, x, lengths, time_major=True)
    assert_close(np.stack(outputs), want_outputs, F64, ATOL)
    assert_close(final, want_final, F64, ATOL)


# -------------------------------------------------------------------- when it must not
@needs_jit
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("num_proj", [64, 128, 200])
def test_no_split_with_projection(warmed_up, split_calls, num_proj, dtype):
    cell = randomize(nr.LSTMCell(256, use_peepholes=True, num_proj=num_proj, proj_clip=0.5,
                                 dtype=dtype), dtype)
    x = random_inputs(dtype, 3)
    lengths = ragged_lengths(3)
    state = random_state(cell, 3, dtype)
    assert rnn._recurrent_flops(cell, lengths) >= rnn.PARALLEL_MIN_FLOPS
    assert not cell._splits_columns()
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
    assert split_calls == []
    assert_close(got, expected(cell, x, lengths, state), dtype, ATOL)


@needs_jit
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("option", ["basic", "all"])
def test_no_split_below_256_units(warmed_up, split_calls, option, dtype):
    cell = make_cell(option, 255, dtype)
    x = random_inputs(dtype, 4)
    lengths = ragged_lengths(4)
    assert rnn._recurrent_flops(cell, lengths) >= rnn.PARALLEL_MIN_FLOPS
    assert not cell._splits_columns()
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths)
    assert split_calls == []
    assert_close(got, expected(cell, x, lengths), dtype, ATOL)


@needs_jit
@pytest.mark.parametrize("swap_memory", [False, True])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_no_split_when_training(warmed_up, split_calls, dtype, swap_memory):
    cell = make_cell("peepholes", 257, dtype)
    x = random_inputs(dtype, 3)
    lengths = ragged_lengths(3)
    state = random_state(cell, 3, dtype)
    if split_possible():  # control: the same call for inference splits
        nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state)
        assert split_calls == [numba.get_num_threads()]
        split_calls.clear()
    result, backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                              initial_state=state, swap_memory=swap_memory)
    assert split_calls == [], "the training forward pass took the split path"
    assert_close(result, expected(cell, x, lengths, state), dtype, ATOL)
    outputs, final = result
    grads = backward((outputs, final))
    assert split_calls == [], "the backward pass took the split path"
    assert grads.inputs.shape == x.shape and np.isfinite(grads.inputs).all()
    assert np.abs(grads.inputs).max() > 0


@needs_jit
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_no_split_when_barrier_unsafe(warmed_up, split_calls, monkeypatch, dtype):
    cell = make_cell("all", 259, dtype)
    x = random_inputs(dtype, 2, time_major=True)
    lengths = np.array([0, T])
    if split_possible():  # control: splits before the patch
        nr.dynamic_rnn(cell, x, sequence_length=lengths, time_major=True)
        assert split_calls == [numba.get_num_threads()]
        split_calls.clear()
    monkeypatch.setattr(rnn, "_barrier_safe", lambda n_threads: False)
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, time_major=True)
    assert split_calls == []
    assert_close(got, expected(cell, x, lengths, time_major=True), dtype, ATOL)


@needs_jit
@pytest.mark.parametrize("batch, lengths_kind", [(8, "none"), (8, "equal"), (9, "equal"),
                                                 (12, "ragged")])
def test_no_split_for_row_chunks(warmed_up, split_calls, batch, lengths_kind):
    """From 8 rows on (2 threads) the batch is split by rows: 2 chunks, no barrier."""
    cell = make_cell("plain", 256, F32)
    x = random_inputs(F32, batch)
    lengths = {"none": None, "equal": np.full(batch, 20),
               "ragged": ragged_lengths(batch)}[lengths_kind]
    if numba.get_num_threads() >= 2:
        assert Plan(run_lengths(lengths, batch, T), numba.get_num_threads()).n_chunks >= 2
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths)
    assert split_calls == []
    assert_close(got, expected(cell, x, lengths), F32, ATOL)


@needs_jit
def test_no_split_for_little_work(warmed_up, split_calls):
    """Below PARALLEL_MIN_FLOPS the call runs on one thread, without the split."""
    cell = make_cell("plain", 256, F64)
    x = random_inputs(F64, 2, steps=3)
    lengths = np.array([3, 1])
    assert rnn._recurrent_flops(cell, lengths) < rnn.PARALLEL_MIN_FLOPS
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths)
    assert split_calls == []
    assert_close(got, expected(cell, x, lengths), F64, ATOL)


@pytest.fixture
def plain_environment(monkeypatch):
    """No OpenMP limits and two CPUs allowed, whatever the machine running the tests; the
    answers ``_barrier_safe`` keeps are forgotten before and after."""
    monkeypatch.delenv("OMP_DYNAMIC", raising=False)
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    monkeypatch.setattr(rnn.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    rnn._barrier_safe_with.cache_clear()
    yield
    rnn._barrier_safe_with.cache_clear()


@needs_jit
def test_barrier_safe_needs_a_known_safe_layer(warmed_up, monkeypatch, plain_environment):
    for layer, safe in [(None, False), ("tbb", False), ("omp", True), ("workqueue", True)]:
        monkeypatch.setattr(rnn, "_threading_layer", lambda layer=layer: layer)
        assert rnn._barrier_safe(2) is safe, layer
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    rnn._barrier_safe_with.cache_clear()
    assert rnn._barrier_safe(2) is False


@needs_jit
@pytest.mark.parametrize("name, value, safe", [
    ("OMP_DYNAMIC", "true", False), ("OMP_DYNAMIC", "TRUE", False),
    ("OMP_DYNAMIC", "false", True), ("OMP_THREAD_LIMIT", "1", False),
    ("OMP_THREAD_LIMIT", "2", True), ("OMP_THREAD_LIMIT", "8", True),
    ("OMP_THREAD_LIMIT", "junk", False)])
def test_barrier_safe_respects_openmp_limits(monkeypatch, plain_environment, name, value,
                                             safe):
    """A team OpenMP may shrink below the parts would leave a part without a thread."""
    monkeypatch.setattr(rnn, "_threading_layer", lambda: "omp")
    monkeypatch.setenv(name, value)
    assert rnn._barrier_safe(2) is safe


@needs_jit
def test_barrier_safe_needs_a_cpu_per_part(monkeypatch, plain_environment):
    """Pinned to fewer CPUs than parts, the threads would take turns at every step."""
    monkeypatch.setattr(rnn, "_threading_layer", lambda: "omp")
    monkeypatch.setattr(rnn.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert rnn._barrier_safe(2) is False
    assert rnn._barrier_safe(1) is True


# ------------------------------------------------------------ the caller's arrays alone
@needs_jit
@needs_threads
@pytest.mark.parametrize("state_is_tuple", [True, False], ids=["tuple", "concat"])
@pytest.mark.parametrize("lengths_kind", ["equal", "ragged"])
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_major", "time_major"])
def test_arguments_not_modified(split_ready, split_calls, time_major, lengths_kind,
                                state_is_tuple):
    # Time-major, C-contiguous inputs with equal lengths go to the kernels uncopied.
    batch = 3
    cell = randomize(nr.LSTMCell(256, use_peepholes=True, state_is_tuple=state_is_tuple,
                                 dtype=F32), F32)
    x = random_inputs(F32, batch, time_major=time_major)
    lengths = np.full(batch, T) if lengths_kind == "equal" else np.array([4, T, 0])
    state = random_state(cell, batch, F32)
    saved = [a.copy() for a in nest.flatten((x, lengths, state))]
    outputs, final = nr.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=state,
                                    time_major=time_major)
    assert split_calls == [numba.get_num_threads()]
    for before, after in zip(saved, nest.flatten((x, lengths, state)), strict=True):
        np.testing.assert_array_equal(after, before)
    for result in nest.flatten((outputs, final)):
        for argument in nest.flatten((x, state)):
            assert not np.shares_memory(result, argument)


# ------------------------------------------------------------------------------ stress
@needs_jit
@needs_threads
def test_many_calls_finish_and_agree(split_ready, split_calls):
    rng = np.random.default_rng(7)
    cells = {dtype: make_cell("peepholes", 257, dtype) for dtype in (F32, F64)}
    cases = []
    for k in range(8):
        dtype = (F32, F64)[k % 2]
        batch = 1 + k % 7
        steps = int(rng.integers(20, 60))
        lengths = rng.integers(0, steps + 1, batch)
        lengths[0] = steps
        cases.append((cells[dtype], random_inputs(dtype, batch, steps, seed=k), lengths))
    calls = 200
    # Each kernel call fails after HANG_SECONDS if the barrier deadlocks (split_calls).
    firsts = [nr.dynamic_rnn(cell, x, sequence_length=n) for cell, x, n in cases]
    for i in range(calls):
        cell, x, lengths = cases[i % len(cases)]
        got = nr.dynamic_rnn(cell, x, sequence_length=lengths)
        assert_identical(got, firsts[i % len(cases)])
    assert split_calls == [numba.get_num_threads()] * (calls + len(cases))
    for (cell, x, lengths), got in zip(cases, firsts):
        assert_close(got, expected(cell, x, lengths), x.dtype.type, ATOL)


# -------------------------------------------------------------- turned off when slowed
class FakePlan:
    def __init__(self, column_parts, waited):
        self.column_parts, self.waited = column_parts, waited


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic() as numba_rnn.plan sees it, set by the test."""
    now = [100.0]
    monkeypatch.setattr(plan_module.time, "monotonic", lambda: now[0])
    return now


def call(guard, clock, column_parts, waited, seconds=0.001):
    """A call of ``seconds`` that starts now, as rnn._Run makes it."""
    started = clock[0]
    clock[0] += seconds
    guard.record(FakePlan(column_parts, waited), started)


def pause_after(guard, clock, waited):
    """Make a split call whose threads waited ``waited`` of their time, then one-thread
    calls for as long as the guard keeps the split off; that time, in seconds."""
    call(guard, clock, 2, waited)
    off = clock[0]
    while not guard.allows():
        call(guard, clock, 0, 0.0)
    return round(clock[0] - off, 3)


def test_guard_turns_the_split_off_after_a_call_that_waited(clock):
    guard = SplitGuard()
    call(guard, clock, 2, 0.0)  # the first call follows no other: not judged
    first = SplitGuard.FIRST_PAUSE
    assert pause_after(guard, clock, 0.0) == 0
    assert pause_after(guard, clock, 0.2) == 0  # below WAITED
    pauses = [pause_after(guard, clock, 0.9) for _ in range(10)]
    assert pauses[:4] == [first, 2 * first, 4 * first, 8 * first]
    assert pauses[-1] == SplitGuard.MAX_PAUSE
    assert pause_after(guard, clock, 0.01) == 0  # kept pace: back to the first pause
    assert pause_after(guard, clock, 0.9) == first


def test_guard_does_not_judge_a_call_after_idle_time(clock):
    guard = SplitGuard()
    call(guard, clock, 2, 0.0)
    clock[0] += 2 * SplitGuard.IDLE  # the threads went to sleep
    call(guard, clock, 2, 0.9)
    assert guard.allows()
    call(guard, clock, 2, 0.9)  # right after the previous one
    assert not guard.allows()


def test_guard_ignores_calls_without_split(clock):
    guard = SplitGuard()
    for _ in range(3):
        call(guard, clock, 0, 0.9)
    assert guard.allows()


@needs_jit
@needs_threads
def test_slowed_split_falls_back_to_one_thread(split_ready, monkeypatch):
    """With the waits of every split call reported high, the next call runs on one thread
    (same numbers, bit for bit); once the pause is over the split is back."""
    guard = SplitGuard()
    monkeypatch.setattr(rnn, "SPLIT_GUARD", guard)
    splits, shares = [], []
    original_split, original_share = lstm_cells.lstm_forward_split, lstm_cells.waited_share
    monkeypatch.setattr(lstm_cells, "lstm_forward_split",
                        lambda *args: splits.append(1) or original_split(*args))

    def share(flags):  # the real share, then reported as if the threads had waited
        shares.append(original_share(flags))
        return 0.9

    monkeypatch.setattr(lstm_cells, "waited_share", share)
    cell = make_cell("plain", 256, F32)
    x = random_inputs(F32, 2)
    first = nr.dynamic_rnn(cell, x)  # judged against nothing before it
    second = nr.dynamic_rnn(cell, x)  # judged: turns the split off
    third = nr.dynamic_rnn(cell, x)
    assert len(splits) == 2, "the third call should have run on one thread"
    assert_identical(third, first)
    assert_identical(second, first)
    assert all(0.0 <= s <= 1.0 for s in shares), shares
    guard.off_until = -np.inf  # the pause is over
    nr.dynamic_rnn(cell, x)
    assert len(splits) == 3


# -------------------------------------------------------------------- sharing a CPU
@numba.njit
def current_cpu():
    return sync._sched_getcpu()


def start_as(flags, part, n_parts):
    """``sync.share_no_cpu`` as part ``part`` starting; returns the CPU it published."""
    sync.share_no_cpu(flags, part, n_parts)
    return flags[part * SLOT + sync.CPU] - 1


@numba.njit(nogil=True)
def wait_with_other_part_on_this_cpu(flags):
    """As part 0, finish step 1 with part 1 last seen on this CPU, and wait for part 1;
    returns the CPU it started on."""
    before = sync._sched_getcpu()
    flags[SLOT + sync.CPU] = before + 1
    sync.finish_step(flags, 0, 2, 1)
    return before


def in_a_thread(function):
    """Run ``function`` on a new thread (whose CPU and affinity it may change); its
    result and the thread's affinity mask at the end."""
    result = {}

    def run():
        result["value"] = function()
        result["allowed"] = os.sched_getaffinity(0)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result["value"], result["allowed"]


needs_cpus = pytest.mark.skipif(
    JIT_DISABLED or not sys.platform.startswith("linux")
    or len(os.sched_getaffinity(0)) < 2,
    reason="needs compiled code, Linux and two CPUs")


@needs_cpus
@pytest.mark.parametrize("part", [0, 1])
def test_part_leaves_the_cpu_another_part_runs_on(part):
    allowed = os.sched_getaffinity(0)

    def start_where_the_other_part_is():
        flags = sync.step_flags(2)
        cpu = current_cpu()
        flags[(1 - part) * SLOT + sync.CPU] = cpu + 1  # the other part: on this CPU
        published = start_as(flags, part, 2)
        return cpu, published

    for _ in range(5):  # a thread that migrates on its own before starting: try again
        (before, published), allowed_after = in_a_thread(start_where_the_other_part_is)
        if published != before:
            break
    assert published != before
    assert allowed_after == allowed


@needs_cpus
def test_waiting_part_leaves_the_cpu_of_the_part_it_waits_for():
    allowed = os.sched_getaffinity(0)
    finished = sync.step_flags(2)
    finished[SLOT] = 1
    wait_with_other_part_on_this_cpu(finished)  # compiled now, not while timed below

    def wait(flags, result):
        result["before"] = wait_with_other_part_on_this_cpu(flags)
        result["allowed"] = os.sched_getaffinity(0)

    for _ in range(5):  # a thread that migrates on its own before waiting: try again
        flags = sync.step_flags(2)
        result = {}
        thread = threading.Thread(target=wait, args=(flags, result))
        thread.start()
        time.sleep(0.05)  # part 0 waits
        published = flags[sync.CPU] - 1  # where part 0 is now
        flags[SLOT] = 1  # part 1 finishes step 1
        thread.join(HANG_SECONDS)
        assert not thread.is_alive()
        if published not in (-1, result["before"]):
            break
    assert published not in (-1, result["before"])
    assert result["allowed"] == allowed


@needs_cpus
def test_part_stays_on_a_cpu_of_its_own():
    def start_alone():
        flags = sync.step_flags(2)
        cpu = current_cpu()
        return cpu, start_as(flags, 1, 2), flags[sync.CPU]

    for _ in range(5):  # a thread that migrates on its own before starting: try again
        (before, published, other), allowed_after = in_a_thread(start_alone)
        if published == before:
            break
    assert published == before
    assert other == 0  # part 0 has not started
    assert allowed_after == os.sched_getaffinity(0)


# ------------------------------------------------------------------------ without JIT
def test_no_barrier_without_jit(monkeypatch):
    """Without compilation the split is never chosen, even with a safe layer reported."""
    if not JIT_DISABLED:
        pytest.skip("only meaningful with NUMBA_DISABLE_JIT=1")
    assert rnn._barrier_safe(2) is False
    monkeypatch.setattr(rnn, "_threading_layer", lambda: "omp")
    assert rnn._barrier_safe(2) is False

    def forbidden(*args):
        raise AssertionError("lstm_forward_split would deadlock without JIT")

    monkeypatch.setattr(lstm_cells, "lstm_forward_split", forbidden)
    cell = make_cell("plain", 256, F64)
    x = random_inputs(F64, 2)
    lengths = np.array([T, 9])
    got = nr.dynamic_rnn(cell, x, sequence_length=lengths, parallel_iterations=2)
    assert_close(got, expected(cell, x, lengths), F64, ATOL)
