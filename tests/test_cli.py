"""The numba-rnn command and the examples run and say what they should."""
import pathlib
import runpy

import pytest

from numba_rnn import cli

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


def test_demo_shows_masking_and_carried_state(capsys):
    assert cli.main(["demo", "--units", "16", "--repeats", "2", "--segment", "50"]) == 0
    out = capsys.readouterr().out
    assert "max |output| there: 0.0)" in out
    assert "run in 18 segments of 50" in out
    gap = float(out.rsplit("max difference from one call ", 1)[1].split()[0])
    assert gap < 1e-5


@pytest.mark.parametrize("argv", [["demo", "--units", "0"], ["demo", "--cell", "elman"],
                                  ["demo", "--segment", "x"], []])
def test_bad_arguments_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_warmup(capsys):
    assert cli.main(["warmup"]) == 0
    assert "kernels ready" in capsys.readouterr().out


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out


def test_quickstart_prints_what_its_comments_say(capsys):
    runpy.run_path(str(EXAMPLES[0].with_name("quickstart.py")), run_name="__main__")
    assert capsys.readouterr().out.split("\n") == ["(3, 6, 16)", "0.0", "True", "0.0", ""]
