"""kernels.products and kernels.panels against NumPy's ``@``, computed in float64.

The in-kernel products (``matmul_acc``, ``matmul_t_acc``, their plain-loop versions, and
``matmul_panels_acc`` on W packed by ``pack_panels``) are
run over row counts either side of GEMV_ROWS, row and column offsets, empty dimensions,
mixed dtypes and memory layouts that BLAS can take (through the leading dimension) or
cannot (the loop fallback). The whole-sequence products (``project``, ``matmul_rows``,
``matmul_t`` and the wrappers ``affine``, ``add_matmul``, ``add_matmul_t``) are run over row
counts, splits into parts and thread counts.

float64 results must agree to 1e-12 of the result's magnitude (sum of absolute terms),
float32 ones to 1e-5. Operands are copied into arrays padded with NaN, so reading outside an
operand poisons the result; outputs sit in arrays padded with a sentinel, which must
survive. With NUMBA_DISABLE_JIT the same tests run the Python bodies.
"""
import functools
import glob
import os
import zlib

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numba_rnn.kernels import blas, panels, products
from numba_rnn.kernels.panels import matmul_panels_acc, pack_panels
from numba_rnn.kernels.products import (
    GEMV_ROWS,
    add_matmul,
    add_matmul_t,
    affine,
    matmul_acc,
    matmul_loops,
    matmul_t_acc,
    matmul_t_loops,
)

F32, F64 = np.float32, np.float64
RTOL = {F32: 1e-5, F64: 1e-12}
SENTINEL = -77.0  # fills the arrays around an output
DTYPES = pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
EXAMPLES = int(os.environ.get("NUMBA_RNN_EXAMPLES", 100))


def seeded(*names):
    return np.random.default_rng(zlib.crc32("/".join(map(str, names)).encode()))


def uniform(rng, shape, dtype):
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


# Compiled callers of the in-kernel products (not cached: they are rebuilt with the tests).
@numba.njit
def call_acc(a, row0, n, w, z):
    matmul_acc(a, row0, n, w, z)


@numba.njit
def call_loops(a, row0, n, w, z):
    matmul_loops(a, row0, n, w, z)


@numba.njit
def call_panels(a, row0, n, w, z):
    matmul_panels_acc(a, row0, n, pack_panels(w), z)


@numba.njit
def call_t_acc(a, col0, n, w, z):
    matmul_t_acc(a, col0, n, w, z)


@numba.njit
def call_t_loops(a, col0, n, w, z):
    matmul_t_loops(a, col0, n, w, z)


# kind -> {kernel: caller}: "rows" products are a[row0 + i, :] @ w, "cols" a[:, col0 + i] @ w.
CALLERS = {"rows": {"acc": call_acc, "loops": call_loops, "panels": call_panels},
           "cols": {"acc": call_t_acc, "loops": call_t_loops}}
KIND_KERNELS = [(kind, kernel) for kind in CALLERS for kernel in CALLERS[kind]]
KINDS = pytest.mark.parametrize("kind", ["rows", "cols"])
KERNELS = pytest.mark.parametrize("kind, kernel", KIND_KERNELS)

_ANY_LAYOUT = [f"void({t}[:, :], int64, int64, {t}[:, :], {t}[:, :])"
               for t in ("float32", "float64")]


@functools.cache
def any_layout(kind, kernel):
    """The caller compiled once per dtype for arrays of any layout ('A'), so the layout
    matrix does not compile every combination of C, F and A arrays."""
    caller = CALLERS[kind][kernel]
    return numba.njit(_ANY_LAYOUT)(getattr(caller, "py_func", caller))


# c: C-contiguous. f: Fortran order, i.e. a transposed C array (inner stride != itemsize:
# BLAS cannot take it). rows: a block of a wider and taller array (row stride > width,
# BLAS takes it through the leading dimension). strided: every other column (inner stride
# of two items). reversed: rows in reverse order (negative row stride).
LAYOUTS = ("c", "f", "rows", "strided", "reversed")


