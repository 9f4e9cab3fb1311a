"""``numba-rnn bench``: the anchor workloads on numba_rnn and every installed peer, side by
side in one process, interleaved round by round.

For each workload every engine is built with the same weights and inputs, checked
against numba_rnn (outputs, or gradients for training), warmed up, and then timed in
rounds: each round gives every engine a turn, in a new random order, after a short pause
(so that one engine's spinning worker threads do not steal a core from the next). A turn
is one untimed call and then the timed one, so that the timed call finds the engine's
threads awake and its data in cache, as in a loop of calls (without it, waking PyTorch's
OpenMP threads doubled its W1 time here); calls longer than ``REWARM_BELOW`` are timed
without it. Load from other processes that comes and goes thus lands on all engines
alike; the CPU time other processes took during each workload is recorded.
The table gives per engine the median time per call, its interquartile range, the ratio
to the fastest engine's median, GFLOP/s at the median (matrix products only, see
``Workload.forward_flops``; for variable lengths only the steps that run) and that as a
percentage of the machine's GEMM peak: NumPy's 1024^3 product at the same thread count,
the best of a few calls at the start and again at the end (a shared machine can be slow
at one of the two; the better one counts).

Only numpy and numba are imported at module level; peers, and matplotlib for
``plot``, are imported when used.
"""
import datetime
import json
import os
import platform
import random
import sys
import textwrap
import time

import numba
import numpy as np

from .. import threads
from . import peers
from .peers import ENGINES, LABELS, PeerUnavailable
from .workloads import CELL_NAMES, WORKLOADS, make_data

# Before each engine's turn in a round: lets the previous engine's spinning worker
# threads go to sleep, so they do not steal a core from the next engine. 20 ms was not
# enough after ONNX Runtime: the next engine's W1 calls were 1.5x slower in 12 of 40
# rounds (4 of 40 after 50 ms, 2 after 100 ms).
PAUSE = 0.05
# Each timed call follows an untimed one of the same engine (its threads awake, its data
# in cache, as in a loop of calls), unless a call takes longer than this (seconds).
REWARM_BELOW = 0.25
GEMM_SIZE = 1024
BUSY = 0.2  # CPUs used by other processes on average above which a workload is flagged

NOTES = {
    "gru": "GRU in the reset_after form (PyTorch nn.GRU, cuDNN, Keras default) on every "
           "engine: numba_rnn GRUCell(reset_after=True), PyTorch nn.GRU, TensorFlow v1 "
           "dynamic_rnn over GRUCell with the reset gate applied after the recurrent "
           "product (TF 1.x CudnnCompatibleGRUCell math), JAX scan",
    "bilstm": "bidirectional LSTM, lengths T/2..T: numba_rnn bidirectional_dynamic_rnn "
              "with sequence_length, PyTorch packed sequences (bidirectional nn.LSTM), "
              "TensorFlow v1 bidirectional_dynamic_rnn with sequence_length, JAX masked "
              "scans; GFLOP/s count the steps that run",
}


# ------------------------------------------------------------------------------- machine
def set_blas_threads(n):
    """Set the thread count of NumPy's BLAS (its bundled OpenBLAS, else threadpoolctl when
    installed). Returns a description of what was set, or None if nothing could be."""
    if threads.set_blas_threads(n):
        return "NumPy's OpenBLAS"
    try:
        import threadpoolctl
    except ImportError:
        return None
    threadpoolctl.threadpool_limits(int(n), user_api="blas")  # stays in force
    return "threadpoolctl"


def gemm_peak(dtype=np.float32, size=GEMM_SIZE, repeat=10):
    """GFLOP/s of NumPy's size^3 matrix product: (best, median) over ``repeat`` calls."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty_like(a)
    for _ in range(2):
        np.matmul(a, b, out=out)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    flops = 2.0 * size ** 3
    return flops / min(times) / 1e9, flops / float(np.median(times)) / 1e9


def cpu_name():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_sample():
    """(wall seconds, busy CPU-seconds of the whole machine, CPU-seconds of this process),
    or None where /proc/stat is missing. Two samples give the CPU time other processes
    took in between (``others_cpus``)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    fields += [0] * (8 - len(fields))
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
    busy = sum(fields) - fields[3] - fields[4]
    own = sum(os.times()[:2])
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own


