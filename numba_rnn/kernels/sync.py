"""A step barrier for threads of one parallel region that split a step's work.

Each thread publishes the number of steps it has finished in its own slot of an int64
array (the slots share no cache line), then waits until every slot has reached that
step. The store is a release and the loads are acquires, so what a thread wrote before
publishing is visible to the threads that see the new count.

A thread that has waited long yields its core (``sched_yield``) while it waits on.

Linux may wake a thread on the CPU of the thread that woke it even when another CPU is
idle (seen here after the process had been idle for some 100 ms); the two threads of a
split would then take turns on one CPU until the idle CPU pulls one over at its next
tick, 4 ms later. So each thread publishes its CPU, and one that starts on a CPU another
thread has published, or waits for a thread last seen on its own CPU, moves itself to
another CPU (``share_no_cpu``).

Each thread also adds up, in cycles, how long it waited and how long its steps took
(``waited_share``): the caller learns whether the threads kept pace with each other
(on x86-64; elsewhere the share is always 0).

Only for regions where each part is guaranteed its own running thread (OpenMP or the
workqueue layer, with at least as many threads as parts); otherwise a part would wait
for one that never starts.
"""
import platform
import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .common import OPTIONS, inline

# Each thread's slot of the shared int64 array: its step count (which the others poll),
# the cycles it waited and stepped, in the first cache line; its CPU in the second; then
# room for two affinity masks (``share_no_cpu``).
SLOT = 48
CPU = 8  # the CPU the thread last ran on, plus 1 (0: not known yet)
MASKS = 16
CPU_SET_WORDS = 16  # int64 words of a Linux cpu_set_t (1024 CPUs)

# After this many checks a waiting thread yields its core at every further check: when
# the machine is oversubscribed (another program's threads spinning too), the thread it
# waits for may be the one waiting for that core.
SPINS = 2000

_sched_yield = types.ExternalFunction("sched_yield", types.int32())


if sys.platform.startswith("linux"):
    _sched_getcpu = types.ExternalFunction("sched_getcpu", types.int32())
    # (pid, size of the mask in bytes, address of the mask); pid 0: the calling thread
    _sched_getaffinity = types.ExternalFunction(
        "sched_getaffinity", types.int32(types.int32, types.uintp, types.uintp))
    _sched_setaffinity = types.ExternalFunction(
        "sched_setaffinity", types.int32(types.int32, types.uintp, types.uintp))
else:
    @inline
    def _sched_getcpu():
        return np.int32(-1)

    @inline
    def _sched_getaffinity(pid, size, mask):
        return np.int32(-1)

    _sched_setaffinity = _sched_getaffinity


def _slot_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def _store_release(typingctx, array, index, value):
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.void(array, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        pointer = _slot_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], pointer, ordering="release", align=8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _load_acquire(typingctx, array, index):
    if not (isinstance(array, types.Array) and array.dtype == types.int64):
        return None
    sig = types.int64(array, types.intp)

    def codegen(context, builder, signature, args):
        pointer = _slot_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, ordering="acquire", align=8)
    return sig, codegen


# Elsewhere the counter may not be readable from user code (a trap on AArch64 Linux).
HAS_CLOCK = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def clock(typingctx):
    """The CPU's time stamp counter (``llvm.readcyclecounter``); 0 without HAS_CLOCK."""
    def codegen(context, builder, signature, args):
        if not HAS_CLOCK:
            return ir.Constant(ir.IntType(64), 0)
        counter = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), []), "llvm.readcyclecounter")
        return builder.call(counter, [])
    return types.int64(), codegen


def step_flags(n_parts):
    """The shared array of a barrier for ``n_parts`` threads, every count at 0."""
    return np.zeros(n_parts * SLOT, dtype=np.int64)


@inline
def _leave_cpu(flags, part, cpu):
    """Move ``part``'s thread, the calling one, off ``cpu`` to another CPU it may run on,
    and then let it run anywhere it could before (its affinity mask is restored: the
    thread stays where it is until the scheduler moves it)."""
    at = part * SLOT + MASKS  # the CPUs allowed, then the others: no allocation to compile
    size = CPU_SET_WORDS * 8
    allowed = flags.ctypes.data + at * 8
    if _sched_getaffinity(0, size, allowed) != 0:
        return
    others = False
    for w in range(CPU_SET_WORDS):
        word = flags[at + w]
        if w == cpu // 64:
            word &= ~(np.int64(1) << np.int64(cpu % 64))
        flags[at + CPU_SET_WORDS + w] = word
        others |= word != 0
    if others and _sched_setaffinity(0, size, allowed + size) == 0:
        _sched_setaffinity(0, size, allowed)


@numba.njit(**OPTIONS)  # not inlined: compiled once for its two uses in the kernel
def share_no_cpu(flags, part, n_parts):
    """Publish the CPU that ``part``'s thread, the calling one, runs on; if another part
    has published that CPU, move to another one and publish it. At the start of a part
    and when a wait is long; ``part`` is passed as int64 by both, so that it is compiled
    once."""
    cpu = _sched_getcpu()
    flags[part * SLOT + CPU] = cpu + 1
    if cpu < 0:
        return
    for other in range(n_parts):
        if other != part and flags[other * SLOT + CPU] == cpu + 1:
            _leave_cpu(flags, part, cpu)
            flags[part * SLOT + CPU] = _sched_getcpu() + 1
            return


@inline
def finish_step(flags, part, n_parts, step):
    """Publish that ``part`` has finished ``step`` steps and wait for every other part."""
    _store_release(flags, part * SLOT, np.int64(step))
    waiting = clock()
    for other in range(n_parts):
        spins = 0
        while _load_acquire(flags, other * SLOT) < step:
            spins += 1
            if spins == SPINS:  # the thread waited for may be waiting for this CPU
                share_no_cpu(flags, np.int64(part), n_parts)
            elif spins > SPINS:
                _sched_yield()
    if step > 1:  # see finish_steps
        flags[part * SLOT + 1] += clock() - waiting


@inline
def finish_steps(flags, part, started):
    """Record how long ``part``'s steps took since ``clock()`` was ``started``: at the
    end of the first step, whose wait is not counted either (it is mostly the other
    threads waking up, which says nothing about the steps that follow)."""
    flags[part * SLOT + 2] = clock() - started


def waited_share(flags):
    """After the parallel region: the share of the threads' step time spent waiting at
    the barrier (0 when they kept pace, about half when one is off its core at every
    step)."""
    counts = flags.tolist()  # a few numbers: Python's sums take less time than NumPy's
    return sum(counts[1::SLOT]) / max(1, sum(counts[2::SLOT]))
