"""Engines side by side, interleaved: a fairer comparison on a busy machine.

Run: python benchmarks/compare.py [W1 W2 W7] [--rounds 30] [--max-seconds 60]

pytest-benchmark times one engine after the other, so load from other processes that
comes and goes lands on some engines and not others. Here every round calls each engine
once, in a new random order (with a short pause between calls so that one engine's
spinning threads do not land on the next), so all of them see the same conditions; the table gives
the median and the minimum (the least disturbed call) per engine, and numba_rnn's ratio
to the fastest peer by each. Outputs are checked against numba_rnn's first, as in
test_speed_forward.py.
"""
import argparse
import random
import time

import numpy as np
from peers import ENGINES, TOLERANCE, PeerUnavailable, build, max_abs_diff
from workloads import FORWARD, WORKLOADS, make_data

# Between two calls: lets the previous engine's spinning worker threads go to sleep, so
# they do not steal a core from the next engine.
PAUSE = 0.02


def compare(name, rounds, max_seconds, seed=0):
    workload = WORKLOADS[name]
    data = make_data(workload)
    runners, skipped = {}, []
    for engine in ENGINES:
        try:
            runners[engine] = build(engine, workload, data)
        except PeerUnavailable:
            skipped.append(engine)
    expected = runners["numba_rnn"].outputs()
    for engine, runner in runners.items():
        diff = max_abs_diff(runner.outputs(), expected)
        if diff >= TOLERANCE:
            raise AssertionError(f"{engine} differs from numba_rnn by {diff:.2e} on {name}")
        runner.run()  # warm-up
    times = {engine: [] for engine in runners}
    order = list(runners)
    rng = random.Random(seed)
    deadline = time.perf_counter() + max_seconds
    for _ in range(rounds):
        rng.shuffle(order)
        for engine in order:
            time.sleep(PAUSE)
            start = time.perf_counter()
            runners[engine].run()
            times[engine].append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    flops = workload.flops()
    print(f"{workload}: {len(times['numba_rnn'])} interleaved rounds"
          + (f"; not installed: {', '.join(skipped)}" if skipped else ""))
    print(f"  {'engine':12} {'median ms':>10} {'min ms':>9} {'GFLOP/s@med':>12}")
    stats = {e: (float(np.median(t)), float(np.min(t))) for e, t in times.items()}
    for engine, (med, low) in sorted(stats.items(), key=lambda kv: kv[1][0]):
        print(f"  {engine:12} {med * 1e3:10.2f} {low * 1e3:9.2f} {flops / med / 1e9:12.1f}")
    peers = {e: s for e, s in stats.items() if e != "numba_rnn"}
    if peers:
        best_med = min(peers, key=lambda e: peers[e][0])
        best_min = min(peers, key=lambda e: peers[e][1])
        print(f"  numba_rnn / fastest peer: {stats['numba_rnn'][0] / peers[best_med][0]:.2f}x "
              f"by median ({best_med}), {stats['numba_rnn'][1] / peers[best_min][1]:.2f}x "
              f"by minimum ({best_min})")
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=FORWARD)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    for name in args.workloads:
        compare(name, args.rounds, args.max_seconds)


if __name__ == "__main__":
    main()
