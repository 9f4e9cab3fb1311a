"""``cell.freeze()``: inference mode, where the forms the kernels make of the weights
(packed panels, folded bias, the column split's parts) are made once and kept.

Checked here: a frozen cell gives bit-for-bit the results of the same cell unfrozen, on
every path that uses kept forms (row chunks, the column split, one-thread runs, the
compiled raw_rnn loop, gradients); its weights are read-only; nothing stale is ever
used: after ``set_weights``, ``unfreeze`` and a change, or a weight made writeable behind
``freeze``'s back and changed, the results follow the new weights (against the NumPy
reference); freezing an unbuilt cell is a clear error; the caller's arrays are untouched.
"""
import numba
import numpy as np
import pytest
from reference import reference_dynamic_rnn

import numba_rnn as nr
from numba_rnn import kernels as kernel_modules
from numba_rnn import nest, rnn
from numba_rnn.cells import lstm as lstm_cells
from numba_rnn.kernels.lstm import pack_split, split_units
from numba_rnn.training import SGD

F32, F64 = np.float32, np.float64
ATOL = {F32: 1e-5, F64: 1e-10}
D = 6

CELLS = {
    "basic_rnn": lambda h, dt: nr.BasicRNNCell(h, dtype=dt),
    "gru": lambda h, dt: nr.GRUCell(h, dtype=dt),
    "gru_reset_after": lambda h, dt: nr.GRUCell(h, reset_after=True, dtype=dt),
    "basic_lstm": lambda h, dt: nr.BasicLSTMCell(h, dtype=dt),
    "lstm_all": lambda h, dt: nr.LSTMCell(h, use_peepholes=True, cell_clip=0.5, num_proj=3,
                                          proj_clip=0.4, forget_bias=0.3, dtype=dt),
    "lstm_peepholes": lambda h, dt: nr.LSTMCell(h, use_peepholes=True, dtype=dt),
    "multi": lambda h, dt: nr.MultiRNNCell([nr.BasicLSTMCell(h, dtype=dt),
                                            nr.GRUCell(3, dtype=dt)]),
}
# (units, batch, steps): rows split into chunks; a batch too small for that (with 257
# units an LSTM splits its columns instead, with 2+ threads); one short run.
SHAPES = [(5, 12, 9), (257, 2, 12), (4, 1, 3)]


def built(name, units, dtype, seed=0):
    cell = CELLS[name](units, dtype)
    cell.build(D, dtype=dtype)
    rng = np.random.default_rng(seed)
    scale = 1.5 / np.sqrt(D + units)
    cell.set_weights([rng.uniform(-scale, scale, w.shape) for w in cell.get_weights()])
    return cell


def inputs(dtype, batch, steps, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, steps, D)).astype(dtype)


def assert_identical(actual, wanted):
    for a, w in zip(nest.flatten(actual), nest.flatten(wanted), strict=True):
        assert a.dtype == w.dtype and a.shape == w.shape
        np.testing.assert_array_equal(a, w)


def assert_reference(cell, x, got, lengths=None):
    want = reference_dynamic_rnn(cell, x.astype(F64), lengths)
    for a, w in zip(nest.flatten(got), nest.flatten(want), strict=True):
        np.testing.assert_allclose(a, w, rtol=ATOL[a.dtype.type], atol=ATOL[a.dtype.type])


def run_all(cell, x, lengths):
    """Every path a frozen cell's kept forms feed: threads (row chunks or column split),
    one thread, and gradients."""
    results = [nr.dynamic_rnn(cell, x, sequence_length=lengths),
               nr.dynamic_rnn(cell, x, sequence_length=lengths, parallel_iterations=1)]
    (outputs, state), backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths)
    grads = backward((np.ones_like(outputs), None))
    return results + [(outputs, state), grads.inputs, grads.weights]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("units, batch, steps", SHAPES)
