"""Products z += a @ W with W packed in panels, computed in registers: the recurrent
product of every step, and the input projections and input gradients of whole sequences.

Every step multiplies a few rows of h (one chunk's batch rows, 1 to ~32) by the same
W. BLAS repacks W on every such call and reaches ~60% of its large-product speed; a
gemv per row reads W once per row. Here W is packed once per kernel call into panels
of ``width`` columns, each panel's rows contiguous ([P, K, width], zero-padded), and
a micro-kernel keeps a block of 4 rows x ``width`` columns of z in vector registers
while it streams one panel: every loaded panel row feeds 4 rows of FMAs. Measured on
one core (float32, K = 256..512): 110 GFLOP/s against OpenBLAS's 60 on 16-32 rows
and 17-38 on 4 rows. Large products gain too (W7 input projection, 2 threads:
171 -> 203 GFLOP/s).

The micro-kernel is written in LLVM IR (``_define``) because Numba's loops over
a block of accumulators are not kept in registers. It is generic vector IR, which
LLVM splits into the host's vector registers (measured on AVX-512 only).
"""
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

from .common import OPTIONS, jit

# Rows of z per micro-kernel call; each holds ``width`` accumulators in registers.
KERNEL_ROWS = 4
# Rows that go through all panels before the next rows start: their share of ``a``
# stays in the core's cache while each panel is read once for all of them.
PANEL_ROWS = 128


def panel_width(dtype):
    """Columns per panel: 128 bytes, two 512-bit vectors per row of the block."""
    return 128 // np.dtype(dtype).itemsize


def _micro_kernel(rows):
    """Intrinsic: z[r, :cols] += sum_k a[r, k] * panel[k, :] for r < ``rows``.

    Arguments: like (a float of the dtype), k_dim, then addresses and strides in
    elements: a, lda, panel (contiguous [k_dim, width]), z, ldz, cols (<= width).
    """
    @intrinsic
    def kernel(typingctx, like, k_dim, a_ptr, lda, w_ptr, z_ptr, ldz, cols):
        sig = types.void(like, *(types.int64,) * 7)

        def codegen(context, builder, signature, args):
            f_type = context.get_value_type(like)
            builder.call(_define(builder.module, rows, f_type, context.get_abi_sizeof(f_type)),
                         args[1:])
            return context.get_dummy_value()
        return sig, codegen
    return kernel


