"""Tests of numba_rnn.training: layers, losses, clipping, optimizers and StatefulRNN.

Every backward is checked against central finite differences in float64, element by
element: d f / d x_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) with eps = 1e-6. The
truncation error is ~eps^2 |f'''| ~ 1e-12 and the rounding error ~1e-16 |f| / eps ~ 1e-10
for the O(1) losses here, so the tolerance is atol = 1e-8 plus rtol = 1e-6 (two orders
above both, far below any real error, which would be O(1e-2) or more).
"""
import math

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import nest
from numba_rnn.training import (
    SGD,
    Adam,
    Dense,
    Embedding,
    StatefulRNN,
    clip_by_global_norm,
    mean_squared_error,
    softmax_cross_entropy,
)

F32, F64 = np.float32, np.float64
EPS = 1e-6
FD_TOL = dict(rtol=1e-6, atol=1e-8)  # see the module docstring


def numerical_grad(f, x):
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (in place)."""
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + EPS
        up = f()
        x[i] = saved - EPS
        down = f()
        x[i] = saved
        grad[i] = (up - down) / (2 * EPS)
    return grad


# ----------------------------------------------------------------------------- Embedding

@pytest.mark.parametrize("ids", [
    np.array([[1, 3, 1, 1], [0, 3, 4, 1]]),  # [B, T], ids 1 and 3 repeated
    np.array([2, 2, 2]),                      # [B], one id three times
], ids=["batch_time", "repeated_only"])
def test_embedding_backward_matches_finite_differences(ids):
    rng = np.random.default_rng(0)
    layer = Embedding(6, 3, seed=1, dtype=F64)
    w_out = rng.standard_normal(ids.shape + (3,))

    def loss():
        return float(np.sum(w_out * layer(ids)))

    d_weight = layer.backward(ids, w_out)
    assert d_weight.shape == layer.weight.shape and d_weight.dtype == F64
    np.testing.assert_allclose(d_weight, numerical_grad(loss, layer.weight), **FD_TOL)
    # Independent of the finite differences: a repeated id gets the sum of its rows, an
    # unused id exactly zero.
    flat_ids, flat_d = ids.reshape(-1), w_out.reshape(-1, 3)
    for v in range(6):
        np.testing.assert_allclose(d_weight[v], flat_d[flat_ids == v].sum(axis=0), rtol=1e-12)
    assert np.all(d_weight[5] == 0)


def test_embedding_forward_picks_rows_and_float32_keeps_dtype():
    layer = Embedding(5, 4, seed=0)  # float32 by default
    ids = np.array([[4, 0], [0, 2]])
    out = layer(ids)
    assert out.dtype == F32 and out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out[0, 1], layer.weight[0])
    np.testing.assert_array_equal(out[1, 1], layer.weight[2])
    d_weight = layer.backward(ids, np.ones((2, 2, 4), F32))
    assert d_weight.dtype == F32
    np.testing.assert_array_equal(d_weight[0], 2 * np.ones(4, F32))
    assert layer.params == [layer.weight] and layer.params[0] is layer.weight


# ----------------------------------------------------------------------------- Dense

@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 4)], ids=["BTD", "BD"])
def test_dense_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(0)
    layer = Dense(4, 5, seed=2, dtype=F64)
    layer.bias[:] = rng.standard_normal(5)  # non-zero bias, so that it matters
    x = rng.standard_normal(shape)
    w_out = rng.standard_normal(shape[:-1] + (5,))

    def loss():
        return float(np.sum(w_out * layer(x)))

    y = layer(x)
    assert y.shape == shape[:-1] + (5,)
    np.testing.assert_allclose(y, np.einsum("...d,de->...e", x, layer.kernel) + layer.bias,
                               rtol=1e-12)
    d_x, (d_kernel, d_bias) = layer.backward(x, w_out)
    assert d_x.shape == x.shape and d_kernel.shape == (4, 5) and d_bias.shape == (5,)
    np.testing.assert_allclose(d_x, numerical_grad(loss, x), **FD_TOL)
    np.testing.assert_allclose(d_kernel, numerical_grad(loss, layer.kernel), **FD_TOL)
    np.testing.assert_allclose(d_bias, numerical_grad(loss, layer.bias), **FD_TOL)


def test_dense_float32_keeps_dtype():
    rng = np.random.default_rng(0)
    layer = Dense(3, 2, seed=0)  # float32 by default
    assert layer.kernel.dtype == F32 and layer.bias.dtype == F32
    x = rng.standard_normal((2, 4, 3)).astype(F32)
    y = layer(x)
    assert y.dtype == F32
    d_x, (d_kernel, d_bias) = layer.backward(x, np.ones_like(y))
    assert d_x.dtype == F32 and d_kernel.dtype == F32 and d_bias.dtype == F32
    assert layer.params[0] is layer.kernel and layer.params[1] is layer.bias


# ----------------------------------------------------------------------------- cross-entropy

def _logits_and_labels(rng, shape=(3, 4, 5), dtype=F64):
    logits = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[2], shape[:2])
    return logits, labels


@pytest.mark.parametrize("lengths", [None, np.array([4, 0, 2])], ids=["full", "with_zero"])
def test_cross_entropy_gradient_matches_finite_differences(lengths):
    rng = np.random.default_rng(0)
    logits, labels = _logits_and_labels(rng)
    loss, d_logits = softmax_cross_entropy(logits, labels, lengths)
    assert isinstance(loss, float) and d_logits.dtype == F64 and d_logits.shape == logits.shape
    numeric = numerical_grad(lambda: softmax_cross_entropy(logits, labels, lengths)[0], logits)
    np.testing.assert_allclose(d_logits, numeric, **FD_TOL)


def test_cross_entropy_masked_steps_get_exactly_zero_and_do_not_change_the_loss():
    rng = np.random.default_rng(1)
    logits, labels = _logits_and_labels(rng)
    lengths = np.array([4, 0, 2])
    mask = np.arange(4)[None, :] < lengths[:, None]
    loss, d_logits = softmax_cross_entropy(logits, labels, lengths)
    assert np.all(d_logits[~mask] == 0)
    assert np.all(np.abs(d_logits[mask]).sum(axis=-1) > 0)
    # Anything (finite) in the padding changes nothing.
    padded = logits.copy()
    padded[~mask] = 1e3 * rng.standard_normal(padded[~mask].shape)
    loss2, d_logits2 = softmax_cross_entropy(padded, labels, lengths)
    assert loss2 == loss
    np.testing.assert_array_equal(d_logits2, d_logits)


def test_cross_entropy_all_lengths_zero():
    rng = np.random.default_rng(0)
    logits, labels = _logits_and_labels(rng)
    loss, d_logits = softmax_cross_entropy(logits, labels, [0, 0, 0])
    assert loss == 0.0 and np.all(d_logits == 0)


@pytest.mark.parametrize("vocab", [2, 7, 50])
def test_cross_entropy_uniform_logits_give_log_v(vocab):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, vocab, (3, 4))
    for constant in (0.0, 3.5, -1e4):
        loss, d_logits = softmax_cross_entropy(np.full((3, 4, vocab), constant), labels)
        assert loss == pytest.approx(math.log(vocab), rel=1e-12)
        # d/dz of the mean: (softmax - onehot) / (B T) = (1/V - onehot) / 12.
        expected = np.full((3, 4, vocab), 1.0 / vocab)
        np.put_along_axis(expected, labels[..., None], 1.0 / vocab - 1.0, axis=2)
        np.testing.assert_allclose(d_logits, expected / 12, rtol=1e-12)


def test_cross_entropy_small_case_by_hand():
    # Step 0: logits (0, ln 3), label 1: p = 3/4. Step 1: same logits, label 0: p = 1/4.
    # Step 2 is padding (length 2) whatever it holds.
    logits = np.array([[[0.0, math.log(3.0)], [0.0, math.log(3.0)], [5.0, -5.0]]])
    labels = np.array([[1, 0, 1]])
    loss, d_logits = softmax_cross_entropy(logits, labels, lengths=[2])
    assert loss == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2, rel=1e-12)
    expected = np.array([[[0.25, -0.25], [-0.75, 0.75], [0.0, 0.0]]]) / 2
    np.testing.assert_allclose(d_logits, expected, rtol=1e-12, atol=1e-15)
    # Without lengths the third step counts: p(label 1) = e^-5 / (e^5 + e^-5).
    loss3, _ = softmax_cross_entropy(logits, labels)
    step3 = -math.log(math.exp(-5) / (math.exp(5) + math.exp(-5)))
    assert loss3 == pytest.approx((-math.log(0.75) - math.log(0.25) + step3) / 3, rel=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[[1000.0, 0.0], [0.0, 1000.0]]])
    loss, d_logits = softmax_cross_entropy(logits, np.array([[0, 0]]))
    assert loss == pytest.approx(500.0, rel=1e-12)  # (0 + 1000) / 2
    assert np.all(np.isfinite(d_logits))


def test_cross_entropy_float32():
    rng = np.random.default_rng(0)
    logits, labels = _logits_and_labels(rng, dtype=F32)
    loss32, d32 = softmax_cross_entropy(logits, labels, [4, 1, 0])
    loss64, d64 = softmax_cross_entropy(logits.astype(F64), labels, [4, 1, 0])
    assert isinstance(loss32, float) and d32.dtype == F32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- MSE

@pytest.mark.parametrize("shape, lengths", [
    ((3, 4), None),
    ((3, 4), np.array([4, 0, 1])),
    ((3, 4, 2, 3), np.array([2, 0, 4])),
    ((3, 4, 2), None),
], ids=["BT", "BT_lengths", "BT23_lengths", "BT2"])
def test_mse_gradient_matches_finite_differences(shape, lengths):
    rng = np.random.default_rng(0)
    predictions, targets = rng.standard_normal(shape), rng.standard_normal(shape)
    loss, d_pred = mean_squared_error(predictions, targets, lengths)
    assert isinstance(loss, float) and d_pred.shape == shape and d_pred.dtype == F64
    numeric = numerical_grad(lambda: mean_squared_error(predictions, targets, lengths)[0],
                             predictions)
    np.testing.assert_allclose(d_pred, numeric, **FD_TOL)
    # Independent formula: mean over the valid steps and all trailing elements.
    steps = np.ones(shape[:2], bool) if lengths is None else \
        np.arange(shape[1])[None, :] < lengths[:, None]
    valid = (predictions - targets)[steps]
    assert loss == pytest.approx(np.mean(valid ** 2), rel=1e-12)
    assert np.all(d_pred[~steps] == 0)


def test_mse_small_case_by_hand():
    predictions = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [9.0, 9.0]]])
    targets = np.zeros((2, 2, 2))
    # All: (1 + 4 + 9 + 16 + 1 + 1 + 81 + 81) / 8; lengths [2, 1]: (1+4+9+16+1+1) / 6.
    assert mean_squared_error(predictions, targets)[0] == pytest.approx(194 / 8, rel=1e-12)
    loss, d_pred = mean_squared_error(predictions, targets, [2, 1])
    assert loss == pytest.approx(32 / 6, rel=1e-12)
    expected = 2 * predictions / 6
    expected[1, 1] = 0
    np.testing.assert_allclose(d_pred, expected, rtol=1e-12)
    loss0, d0 = mean_squared_error(predictions, targets, [0, 0])
    assert loss0 == 0.0 and np.all(d0 == 0)


def test_mse_float32_keeps_dtype():
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((2, 3, 2)).astype(F32), rng.standard_normal((2, 3, 2))
    loss, d_pred = mean_squared_error(p, t.astype(F32), [3, 1])
    assert isinstance(loss, float) and d_pred.dtype == F32
    loss64, d64 = mean_squared_error(p.astype(F64), t.astype(F32).astype(F64), [3, 1])
    assert loss == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(d_pred, d64, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- clipping

def _grads(dtype=F64):
    return [np.array([3.0, 4.0], dtype), np.array([[12.0]], dtype)]  # joint norm 13


def test_clip_norm_and_no_op_below_max_norm():
    grads = _grads()
    for max_norm in (13.0, 26.0, np.inf):
        clipped, norm = clip_by_global_norm(grads, max_norm)
        assert norm == pytest.approx(13.0, rel=1e-15)
        for c, g in zip(clipped, grads):
            np.testing.assert_array_equal(c, g)
    np.testing.assert_array_equal(grads[0], [3.0, 4.0])  # inputs untouched


@pytest.mark.parametrize("max_norm", [6.5, np.float64(6.5)], ids=["float", "np_float64"])
@pytest.mark.parametrize("dtype, rel", [(F64, 1e-14), (F32, 1e-6)])
def test_clip_scales_to_exactly_max_norm(dtype, rel, max_norm):
    grads = _grads(dtype)
    clipped, norm = clip_by_global_norm(grads, max_norm)
    assert norm == pytest.approx(13.0, rel=rel)
    assert all(c.dtype == dtype for c in clipped)
    new_norm = math.sqrt(sum(float(np.sum(c.astype(F64) ** 2)) for c in clipped))
    assert new_norm == pytest.approx(6.5, rel=rel)
    np.testing.assert_allclose(clipped[0], [1.5, 2.0], rtol=rel)  # same direction, half
    np.testing.assert_allclose(clipped[1], [[6.0]], rtol=rel)
    np.testing.assert_array_equal(grads[0], np.array([3.0, 4.0], dtype))  # inputs untouched


def test_clip_random_norm():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2, 2))]
    expected = np.linalg.norm(np.concatenate([g.ravel() for g in grads]))
    clipped, norm = clip_by_global_norm(grads, 0.1)
    assert norm == pytest.approx(expected, rel=1e-14)
    for c, g in zip(clipped, grads):
        np.testing.assert_allclose(c, g * 0.1 / expected, rtol=1e-14)


def test_clip_zero_gradients_untouched():
    grads = [np.zeros(3), np.zeros((2, 2))]
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == 0.0
    assert all(np.all(c == 0) and np.all(np.isfinite(c)) for c in clipped)
    assert [c.shape for c in clipped] == [(3,), (2, 2)]


@pytest.mark.parametrize("max_norm", [0, 0.0, -1.0, float("nan")])
def test_clip_bad_max_norm(max_norm):
    with pytest.raises(ValueError, match=r"max_norm must be > 0, got"):
        clip_by_global_norm(_grads(), max_norm)


# ----------------------------------------------------------------------------- optimizers

def test_sgd_one_step_by_hand():
    p = np.array([1.0, -2.0, 0.5])
    original = p
    SGD(learning_rate=0.1).step([p], [np.array([0.5, 0.25, -1.0])])
    assert p is original
    np.testing.assert_allclose(p, [0.95, -2.025, 0.6], rtol=1e-15)


def test_sgd_momentum_two_steps_by_hand():
    p = np.array([1.0, -2.0])
    opt = SGD(learning_rate=0.1, momentum=0.9)
    opt.step([p], [np.array([1.0, 2.0])])   # v = (-0.1, -0.2)
    np.testing.assert_allclose(p, [0.9, -2.2], rtol=1e-15)
    opt.step([p], [np.array([1.0, -1.0])])  # v = 0.9 v - 0.1 g = (-0.19, -0.08)
    np.testing.assert_allclose(p, [0.71, -2.28], rtol=1e-14)


def test_adam_steps_by_hand():
    # Algorithm 1 of Kingma and Ba; with epsilon = 0 the bias-corrected forms agree exactly.
    lr, b1, b2 = 0.01, 0.9, 0.999
    p = np.array([1.0, -2.0, 0.5])
    expected = p.copy()
    m = np.zeros(3)
    v = np.zeros(3)
    opt = Adam(learning_rate=lr, beta1=b1, beta2=b2, epsilon=0.0)
    for t, g in enumerate([np.array([0.5, -3.0, 1e-3]), np.array([-1.0, 2.0, 4.0]),
                           np.array([0.2, 0.2, -0.2])], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected -= lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t))
        opt.step([p], [g])
        np.testing.assert_allclose(p, expected, rtol=1e-12)
    # The first step moves every coordinate by learning_rate against its gradient's sign,
    # up to epsilon: 1e-8 / sqrt(1 - beta2) / |g| ~ 1e-6 relative here (epsilon is added to
    # the uncorrected sqrt(v), the "epsilon hat" form of the paper's section 2, as in TF).
    q = np.array([0.0, 0.0])
    Adam(learning_rate=0.01).step([q], [np.array([5.0, -0.3])])
    np.testing.assert_allclose(q, [-0.01, 0.01], rtol=1e-5)


def test_adam_zero_gradient_leaves_parameter_finite_and_unchanged():
    p = np.array([1.0, 2.0])
    Adam().step([p], [np.array([0.0, 1.0])])
    assert p[0] == 1.0 and np.isfinite(p[1]) and p[1] != 2.0


def _quadratic():
    """f = sum_i 0.5 a_i (p_i - c_i)^2 over two arrays; gradient a (p - c)."""
    rng = np.random.default_rng(0)
    a = [rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(0.5, 2.0, 4)]
    c = [rng.standard_normal((2, 3)), rng.standard_normal(4)]
    params = [np.zeros((2, 3)), np.zeros(4)]
    return params, (lambda: [ai * (p - ci) for ai, p, ci in zip(a, params, c)]), c


@pytest.mark.parametrize("make, steps", [
    (lambda: SGD(learning_rate=0.3), 100),
    (lambda: SGD(learning_rate=0.1, momentum=0.8), 200),
    (lambda: Adam(learning_rate=0.05), 1000),
], ids=["sgd", "sgd_momentum", "adam"])
def test_optimizers_minimise_a_quadratic(make, steps):
    params, grad, c = _quadratic()
    originals = list(params)
    opt = make()
    start = max(np.abs(p - ci).max() for p, ci in zip(params, c))
    for _ in range(steps):
        opt.step(params, grad())
    assert all(p is o for p, o in zip(params, originals))  # updated in place
    assert max(np.abs(p - ci).max() for p, ci in zip(params, c)) < 1e-4 * start


@pytest.mark.parametrize("make", [lambda: SGD(0.1), lambda: SGD(0.1, 0.5), lambda: Adam(0.1)],
                         ids=["sgd", "sgd_momentum", "adam"])
def test_optimizers_update_layer_arrays_in_place_and_keep_float32(make):
    layer = Dense(3, 2, seed=0)
    kernel, bias = layer.kernel, layer.bias
    before = [kernel.copy(), bias.copy()]
    opt = make()
    for _ in range(2):
        opt.step(layer.params, [np.ones((3, 2), F32), np.ones(2, F32)])
    assert layer.kernel is kernel and layer.bias is bias
    assert kernel.dtype == F32 and bias.dtype == F32
    assert np.all(kernel < before[0]) and np.all(bias < before[1])


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rate=0.0), r"learning_rate > 0 .*got 0\.0 and 0\.0"),
    (dict(learning_rate=-0.1), r"learning_rate > 0 .*got -0\.1"),
    (dict(learning_rate=float("nan")), r"learning_rate > 0 .*got nan"),
    (dict(momentum=1.0), r"0 <= momentum < 1, got 0\.01 and 1\.0"),
    (dict(momentum=-0.5), r"0 <= momentum < 1, got 0\.01 and -0\.5"),
    (dict(momentum=float("nan")), r"0 <= momentum < 1, got 0\.01 and nan"),
])
def test_sgd_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rate=0), r"learning_rate > 0 .*got 0, 0\.9, 0\.999"),
    (dict(learning_rate=-1e-3), r"learning_rate > 0 .*got -0\.001"),
    (dict(beta1=1.0), r"betas in \[0, 1\), got 0\.001, 1\.0, 0\.999"),
    (dict(beta1=-0.1), r"betas in \[0, 1\), got 0\.001, -0\.1, 0\.999"),
    (dict(beta2=1.0), r"betas in \[0, 1\), got 0\.001, 0\.9, 1\.0"),
    (dict(beta2=float("nan")), r"betas in \[0, 1\), got 0\.001, 0\.9, nan"),
])
def test_adam_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Adam(**kwargs)


@pytest.mark.parametrize("epsilon", [-1.0, float("nan")])
def test_adam_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        Adam(epsilon=epsilon)


# ----------------------------------------------------------------------------- StatefulRNN

def _cell(kind, depth=2, seed=0):
    rng = np.random.default_rng(seed)
    # One kernel (LSTM, float64) for everything: compiling more cells would cost ~10 s per
    # cell type on a cold Numba cache. "lstm" has a tuple state, "lstm_flat" a single array.
    cell = nr.LSTMCell(3, state_is_tuple=(kind == "lstm"), dtype=F64)
    cell.build(depth, F64)
    cell.set_weights([w + 0.5 * rng.standard_normal(w.shape) for w in cell.get_weights()])
    return cell


def _close(a, b, rtol=1e-12, atol=1e-14):
    fa, fb = nest.flatten(a), nest.flatten(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


CELL_KINDS = ["lstm_flat", "lstm"]


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("method", ["call", "train_step"])
def test_stateful_two_calls_equal_one_call_on_the_concatenation(kind, method):
    cell = _cell(kind)
    x = np.random.default_rng(1).standard_normal((4, 7, 2))
    whole_out, whole_state = nr.dynamic_rnn(cell, x)
    rnn = StatefulRNN(cell)
    parts = []
    for chunk in (x[:, :3], x[:, 3:]):
        parts.append(rnn(chunk) if method == "call" else rnn.train_step(chunk)[0])
    _close(np.concatenate(parts, axis=1), whole_out)
    _close(rnn.state, whole_state)
    # The first chunk alone starts from zero.
    _close(parts[0], nr.dynamic_rnn(cell, x[:, :3])[0])


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_stateful_reset_all(kind):
    cell = _cell(kind)
    x = np.random.default_rng(2).standard_normal((3, 4, 2))
    rnn = StatefulRNN(cell)
    first = rnn(x)
    second = rnn(x)
    assert not np.allclose(first, second)  # the carried state matters
    rnn.reset()
    assert rnn.state is None
    _close(rnn(x), first)


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("rows", [[0, 2], np.array([True, False, True, False])],
                         ids=["indices", "mask"])
def test_stateful_reset_rows(kind, rows):
    cell = _cell(kind)
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 5, 2))
    continued = nr.dynamic_rnn(cell, np.concatenate([x1, x2], axis=1))[0][:, 3:]
    fresh = nr.dynamic_rnn(cell, x2)[0]
    rnn = StatefulRNN(cell)
    rnn(x1)
    carried = nest.map_structure(np.copy, rnn.state)
    rnn.reset(rows)
    for new, old in zip(nest.flatten(rnn.state), nest.flatten(carried)):
        np.testing.assert_array_equal(new[[0, 2]], 0)
        np.testing.assert_array_equal(new[[1, 3]], old[[1, 3]])
    out = rnn(x2)
    _close(out[[0, 2]], fresh[[0, 2]])          # restarted from zero
    _close(out[[1, 3]], continued[[1, 3]])      # carried on
    assert not np.allclose(out[[1, 3]], fresh[[1, 3]])


def test_stateful_reset_rows_does_not_write_into_the_old_state():
    cell = _cell("lstm_flat")
    rnn = StatefulRNN(cell)
    rnn(np.ones((2, 2, 2)))
    old = rnn.state
    saved = old.copy()
    rnn.reset([1])
    np.testing.assert_array_equal(old, saved)
    np.testing.assert_array_equal(rnn.state[1], 0)
    np.testing.assert_array_equal(rnn.state[0], saved[0])


def test_stateful_reset_rows_before_any_call_is_a_no_op():
    rnn = StatefulRNN(_cell("lstm_flat"))
    rnn.reset([0])
    assert rnn.state is None


def test_stateful_reset_no_rows():
    rnn = StatefulRNN(_cell("lstm_flat"))
    rnn(np.ones((2, 2, 2)))
    saved = rnn.state.copy()
    rnn.reset([])
    np.testing.assert_array_equal(rnn.state, saved)


@pytest.mark.parametrize("method", ["call", "train_step"])
def test_stateful_batch_change_without_reset(method):
    cell = _cell("lstm")
    rnn = StatefulRNN(cell)
    rnn(np.zeros((4, 2, 2)))
    run = rnn if method == "call" else rnn.train_step
    with pytest.raises(ValueError, match=r"the carried state has batch size 4 but the inputs "
                                         r"have 3; call reset\(\) when the batch changes"):
        run(np.zeros((3, 2, 2)))
    rnn.reset()
    run(np.zeros((3, 2, 2)))
    assert nest.flatten(rnn.state)[0].shape == (3, 3)


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("lengths", [None, np.array([5, 0, 2])], ids=["full", "ragged"])
def test_stateful_train_step_backward_equals_vjp(kind, lengths):
    cell = _cell(kind)
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 5, 2))
    rnn = StatefulRNN(cell)
    rnn(x1)
    carried = nest.map_structure(np.copy, rnn.state)
    outputs, backward = rnn.train_step(x2, sequence_length=lengths)

    (ref_out, ref_state), ref_backward = nr.vjp(nr.dynamic_rnn, cell, x2,
                                                sequence_length=lengths, initial_state=carried)
    _close(outputs, ref_out)
    _close(rnn.state, ref_state)
    d_outputs = rng.standard_normal(outputs.shape)
    d_inputs, d_weights = backward(d_outputs)
    ref = ref_backward((d_outputs, None))
    assert d_inputs.shape == x2.shape
    _close(d_inputs, ref.inputs)
    assert len(d_weights) == len(cell.get_weights())
    for g, r, w in zip(d_weights, ref.weights, cell.get_weights()):
        assert g.shape == w.shape
        _close(g, r)
    # The gradient does depend on the carried state (it is not the one from zero).
    zero_grads = nr.vjp(nr.dynamic_rnn, cell, x2, sequence_length=lengths)[1]((d_outputs, None))
    assert not np.allclose(d_weights[0], zero_grads.weights[0])


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad, message", [
    (np.array([[0, 4, 1]]), r"labels must be in \[0, 4\), got values from 0 to 4"),
    (np.array([[0, -1, 1]]), r"labels must be in \[0, 4\), got values from -1 to 1"),
    (np.array([[0.0, 1.0, 2.0]]), r"labels must be integers, got dtype float64"),
    (np.array([[True, False, True]]), r"labels must be integers, got dtype bool"),
])
def test_cross_entropy_bad_labels(bad, message):
    with pytest.raises(ValueError, match=message):
        softmax_cross_entropy(np.zeros((1, 3, 4)), bad)


@pytest.mark.parametrize("logits, labels, lengths, message", [
    (np.zeros((2, 3, 4)), np.zeros((3, 2), int), None,
     r"labels must have shape \(2, 3\), got \(3, 2\)"),
    (np.zeros((2, 3, 4)), np.zeros((2, 3, 1), int), None,
     r"labels must have shape \(2, 3\), got \(2, 3, 1\)"),
    (np.zeros((2, 4)), np.zeros((2,), int), None,
     r"logits must have shape \[batch, time, classes\], got \(2, 4\)"),
    (np.zeros((2, 3, 4)), np.zeros((2, 3), int), [1, 2, 3],
     r"lengths must be a vector of shape \[batch_size\] = \(2,\), got shape \(3,\)"),
])
def test_cross_entropy_bad_shapes(logits, labels, lengths, message):
    with pytest.raises(ValueError, match=message):
        softmax_cross_entropy(logits, labels, lengths)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("lengths", [[4, 1], [-1, 1], [1.5, 1]], ids=["too_long", "negative",
                                                                      "fractional"])
def test_loss_lengths_out_of_range(loss, lengths):
    with pytest.raises(ValueError, match="lengths"):
        if loss == "mse":
            mean_squared_error(np.zeros((2, 3)), np.zeros((2, 3)), lengths)
        else:
            softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3), int), lengths)


@pytest.mark.parametrize("predictions, targets, message", [
    (np.zeros((2, 3)), np.zeros((2, 4)), r"same shape, got \(2, 3\) and \(2, 4\)"),
    (np.zeros((2, 3, 1)), np.zeros((2, 3)), r"same shape, got \(2, 3, 1\) and \(2, 3\)"),
])
def test_mse_mismatched_shapes(predictions, targets, message):
    with pytest.raises(ValueError, match="predictions and targets must have the " + message):
        mean_squared_error(predictions, targets)


def test_mse_bad_lengths_shape():
    with pytest.raises(ValueError, match=r"lengths must be a vector of shape \[batch_size\] = "
                                         r"\(2,\), got shape \(2, 1\)"):
        mean_squared_error(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 1), int))


@pytest.mark.parametrize("ids, message", [
    (np.array([0, 5]), r"ids must be in \[0, 5\), got values from 0 to 5"),
    (np.array([[-2, 1]]), r"ids must be in \[0, 5\), got values from -2 to 1"),
    (np.array([0.0, 1.0]), r"ids must be integers, got dtype float64"),
    ([1.5], r"ids must be integers, got dtype float64"),
])
def test_embedding_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        Embedding(5, 2, seed=0)(ids)


@pytest.mark.parametrize("x", [np.zeros((2, 4)), np.zeros((2, 3, 2)), np.zeros(()),
                               np.zeros((3, 0))])
def test_dense_wrong_input_depth(x):
    with pytest.raises(ValueError, match=r"Dense expects inputs with last dimension 3, got "
                                         r"shape " + re_shape(x.shape)):
        Dense(3, 2, seed=0)(x)


def re_shape(shape):
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4", None])
@pytest.mark.parametrize("make, name", [
    (lambda n: Embedding(n, 3), "vocab_size"),
    (lambda n: Embedding(3, n), "dim"),
    (lambda n: Dense(n, 3), "in_dim"),
    (lambda n: Dense(3, n), "out_dim"),
], ids=["embedding_vocab", "embedding_dim", "dense_in", "dense_out"])
def test_layer_sizes_must_be_positive_integers(make, name, bad):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {bad!r}"):
        make(bad)


@pytest.mark.parametrize("make", [lambda: Embedding(3, 2, dtype=np.int32),
                                  lambda: Dense(3, 2, dtype=np.float16)],
                         ids=["embedding", "dense"])
def test_layer_dtype_must_be_float32_or_float64(make):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        make()