@pytest.mark.parametrize("name", list(CELLS))
def test_frozen_results_are_the_unfrozen_ones(name, units, batch, steps, dtype):
    cell = built(name, units, dtype)
    x = inputs(dtype, batch, steps)
    lengths = np.arange(batch) % steps + 1
    unfrozen = run_all(cell, x, lengths)
    assert cell.freeze() is cell and cell.frozen
    for _ in range(2):  # the first call makes the kept forms, the second uses them
        assert_identical(run_all(cell, x, lengths), unfrozen)
    assert_reference(cell, x, unfrozen[0], lengths)
    cell.unfreeze()
    assert not cell.frozen
    assert_identical(run_all(cell, x, lengths), unfrozen)


RAW_X = np.random.default_rng(2).standard_normal((4, 2, D)).astype(F32)
RAW_STATE0 = nr.LSTMStateTuple(np.zeros((2, 5), F32), np.zeros((2, 5), F32))


@numba.njit
def _loop_fn(time, cell_output, cell_state, loop_state):
    """raw_rnn over RAW_X, from a zero state (as in test_raw_rnn_compiled.py)."""
    finished = np.full(2, time >= RAW_X.shape[0])
    if cell_output is None:
        return finished, RAW_X[0].copy(), RAW_STATE0, None, 0
    next_input = np.zeros_like(RAW_X[0]) if time >= RAW_X.shape[0] else RAW_X[time].copy()
    return finished, next_input, cell_state, cell_output, loop_state + 1


def test_compiled_raw_rnn_loop():
    cell = built("basic_lstm", 5, F32)
    emit_ta, state, _ = nr.raw_rnn(cell, _loop_fn)
    frozen_ta, frozen_state, _ = nr.raw_rnn(cell.freeze(), _loop_fn)
    assert_identical((frozen_ta.stack(), frozen_state), (emit_ta.stack(), state))
    assert np.abs(emit_ta.stack()).max() > 0.05


@pytest.mark.parametrize("name", ["basic_rnn", "gru", "lstm_all", "multi"])
def test_weights_are_read_only_while_frozen(name):
    cell = built(name, 4, F32).freeze()
    for w in cell.trainable_variables:
        with pytest.raises(ValueError, match="read-only"):
            w[0] = 1.0
    params = cell.trainable_variables
    with pytest.raises(ValueError, match="read-only"):
        SGD(0.1).step(params, [np.ones_like(p) for p in params])
    cell.unfreeze()
    assert all(w.flags.writeable for w in cell.trainable_variables)


@pytest.mark.parametrize("units, batch", [(5, 12), (257, 2)])
@pytest.mark.parametrize("name", ["basic_rnn", "gru", "basic_lstm", "lstm_all", "multi"])
def test_nothing_stale_after_a_change(name, units, batch):
    """Each way of changing a frozen cell's weights is seen by the next call."""
    cell = built(name, units, F32).freeze()
    x = inputs(F32, batch, 6)
    before = nr.dynamic_rnn(cell, x)

    # set_weights: the cell stays frozen, with the new weights.
    new = [w * np.float32(0.5) for w in cell.get_weights()]
    cell.set_weights(new)
    assert cell.frozen and not any(w.flags.writeable for w in cell.trainable_variables)
    got = nr.dynamic_rnn(cell, x)
    assert not np.array_equal(got[0], before[0])
    assert_reference(cell, x, got)

    # unfreeze, change in place, freeze again.
    cell.unfreeze()
    for w in cell.trainable_variables:
        w *= np.float32(-1.0)
    cell.freeze()
    assert_reference(cell, x, nr.dynamic_rnn(cell, x))

    # A weight made writeable behind freeze's back and changed: no kept form is used.
    layers = cell.cells if name == "multi" else [cell]
    kernel = layers[0].trainable_variables[0]
    kernel.flags.writeable = True
    kernel *= np.float32(1.5)
    assert_reference(cell, x, nr.dynamic_rnn(cell, x))


