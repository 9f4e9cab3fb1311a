"""Encoder-decoder with greedy decoding: dynamic_rnn encodes, raw_rnn decodes.

The encoder reads padded one-hot token sequences with their lengths; its final state (the
state after each source's last token) starts the decoder. The decoder is driven by
``raw_rnn``: at every step ``loop_fn`` projects the cell output onto the vocabulary with
NumPy, takes the argmax, and feeds that token back (one-hot) as the next input. An entry
finishes when it emits END or has produced its own maximum number of tokens (twice its
source length); finished entries keep their state and emit zeros (here: PAD, score 0)
while the others go on. The weights are untrained, so the tokens themselves mean nothing.
"""
import numpy as np

import numba_rnn as nr

PAD, GO, END = 0, 1, 2
VOCAB = ["<pad>", "<go>", "<end>"] + list("abcdefgh")
V, UNITS = len(VOCAB), 24

rng = np.random.default_rng(8)
one_hot = np.eye(V, dtype=np.float32)
source_lengths = np.array([5, 2, 4, 3, 1])
batch, max_source = len(source_lengths), source_lengths.max()
source = np.full((batch, max_source), PAD)
for b, n in enumerate(source_lengths):
    source[b, :n] = rng.integers(3, V, size=n)

encoder, decoder = nr.LSTMCell(UNITS, seed=11), nr.LSTMCell(UNITS, seed=12)
_, encoder_state = nr.dynamic_rnn(encoder, one_hot[source], sequence_length=source_lengths)

w_out = rng.normal(0.0, 1.5, (UNITS, V)).astype(np.float32)   # output projection [UNITS, V]
b_out = np.zeros(V, dtype=np.float32)
b_out[[PAD, GO]] = -np.inf    # never predicted, so a PAD in the output is a zero emit
max_lengths = 2 * source_lengths


def loop_fn(time, cell_output, cell_state, loop_state):
    if cell_output is None:  # time 0: initial state, first input, emit structure
        finished = max_lengths <= 0
        # The time-0 emit fixes structure, dtype and the shape of ONE entry (no batch
        # axis), as in TensorFlow: here a scalar token id and a scalar score per entry.
        emit = (np.zeros((), np.int64), np.zeros((), np.float32))
        return finished, one_hot[np.full(batch, GO)], encoder_state, emit, None
    logits = cell_output @ w_out + b_out
    tokens = logits.argmax(axis=1)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    score = (probs.max(axis=1) / probs.sum(axis=1)).astype(np.float32)
    finished = (tokens == END) | (time >= max_lengths)   # time = tokens produced so far
    return finished, one_hot[tokens], cell_state, (tokens, score), None


(token_ta, score_ta), final_state, _ = nr.raw_rnn(decoder, loop_fn, maximum_iterations=50)
tokens = token_ta.stack().T          # [time, batch] -> [batch, time]
scores = score_ta.stack().T
print(f"{tokens.shape[1]} decoder steps (the longest entry) for {batch} sources; "
      f"per-entry limit = 2 x source length")
for b in range(batch):
    src = "".join(VOCAB[i] for i in source[b, :source_lengths[b]])
    n = next((t + 1 for t, i in enumerate(tokens[b]) if i == END), max_lengths[b])
    reason = "END" if tokens[b, n - 1] == END else "max length"
    zeros_after = bool(np.all(tokens[b, n:] == PAD) and np.all(scores[b, n:] == 0))
    decoded = " ".join(VOCAB[i] for i in tokens[b])
    print(f"{src:>5} -> {decoded:<36} stopped on {reason} after {n} tokens, "
          f"zero emits after: {zeros_after}")

# Finished entries keep their state: replaying each entry's own steps with the decoder
# cell alone (GO, then its tokens but the last) ends at raw_rnn's final state for it.
kept = []
for b in range(batch):
    n = int(np.count_nonzero(tokens[b] != PAD))
    state = nr.LSTMStateTuple(encoder_state.c[b:b + 1], encoder_state.h[b:b + 1])
    for token in [GO, *tokens[b, :n - 1]]:
        _, state = decoder(one_hot[[token]], state)
    kept.append(np.allclose(state.h, final_state.h[b:b + 1], atol=1e-6))
print(f"final state of every entry = its state after its last token: {all(kept)}")