def place(values, layout, fill):
    """(view, base, index): ``values`` copied into memory laid out as ``layout``, where
    ``base[index]`` is ``view`` and every other element of ``base`` is ``fill``."""
    r, c = values.shape
    if layout == "c":
        base, index = np.empty((r, c), values.dtype), np.s_[:, :]
    elif layout == "f":
        base, index = np.empty((r, c), values.dtype, order="F"), np.s_[:, :]
    elif layout == "rows":
        base, index = np.full((r + 3, c + 5), fill, values.dtype), np.s_[1:r + 1, 3:3 + c]
    elif layout == "strided":
        base, index = np.full((r, 2 * c + 1), fill, values.dtype), np.s_[:, 1::2]
    else:
        assert layout == "reversed"
        base, index = np.empty((r, c), values.dtype), np.s_[::-1, :]
    view = base[index]
    view[...] = values
    return view, base, index


def test_layouts_are_what_their_names_say():
    values = np.arange(12.0).reshape(3, 4)
    item = values.itemsize
    strides = {}
    for layout in LAYOUTS:
        view, base, index = place(values, layout, np.nan)
        np.testing.assert_array_equal(view, values)
        assert np.shares_memory(view, base) and view.shape == values.shape
        strides[layout] = view.strides
    assert strides["c"] == (4 * item, item)
    assert strides["f"] == (item, 3 * item)
    assert strides["rows"][1] == item and strides["rows"][0] > 4 * item
    assert strides["strided"] == (9 * item, 2 * item)
    assert strides["reversed"] == (-4 * item, item)


def assert_product(got, expected, scale, dtype, what=""):
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    err = float(np.max(np.abs(got.astype(F64) - expected), initial=0.0))  # NaN fails
    tol = RTOL[dtype] * scale
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g} (scale {scale:.3g})"


def expected_product(kind, a, offset, n, w, z0):
    """(z0 plus the product in float64, the magnitude of the result)."""
    part = a[offset:offset + n] if kind == "rows" else a[:, offset:offset + n].T
    part, w64 = part.astype(F64), w.astype(F64)
    expected, magnitude = z0.astype(F64), np.abs(z0).astype(F64)
    expected[:n] += part @ w64
    magnitude[:n] += np.abs(part) @ np.abs(w64)
    return expected, float(magnitude.max(initial=0.0))


def check_product(caller, kind, a, offset, n, w, z0, layouts=("c", "c", "c"), what=""):
    """Run ``caller(a, offset, n, w, z)`` with the operands laid out as ``layouts`` and check
    z against NumPy, the rows of z beyond n, the memory around z, and that a and w are
    unchanged. Returns z."""
    a_view, a_base, _ = place(a, layouts[0], np.nan)
    w_view, w_base, _ = place(w, layouts[1], np.nan)
    z_view, z_base, z_index = place(z0, layouts[2], SENTINEL)
    a_before, w_before, z_before = a_base.copy(), w_base.copy(), z_base.copy()
    caller(a_view, offset, n, w_view, z_view)

    expected, scale = expected_product(kind, a, offset, n, w, z0)
    dtype = F32 if F32 in (a.dtype, w.dtype, z0.dtype) else F64
    assert z_view.dtype == z0.dtype
    assert_product(z_view, expected, scale, dtype, what)
    np.testing.assert_array_equal(z_view[n:], z0[n:], err_msg=f"{what}: rows of z beyond n")
    z_after = z_base.copy()
    z_after[z_index], z_before[z_index] = 0, 0
    np.testing.assert_array_equal(z_after, z_before, err_msg=f"{what}: memory around z")
    np.testing.assert_array_equal(a_base, a_before, err_msg=f"{what}: a modified")
    np.testing.assert_array_equal(w_base, w_before, err_msg=f"{what}: w modified")
    return z_view


def operands(kind, rng, dtype, k_dim, g_dim, offset, n, extra=2, z_extra=3):
    """Random (a, w, z0): a with ``extra`` rows (columns for "cols") after the ones used,
    z0 non-zero with ``z_extra`` rows after the n the product adds to."""
    a_shape = (offset + n + extra, k_dim) if kind == "rows" else (k_dim, offset + n + extra)
    return (uniform(rng, a_shape, dtype), uniform(rng, (k_dim, g_dim), dtype),
            uniform(rng, (n + z_extra, g_dim), dtype))


