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
import itertools
import math
import time

import numpy as np


class Plan:
    def __init__(self, lengths, n_threads):
        lengths = np.asarray(lengths, dtype=np.int64)
        batch = lengths.shape[0]
        # Chunks of fewer than 4 rows waste the kernels' 4-row blocking and make every
        # thread stream all of W_h for little work: fewer threads are faster then.
        n_chunks = max(1, min(int(n_threads), batch // 4))
        if batch == 0 or lengths.min() == lengths.max():
            # Equal lengths: contiguous chunks keep rows in place (no gather needed).
            self.perm = None
            sizes = [batch // n_chunks + (k < batch % n_chunks) for k in range(n_chunks)]
        else:
            by_length = np.argsort(-lengths, kind="stable")
            dealt = [by_length[k::n_chunks] for k in range(n_chunks)]
            self.perm = np.concatenate(dealt)
            sizes = [len(d) for d in dealt]
        self.chunk_starts = np.array([0, *itertools.accumulate(sizes)], dtype=np.int64)
        self.lengths = lengths if self.perm is None else lengths[self.perm]
        self.n_chunks = len(sizes)
        # Threads that split the hidden units instead, for a one-chunk plan (set by the
        # caller when the cell and the threading layer allow it; see rnn._Run), and the
        # largest share of their time they waited for each other (``SplitGuard``).
        self.column_parts = 0
        self.waited = 0.0

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


class SplitGuard:
    """Whether a call may split its steps' work across threads that meet after every
    step (``Plan.column_parts``).

    Such a call goes at the pace of its slowest thread. When another program keeps a
    core busy, one of the threads is off its core at almost every step while the other
    waits: W1 took 10-12 ms a call instead of 1.5, where one thread takes 3-4. So a split
    call whose threads waited for more than ``WAITED`` of their time (0.7-0.8 then, under
    0.1 on a quiet machine) turns the split off for ``FIRST_PAUSE`` seconds, twice as
    long after each such call in a row, up to ``MAX_PAUSE``; one that kept pace resets
    that. Both paths give the same numbers bit for bit.

    A call that comes more than ``IDLE`` seconds after the previous one is not judged:
    its threads wait as much on a quiet machine, as they wake up and speed up again.
    """

    WAITED = 0.25
    FIRST_PAUSE = 0.01
    MAX_PAUSE = 0.64
    IDLE = 0.005

    def __init__(self):
        self.pause = self.FIRST_PAUSE
        self.off_until = -math.inf  # time.monotonic() until which calls do not split
        self.last_call = -math.inf  # time.monotonic() at the end of the last call

    def allows(self):
        return time.monotonic() >= self.off_until

    def reset(self):
        """Forget the calls so far: the split is allowed again."""
        self.__init__()

    def record(self, plan, started):
        """Account for a call made with ``plan`` that began at ``started``
        (time.monotonic())."""
        now = time.monotonic()
        if plan.column_parts and started - self.last_call < self.IDLE:
            if plan.waited > self.WAITED:
                self.off_until = now + self.pause
                self.pause = min(2 * self.pause, self.MAX_PAUSE)
            else:
                self.pause = self.FIRST_PAUSE
        self.last_call = now
