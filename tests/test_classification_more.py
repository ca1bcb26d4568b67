"""Reference tests of the wider classification catalog (values AND gradients, float32 and float64).

References: PyTorch (soft_margin, multilabel_soft_margin, multilabel_margin).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from harness import DTYPES, assert_close, check_reference, torch_value_and_grads

B, C = 6, 4


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------------------
# PyTorch references
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_margin_vs_pytorch(dtype):
    r = rng(1)
    x = (r.normal(size=(B, 3)) * 2).astype(dtype)
    y = r.choice([-1.0, 1.0], size=(B, 3)).astype(dtype)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.soft_margin_loss(a, b, reduction=reduction), [x, y])
        check_reference(jaxloss.soft_margin, v, g, [x, y], dtype, reduction=reduction)
    # {0, 1} labels mean the same as {-1, 1}; per-element values match PyTorch's "none".
    none = F.soft_margin_loss(torch.tensor(x), torch.tensor(y), reduction="none").numpy()
    assert_close(jaxloss.soft_margin(x, (y > 0).astype(np.int32), reduction="none"), none, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_soft_margin_vs_pytorch(dtype):
    r = rng(2)
    x = (r.normal(size=(B, C)) * 2).astype(dtype)
    y = r.uniform(0, 1, size=(B, C)).astype(dtype)  # soft targets: the gradient w.r.t. labels is checked too
    w = r.uniform(0.5, 2.0, size=C).astype(dtype)
    v, g = torch_value_and_grads(lambda a, b: F.multilabel_soft_margin_loss(a, b, weight=torch.tensor(w)), [x, y], argnums=(0, 1))
    check_reference(jaxloss.multilabel_soft_margin, v, g, [x, y], dtype, argnums=(0, 1), class_weights=w)
    # hard {0, 1} int labels, no class weights, per-example values; the class axis may be elsewhere.
    yi = (y > 0.5).astype(np.int32)
    none = F.multilabel_soft_margin_loss(torch.tensor(x), torch.tensor(yi.astype(dtype)), reduction="none").numpy()
    assert_close(jaxloss.multilabel_soft_margin(x, yi, reduction="none"), none, dtype)
    assert_close(jaxloss.multilabel_soft_margin(x.T, yi.T, axis=0, reduction="none"), none, dtype)


def _padded_labels(r, batch):
    labels = np.full((batch, C), -1, np.int64)
    for i in range(batch):
        k = r.integers(0, C + 1)
        labels[i, :k] = r.permutation(C)[:k]
    # PyTorch's corner cases: entries after the first -1 are ignored; a target listed twice counts twice.
    labels[0] = [2, -1, 0, 1]
    labels[1] = [3, 3, -1, 1]
    labels[2] = [-1, 1, 2, 3]
    return labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_multilabel_margin_vs_pytorch(dtype):
    r = rng(3)
    x = r.normal(size=(B, C)).astype(dtype)
    labels = _padded_labels(r, B)
    for reduction in ("mean", "sum"):
        v, g = torch_value_and_grads(lambda a, b: F.multilabel_margin_loss(a, b, reduction=reduction), [x, labels])
        check_reference(jaxloss.multilabel_margin, v, g, [x, labels], dtype, reduction=reduction)
    none = F.multilabel_margin_loss(torch.tensor(x), torch.tensor(labels), reduction="none").numpy()
    jitted = jax.jit(lambda a, b: jaxloss.multilabel_margin(a, b, reduction="none"))
    assert_close(jitted(x, labels), none, dtype)
    assert_close(jaxloss.multilabel_margin(x.T, labels.T, axis=0, reduction="none"), none, dtype)


def test_multilabel_margin_bad_labels():
    x = np.zeros((2, C), np.float32)
    labels = np.array([[0, 7, -1, -1], [1, -1, 9, 9]])  # 7 is out of range; the 9s follow a -1 and do not count
    out = np.asarray(jaxloss.multilabel_margin(x, labels, reduction="none"))
    assert np.isnan(out[0]) and out[1] == pytest.approx(3 / C)
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels)
    with pytest.raises(Exception, match="out of range"):
        err.throw()
    err, _ = jaxloss.checked(jaxloss.multilabel_margin)(x, labels, where=np.array([False, True]))
    err.throw()  # the bad example is masked: no error
    with pytest.raises(TypeError, match="integer"):
        jaxloss.multilabel_margin(x, labels.astype(np.float32))