@DTYPES
@pytest.mark.parametrize("offset", [0, 5])
@pytest.mark.parametrize("n", range(2 * GEMV_ROWS + 5))
@KERNELS
def test_row_counts(kind, kernel, n, offset, dtype):
    rng = seeded("counts", kind, kernel, n, offset, dtype.__name__)
    a, w, z0 = operands(kind, rng, dtype, 6, 9, offset, n)
    check_product(CALLERS[kind][kernel], kind, a, offset, n, w, z0)


@DTYPES
@pytest.mark.parametrize("n", [GEMV_ROWS - 1, GEMV_ROWS, 100, panels.PANEL_ROWS + 9])
@KERNELS
def test_larger_shapes(kind, kernel, n, dtype):
    """Sizes past the register and cache blocks of OpenBLAS's kernels and of the panels
    (131 columns: full panels and a narrower last one)."""
    rng = seeded("larger", kind, kernel, n, dtype.__name__)
    a, w, z0 = operands(kind, rng, dtype, 67, 131, 3, n)
    check_product(CALLERS[kind][kernel], kind, a, 3, n, w, z0)


@DTYPES
@pytest.mark.parametrize("n", [0, 1, GEMV_ROWS - 1, GEMV_ROWS, 12])
@pytest.mark.parametrize("k_dim, g_dim", [(0, 5), (5, 0), (0, 0)])
@KERNELS
def test_empty_dimensions(kind, kernel, k_dim, g_dim, n, dtype):
    rng = seeded("empty", kind, kernel, k_dim, g_dim, n, dtype.__name__)
    a, w, z0 = operands(kind, rng, dtype, k_dim, g_dim, 2, n)
    z = check_product(CALLERS[kind][kernel], kind, a, 2, n, w, z0)
    np.testing.assert_array_equal(z, z0)  # nothing to add: z exactly as it was


@DTYPES
@pytest.mark.parametrize("w_layout", LAYOUTS)
@pytest.mark.parametrize("a_layout", LAYOUTS)
@KERNELS
def test_layouts(kind, kernel, a_layout, w_layout, dtype):
    caller = any_layout(kind, kernel)
    for z_layout in LAYOUTS:
        for n in (3, 12):  # one gemv per row, then gemm
            rng = seeded("layouts", kind, kernel, a_layout, w_layout, z_layout, n,
                         dtype.__name__)
            a, w, z0 = operands(kind, rng, dtype, 5, 7, 2, n)
            check_product(caller, kind, a, 2, n, w, z0, (a_layout, w_layout, z_layout),
                          what=f"z {z_layout}, n={n}")


@pytest.mark.parametrize("layouts, dtype", [(("rows", "rows", "rows"), F32),
                                            (("f", "f", "f"), F64)],
                         ids=["rows-float32", "fortran-float64"])
@KINDS
def test_layouts_typed_by_numba(kind, layouts, dtype):
    """As test_layouts, with Numba typing the arrays by their layouts (A and F arrays; the
    dtype makes no difference to layouts, so one each keeps compilations down)."""
    for n in (3, 12):
        rng = seeded("typed layouts", kind, layouts, n, dtype.__name__)
        a, w, z0 = operands(kind, rng, dtype, 5, 7, 2, n)
        check_product(CALLERS[kind]["acc"], kind, a, 2, n, w, z0, layouts, what=f"n={n}")


@DTYPES
@pytest.mark.parametrize("n", [1, GEMV_ROWS - 1, GEMV_ROWS, 13, 40])
@KINDS
def test_loops_agree_with_blas(kind, n, dtype):
    rng = seeded("agree", kind, n, dtype.__name__)
    a, w, z0 = operands(kind, rng, dtype, 33, 17, 4, n)
    z_acc, z_loops = z0.copy(), z0.copy()
    CALLERS[kind]["acc"](a, 4, n, w, z_acc)
    CALLERS[kind]["loops"](a, 4, n, w, z_loops)
    _, scale = expected_product(kind, a, 4, n, w, z0)
    assert_product(z_acc, z_loops.astype(F64), scale, dtype)
    assert not np.array_equal(z_acc, z0)  # both did add something


MIXED = [(F32, F64, F64), (F64, F32, F32), (F32, F32, F64)]


