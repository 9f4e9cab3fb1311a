"""Time to first result: fresh processes from their start to the first W1 output.

Run: python benchmarks/cold_start.py [--repeat 5]

Cases (each in a new Python process, repeated, medians printed):

- python alone: ``python -c pass`` to exit, the floor under everything else;
- import numba_rnn: process start to the end of ``import numba_rnn``;
- numba_rnn W1, cold cache: to the first W1 output with NUMBA_CACHE_DIR set to a new,
  empty directory, so every kernel it needs is compiled;
- numba_rnn W1, warm cache: the same with a directory a previous run filled;
- import torch, and torch W1: ``import torch`` + one ``nn.LSTM`` call (if installed).

Times are wall clock from just before the process is spawned to the moment the child
reports (its exit is not counted, except for "python alone"). Each child also reports
when its imports ended, so import and first-call time are shown separately.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

_PRELUDE = """
import json, sys, time
"""

# The workload table without importing numba_rnn (and so Numba) in the torch child:
# numba_rnn/bench/workloads.py needs only NumPy, so it is loaded from its file.
_LOAD_WORKLOADS = """
import importlib.util, os
_root = importlib.util.find_spec("numba_rnn").submodule_search_locations[0]
_spec = importlib.util.spec_from_file_location(
    "bench_workloads", os.path.join(_root, "bench", "workloads.py"))
_workloads = sys.modules["bench_workloads"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_workloads)
WORKLOADS, make_data = _workloads.WORKLOADS, _workloads.make_data
"""

NUMBA_RNN_IMPORT = _PRELUDE + """
import numba_rnn
print(json.dumps({"imported": time.time(), "done": time.time()}))
"""

NUMBA_RNN_W1 = _PRELUDE + """
import numpy as np
import numba_rnn as nr
from numba_rnn.bench.workloads import WORKLOADS, make_data
imported = time.time()
w = WORKLOADS["W1"]
data = make_data(w)
cell = nr.BasicLSTMCell(w.units)
cell.set_weights(data.weights)
outputs, state = nr.dynamic_rnn(cell, data.inputs, dtype=np.float32)
assert outputs.shape == (w.batch, w.steps, w.units)
print(json.dumps({"imported": imported, "done": time.time()}))
"""

TORCH_IMPORT = _PRELUDE + """
import torch
print(json.dumps({"imported": time.time(), "done": time.time()}))
"""

TORCH_W1 = _PRELUDE + """
import torch
""" + _LOAD_WORKLOADS + """
imported = time.time()
torch.set_num_threads(2)
w = WORKLOADS["W1"]
data = make_data(w)
lstm = torch.nn.LSTM(w.depth, w.units, batch_first=True).eval()
with torch.inference_mode():
    outputs, _ = lstm(torch.from_numpy(data.inputs))
assert tuple(outputs.shape) == (w.batch, w.steps, w.units)
print(json.dumps({"imported": imported, "done": time.time()}))
"""


def spawn(code, env=None):
    """(seconds to the child's report, seconds to the end of its imports)."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["done"] - start, report["imported"] - start


def python_alone():
    start = time.time()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.time() - start, 0.0


def with_cache_dir(path):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = path
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="numba_rnn_cold_")
    warm_dir = os.path.join(root, "warm")
    try:
        cases = [("python alone (start to exit)", python_alone),
                 ("import numba_rnn",
                  lambda: spawn(NUMBA_RNN_IMPORT, with_cache_dir(warm_dir)))]

        def cold():
            return spawn(NUMBA_RNN_W1, with_cache_dir(tempfile.mkdtemp(dir=root)))

        cases.append(("numba_rnn W1, cold cache", cold))
        spawn(NUMBA_RNN_W1, with_cache_dir(warm_dir))  # fills the warm cache
        cases.append(("numba_rnn W1, warm cache",
                      lambda: spawn(NUMBA_RNN_W1, with_cache_dir(warm_dir))))
        try:
            import importlib.util
            has_torch = importlib.util.find_spec("torch") is not None
        except ImportError:
            has_torch = False
        if has_torch:
            cases += [("import torch", lambda: spawn(TORCH_IMPORT)),
                      ("import torch + nn.LSTM W1", lambda: spawn(TORCH_W1))]
        else:
            print("torch is not installed: its cases are skipped")

        print(f"{sys.executable}, {args.repeat} runs each, medians (min-max)")
        print(f"{'case':34} {'to first result':>22} {'of which imports':>17}")
        for name, case in cases:
            results = [case() for _ in range(args.repeat)]
            total = [r[0] for r in results]
            imports = [r[1] for r in results]
            spread = f"({min(total):.2f}-{max(total):.2f})"
            print(f"{name:34} {statistics.median(total):8.2f} s {spread:>12} "
                  f"{statistics.median(imports):13.2f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
