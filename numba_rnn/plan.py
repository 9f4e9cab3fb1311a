"""The plan: which thread carries which sequences, in which order.

Kernels get time-major arrays whose batch rows are permuted so that

- rows are split into one chunk per thread, each thread carrying its chunk from t = 0
  to the end with no barrier between steps;
- each chunk is sorted by decreasing length, so the rows still running at step t are a
  prefix of the chunk and finished sequences cost nothing;
- long and short sequences are dealt round-robin to the chunks, so the threads get
  similar amounts of work.
"""
import copy

import numpy as np


class Plan:
    def __init__(self, lengths, n_threads):
        lengths = np.asarray(lengths, dtype=np.int64)
        batch = lengths.shape[0]
        # Chunks of fewer than 4 rows waste the kernels' 4-row blocking and make every
        # thread stream all of W_h for little work: fewer threads are faster then.
        n_chunks = max(1, min(int(n_threads), batch // 4))
        if batch == 0 or np.all(lengths == lengths[0]):
            # Equal lengths: contiguous chunks keep rows in place (no gather needed).
            self.perm = None
            sizes = np.full(n_chunks, batch // n_chunks)
            sizes[:batch % n_chunks] += 1
        else:
            by_length = np.argsort(-lengths, kind="stable")
            dealt = [by_length[k::n_chunks] for k in range(n_chunks)]
            self.perm = np.concatenate(dealt)
            sizes = np.array([len(d) for d in dealt])
        self.chunk_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.lengths = lengths if self.perm is None else lengths[self.perm]
        self.n_chunks = len(sizes)
        # Threads that split the hidden units instead, for a one-chunk plan (set by the
        # caller when the cell and the threading layer allow it; see rnn._Run).
        self.column_parts = 0

    def segment(self, t0, t1):
        """The plan of steps [t0, t1) alone: each length counted from t0, at most t1 - t0.

        Rows keep their order, so each chunk is still sorted by decreasing length."""
        part = copy.copy(self)
        part.lengths = np.clip(self.lengths - t0, 0, t1 - t0)
        return part

    def rows(self, array, axis=0, copy=True):
        """``array`` with its batch axis in plan order, C-contiguous; a new array unless
        ``copy`` is False and nothing had to move."""
        if self.perm is None:
            return np.array(array, order="C", copy=True) if copy else np.ascontiguousarray(array)
        return np.ascontiguousarray(np.take(array, self.perm, axis=axis))

    def unrows(self, array, axis=0):
        """Undo ``rows``: back to the caller's batch order."""
        if self.perm is None:
            return array
        result = np.empty_like(array)
        index = [slice(None)] * array.ndim
        index[axis] = self.perm
        result[tuple(index)] = array
        return result