# The last case passes the inner-stride check (float32 w every other column: 8 bytes, a's
# itemsize), so only the dtype check keeps it from BLAS.
MIXED_LAYOUTS = [(dtypes, ("c", "c", "c")) for dtypes in MIXED] + [
    ((F64, F32, F64), ("c", "strided", "c"))]


@pytest.mark.parametrize("dtypes, layouts", MIXED_LAYOUTS,
                         ids=lambda d: "-".join(getattr(t, "__name__", t) for t in d))
@KINDS
def test_mixed_dtypes(kind, dtypes, layouts):
    """BLAS needs one dtype: the others go to the loops, and must still be right."""
    a_dtype, w_dtype, z_dtype = dtypes
    for n in (3, 12):
        rng = seeded("mixed", kind, dtypes, layouts, n)
        a, _, _ = operands(kind, rng, a_dtype, 6, 9, 1, n)
        w, z0 = uniform(rng, (6, 9), w_dtype), uniform(rng, (n + 3, 9), z_dtype)
        check_product(CALLERS[kind]["acc"], kind, a, 1, n, w, z0, layouts, what=f"n={n}")


@pytest.mark.parametrize("dtypes", MIXED, ids=lambda d: "-".join(t.__name__ for t in d))
def test_panels_mixed_dtypes(dtypes):
    """Panels of one dtype with operands of another: the loop fallback, still right."""
    a_dtype, w_dtype, z_dtype = dtypes
    rng = seeded("panels mixed", dtypes)
    a, w, z0 = uniform(rng, (9, 6), a_dtype), uniform(rng, (6, 40), w_dtype), \
        uniform(rng, (7, 40), z_dtype)
    z = z0.copy()
    matmul_panels_jit(a, 1, 5, pack_panels(w), z)
    expected, scale = expected_product("rows", a, 1, 5, w, z0)
    assert_product(z, expected, scale, F32, "mixed dtypes")


@DTYPES
@pytest.mark.parametrize("g_dim", [1, 31, 33, 70])
def test_panels_touch_nothing_past_z(g_dim, dtype):
    """The last, narrower panel's padding columns are zero, so a store past the end of a
    row of z would add 0.0 and leave values equal: surround z with -0.0, which adding
    +0.0 turns into +0.0, and compare bits."""
    rng = seeded("panels bounds", g_dim, dtype.__name__)
    a, w = uniform(rng, (6, 5), dtype), uniform(rng, (5, g_dim), dtype)
    base = np.full((8, g_dim + 64), -0.0, dtype)
    z = base[1:7, :g_dim]
    z[...] = uniform(rng, z.shape, dtype)
    before = base.copy()
    call_panels(a, 0, 6, w, z)
    outside = np.ones(base.shape, bool)
    outside[1:7, :g_dim] = False
    bits = np.uint32 if dtype == F32 else np.uint64
    np.testing.assert_array_equal(base.view(bits)[outside], before.view(bits)[outside])


matmul_panels_jit = numba.njit(lambda a, row0, n, p, z: matmul_panels_acc(a, row0, n, p, z))


