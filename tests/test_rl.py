"""Reference tests for the RL losses: float64 NumPy formulas from the papers (Williams 1992 REINFORCE,
Schulman et al. 2017 PPO, Sutton 1988 TD(0), Watkins 1989 / Mnih et al. 2015 Q-learning, PPO2 value
clipping), finite-difference gradients, and rlax's stop-gradient semantics for targets."""

import jax
import numpy as np
import pytest

import jaxloss
from harness import DTYPES, all_finite, assert_close, check_reference, jax_value_and_grads, numeric_grads

B, A = 6, 4
TOL64 = dict(rtol=1e-6, atol=1e-9)  # finite differences in float64


def tol(dtype):
    return TOL64 if dtype == np.float64 else {}


def np_huber(e, delta):
    a = np.abs(e)
    return np.where(a <= delta, 0.5 * e * e, delta * (a - 0.5 * delta))


def np_loss(e, loss, delta=1.0):
    return 0.5 * e * e if loss == "squared" else np_huber(e, delta)


def zero_grads(fn, arrays, argnums):
    _, grads = jax_value_and_grads(fn, arrays, argnums)
    return all(np.all(g == 0) for g in grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_policy_gradient_against_numpy(dtype):
    """REINFORCE (Williams 1992): mean of -log softmax(x)[a] * A; gradient (softmax - onehot) A / B;
    advantages get no gradient unless stop_target_gradients=False (then -log pi / B)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(B, A)) * 2).astype(dtype)
    a = rng.integers(0, A, size=B)
    adv = rng.normal(size=B).astype(dtype)
    x64, adv64 = x.astype(np.float64), adv.astype(np.float64)
    lse = np.log(np.exp(x64).sum(-1))
    log_pi = x64[np.arange(B), a] - lse
    soft = np.exp(x64 - lse[:, None])
    grad_x = (soft - np.eye(A)[a]) * adv64[:, None] / B
    check_reference(lambda l: jaxloss.policy_gradient(l, a, adv), np.mean(-log_pi * adv64), [grad_x], (x,), dtype)
    assert zero_grads(lambda l, v: jaxloss.policy_gradient(l, a, v), (x, adv), (1,))
    check_reference(
        lambda l, v: jaxloss.policy_gradient(l, a, v, stop_target_gradients=False),
        np.mean(-log_pi * adv64),
        [grad_x, -log_pi / B],
        (x, adv),
        dtype,
        argnums=(0, 1),
    )


def np_ppo(lp, old, adv, eps):
    """float64 NumPy clipped surrogate (Schulman et al. 2017, eq. 7), negated and averaged."""
    r = np.exp(lp - old)
    return np.mean(-np.minimum(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv))


@pytest.mark.parametrize("dtype", DTYPES)
def test_ppo_clip_against_numpy(dtype):
    """PPO's L^CLIP with ratios on both sides of the clip range and both advantage signs; finite-difference
    gradients; old_log_probs and advantages get zero gradient by default."""
    rng = np.random.default_rng(1)
    lp = np.log(rng.uniform(0.05, 1.0, size=2 * B))
    log_r = np.array([-0.6, -0.1, 0.05, 0.1, 0.5, 0.9] * 2)  # clipped below / inside / above (eps 0.2)
    old = lp - log_r
    adv = np.concatenate([rng.uniform(0.5, 2, B), -rng.uniform(0.5, 2, B)])
    arrays = tuple(v.astype(dtype) for v in (lp, old, adv))
    f = lambda *v: np_ppo(*v, 0.2)
    ref = f(*arrays)
    check_reference(jaxloss.ppo_clip, ref, numeric_grads(f, arrays), arrays, dtype, **tol(dtype))
    assert zero_grads(jaxloss.ppo_clip, arrays, (1, 2))
    check_reference(
        lambda *v: jaxloss.ppo_clip(*v, stop_target_gradients=False),
        ref,
        numeric_grads(f, arrays, (0, 1, 2)),
        arrays,
        dtype,
        argnums=(0, 1, 2),
        **tol(dtype),
    )
    assert_close(jaxloss.ppo_clip(*arrays, epsilon=0.5), np_ppo(*arrays, 0.5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_td_error_and_q_learning_against_numpy(dtype):
    """TD(0) (Sutton 1988) and Q-learning (Watkins 1989; DQN's Huber loss, Mnih et al. 2015) in float64
    NumPy, squared and Huber; gradients by finite differences, with and without stop_target_gradients."""
    rng = np.random.default_rng(2)
    v_tm1, r, v_t = (rng.normal(size=B) * 2 for _ in range(3))
    disc = rng.uniform(0, 1, size=B)
    q_tm1, q_t = rng.normal(size=(B, A)) * 2, rng.normal(size=(B, A)) * 2
    a = rng.integers(0, A, size=B)
    td_arrays = tuple(x.astype(dtype) for x in (v_tm1, r, disc, v_t))
    q_arrays = (q_tm1.astype(dtype), a, r.astype(dtype), disc.astype(dtype), q_t.astype(dtype))
    for loss, delta in (("squared", 1.0), ("huber", 0.8)):
        td_ref = lambda v0, r_, d, v1: np.mean(np_loss(r_ + d * v1 - v0, loss, delta))
        q_ref = lambda q0, a_, r_, d, q1: np.mean(np_loss(r_ + d * q1.max(-1) - q0[np.arange(B), a_], loss, delta))
        kw = dict(loss=loss, delta=delta)
        check_reference(
            lambda *x: jaxloss.td_error(*x, **kw),
            td_ref(*td_arrays),
            numeric_grads(td_ref, td_arrays),
            td_arrays,
            dtype,
            **tol(dtype),
        )
        assert zero_grads(lambda *x: jaxloss.td_error(*x, **kw), td_arrays, (1, 2, 3))
        check_reference(
            lambda *x: jaxloss.td_error(*x, stop_target_gradients=False, **kw),
            td_ref(*td_arrays),
            numeric_grads(td_ref, td_arrays, (0, 1, 2, 3)),
            td_arrays,
            dtype,
            argnums=(0, 1, 2, 3),
            **tol(dtype),
        )
        check_reference(
            lambda *x: jaxloss.q_learning(*x, **kw),
            q_ref(*q_arrays),
            numeric_grads(q_ref, q_arrays),
            q_arrays,
            dtype,
            **tol(dtype),
        )
        assert zero_grads(lambda *x: jaxloss.q_learning(*x, **kw), q_arrays, (2, 3, 4))
        check_reference(
            lambda *x: jaxloss.q_learning(*x, stop_target_gradients=False, **kw),
            q_ref(*q_arrays),
            numeric_grads(q_ref, q_arrays, (0, 2, 3, 4)),
            q_arrays,
            dtype,
            argnums=(0, 2, 3, 4),
            **tol(dtype),
        )
    # a scalar discount broadcasts
    assert_close(
        jaxloss.td_error(*td_arrays[:2], 0.9, td_arrays[3], reduction="none"),
        np_loss(r + 0.9 * v_t - v_tm1, "squared"),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_loss_against_numpy(dtype):
    """Value regression, plain and with PPO2's pessimistic value clipping max(l(v - R), l(v_clip - R)),
    squared and Huber, in float64 NumPy with finite-difference gradients; returns / old_values get no
    gradient by default."""
    rng = np.random.default_rng(3)
    v = rng.normal(size=B) * 2
    ret = rng.normal(size=B) * 2
    old = v + np.array([-0.5, -0.25, 0.05, 0.15, 0.3, 0.6])
    arrays = tuple(x.astype(dtype) for x in (v, ret, old))
    for loss in ("squared", "huber"):
        plain = lambda v_, r_: np.mean(np_loss(v_ - r_, loss, 0.7))
        check_reference(
            lambda v_, r_: jaxloss.value_loss(v_, r_, loss=loss, delta=0.7),
            plain(*arrays[:2]),
            numeric_grads(plain, arrays[:2]),
            arrays[:2],
            dtype,
            **tol(dtype),
        )

        def clipped(v_, r_, o_):
            v_clip = o_ + np.clip(v_ - o_, -0.2, 0.2)
            return np.mean(np.maximum(np_loss(v_ - r_, loss, 0.7), np_loss(v_clip - r_, loss, 0.7)))

        jfn = lambda v_, r_, o_, **kw: jaxloss.value_loss(
            v_, r_, loss=loss, delta=0.7, clip_epsilon=0.2, old_values=o_, **kw
        )
        check_reference(jfn, clipped(*arrays), numeric_grads(clipped, arrays), arrays, dtype, **tol(dtype))
        assert zero_grads(jfn, arrays, (1, 2))
        check_reference(
            lambda *x: jfn(*x, stop_target_gradients=False),
            clipped(*arrays),
            numeric_grads(clipped, arrays, (0, 1, 2)),
            arrays,
            dtype,
            argnums=(0, 1, 2),
            **tol(dtype),
        )


def test_rl_errors_masks_and_checked_mode():
    """Bad options raise with clear messages; out-of-range actions give NaN and fail under jaxloss.checked;
    a masked transition with NaN everywhere contributes nothing to clipped value_loss."""
    rng = np.random.default_rng(4)
    v = rng.normal(size=(B,)).astype(np.float32)
    with pytest.raises(ValueError, match="loss must be one of 'squared', 'huber'"):
        jaxloss.td_error(v, v, 0.9, v, loss="l1")
    with pytest.raises(ValueError, match="clip_epsilon and old_values"):
        jaxloss.value_loss(v, v, clip_epsilon=0.2)
    with pytest.raises(ValueError, match="delta must be > 0"):
        jaxloss.value_loss(v, v, loss="huber", delta=0.0)
    q = rng.normal(size=(B, A)).astype(np.float32)
    a = rng.integers(0, A, size=B)
    with pytest.raises(ValueError, match=r"\(6, 3\)"):
        jaxloss.q_learning(q, a, v, 0.9, q[:, :3])
    with pytest.raises(ValueError, match=r"advantages.shape=\(5,\)"):
        jaxloss.policy_gradient(q, a, v[:5])
    bad = a.copy()
    bad[2] = A
    out = jaxloss.q_learning(q, bad, v, 0.9, q, reduction="none")
    assert np.isnan(out[2]) and all_finite(np.delete(np.asarray(out), 2))
    err, _ = jaxloss.checked(lambda x: jaxloss.policy_gradient(x, bad, v))(q)
    assert err.get() is not None and "actions must lie in [0, 4)" in err.get()
    keep = np.arange(B) != 1
    poisoned = [np.where(keep, x, np.nan).astype(np.float32) for x in (v, v + 1, v - 0.1)]
    fn = lambda *x: jaxloss.value_loss(
        x[0], x[1], clip_epsilon=0.2, old_values=x[2], where=keep, stop_target_gradients=False
    )
    value, grads = jax_value_and_grads(fn, poisoned, (0, 1, 2))
    ref = jaxloss.value_loss(v[keep], (v + 1)[keep], clip_epsilon=0.2, old_values=(v - 0.1)[keep])
    assert_close(value, ref, np.float32, rtol=1e-6)
    assert all_finite(grads) and all(g[1] == 0 for g in grads)
    # vmap over transitions == reduction="none"
    per = jax.vmap(lambda *x: jaxloss.q_learning(*x))(q, a, v, np.full(B, 0.9, np.float32), q)
    assert_close(per, jaxloss.q_learning(q, a, v, 0.9, q, reduction="none"), np.float32, rtol=1e-6)
