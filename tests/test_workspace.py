"""Scratch memory kept between calls (numba_rnn.workspace), and the engine's use of it:
the same memory again on the next call, results unchanged, one set per Python thread.

Every test runs with scratch memory handed out full of NaN (conftest), so a kernel that
reads scratch it did not write fails the gradient and forward tests elsewhere; here the
reuse itself is checked.
"""
import threading

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import workspace


@pytest.fixture(autouse=True)
def fresh_workspace():
    workspace.clear()
    yield
    workspace.clear()


def test_same_key_same_memory_aligned():
    a = workspace.scratch("k", (3, 5), np.float32)
    b = workspace.scratch("k", (15,), np.float32)
    assert a.shape == (3, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % workspace.ALIGN == 0
    assert np.shares_memory(a, b)
    c = workspace.scratch("other", (3, 5), np.float32)
    assert not np.shares_memory(a, c)
    assert workspace.kept_bytes() >= 2 * 60


def test_grows_and_poisons():
    small = workspace.scratch("k", (4,), np.float64)
    big = workspace.scratch("k", (1000,), np.float64)
    assert big.shape == (1000,) and not np.shares_memory(small, big)
    assert np.isnan(big).all()  # POISON is on in the tests
    assert np.shares_memory(big, workspace.scratch("k", (10,), np.float64))


def test_limit(monkeypatch):
    monkeypatch.setattr(workspace, "LIMIT", 1000)
    workspace.scratch("kept", (100,), np.float32)  # 400 bytes (+ alignment slack)
    big = workspace.scratch("too big", (200,), np.float32)
    assert not np.shares_memory(big, workspace.scratch("too big", (200,), np.float32))
    assert workspace.kept_bytes() <= 1000


def test_one_set_per_thread():
    here = workspace.scratch("k", (10,), np.float32)
    there = []
    thread = threading.Thread(target=lambda: there.append(workspace.scratch("k", (10,),
                                                                            np.float32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(here, there[0])


def test_clear():
    workspace.scratch("k", (10,), np.float32)
    workspace.clear()
    assert workspace.kept_bytes() == 0


@pytest.mark.parametrize("make_cell", [
    lambda: nr.BasicLSTMCell(24, seed=1),
    lambda: nr.GRUCell(24, reset_after=True, seed=1),
    lambda: nr.BasicRNNCell(24, seed=1),
], ids=["lstm", "gru", "basic"])
def test_training_reuses_scratch_and_repeats_results(make_cell):
    """A second training step keeps no new scratch memory and gives the same gradients,
    with variable lengths (gate gradients zeroed past the ends) and without."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 7, 5))
    cell = make_cell()
    for lengths in (None, [7, 3, 0, 5, 7, 1, 2, 6, 4]):
        def step(lengths=lengths):
            (out, _), backward = nr.vjp(nr.dynamic_rnn, cell, x, sequence_length=lengths,
                                        dtype=np.float64)
            return backward((np.ones_like(out), None))

        first = step()
        kept = workspace.kept_bytes()
        second = step()
        assert kept > 0 and workspace.kept_bytes() == kept
        for a, b in zip([first.inputs, *first.weights], [second.inputs, *second.weights]):
            np.testing.assert_array_equal(a, b)


def test_frozen_cell_keeps_its_panels_out_of_scratch():
    """Frozen panels are kept with the cell, never in scratch memory that the next call
    overwrites."""
    cell = nr.BasicLSTMCell(16, seed=2)
    x = np.random.default_rng(1).standard_normal((3, 4, 8)).astype(np.float32)
    expected, _ = nr.dynamic_rnn(cell, x, dtype=np.float32)
    cell.freeze()
    workspace.clear()
    nr.dynamic_rnn(cell, x, dtype=np.float32)
    assert workspace.kept_bytes() == 0
    other = nr.BasicLSTMCell(16, seed=3)
    nr.dynamic_rnn(other, x, dtype=np.float32)  # unfrozen: packs into scratch
    again, _ = nr.dynamic_rnn(cell, x, dtype=np.float32)
    np.testing.assert_array_equal(again, expected)