def others_cpus(before, after):
    """Average number of CPUs busy with other processes (or stolen by the hypervisor)
    between two ``cpu_sample``s; None if unknown."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    used = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, used / (after[0] - before[0]))


# ------------------------------------------------------------------------------ progress
class Progress:
    """One status line on a terminal (rewritten in place), or one line per step
    elsewhere (the per-round updates are left out there)."""

    def __init__(self, stream=None, enabled=True):
        stream = sys.stderr if stream is None else stream
        try:  # a duplicate of file descriptor 2, which peers.quiet_stderr does not redirect
            if stream.fileno() == 2:
                stream = os.fdopen(os.dup(2), "w", errors="replace")
        except (OSError, ValueError, AttributeError):
            pass
        self.stream = stream
        self.enabled = enabled
        self.columns = _terminal_columns(self.stream) if enabled else None
        self._shown = False

    def __call__(self, text, transient=False):
        if not self.enabled or (transient and self.columns is None):
            return
        if self.columns is not None:
            # one character short of the width, so the line never wraps (0: unknown width)
            self.stream.write("\r\x1b[K" + (text[:self.columns - 1] if self.columns > 1
                                              else text))
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self):
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _terminal_columns(stream):
    """The terminal's width if ``stream`` is a terminal, else None."""
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------------------- running
def interleaved(runners, rounds, max_seconds, min_rounds=3, pause=PAUSE, seed=0,
                progress=None, label="", rewarm=None):
    """Seconds per call of each runner: ``rounds`` rounds (fewer once ``max_seconds`` have
    passed, but at least ``min_rounds``), each calling every runner in a new random
    order: ``rewarm[engine]`` untimed calls (default 1), then one timed call."""
    times = {engine: [] for engine in runners}
    order = list(runners)
    rng = random.Random(seed)
    rewarm = rewarm or {}
    deadline = time.perf_counter() + max_seconds
    for k in range(rounds):
        if progress:
            progress(f"{label}timing, round {k + 1}/{rounds}", transient=True)
        rng.shuffle(order)
        for engine in order:
            time.sleep(pause)
            for _ in range(rewarm.get(engine, 1)):
                runners[engine].run()
            start = time.perf_counter()
            result = runners[engine].run()
            elapsed = time.perf_counter() - start
            del result
            times[engine].append(elapsed)
        if k + 1 >= min_rounds and time.perf_counter() > deadline:
            break
    return times


class _CheckFailed(Exception):
    """A peer's outputs or gradients differ from numba_rnn's (args[0]: the check)."""


def _check(values, expected, mode):
    diff, where = peers.compare(values, expected, mode)
    return {"max_diff": diff, "in": where, "tolerance": peers.tolerance(mode),
            "kind": "abs" if mode == "forward" else "relative to the largest entry"}


def _summary(seconds):
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    return float(median), float(q3 - q1)