@DTYPES
@pytest.mark.parametrize("g_dim", [0, 1, 16, 31, 32, 33, 64, 70])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pack_panels(layout, g_dim, dtype):
    """Panels [ceil(G / width), K, width]: panel p, row k holds W[k, p * width:][:width],
    zero-padded, from W of any layout; W is left as it was."""
    rng = seeded("pack", layout, g_dim, dtype.__name__)
    w = uniform(rng, (5, g_dim), dtype)
    w_in = place(w, layout, np.nan)[0]
    check_w = unchanged(w_in)
    packed = pack_panels(w_in)
    check_w()
    width = panels.panel_width(dtype)
    assert width * np.dtype(dtype).itemsize == 128
    n_panels = -(-g_dim // width)
    assert packed.dtype == dtype and packed.shape == (n_panels, 5, width)
    padded = np.zeros((5, n_panels * width), dtype)
    padded[:, :g_dim] = w
    expected = padded.reshape(5, n_panels, width).transpose(1, 0, 2)
    np.testing.assert_array_equal(packed, expected)


@st.composite
def product_cases(draw):
    """A random in-kernel product, as plain values so failures print readably."""
    kind, kernel = draw(st.sampled_from(KIND_KERNELS))
    return {"kind": kind, "kernel": kernel,
            "dtype": draw(st.sampled_from([F32, F64])),
            "k_dim": draw(st.integers(0, 12)), "g_dim": draw(st.integers(0, 12)),
            "n": draw(st.integers(0, 20)), "offset": draw(st.integers(0, 6)),
            "extra": draw(st.integers(0, 3)), "z_extra": draw(st.integers(0, 3)),
            "layouts": draw(st.tuples(*[st.sampled_from(LAYOUTS)] * 3)),
            "seed": draw(st.integers(0, 2**32 - 1))}


@settings(max_examples=EXAMPLES, deadline=None)
@given(product_cases())
def test_products_match_numpy(case):
    kind, n, offset, dtype = case["kind"], case["n"], case["offset"], case["dtype"]
    a, w, z0 = operands(kind, np.random.default_rng(case["seed"]), dtype, case["k_dim"],
                        case["g_dim"], offset, n, case["extra"], case["z_extra"])
    check_product(any_layout(kind, case["kernel"]), kind, a, offset, n, w, z0,
                  case["layouts"])


# The whole-sequence products.

@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    if request.param > numba.config.NUMBA_NUM_THREADS:
        pytest.skip(f"Numba has {numba.config.NUMBA_NUM_THREADS} thread(s)")
    previous = numba.get_num_threads()
    numba.set_num_threads(request.param)
    yield request.param
    numba.set_num_threads(previous)


ROWS = pytest.mark.parametrize("rows", [0, 1, 15, 16, 17, 1000])
WRAPPER_LAYOUTS = pytest.mark.parametrize("layout", ["c", "rows", "f", "strided"])


def unchanged(*views):
    """A check that each of ``views`` still holds its current values."""
    before = [v.copy() for v in views]

    def check():
        for i, (view, values) in enumerate(zip(views, before)):
            np.testing.assert_array_equal(view, values, err_msg=f"input {i} modified")
    return check


@WRAPPER_LAYOUTS
@ROWS
@DTYPES
def test_affine(dtype, rows, layout, threads):
    rng = seeded("affine", dtype.__name__, rows, layout, threads)
    x, w, bias = uniform(rng, (rows, 7), dtype), uniform(rng, (7, 11), dtype), \
        uniform(rng, (1, 11), dtype)
    x_in, w_in = place(x, layout, np.nan)[0], place(w, layout, np.nan)[0]
    bias_in = place(bias, layout, np.nan)[0][0]  # a strided 1-D bias for "strided"
    check_inputs = unchanged(x_in, w_in, bias_in)
    out = affine(x_in, w_in, bias_in)
    check_inputs()
    assert out.dtype == dtype and out.shape == (rows, 11)
    x64, w64, bias64 = x.astype(F64), w.astype(F64), bias[0].astype(F64)
    scale = float((np.abs(x64) @ np.abs(w64) + np.abs(bias64)).max(initial=0.0))
    assert_product(out, x64 @ w64 + bias64, scale, dtype)


@WRAPPER_LAYOUTS
@ROWS
@DTYPES
def test_add_matmul(dtype, rows, layout, threads):
    rng = seeded("add_matmul", dtype.__name__, rows, layout, threads)
    a, w, z = uniform(rng, (rows, 7), dtype), uniform(rng, (7, 11), dtype), \
        uniform(rng, (rows, 11), dtype)
    check_in_place_wrapper(add_matmul, "rows", a, w, z, layout)


@WRAPPER_LAYOUTS
@ROWS
@DTYPES
def test_add_matmul_t(dtype, rows, layout, threads):
    """z [40, G] += a^T @ w for a [rows, 40] (a sum over ``rows``)."""
    rng = seeded("add_matmul_t", dtype.__name__, rows, layout, threads)
    a, w, z = uniform(rng, (rows, 40), dtype), uniform(rng, (rows, 11), dtype), \
        uniform(rng, (40, 11), dtype)
    check_in_place_wrapper(add_matmul_t, "cols", a, w, z, layout)


def check_in_place_wrapper(wrapper, kind, a, w, z, layout):
    """``wrapper(a, w, z)`` adds the ``kind`` product to z in place, returns None and
    leaves a and w (laid out as ``layout``) as they were."""
    expected, scale = expected_product(kind, a, 0, z.shape[0], w, z)
    a_in, w_in = place(a, layout, np.nan)[0], place(w, layout, np.nan)[0]
    check_inputs = unchanged(a_in, w_in)
    dtype = z.dtype.type
    assert wrapper(a_in, w_in, z) is None
    check_inputs()
    assert z.dtype == dtype
    assert_product(z, expected, scale, dtype)


@DTYPES
@pytest.mark.parametrize("rows", [0, 5, 300])
@pytest.mark.parametrize("n_parts", [1, 2, 3, 7])
def test_parallel_kernels_any_split(n_parts, rows, dtype):
    """Any number of parts, more than the rows too, and blocks of BLOCK_ROWS within a part."""
    rng = seeded("parts", n_parts, rows, dtype.__name__)
    x, w, bias = uniform(rng, (rows, 6), dtype), uniform(rng, (6, 9), dtype), \
        uniform(rng, 9, dtype)
    out = np.full((rows, 9), np.nan, dtype)
    products.project(x, pack_panels(w), bias, out, n_parts)
    expected, scale = expected_product("rows", x, 0, rows, w, np.zeros((rows, 9)) + bias)
    assert_product(out, expected, scale, dtype, "project")

    z0 = uniform(rng, (rows, 9), dtype)
    z = z0.copy()
    products.matmul_rows(x, pack_panels(w), z, n_parts)
    expected, scale = expected_product("rows", x, 0, rows, w, z0)
    assert_product(z, expected, scale, dtype, "matmul_rows")

    for k_dim, m_dim in [(30, rows), (rows, 7)]:  # a [K, M]: either axis the long one
        a, g = uniform(rng, (k_dim, m_dim), dtype), uniform(rng, (k_dim, 9), dtype)
        z0 = uniform(rng, (m_dim, 9), dtype)
        z = z0.copy()
        partial = np.full((n_parts - 1, m_dim, 9), np.nan, dtype)  # any content
        products.matmul_t(a, g, z, partial)
        expected, scale = expected_product("cols", a, 0, m_dim, g, z0)
        assert_product(z, expected, scale, dtype, f"matmul_t, a [{k_dim}, {m_dim}]")


@pytest.mark.parametrize("dtypes", MIXED, ids=lambda d: "-".join(t.__name__ for t in d))
def test_wrappers_mixed_dtypes(dtypes):
    """Operands of different dtypes go to NumPy, with NumPy's type promotion."""
    a_dtype, w_dtype, z_dtype = dtypes
    rng = seeded("wrappers mixed", dtypes)
    x, w, bias = uniform(rng, (40, 7), a_dtype), uniform(rng, (7, 11), w_dtype), \
        uniform(rng, 11, z_dtype)
    out = affine(x, w, bias)
    assert out.dtype == np.result_type(x, w, bias)
    expected, scale = expected_product("rows", x, 0, 40, w, np.zeros((40, 11)) + bias)
    assert_product(out, expected, scale, F32, "affine")

    z0 = uniform(rng, (40, 11), z_dtype)
    z = z0.copy()
    add_matmul(x, w, z)
    expected, scale = expected_product("rows", x, 0, 40, w, z0)
    assert z.dtype == z_dtype
    assert_product(z, expected, scale, F32, "add_matmul")

    a, g, z0 = uniform(rng, (40, 7), a_dtype), uniform(rng, (40, 11), w_dtype), \
        uniform(rng, (7, 11), z_dtype)
    z = z0.copy()
    add_matmul_t(a, g, z)
    expected, scale = expected_product("cols", a, 0, 7, g, z0)
    assert z.dtype == z_dtype
    assert_product(z, expected, scale, F32, "add_matmul_t")


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiled code")
def test_blas_found_when_numpy_bundles_openblas():
    """A NumPy wheel with its OpenBLAS must be found: a broken discovery would otherwise
    only show as slow kernels."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    bundled = glob.glob(os.path.join(libs, "*openblas*"))
    if not bundled:
        pytest.skip(f"no OpenBLAS bundled in {libs}")
    assert blas.FOUND, f"NumPy bundles {bundled} but kernels.blas did not find its CBLAS"
    assert blas.LIBRARY is not None
