"""state_saving_rnn with a StateSaver: long sequences fed in segments, state kept by name.

Part 1: a batch of long sequences cut into consecutive segments. Each state_saving_rnn
call starts from the state the saver kept after the previous segment, so the outputs of
the segments, put end to end, equal one dynamic_rnn call over the whole sequences.

Part 2: per-key state. Two independent streams, "A" and "B", arrive in interleaved
segments of different sizes (sometimes both in one batch, sometimes alone). With
``set_keys`` the saver keeps one state per stream, so each stream continues exactly where
it stopped whatever else ran in between; ``reset(keys)`` starts a stream afresh.
"""
import numpy as np

import numba_rnn as nr

BATCH, TIME, DEPTH, UNITS, SEGMENT = 3, 48, 4, 8, 12
rng = np.random.default_rng(0)
cell = nr.LSTMCell(UNITS, seed=0)
names = nr.LSTMStateTuple("c", "h")     # state_name nested like cell.state_size (c, h)
zeros = np.zeros(UNITS, dtype=np.float32)


def steps(x, t0, t1):
    """static_rnn's input format: a list with one [batch, depth] array per step."""
    return [x[:, t] for t in range(t0, t1)]


# Part 1: segments of one batch == one long run.
x = rng.standard_normal((BATCH, TIME, DEPTH)).astype(np.float32)
full_outputs, full_state = nr.dynamic_rnn(cell, x)

saver = nr.StateSaver({"c": zeros, "h": zeros}, batch_size=BATCH)
pieces = []
for t0 in range(0, TIME, SEGMENT):
    outputs, state = nr.state_saving_rnn(cell, steps(x, t0, t0 + SEGMENT), saver, names)
    pieces.append(np.stack(outputs, axis=1))           # list of [B, H] -> [B, SEGMENT, H]
segmented = np.concatenate(pieces, axis=1)
print(f"{BATCH} sequences of {TIME} steps in {TIME // SEGMENT} segments of {SEGMENT}")
print(f"max |segmented - one long dynamic_rnn| outputs: "
      f"{np.abs(segmented - full_outputs).max():.2e}, final h: "
      f"{np.abs(state.h - full_state.h).max():.2e}")

# Without a saver every call starts from zeros: only the first segment agrees.
restarted = np.concatenate(
    [np.stack(nr.static_rnn(cell, steps(x, t0, t0 + SEGMENT))[0], axis=1)
     for t0 in range(0, TIME, SEGMENT)], axis=1)
print(f"restarting every segment instead: max difference "
      f"{np.abs(restarted - full_outputs).max():.2e}")

# Part 2: two interleaved streams, one state per key.
streams = {key: rng.standard_normal((1, 30, DEPTH)).astype(np.float32) for key in "AB"}
reference = {key: nr.dynamic_rnn(cell, s)[0][0] for key, s in streams.items()}  # [30, H]
position = {"A": 0, "B": 0}
collected = {"A": [], "B": []}
keyed = nr.StateSaver({"c": zeros, "h": zeros})
schedule = [("A", 7), ("B", 4), ("AB", 5), ("B", 11), ("A", 10), ("AB", 8), ("B", 2)]
for keys, length in schedule:
    keyed.set_keys(list(keys))                      # which stream each batch row belongs to
    x_batch = np.concatenate([streams[k][:, position[k]:position[k] + length] for k in keys])
    outputs, _ = nr.state_saving_rnn(cell, steps(x_batch, 0, length), keyed, names)
    for row, k in enumerate(keys):
        collected[k].append(np.stack(outputs, axis=1)[row])
        position[k] += length
    print(f"  batch keys {'+'.join(keys):<4} {length:2d} steps -> positions "
          f"A {position['A']:2d}, B {position['B']:2d}")
for key in "AB":
    difference = np.abs(np.concatenate(collected[key]) - reference[key]).max()
    print(f"stream {key}: max |interleaved - one long run| {difference:.2e}")

keyed.reset(["A"])                                   # stream A starts over, B continues
keyed.set_keys(["A"])
first, _ = nr.state_saving_rnn(cell, steps(streams["A"], 0, 3), keyed, names)
print(f"after reset(['A']) stream A restarts from zeros: "
      f"{np.allclose(np.stack(first, axis=1)[0], reference['A'][:3], atol=1e-6)}")