def bench_workload(workload, engines, threads, dtype, rounds, max_seconds, warmup,
                   progress, seed=0):
    """One workload on ``engines``: a dict for the report (see ``run``)."""
    sample = cpu_sample()
    data = make_data(workload, seed=seed, dtype=dtype)
    flops = workload.flops(None if workload.lengths == "full" else data.lengths)
    entry = {"name": workload.name, "description": str(workload), "cell": workload.cell,
             "mode": workload.mode, "flops": flops, "rows": [], "skipped": [],
             "failed": []}
    runners, checks, rewarm = {}, {}, {}
    expected = None
    for engine in engines:
        label = f"{workload.name} {engine}: "
        missing = peers.missing_modules(engine)
        if missing:
            entry["skipped"].append({"engine": engine,
                                     "reason": f"not installed ({', '.join(missing)})"})
            continue
        try:
            with peers.quiet_stderr():  # peers' start-up logging would break the table
                progress(f"{label}building")
                runner = peers.build(engine, workload, data, threads)
                progress(f"{label}checking "
                         f"{'outputs' if workload.mode == 'forward' else 'gradients'}",
                         transient=True)
                values = runner.values()
                if engine != "numba_rnn":
                    check = _check(values, expected, workload.mode)
                    if not check["max_diff"] < check["tolerance"]:
                        raise _CheckFailed(check)
                progress(f"{label}warming up", transient=True)
                start = time.perf_counter()
                for _ in range(warmup):
                    start = time.perf_counter()
                    runner.run()
                rewarm[engine] = 1 if time.perf_counter() - start < REWARM_BELOW else 0
        except PeerUnavailable as e:
            entry["skipped"].append({"engine": engine, "reason": str(e)})
            continue
        except _CheckFailed as e:
            check = e.args[0]
            entry["failed"].append({"engine": engine, "check": check, "reason": (
                f"differs from numba_rnn by {check['max_diff']:.2e} in {check['in']} "
                f"(tolerance {check['tolerance']:.0e}, {check['kind']})")})
            continue
        except Exception as e:  # a broken peer: report it, run the others
            if engine == "numba_rnn":
                raise
            entry["failed"].append({"engine": engine,
                                    "reason": f"{type(e).__name__}: {e}"[:500]})
            continue
        if engine == "numba_rnn":
            expected = values
        checks[engine] = None if engine == "numba_rnn" else check
        runners[engine] = runner
    times = interleaved(runners, rounds, max_seconds, progress=progress,
                        label=f"{workload.name} [{workload.mode}] {len(runners)} engine(s): ",
                        seed=seed, rewarm=rewarm)
    best = min(_summary(t)[0] for t in times.values())
    for engine, seconds in times.items():
        median, iqr = _summary(seconds)
        gflops = flops / median / 1e9
        entry["rows"].append({
            "engine": engine, "version": runners[engine].version, "median_ms": median * 1e3,
            "iqr_ms": iqr * 1e3, "rounds": len(seconds), "ratio": median / best,
            "gflops": gflops,
            "check": checks[engine], "times_ms": [round(s * 1e3, 4) for s in seconds]})
    entry["others_cpus"] = others_cpus(sample, cpu_sample())
    return entry


def run(names, engines=None, threads=2, dtype="float32", rounds=20, max_seconds=45.0,
        warmup=3, scale=1.0, progress=None, argv=None):
    """Benchmark the workloads ``names``; returns the report as a JSON-ready dict."""
    progress = progress or Progress(enabled=False)
    engines = list(ENGINES if engines is None else engines)
    if engines[0] != "numba_rnn":
        raise ValueError("numba_rnn must come first: the others are checked against it")
    np_dtype = np.dtype(dtype)
    preload_warning = peers.preload(engines)  # before Numba's threads start
    numba.set_num_threads(threads)
    blas = set_blas_threads(threads)
    start_load, start_cpu = load_average(), cpu_sample()
    progress(f"measuring the {np_dtype.name} GEMM peak ({GEMM_SIZE}^3, {threads} threads)")
    repeat = 5 if rounds <= 5 else 15
    start_peak = gemm_peak(np_dtype, repeat=repeat)
    report = {
        "command": argv, "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "numba": numba.__version__},
        "threads": threads, "dtype": np_dtype.name, "scale": scale,
        "rounds": rounds, "max_seconds_per_workload": max_seconds,
        "gemm_peak": {"size": GEMM_SIZE, "dtype": np_dtype.name, "blas_threads_set_in": blas},
        "load_average": {"start": start_load}, "workloads": [], "notes": []}
    for name in names:
        workload = WORKLOADS[name] if scale == 1.0 else WORKLOADS[name].scaled(scale)
        report["workloads"].append(bench_workload(
            workload, engines, threads, np_dtype, rounds, max_seconds, warmup, progress))
    progress(f"measuring the {np_dtype.name} GEMM peak again")
    end_peak = gemm_peak(np_dtype, repeat=repeat)
    peak, peak_median = max(start_peak, end_peak)
    report["gemm_peak"].update(gflops=peak, median_gflops=peak_median,
                               start_gflops=start_peak[0], end_gflops=end_peak[0])
    for entry in report["workloads"]:
        for row in entry["rows"]:
            row["percent_of_peak"] = 100.0 * row["gflops"] / peak
    progress.clear()
    report["load_average"]["end"] = load_average()
    report["others_cpus"] = others_cpus(start_cpu, cpu_sample())
    report["machine"]["numba_threading_layer"] = _threading_layer()
    report["notes"] = _notes(report, engines, blas)
    if preload_warning:
        report["notes"].append(preload_warning + ".")
    return report


