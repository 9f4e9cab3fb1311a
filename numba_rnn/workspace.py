"""Scratch memory kept from one call to the next, one set per Python thread.

The engine's large temporaries (weights packed in panels, gate gradients, per-thread
partial sums) are several MB each. Freed, such blocks often go back to the system, and
taking them again costs a page fault per 4 KB touched. Whether they do depends on what
else the process allocates: W6's training step took about 5000 page faults and 12% more
time once TensorFlow had run in the same process, and none alone. Kept here, they cost
the faults once.

A scratch array is only for what one kernel call or product uses and drops, in the
thread that asked for it: the next ``scratch`` of the same key in that thread reuses the
memory. ``clear()`` frees this thread's scratch.
"""
import math
import threading

import numpy as np

# Bytes kept per Python thread. A request that would take the total past this gets
# memory of its own, freed as usual.
LIMIT = 256 << 20
# Arrays start on a cache line, as the kernels' panel rows (128 bytes) expect.
ALIGN = 64
# Tests set this to fill every scratch array with NaN (or -1 for integers) when handed
# out, so that a kernel reading what it did not write shows up.
POISON = False

_local = threading.local()


def scratch(key, shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, made of the memory
    kept under ``key`` (any hashable) in this thread."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    kept = _local.__dict__.setdefault("buffers", {})
    buffer = kept.get(key)
    if buffer is None or buffer.nbytes < nbytes + ALIGN:
        kept.pop(key, None)
        buffer = np.empty(nbytes + ALIGN, np.uint8)
        if kept_bytes() + buffer.nbytes <= LIMIT:
            kept[key] = buffer
    start = -buffer.ctypes.data % ALIGN
    array = buffer[start:start + nbytes].view(dtype).reshape(shape)
    if POISON:
        array.fill(np.nan if dtype.kind == "f" else -1)
    return array


def kept_bytes():
    """Bytes of scratch memory this thread keeps."""
    return sum(b.nbytes for b in _local.__dict__.get("buffers", {}).values())


def clear():
    """Free this thread's scratch memory."""
    _local.__dict__.pop("buffers", None)
