"""``numba-rnn bench`` and numba_rnn.bench: smoke runs at a tiny scale, the table, the JSON,
bad options, and the pieces (workloads, checks, the interleaved loop).

The runs use the hidden ``--scale`` option (B, T, D, H multiplied by it) and ``--quick``
so they take seconds; the timings themselves are not tested.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from numba_rnn import cli
from numba_rnn.bench import peers, runner
from numba_rnn.bench.workloads import FORWARD, TRAIN, WORKLOADS, make_data, parse_names

PEERS = [e for e in peers.ENGINES[1:] if peers.available(e)]
# With peers installed the default-engine run builds them all (TensorFlow alone takes
# seconds to import): then it is a slow test.
SLOW_IF_PEERS = [pytest.mark.slow] if PEERS else []
TINY = ["--quick", "--scale", "0.05", "--rounds", "2"]


def table_rows(out):
    """{(workload, engine): [cells]} from the printed table; rows under a workload with
    its name left blank belong to the row above."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("workload "))
    rows, current = {}, None
    for line in lines[start + 2:]:
        if line.startswith("- "):
            break
        if not line.strip():
            continue
        cells = line.split()
        if not line.startswith(" "):
            current = cells[0]
            cells = cells[cells.index("forward" if "forward" in cells else "train") + 1:]
        engine = cells[0] if cells[0] != "ONNX" else "ONNX Runtime"
        rows[current, engine] = cells[-5:]
    return rows