def _threading_layer():
    """Numba's threading layer ("omp", "tbb", "workqueue"), or None before any parallel
    kernel has run."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _notes(report, engines, blas):
    notes = []
    cells = {w["cell"] for w in report["workloads"]}
    for cell in ("gru", "bilstm"):
        if cell in cells:
            names = ", ".join(w["name"] for w in report["workloads"] if w["cell"] == cell)
            notes.append(f"{names}: {NOTES[cell]}.")
    forward = [w["name"] for w in report["workloads"] if w["mode"] == "forward"]
    if forward:
        notes.append(f"{', '.join(forward)}: numba_rnn runs frozen cells (cell.freeze(), "
                     f"inference mode: weights packed once, not on every call, as ONNX "
                     f"Runtime does when its session is made).")
    if "jax" in engines and any(r["engine"] == "jax" for w in report["workloads"]
                                for r in w["rows"]):
        notes.append(f"JAX has no thread setting: it uses the machine's {os.cpu_count()} "
                     f"cores.")
    if blas is None:
        notes.append("NumPy's BLAS thread count could not be set (not OpenBLAS, no "
                     "threadpoolctl): the GEMM peak and numba_rnn's input products use "
                     "its default.")
    reasons = {}
    for w in report["workloads"]:
        for skip in w["skipped"]:
            reasons.setdefault((skip["engine"], skip["reason"]), []).append(w["name"])
    every = [w["name"] for w in report["workloads"]]
    for (engine, reason), names in reasons.items():
        where = "" if names == every and len(every) > 1 else f" on {', '.join(names)}"
        notes.append(f"{LABELS[engine]} skipped{where}: {reason}.")
    for w in report["workloads"]:
        for fail in w["failed"]:
            notes.append(f"FAILED {LABELS[fail['engine']]} on {w['name']}: {fail['reason']}")
    busy = [f"{w['name']} {w['others_cpus']:.2f}" for w in report["workloads"]
            if (w.get("others_cpus") or 0) > BUSY]
    if busy:
        notes.append(f"the machine was busy: other processes used CPUs ({', '.join(busy)} "
                     f"CPUs on average, of {os.cpu_count()}). They compete for the cores, "
                     f"so those timings are inflated and noisy, most for engines whose "
                     f"threads synchronise at every step; compare engines within this run "
                     f"only, or try --threads 1.")
    if report["scale"] != 1.0:
        notes.append(f"sizes scaled by {report['scale']:g}: not the anchor workloads.")
    return notes


def failed(report):
    return any(w["failed"] for w in report["workloads"])


# -------------------------------------------------------------------------------- output
def _workload_label(entry):
    form = " (reset_after)" if entry["cell"] == "gru" else ""
    return f"{entry['name']} {CELL_NAMES[entry['cell']]}{form}"


def format_table(report):
    """The report as text: a header, the workloads, the table and the notes."""
    peak = report["gemm_peak"]
    gemm = "sgemm" if peak["dtype"] == "float32" else "dgemm"
    versions = {}
    for w in report["workloads"]:
        for r in w["rows"]:
            versions[r["engine"]] = r["version"]
    lines = [
        f"numba-rnn bench: {report['threads']} thread(s) per engine, {report['dtype']}, "
        f"{report['machine']['cpu']} ({report['machine']['cpus']} CPUs)",
        f"{gemm} peak: {peak['gflops']:.1f} GFLOP/s (NumPy {peak['size']}^3, best of the "
        f"calls at the start, {peak['start_gflops']:.1f}, and at the end, "
        f"{peak['end_gflops']:.1f}; median {peak['median_gflops']:.1f})",
        _machine_load(report),
        "engines: " + ", ".join(f"{LABELS[e]} {v}" for e, v in versions.items()),
        "",
    ]
    lines += [f"  {w['description']}" for w in report["workloads"]]
    headers = ["workload", "mode", "engine", "median ms", "IQR ms", "x fastest", "GFLOP/s",
               f"% {gemm}"]
    rows = []
    for w in report["workloads"]:
        for r in w["rows"]:
            rows.append([_workload_label(w), w["mode"], LABELS[r["engine"]],
                         _ms(r["median_ms"]), _ms(r["iqr_ms"]), f"{r['ratio']:.2f}",
                         _rate(r["gflops"]), _rate(r["percent_of_peak"])])
    widths = [max(len(h), *(len(row[k]) for row in rows)) if rows else len(h)
              for k, h in enumerate(headers)]
    left = 3  # text columns; the rest are right-aligned numbers

    def line(cells):
        return "  ".join(c.ljust(wd) if k < left else c.rjust(wd)
                         for k, (c, wd) in enumerate(zip(cells, widths))).rstrip()

    lines += ["", line(headers), line(["-" * wd for wd in widths])]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        lines.append(line(row if row[0] != previous else [""] * 2 + row[2:]))
        previous = row[0]
    rounds = sorted({r["rounds"] for w in report["workloads"] for r in w["rows"]})
    lines.append("")
    for note in [f"median and interquartile range over {_span(rounds)} interleaved rounds; "
                 f"x fastest: median / fastest median; GFLOP/s at the median (matrix "
                 f"products only; train = 3x forward); train = forward + gradients of "
                 f"sum(outputs) to the inputs and all weights, checked against numba_rnn's "
                 f"before timing.", *report["notes"]]:
        lines += textwrap.wrap(note, 100, initial_indent="- ", subsequent_indent="  ")
    return "\n".join(lines)


def _machine_load(report):
    load = report["load_average"]
    text = "load average (1, 5, 15 min): " + ", ".join(
        f"{k} {' '.join(f'{x:.2f}' for x in load[k])}" for k in ("start", "end")
        if load.get(k))
    if report.get("others_cpus") is not None:
        text += (f"; other processes used {report['others_cpus']:.2f} of "
                 f"{report['machine']['cpus']} CPUs on average during the run")
    return text


def _ms(value):
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _rate(value):
    """One decimal, or three significant digits below 1 (tiny test workloads)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def _span(values):
    if not values:
        return "no"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def write_json(report, path):
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


