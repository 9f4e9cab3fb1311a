"""Each example's key claim, read from what it prints (test_cli.py only checks they run)."""
import pathlib
import re
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


@pytest.fixture
def run_example(capsys):
    def run(name):
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    return run


def floats_after(label, text):
    return [float(v) for v in re.findall(re.escape(label) + r"\s*([-+]?\d[\d.e+-]*)", text)]


# The two training-heavy examples take 20-40 s each with NUMBA_DISABLE_JIT=1 (tox -e nojit
# deselects "slow"); compiled, they take a second or two.
@pytest.mark.slow
def test_char_rnn_loss_falls_and_carried_state_reproduces_the_text(run_example):
    out = run_example("char_rnn.py")
    first, last = map(float, re.search(r"loss fell from ([\d.]+) to ([\d.]+)", out).groups())
    assert last < first - 1.5
    step_losses = floats_after("loss", out)
    assert step_losses[-1] < step_losses[0]
    carried = re.search(r"state carried: '(.*)'", out).group(1)
    dropped = re.search(r"state dropped: '(.*)'", out).group(1)
    assert carried.startswith("row, row, row your boat, gently down the stream.")
    assert "row your boat" not in dropped  # without the state it cannot follow the text


def test_stateful_timeseries_carried_state_beats_reset(run_example):
    out = run_example("stateful_timeseries.py")
    carried = floats_after("carried state: final loss", out)[0]
    reset = floats_after("reset state: final loss", out)[0]
    assert carried < reset
    assert "carried < reset: True" in out
    # The difference is at the start of each window, where the reset model knows nothing.
    first_carried = float(re.search(r"carried state: .*first step of a window ([\d.]+)",
                                    out).group(1))
    first_reset = float(re.search(r"reset state: .*first step of a window ([\d.]+)",
                                  out).group(1))
    assert first_carried < first_reset / 2


@pytest.mark.slow
def test_variable_length_classification_accuracy_rises(run_example):
    out = run_example("variable_length_classification.py")
    accuracies = [float(a) for a in re.findall(r"step +\d+ .*test accuracy ([\d.]+)", out)]
    assert len(accuracies) >= 3
    assert accuracies[-1] > accuracies[0] + 0.3
    assert accuracies[-1] > 0.8
    assert f"accuracy rose from {accuracies[0]:.3f} to {accuracies[-1]:.3f}" in out
    # Reading the padding as data (no sequence_length) costs accuracy.
    ignoring = float(re.search(r"ignoring sequence_length: test accuracy ([\d.]+)",
                               out).group(1))
    assert ignoring < accuracies[-1] - 0.05


def test_seq2seq_entries_stop_separately_and_emit_zeros_after(run_example):
    out = run_example("seq2seq_greedy_decode.py")
    rows = re.findall(r"-> (.*?)\s+stopped on (END|max length) after (\d+) tokens, "
                      r"zero emits after: (\w+)", out)
    assert len(rows) == 5
    assert {reason for _, reason, _, _ in rows} == {"END", "max length"}
    assert len({n for _, _, n, _ in rows}) > 1            # entries stop at different steps
    for decoded, reason, n, zeros_after in rows:
        tokens = decoded.split()
        assert zeros_after == "True"
        assert all(t == "<pad>" for t in tokens[int(n):])
        assert "<pad>" not in tokens[:int(n)]
        assert (tokens[int(n) - 1] == "<end>") == (reason == "END")
    assert "final state of every entry = its state after its last token: True" in out


def test_state_saving_segments_equal_one_long_run(run_example):
    out = run_example("state_saving.py")
    segmented = floats_after("one long dynamic_rnn| outputs:", out)[0]
    assert segmented < 1e-5
    assert floats_after("final h:", out)[0] < 1e-5
    assert floats_after("restarting every segment instead: max difference", out)[0] > 1e-2
    streams = floats_after("one long run|", out)
    assert len(streams) == 2 and max(streams) < 1e-5
    assert "restarts from zeros: True" in out