@pytest.mark.parametrize("marks", [pytest.param(None, marks=SLOW_IF_PEERS, id="default")])
def test_smoke_run_prints_the_table_and_writes_json(marks, tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert cli.main(["bench", "--work", "W1,W4", *TINY, "--json", str(path)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "sgemm peak:" in out and "load average" in out
    assert "W1: LSTM B=1 T=8 D=13 H=13, forward" in out
    assert "W4: GRU B=2 T=5 D=6 H=16, train" in out
    rows = table_rows(out)
    assert {w for w, _ in rows} == {"W1", "W4"}
    assert ("W1", "numba_rnn") in rows and ("W4", "numba_rnn") in rows
    for cells in rows.values():
        median, iqr, ratio, gflops, percent = map(float, cells)
        assert median > 0 and iqr >= 0 and ratio >= 1.0 and gflops > 0 and percent > 0
    assert min(float(c[2]) for (w, _), c in rows.items() if w == "W1") == 1.0
    assert "reset_after" in out  # the GRU's form is named in the table
    for engine in peers.ENGINES[1:]:
        if engine not in PEERS:
            assert f"{peers.LABELS[engine]} skipped: not installed" in out
    assert f"results written to {path}" in out
    # the progress line(s) go to stderr, not into the table
    assert "W1 numba_rnn: building" in captured.err
    assert "building" not in out

    report = json.loads(path.read_text())
    assert report["threads"] >= 1 and report["dtype"] == "float32"
    peak = report["gemm_peak"]
    assert peak["size"] == 1024
    assert peak["gflops"] == max(peak["start_gflops"], peak["end_gflops"]) > 0
    assert [w["name"] for w in report["workloads"]] == ["W1", "W4"]
    for w in report["workloads"]:
        for row in w["rows"]:
            assert row["percent_of_peak"] == pytest.approx(100 * row["gflops"] / peak["gflops"])
        first = w["rows"][0]
        assert first["engine"] == "numba_rnn" and first["check"] is None
        assert first["rounds"] == len(first["times_ms"]) >= 2
        assert first["median_ms"] == pytest.approx(np.median(first["times_ms"]), rel=1e-3)
        assert not w["failed"]
    assert report["command"][:2] == ["numba-rnn", "bench"]


def test_float64_and_one_engine(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert cli.main(["bench", "--work", "w3", "--dtype", "float64", "--engines", "numba_rnn",
                     "--threads", "1", *TINY, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "% dgemm" in out and "dgemm peak" in out and "float64" in out
    report = json.loads(path.read_text())
    assert report["dtype"] == "float64" and report["threads"] == 1
    (workload,) = report["workloads"]
    assert [r["engine"] for r in workload["rows"]] == ["numba_rnn"]
    assert workload["skipped"] == []  # --engines: the others were not asked for


@pytest.mark.parametrize("argv", [
    ["--work", "W9"], ["--work", ""], ["--work", "W1,X"], ["--threads", "0"],
    ["--threads", "100000"], ["--threads", "two"], ["--dtype", "float16"],
    ["--rounds", "0"], ["--max-seconds", "-1"], ["--engines", "mxnet"], ["--scale", "2"],
    ["--json", "/no/such/directory/out.json"], ["--quick", "extra"], ["--plot"],
])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *argv])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_json_to_a_directory_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--json", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is a directory" in capsys.readouterr().err


def test_plot_without_matplotlib_says_so_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec then reports absent
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--plot", str(tmp_path / "chart.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "numba-rnn[plot]" in err


def test_plot_with_matplotlib(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "chart.png"
    assert cli.main(["bench", "--work", "W1", "--engines", "numba_rnn", *TINY,
                     "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"chart written to {path}" in capsys.readouterr().out


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--work", "--threads", "--dtype", "--quick", "--json", "--plot"):
        assert option in out
    assert "--scale" not in out  # for tests only


def test_the_package_imports_no_peer():
    code = ("import sys, numba_rnn.bench.runner, numba_rnn.bench.peers, numba_rnn.cli; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'onnxruntime', "
            "'matplotlib', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------- the pieces
def test_workload_table():
    assert list(WORKLOADS) == [f"W{k}" for k in range(1, 8)]
    assert FORWARD == ["W1", "W2", "W7"] and TRAIN == ["W3", "W4", "W5", "W6"]
    assert parse_names("w7,W1, w1") == ["W1", "W7"]
    with pytest.raises(ValueError, match="W8"):
        parse_names("W1,W8")
    w3 = WORKLOADS["W3"]
    assert w3.flops() == 3 * 2 * 32 * 100 * (123 + 320) * 4 * 320
    w5 = WORKLOADS["W5"]
    data = make_data(w5)
    assert np.all((data.lengths >= 100) & (data.lengths <= 200))
    assert w5.flops(data.lengths) == 3 * 2 * int(data.lengths.sum()) * 2 * 443 * 4 * 320
    assert len(data.weights) == 2 and data.weights[0][0].shape == (443, 1280)
    gru = make_data(WORKLOADS["W4"].scaled(0.1))
    assert [w.shape for w in gru.weights] == [(44, 64), (64,), (44, 32), (32,), (32,)]
    again = make_data(WORKLOADS["W4"].scaled(0.1), dtype=np.float64)
    assert again.inputs.dtype == np.float64
    np.testing.assert_array_equal(again.inputs, gru.inputs)


def test_compare_forward_is_absolute_and_train_relative():
    want = {"a": np.array([1.0, -200.0]), "b": np.zeros(2)}
    got = {"a": np.array([1.0, -200.1]), "b": np.array([0.0, 1e-5])}
    diff, where = peers.compare(got, want, "forward")
    assert where == "a" and diff == pytest.approx(0.1)
    diff, where = peers.compare({"a": got["a"]}, {"a": want["a"]}, "train")
    assert diff == pytest.approx(0.1 / 200)
    nan = {"a": np.array([np.nan, 0.0]), "b": np.zeros(2)}
    assert peers.compare(nan, want, "forward")[0] != peers.compare(nan, want, "forward")[0]
    assert peers.compare({"a": np.zeros(3), "b": np.zeros(2)}, want, "forward")[0] == np.inf


@pytest.mark.parametrize("name", ["W3", "W4", "W5"])
def test_numba_rnn_training_values(name):
    """The numba_rnn runner's gradients are the named, TF-layout arrays the peers are
    checked against."""
    workload = WORKLOADS[name].scaled(0.05)
    data = make_data(workload)
    values = peers.build("numba_rnn", workload, data, threads=1).values()
    assert values["d inputs"].shape == data.inputs.shape
    d, h = workload.depth, workload.units
    expected = {"W3": {"d kernel": (d + h, 4 * h)},
                "W4": {"d gates/kernel": (d + h, 2 * h), "d candidate/kernel": (d + h, h)},
                "W5": {"d kernel fw": (d + h, 4 * h), "d kernel bw": (d + h, 4 * h)}}[name]
    assert {k: v.shape for k, v in values.items() if k != "d inputs"} == expected
    assert all(np.all(np.isfinite(v)) and np.any(v != 0) for v in values.values())


class _Fake:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def run(self):
        self.log.append(self.name)


def test_interleaved_gives_every_engine_a_turn_per_round():
    log = []
    fakes = {name: _Fake(log, name) for name in "abc"}
    times = runner.interleaved(fakes, rounds=4, max_seconds=60, pause=0,
                               rewarm={"a": 0, "b": 0, "c": 0})
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(sorted(log[k:k + 3]) == ["a", "b", "c"] for k in range(0, 12, 3))
    assert len({tuple(log[k:k + 3]) for k in range(0, 12, 3)}) > 1  # the order changes
    log.clear()
    times = runner.interleaved(fakes, rounds=50, max_seconds=0, min_rounds=2, pause=0,
                               rewarm={"b": 0})
    assert len(times["a"]) == 2  # out of time: stops after the minimum
    # a turn is an untimed call then the timed one, unless rewarm says 0
    assert log.count("a") == 4 and log.count("b") == 2 and log.count("c") == 4


def test_progress_lines_without_a_terminal():
    import io

    stream = io.StringIO()
    progress = runner.Progress(stream)
    progress("W1 torch: building")
    progress("round 1/3", transient=True)  # only rewritten in place on a terminal
    progress.clear()
    assert stream.getvalue() == "W1 torch: building\n"