def _define(module, rows, f_type, item):
    """The micro-kernel as an LLVM function of its own, defined once per module and not
    inlined: inlined at every call site, it added seconds to compiling each kernel."""
    width = 128 // item
    i32, i64 = ir.IntType(32), ir.IntType(64)
    function = cgutils.get_or_insert_function(
        module, ir.FunctionType(ir.VoidType(), [i64] * 7),
        f"numba_rnn_panel_kernel_{rows}x{width}_f{8 * item}")
    if not function.is_declaration:
        return function
    function.linkage = "linkonce_odr"
    function.attributes.add("noinline")
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    k_dim, a_ptr, lda, w_ptr, z_ptr, ldz, cols = function.args
    v_type = ir.VectorType(f_type, width)
    suffix = f"v{width}f{8 * item}"
    fma = cgutils.get_or_insert_function(
        module, ir.FunctionType(v_type, [v_type] * 3), f"llvm.fma.{suffix}")

    def address(base, elements, pointer_type):
        offset = builder.mul(elements, ir.Constant(i64, item))
        return builder.inttoptr(builder.add(base, offset), pointer_type)

    # for k in range(k_dim): acc[r] = fma(splat(a[r, k]), panel[k], acc[r])
    entry = builder.basic_block
    loop = builder.append_basic_block("panel.loop")
    done = builder.append_basic_block("panel.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    k = builder.phi(i64)
    k.add_incoming(ir.Constant(i64, 0), entry)
    zero = ir.Constant(v_type, [0.0] * width)
    acc = [builder.phi(v_type) for _ in range(rows)]
    w_row = builder.load(address(w_ptr, builder.mul(k, ir.Constant(i64, width)),
                                 v_type.as_pointer()), align=item)
    new_acc = []
    for r in range(rows):
        acc[r].add_incoming(zero, entry)
        a_rk = builder.load(address(a_ptr, builder.add(
            builder.mul(ir.Constant(i64, r), lda), k), f_type.as_pointer()))
        new_acc.append(builder.call(fma, [_splat(builder, a_rk, v_type), w_row, acc[r]]))
    k_next = builder.add(k, ir.Constant(i64, 1))
    k.add_incoming(k_next, loop)
    for r in range(rows):
        acc[r].add_incoming(new_acc[r], loop)
    builder.cbranch(builder.icmp_signed("<", k_next, k_dim), loop, done)

    # z[r, :cols] += acc[r]; a masked load and store for a last, narrower panel.
    builder.position_at_end(done)
    z_rows = [address(z_ptr, builder.mul(ir.Constant(i64, r), ldz), v_type.as_pointer())
              for r in range(rows)]
    full = builder.icmp_signed("==", cols, ir.Constant(i64, width))
    with builder.if_else(full) as (then, otherwise):
        with then:
            for r in range(rows):
                total = builder.fadd(builder.load(z_rows[r], align=item), new_acc[r])
                builder.store(total, z_rows[r], align=item)
        with otherwise:
            m_type = ir.VectorType(ir.IntType(1), width)
            lanes = ir.Constant(ir.VectorType(i64, width), list(range(width)))
            mask = builder.icmp_signed("<", lanes, _splat(builder, cols, lanes.type))
            p_type = v_type.as_pointer()
            load = cgutils.get_or_insert_function(
                module, ir.FunctionType(v_type, [p_type, i32, m_type, v_type]),
                f"llvm.masked.load.{suffix}.p0{suffix}")
            store = cgutils.get_or_insert_function(
                module, ir.FunctionType(ir.VoidType(), [v_type, p_type, i32, m_type]),
                f"llvm.masked.store.{suffix}.p0{suffix}")
            align = ir.Constant(i32, item)
            for r in range(rows):
                old = builder.call(load, [z_rows[r], align, mask, zero])
                builder.call(store, [builder.fadd(old, new_acc[r]), z_rows[r], align,
                                     mask])
    builder.ret_void()
    return function


def _splat(builder, value, v_type):
    """A vector of ``v_type`` with ``value`` in every lane."""
    i32 = ir.IntType(32)
    vector = builder.insert_element(ir.Constant(v_type, None), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(vector, vector,
                                  ir.Constant(ir.VectorType(i32, v_type.count), [0] * v_type.count))


_kernel_1, _kernel_2, _kernel_3, _kernel_4 = (_micro_kernel(r) for r in range(1, 5))


def panels_shape(w):
    """Shape of ``pack_panels(w)``: [ceil(G / width), K, width]."""
    width = panel_width(w.dtype)
    return -(-w.shape[1] // width), w.shape[0], width


@jit()
def pack_panels(w):
    """W [K, G] (any strides) packed as [ceil(G / width), K, width], zero-padded."""
    width = 128 // w.itemsize
    return pack_panels_into(w, np.empty((-(-w.shape[1] // width), w.shape[0], width),
                                        dtype=w.dtype))


@jit()
def pack_panels_into(w, panels):
    """``pack_panels(w)`` written into ``panels`` (of ``panels_shape(w)``); returns it."""
    k_dim, g_dim = w.shape
    n_panels, _, width = panels.shape
    full = g_dim // width
    if full < n_panels:
        panels[full] = 0
    # Read W along its contiguous axis: rows of W, or columns of a transposed view
    # (the backward pass packs W_h^T), 5-10x faster than the other order.
    if w.strides[1] == w.itemsize:
        for k in range(k_dim):
            for p in range(full):
                for j in range(width):
                    panels[p, k, j] = w[k, p * width + j]
            for j in range(g_dim - full * width):
                panels[full, k, j] = w[k, full * width + j]
    else:
        for p in range(n_panels):
            for j in range(min(width, g_dim - p * width)):
                for k in range(k_dim):
                    panels[p, k, j] = w[k, p * width + j]
    return panels


def matmul_panels_acc(a, row0, n, panels, z):
    """z[i, :] += a[row0 + i, :] @ W for i < n, with ``panels = pack_panels(W)``;
    z has W's G columns."""
    g_dim = z.shape[1]
    n_panels, k_dim, width = panels.shape
    w = panels.transpose(1, 0, 2).reshape(k_dim, n_panels * width)[:, :g_dim]
    z[:n] += a[row0:row0 + n] @ w


@overload(matmul_panels_acc, jit_options=OPTIONS)
def _matmul_panels_acc(a, row0, n, panels, z):
    if not (panels.dtype in (types.float32, types.float64) and panels.layout == "C"
            and a.dtype == panels.dtype and z.dtype == panels.dtype):
        return lambda a, row0, n, panels, z: _loops(a, row0, n, panels, z)

    def impl(a, row0, n, panels, z):
        n_panels, k_dim, width = panels.shape
        item = a.itemsize
        if n <= 0 or k_dim == 0:
            return
        if a.strides[1] != item or z.strides[1] != item:
            _loops(a, row0, n, panels, z)  # layouts the kernels never pass
            return
        like = z.dtype.type(0)
        lda, ldz = np.int64(a.strides[0] // item), np.int64(z.strides[0] // item)
        a0 = np.int64(a.ctypes.data) + row0 * a.strides[0]
        w0, z0 = np.int64(panels.ctypes.data), np.int64(z.ctypes.data)
        k = np.int64(k_dim)
        for i0 in range(0, n, PANEL_ROWS):
            i1 = min(i0 + PANEL_ROWS, n)
            for p in range(n_panels):
                cols = np.int64(min(width, z.shape[1] - p * width))
                if cols <= 0:
                    break
                w_ptr = w0 + p * panels.strides[0]
                z_col = z0 + p * width * item
                i = i0
                while i + KERNEL_ROWS <= i1:
                    _kernel_4(like, k, a0 + i * a.strides[0], lda, w_ptr,
                              z_col + i * z.strides[0], ldz, cols)
                    i += KERNEL_ROWS
                a_ptr, z_ptr = a0 + i * a.strides[0], z_col + i * z.strides[0]
                left = i1 - i
                if left == 3:
                    _kernel_3(like, k, a_ptr, lda, w_ptr, z_ptr, ldz, cols)
                elif left == 2:
                    _kernel_2(like, k, a_ptr, lda, w_ptr, z_ptr, ldz, cols)
                elif left == 1:
                    _kernel_1(like, k, a_ptr, lda, w_ptr, z_ptr, ldz, cols)
    return impl


@numba.njit(**OPTIONS)
def _loops(a, row0, n, panels, z):
    """``matmul_panels_acc`` in plain loops, for mixed dtypes and layouts the micro-kernel
    cannot take, which the kernels never pass."""
    width = panels.shape[2]
    for i in range(n):
        for k in range(panels.shape[1]):
            aik = a[row0 + i, k]
            for j in range(z.shape[1]):
                z[i, j] += aik * panels[j // width, k, j % width]
