"""The numba-rnn command and the examples run and say what they should."""
import io
import pathlib
import runpy

import numba
import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import cli, demo
from numba_rnn import rnn as rnn_module
from numba_rnn.kernels import basic_rnn as kernels_basic_rnn
from numba_rnn.kernels import gru as kernels_gru
from numba_rnn.kernels import lstm as kernels_lstm
from numba_rnn.kernels import panels, products
from numba_rnn.plan import SplitGuard

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))
SLOW_WITHOUT_JIT = {"char_rnn.py", "variable_length_classification.py"}


def test_demo_trains_and_samples(capsys):
    losses = demo.run(units=32, steps=40, batch=8, window=32, sample_length=50, seed=1)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3  # the loss clearly falls
    out = capsys.readouterr().out
    assert "step   40/40" in out and "--- sample (temperature 0.7) ---" in out
    sample = out.rsplit("---\n", 1)[1]
    assert len(sample.rstrip("\n")) >= 51


def test_demo_is_deterministic_with_a_seed():
    first = demo.run(units=16, steps=5, batch=4, window=16, sample_length=5, seed=3,
                     out=io.StringIO())
    second = demo.run(units=16, steps=5, batch=4, window=16, sample_length=5, seed=3,
                      out=io.StringIO())
    assert first == second


@pytest.mark.parametrize("argv", [["demo", "--units", "0"], ["demo", "--cell", "elman"],
                                  ["demo", "--steps", "x"], ["demo", "--temperature", "0"],
                                  ["demo", "--temperature", "-1"], []])
def test_bad_arguments_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def kernel_signatures():
    """Every compiled kernel's signatures so far, by kernel."""
    found = {}
    for module in (kernels_basic_rnn, kernels_gru, kernels_lstm, products, panels):
        for name, value in vars(module).items():
            if isinstance(value, numba.core.dispatcher.Dispatcher):
                found[f"{module.__name__}.{name}"] = set(value.signatures)
    return found


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing is compiled without JIT")
def test_warmup_compiles_what_usual_calls_need(capsys, monkeypatch):
    """After ``numba-rnn warmup``, the usual calls compile nothing more: every kernel
    signature they use is in the on-disk cache (the first call of a fresh install). The
    warmup splits LSTM calls even if the guard had turned the split off, as after a
    call whose threads were slow to wake; the usual calls here split."""
    guard = SplitGuard()
    monkeypatch.setattr(rnn_module, "SPLIT_GUARD", guard)
    guard.off_until = np.inf
    assert cli.main(["warmup"]) == 0
    assert "kernels ready" in capsys.readouterr().out
    guard.reset()
    before = kernel_signatures()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for batch, units in [(1, 256), (4, 16), (40, 16)]:  # split or one thread; chunks
            x = rng.standard_normal((batch, 5, 7)).astype(dtype)
            for cell in (nr.BasicLSTMCell(units, dtype=dtype),
                         nr.LSTMCell(units, use_peepholes=True, dtype=dtype),
                         nr.GRUCell(units, dtype=dtype), nr.BasicRNNCell(units, dtype=dtype)):
                (out, _), backward = nr.vjp(nr.dynamic_rnn, cell, x)
                backward((out, None))
                nr.dynamic_rnn(cell.freeze(), x)
                cell(x[:, 0], None)  # one step of a frozen cell
                nr.dynamic_rnn(cell, np.asfortranarray(x), time_major=True)
    after = kernel_signatures()
    new = {name: after[name] - before.get(name, set()) for name in after}
    assert not {name: s for name, s in new.items() if s}


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_WITHOUT_JIT else p
    for p in EXAMPLES], ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out


def test_quickstart_prints_what_its_comments_say(capsys):
    runpy.run_path(str(EXAMPLES[0].with_name("quickstart.py")), run_name="__main__")
    assert capsys.readouterr().out.split("\n") == ["(3, 6, 16)", "0.0", "True", "0.0", ""]