def matplotlib_missing():
    """None if matplotlib can be imported, else the message to show."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return ("--plot needs matplotlib, which is not installed: "
                "pip install 'numba-rnn[plot]' (or matplotlib)")
    return None


def plot(report, path):
    """A grouped bar chart of GFLOP/s per workload and engine, with the GEMM peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in report["workloads"] if w["rows"]]
    engines = [e for e in ENGINES if any(r["engine"] == e for w in workloads
                                         for r in w["rows"])]
    width = 0.8 / max(1, len(engines))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(workloads) + 2), 4.5))
    for k, engine in enumerate(engines):
        xs, ys, errs = [], [], []
        for i, w in enumerate(workloads):
            for r in w["rows"]:
                if r["engine"] == engine:
                    xs.append(i + (k - (len(engines) - 1) / 2) * width)
                    ys.append(r["gflops"])
                    # the IQR of the time, as a spread of the rate
                    low = r["median_ms"] - r["iqr_ms"] / 2
                    errs.append(r["gflops"] * r["iqr_ms"] / max(2 * low, 1e-9))
        ax.bar(xs, ys, width, yerr=errs, label=LABELS[engine], capsize=2)
    peak = report["gemm_peak"]
    ax.axhline(peak["gflops"], color="k", linestyle="--", linewidth=1)
    ax.text(len(workloads) - 0.5, peak["gflops"], f" {peak['dtype']} GEMM peak",
            va="bottom", ha="right", fontsize=8)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([f"{_workload_label(w)}\n{w['mode']}" for w in workloads])
    ax.set_ylabel("GFLOP/s at the median (higher is better)")
    ax.set_title(f"numba-rnn bench: {report['threads']} thread(s), {report['dtype']}, "
                 f"{report['machine']['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
