"""The demo: a character-level RNN trained on text that ships with Python, then sampled.

Embedding -> recurrent cell -> Dense -> softmax, trained with truncated BPTT: the text
is cut into ``batch`` parallel streams, each step reads the next ``window`` characters
of every stream, and the state is carried from one step to the next (``StatefulRNN``).
Sampling feeds each generated character back in, one step at a time, with the state
carried the same way.
"""
import codecs
import contextlib
import importlib
import inspect
import io
import sys
import time

import numpy as np

from .cells import BasicRNNCell, GRUCell, LSTMCell
from .training import (
    Adam,
    Dense,
    Embedding,
    StatefulRNN,
    clip_by_global_norm,
    softmax_cross_entropy,
)

CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": BasicRNNCell}
CORPUS_MODULES = ("statistics", "json", "difflib", "argparse", "random", "heapq", "itertools")


def corpus():
    """The Zen of Python and the docstrings of a few standard modules: English prose
    that every Python installation has, so the demo needs no download."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    parts = [codecs.decode(this.s, "rot13")]
    for name in CORPUS_MODULES:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            obj = getattr(module, attr)
            if not attr.startswith("_") and callable(obj):
                parts.append(inspect.getdoc(obj) or "")
    return "\n\n".join(p for p in parts if p).replace("\t", "    ")


class CharModel:
    def __init__(self, vocab_size, cell_type, units, embedding_dim, seed):
        self.embedding = Embedding(vocab_size, embedding_dim, seed=seed)
        self.cell = CELLS[cell_type](units, seed=seed + 1)
        self.cell.build(embedding_dim)
        self.dense = Dense(units, vocab_size, seed=seed + 2)
        self.rnn = StatefulRNN(self.cell)

    @property
    def params(self):
        return self.cell.trainable_variables + self.dense.params + self.embedding.params

    def train_step(self, ids, optimizer, clip_norm=5.0):
        inputs, targets = ids[:, :-1], ids[:, 1:]
        embedded = self.embedding(inputs)
        outputs, backward = self.rnn.train_step(embedded)
        logits = self.dense(outputs)
        loss, d_logits = softmax_cross_entropy(logits, targets)
        d_outputs, dense_grads = self.dense.backward(outputs, d_logits)
        d_embedded, cell_grads = backward(d_outputs)
        grads = cell_grads + dense_grads + [self.embedding.backward(inputs, d_embedded)]
        grads, _ = clip_by_global_norm(grads, clip_norm)
        optimizer.step(self.params, grads)
        return loss

    def sample(self, first_id, length, temperature, rng):
        ids, state = [first_id], None
        for _ in range(length):
            output, state = self.cell(self.embedding(np.array([ids[-1]])), state)
            logits = self.dense(output[0]).astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return ids[1:]


def run(cell="lstm", units=128, steps=300, batch=32, window=64, temperature=0.7,
        sample_length=300, learning_rate=3e-3, seed=0, out=None):
    """Train and sample, printing to ``out`` (default stdout); returns the losses."""
    out = sys.stdout if out is None else out
    text = corpus()
    alphabet = sorted(set(text))
    index = {ch: i for i, ch in enumerate(alphabet)}
    data = np.array([index[ch] for ch in text], dtype=np.int64)
    stream_length = len(data) // batch
    streams = data[:stream_length * batch].reshape(batch, stream_length)
    windows = (stream_length - 1) // window
    model = CharModel(len(alphabet), cell, units, 32, seed)
    optimizer = Adam(learning_rate)
    rng = np.random.default_rng(seed)
    print(f"numba-rnn demo: {cell.upper()} with {units} units learns {len(text):,} characters "
          f"of Python's own documentation ({len(alphabet)} distinct), {batch} streams x "
          f"{window} steps per batch, state carried between batches", file=out)

    losses, start, interactive = [], time.perf_counter(), out.isatty()
    try:
        for step in range(steps):
            k = step % windows
            if k == 0:
                model.rnn.reset()  # back at the start of every stream
            chunk = streams[:, k * window:(k + 1) * window + 1]
            losses.append(model.train_step(chunk, optimizer))
            if interactive or (step + 1) % 25 == 0 or step + 1 == steps:
                elapsed = time.perf_counter() - start
                speed = (step + 1) * batch * window / elapsed
                left = elapsed / (step + 1) * (steps - step - 1)
                line = (f"step {step + 1:4d}/{steps}  loss {np.mean(losses[-10:]):.3f}  "
                        f"{speed:,.0f} chars/s  {left:4.0f} s left")
                print(("\r" + line) if interactive else line, end="" if interactive else "\n",
                      file=out, flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {len(losses)} steps, loss "
              f"{np.mean(losses[-10:]) if losses else float('nan'):.3f}", file=out)
        raise
    if interactive:
        print(file=out)
    print(f"loss fell from {np.mean(losses[:10]):.3f} to {np.mean(losses[-10:]):.3f} in "
          f"{time.perf_counter() - start:.1f} s", file=out)

    generated = model.sample(index["T"] if "T" in index else 0, sample_length, temperature, rng)
    print(f"--- sample (temperature {temperature}) ---", file=out)
    print("T" + "".join(alphabet[i] for i in generated), file=out)
    return losses
