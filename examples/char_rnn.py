"""A character-level language model: embedding -> LSTM -> Dense -> softmax over characters.

Training: every step picks a batch of random windows of the text. The window's characters
but the last are the inputs and its characters but the first are the targets, so at every
position the model predicts the next character. The LSTM's gradients come from
``nr.vjp(nr.dynamic_rnn, ...)``; the Dense and Embedding layers backpropagate with NumPy,
and Adam updates all the arrays in place.

Sampling is stateful: the model reads a prompt with one dynamic_rnn call, then generates
one character at a time, feeding each one back in together with the state left by the
step before (a fresh zero state at every step would forget everything).
"""
import numpy as np

import numba_rnn as nr
from numba_rnn.training import Adam, Dense, Embedding, clip_by_global_norm, softmax_cross_entropy

TEXT = ("row, row, row your boat, gently down the stream. "
        "merrily, merrily, merrily, merrily, life is but a dream. ") * 4
STEPS, BATCH, WINDOW, UNITS, EMBED = 60, 16, 24, 32, 16

alphabet = sorted(set(TEXT))
index = {ch: i for i, ch in enumerate(alphabet)}
data = np.array([index[ch] for ch in TEXT])
vocab = len(alphabet)
rng = np.random.default_rng(0)

embedding = Embedding(vocab, EMBED, seed=1)
cell = nr.LSTMCell(UNITS, seed=2)
cell.build(EMBED)                           # create the weights before handing them to Adam
dense = Dense(UNITS, vocab, seed=3)
params = cell.trainable_variables + dense.params + embedding.params
optimizer = Adam(learning_rate=0.02)

print(f"{len(TEXT)} characters, {vocab} distinct; batch {BATCH} windows of {WINDOW} steps")
losses = []
for step in range(1, STEPS + 1):
    starts = rng.integers(0, len(data) - WINDOW - 1, size=BATCH)
    ids = np.stack([data[s:s + WINDOW + 1] for s in starts])     # [batch, WINDOW + 1]
    inputs, targets = ids[:, :-1], ids[:, 1:]

    embedded = embedding(inputs)                                  # [batch, time, EMBED]
    (outputs, _), backward = nr.vjp(nr.dynamic_rnn, cell, embedded)
    logits = dense(outputs)                                       # [batch, time, vocab]
    loss, d_logits = softmax_cross_entropy(logits, targets)

    d_outputs, dense_grads = dense.backward(outputs, d_logits)
    grads = backward((d_outputs, None))          # None: the loss ignores the final state
    embedding_grad = embedding.backward(inputs, grads.inputs)
    all_grads, _ = clip_by_global_norm(grads.weights + dense_grads + [embedding_grad], 5.0)
    optimizer.step(params, all_grads)
    losses.append(loss)
    if step == 1 or step % 15 == 0:
        print(f"step {step:3d}  loss {loss:.3f}")

print(f"loss fell from {losses[0]:.3f} to {np.mean(losses[-5:]):.3f} "
      f"(uniform guess: {np.log(vocab):.3f})")

# Stateful sampling: the state after the prompt starts the generation, and each step's
# state is the next step's initial state.
prompt = "row, row, "
prompt_ids = np.array([[index[ch] for ch in prompt]])


def greedy_sample(length, carry_state):
    outputs, state = nr.dynamic_rnn(cell, embedding(prompt_ids))
    output, text = outputs[:, -1], []
    for _ in range(length):
        next_id = int(np.argmax(dense(output)[0]))          # greedy: the likeliest character
        text.append(alphabet[next_id])
        if not carry_state:
            state = None                                     # None: a fresh zero state
        output, state = cell(embedding(np.array([next_id])), state)  # one step
    return prompt + "".join(text)


print(f"greedy sample, state carried: {greedy_sample(90, carry_state=True)!r}")
print(f"greedy sample, state dropped: {greedy_sample(40, carry_state=False)!r}")