def test_freeze_needs_weights_and_leaves_the_callers_arrays():
    cell = nr.BasicLSTMCell(4)
    with pytest.raises(ValueError, match=r"cell 'basic_lstm_cell' has no weights yet.*freeze"):
        cell.freeze()
    weights = [np.ones((D + 4, 16), F32), np.zeros(16, F32)]
    cell.set_weights(weights)
    cell.freeze()
    assert all(w.flags.writeable for w in weights)
    assert all(w.flags.writeable for w in cell.get_weights())  # copies


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("hidden, n_parts", [(256, 2), (257, 2), (259, 3), (2, 3), (40, 1)])
def test_pack_split(hidden, n_parts, dtype):
    """Part q of ``pack_split``: its units' columns of the 4 gate blocks side by side, in
    panels of 128 bytes ([panel, k, column]), zero past them."""
    w = np.random.default_rng(0).standard_normal((7, 4 * hidden)).astype(dtype)
    width = 128 // w.itemsize
    packed = pack_split(w, n_parts)
    per_part = -(-hidden // n_parts)
    assert packed.shape == (n_parts, -(-4 * per_part // width), 7, width)
    for part in range(n_parts):
        k0, k1 = split_units(hidden, n_parts, part)
        columns = np.concatenate([w[:, g * hidden + k0:g * hidden + k1] for g in range(4)],
                                 axis=1)
        padded = np.zeros((7, packed.shape[1] * width), dtype)
        padded[:, :columns.shape[1]] = columns
        want = padded.reshape(7, packed.shape[1], width).transpose(1, 0, 2)
        np.testing.assert_array_equal(packed[part], want)


@pytest.mark.skipif(numba.config.DISABLE_JIT or numba.get_num_threads() < 2,
                    reason="the column split needs JIT and 2+ threads")
def test_column_split_uses_kept_parts(monkeypatch, always_split):
    """A frozen cell's column split packs its parts once, not on every call."""
    cell = built("basic_lstm", 257, F32).freeze()
    x = inputs(F32, 2, 12)
    nr.dynamic_rnn(cell, x)  # the threading layer, which the split needs, is known after it
    packs = []
    monkeypatch.setattr(lstm_cells, "pack_split", lambda *a: packs.append(1) or pack_split(*a))
    cell.set_weights(cell.get_weights())  # kept forms dropped
    for _ in range(3):
        nr.dynamic_rnn(cell, x)
    if rnn._barrier_safe(numba.get_num_threads()):
        assert packs == [1, 1]  # W_x and W_h, on the first call only


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiled kernels without JIT")
def test_kernels_never_get_read_only_arrays():
    """Numba compiles read-only arrays as a type of their own: a frozen cell handing its
    read-only weights to a kernel would compile every kernel a second time. (Only the
    signatures this test adds count: other tests may pass read-only arrays of their own.)"""
    before = set(_signatures())
    for name in CELLS:
        for units, batch, steps in SHAPES[:2]:
            cell = built(name, units, F32).freeze()
            run_all(cell, inputs(F32, batch, steps), None)
            cell(inputs(F32, batch, 1)[:, 0], None)  # one step
    nr.raw_rnn(built("basic_lstm", 5, F32).freeze(), _loop_fn)
    read_only = [f"{name}{sig}" for name, sig in set(_signatures()) - before
                 if any(map(_read_only, sig))]
    assert read_only == []


def _signatures():
    for module in (kernel_modules.lstm, kernel_modules.gru, kernel_modules.basic_rnn,
                   kernel_modules.products, kernel_modules.panels):
        for name, f in vars(module).items():
            for sig in getattr(f, "signatures", ()):
                yield f"{module.__name__}.{name}", sig


def _read_only(numba_type):
    if isinstance(numba_type, numba.types.BaseTuple):
        return any(map(_read_only, numba_type.types))
    return isinstance(numba_type, numba.types.Array) and not numba_type.mutable
