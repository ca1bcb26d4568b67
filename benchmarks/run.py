"""jaxloss benchmark suite: jaxloss against optax and PyTorch, and the fused linear cross-entropy.

Run from the repository root (``make bench`` runs exactly this)::

    python -m benchmarks.run                     # full suite, writes benchmarks/results/<device>.md
    python -m benchmarks.run --quick             # tiny sizes, a smoke run (prints, writes nothing)
    python -m benchmarks.run --no-torch-compile  # without torch.compile (saves ~3 min of compiling on 2 cores)
    python -m benchmarks.run --only cross_entropy --no-lce   # a subset

For each loss that a peer library also has, in one process, on the device JAX picks (PyTorch on CUDA when
available, else CPU):

* the time of the jitted forward (the loss value) and of the jitted ``value_and_grad`` with respect to the
  first argument (predictions / logits / log-predictions / anchors), for jaxloss and optax, and the same
  in PyTorch eager and ``torch.compile`` (forward under ``no_grad``; forward + ``backward()``): the median of repeated runs
  after a warm-up, the candidates of one loss measured round-robin (the JAX ones together, then the
  PyTorch ones) so that drifting load hits all alike, each timed call right after an untimed call of the
  same candidate so that each finds its inputs in cache as a loss does in a training step;
* the compiled temporary memory (``jax.jit(f).lower(...).compile().memory_analysis()``) of the
  ``value_and_grad`` of jaxloss and optax;
* the floor: the bytes a call must move (read every input once, write the gradient once) divided by the
  copy bandwidth measured in the same run (a jitted ``x + 1`` as large as the loss's first input, timed
  the same way, so that both see the same level of the memory hierarchy);
* the ratios jaxloss / optax, jaxloss / PyTorch and jaxloss / floor, with the targets' misses marked:
  at most 1.05x optax, at most 1.0x PyTorch, temp memory at most optax's, elementwise ``value_and_grad``
  within 1.5x the floor.

Then ``linear_cross_entropy``: the compiled temp memory of ``value_and_grad`` at tokens=8192, hidden=2048,
vocab=131072 for the fused loss and the naive ``cross_entropy(hidden @ weight)`` (compile only: nothing
runs at that size; target ratio <= 1/16), and the time of both (and of PyTorch's
``linear_cross_entropy``, when this PyTorch has it) at a size where the naive path fits (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import re
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

# On a GPU, leave memory to PyTorch too (JAX would otherwise take 75% of it at its first allocation).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxloss  # noqa: E402

MiB = 2.0**20
TARGET_OPTAX = 1.05
TARGET_TORCH = 1.0
TARGET_FLOOR = 1.5
TARGET_LCE_MEMORY = 1.0 / 16
TARGET_LCE_TIME = 1.2
MISS = " ✗"


# ---------------------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sizes:
    elementwise: tuple  # 2^22 elements
    classes: Sequence[tuple]  # [batch, classes] for the class-axis losses
    embedding: tuple  # [batch, features] for triplets
    ctc: tuple  # (batch, frames, classes, labels)
    segmentation: tuple  # [batch, height, width, classes]
    lce_memory: tuple  # (tokens, hidden, vocab), compile only
    lce_time: tuple  # (tokens, hidden, vocab), run
    warm_limit: int  # bytes of input above which no untimed call precedes a timed one
    min_reps: int
    max_reps: int
    target_s: float  # measurement time per candidate, beyond min_reps


FULL = Sizes(
    elementwise=(4096, 1024),
    classes=((8192, 1000), (4096, 32000)),
    embedding=(8192, 512),
    ctc=(32, 256, 64, 48),
    segmentation=(16, 256, 256, 4),
    lce_memory=(8192, 2048, 131072),
    lce_time=(2048, 1024, 32768),
    warm_limit=256 << 20,
    min_reps=5,
    max_reps=30,
    target_s=1.0,
)
QUICK = Sizes(
    elementwise=(16, 64),
    classes=((32, 10), (8, 320)),
    embedding=(16, 8),
    ctc=(2, 12, 5, 4),
    segmentation=(2, 4, 4, 3),
    lce_memory=(256, 32, 8192),
    lce_time=(64, 16, 500),
    warm_limit=256 << 20,
    min_reps=1,
    max_reps=1,
    target_s=0.0,
)


# ---------------------------------------------------------------------------------------------------------
# Benchmark cases: one loss at one size, as written in each library
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One loss at one size.

    ``jaxloss``/``optax`` take JAX arrays, ``torch`` takes tensors (the first one requires grad for the
    value-and-grad timing); each returns the scalar mean loss. ``arrays`` are NumPy inputs (the first is
    differentiated). ``fwd_bytes``/``vg_bytes``: what a call must at least read and write.
    """

    name: str
    size: str
    arrays: Callable[[np.random.Generator], tuple]
    jaxloss: Optional[Callable]
    optax: Optional[Callable]
    torch: Optional[Callable]
    elementwise: bool = False
    note: str = ""


def _nbytes(arrays) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays))


def _f32(rng, shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


def _log_softmax_np(x):
    x = x - x.max(-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)


def build_cases(sizes: Sizes, torch_mod) -> tuple:
    """The cases, and notes on the losses that could not be included."""
    import optax

    ol = optax.losses
    T = torch_mod
    F = None if T is None else T.nn.functional
    cases: List[Case] = []
    skipped: List[str] = []

    def have(name):
        if getattr(jaxloss, name, None) is None:
            skipped.append(f"`{name}`: not in this jaxloss (yet); skipped")
            return False
        return True

    shape = sizes.elementwise
    ew_size = "×".join(map(str, shape)) + f" (2^{int(math.log2(np.prod(shape)))})"

    def pair(rng):
        return _f32(rng, shape), _f32(rng, shape)

    def binary(rng):
        return _f32(rng, shape, 2.0), rng.integers(0, 2, shape).astype(np.float32)

    def signed(rng):
        return _f32(rng, shape, 2.0), rng.choice(np.array([-1.0, 1.0], np.float32), shape)

    def torch_log_cosh(p, t):
        e = (p - t).abs()
        return (e + F.softplus(-2.0 * e) - math.log(2.0)).mean()

    def torch_focal(x, y, alpha=0.25, gamma=2.0):  # torchvision.ops.sigmoid_focal_loss, mean
        p = T.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        return (ce * (1 - p_t) ** gamma * (alpha * y + (1 - alpha) * (1 - y))).mean()

    elementwise = [
        (
            "mse",
            pair,
            lambda p, t: jaxloss.mse(p, t),
            lambda p, t: jnp.mean(ol.squared_error(p, t)),
            lambda p, t: F.mse_loss(p, t),
            "",
        ),
        ("mae", pair, lambda p, t: jaxloss.mae(p, t), None, lambda p, t: F.l1_loss(p, t), "optax has no L1 loss"),
        (
            "huber",
            pair,
            lambda p, t: jaxloss.huber(p, t, delta=1.0),
            lambda p, t: jnp.mean(ol.huber_loss(p, t, delta=1.0)),
            lambda p, t: F.huber_loss(p, t, delta=1.0),
            "",
        ),
        (
            "smooth_l1",
            pair,
            lambda p, t: jaxloss.smooth_l1(p, t, beta=1.0),
            None,
            lambda p, t: F.smooth_l1_loss(p, t, beta=1.0),
            "optax has no smooth L1 loss",
        ),
        (
            "log_cosh",
            pair,
            lambda p, t: jaxloss.log_cosh(p, t),
            lambda p, t: jnp.mean(ol.log_cosh(p, t)),
            torch_log_cosh,
            "PyTorch: the stable formula |e| + softplus(-2|e|) - log 2 (no built-in)",
        ),
        (
            "binary_cross_entropy",
            binary,
            lambda x, y: jaxloss.binary_cross_entropy(x, y),
            lambda x, y: jnp.mean(ol.sigmoid_binary_cross_entropy(x, y)),
            lambda x, y: F.binary_cross_entropy_with_logits(x, y),
            "",
        ),
        (
            "focal",
            binary,
            lambda x, y: jaxloss.focal(x, y, alpha=0.25, gamma=2.0),
            lambda x, y: jnp.mean(ol.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)),
            torch_focal,
            "PyTorch: torchvision's sigmoid_focal_loss formula",
        ),
        (
            "hinge",
            signed,
            lambda s, y: jaxloss.hinge(s, y),
            lambda s, y: jnp.mean(ol.hinge_loss(s, y)),
            lambda s, y: T.relu(1.0 - y * s).mean(),
            "PyTorch: relu(1 - y s).mean() (no built-in)",
        ),
        (
            "squared_hinge",
            signed,
            lambda s, y: jaxloss.squared_hinge(s, y),
            None,
            lambda s, y: T.relu(1.0 - y * s).square().mean(),
            "optax has no squared hinge; PyTorch: relu(1 - y s)^2 .mean() (no built-in)",
        ),
        (
            "soft_margin",
            signed,
            lambda s, y: jaxloss.soft_margin(s, y),
            None,
            lambda s, y: F.soft_margin_loss(s, y),
            "optax has no soft margin loss",
        ),
    ]
    for name, make, jl, ox, tc, note in elementwise:
        if have(name):
            cases.append(Case(name, ew_size, make, jl, ox, tc if T is not None else None, elementwise=True, note=note))

    for n, c in sizes.classes:
        size = f"{n}×{c}"

        def int_labels(rng, n=n, c=c):
            return _f32(rng, (n, c), 2.0), rng.integers(0, c, n).astype(np.int32)

        def probs(rng, n=n, c=c):
            t = rng.random((n, c), dtype=np.float32)
            return _f32(rng, (n, c), 2.0), (t / t.sum(-1, keepdims=True)).astype(np.float32)

        def log_probs(rng, n=n, c=c):
            t = rng.random((n, c), dtype=np.float32)
            return _log_softmax_np(_f32(rng, (n, c), 2.0)), (t / t.sum(-1, keepdims=True)).astype(np.float32)

        if have("cross_entropy"):
            cases.append(
                Case(
                    "cross_entropy (int labels)",
                    size,
                    int_labels,
                    lambda x, y: jaxloss.cross_entropy(x, y),
                    lambda x, y: jnp.mean(ol.softmax_cross_entropy_with_integer_labels(x, y)),
                    None if T is None else (lambda x, y: F.cross_entropy(x, y)),
                )
            )
            cases.append(
                Case(
                    "cross_entropy (probabilities)",
                    size,
                    probs,
                    lambda x, t: jaxloss.cross_entropy(x, t),
                    lambda x, t: jnp.mean(ol.softmax_cross_entropy(x, t)),
                    None if T is None else (lambda x, t: F.cross_entropy(x, t)),
                )
            )
        if c > 2000:  # the other class-axis losses at the first size only (the time budget)
            continue
        if have("kl_divergence"):
            cases.append(
                Case(
                    "kl_divergence",
                    size,
                    log_probs,
                    lambda lp, t: jaxloss.kl_divergence(lp, t),
                    lambda lp, t: jnp.mean(ol.kl_divergence(lp, t)),
                    None if T is None else (lambda lp, t: F.kl_div(lp, t, reduction="batchmean")),
                )
            )
        if have("multiclass_hinge"):

            def torch_mc_hinge(s, y):
                onehot = F.one_hot(y, s.shape[-1]).to(s.dtype)
                return (T.amax(s + 1.0 - onehot, dim=-1) - s.gather(-1, y[:, None])[:, 0]).mean()

            cases.append(
                Case(
                    "multiclass_hinge",
                    size,
                    int_labels,
                    lambda s, y: jaxloss.multiclass_hinge(s, y),
                    lambda s, y: jnp.mean(ol.multiclass_hinge_loss(s, y)),
                    None if T is None else torch_mc_hinge,
                    note="PyTorch: max(s + 1 - onehot) - s_y (multi_margin_loss is a different loss)",
                )
            )

    b, d = sizes.embedding
    if have("triplet_margin"):

        def triplets(rng):
            return _f32(rng, (b, d)), _f32(rng, (b, d)), _f32(rng, (b, d))

        cases.append(
            Case(
                "triplet_margin",
                f"3×{b}×{d}",
                triplets,
                lambda a, p, n: jaxloss.triplet_margin(a, p, n),
                lambda a, p, n: jnp.mean(ol.triplet_margin_loss(a, p, n)),
                None if T is None else (lambda a, p, n: F.triplet_margin_loss(a, p, n)),
                note="gradient w.r.t. the anchors",
            )
        )

    bs, frames, k, nl = sizes.ctc
    if have("ctc"):

        def ctc_data(rng):
            labels = rng.integers(1, k, (bs, nl)).astype(np.int32)
            label_len = rng.integers(nl // 2, nl + 1, bs)
            frame_len = rng.integers(frames * 3 // 4, frames + 1, bs)
            label_pad = (np.arange(nl)[None] >= label_len[:, None]).astype(np.float32)
            frame_pad = (np.arange(frames)[None] >= frame_len[:, None]).astype(np.float32)
            return _f32(rng, (bs, frames, k)), labels, frame_pad, label_pad

        def torch_ctc(x, y, fpad, lpad):
            lp = F.log_softmax(x, dim=-1).transpose(0, 1)  # [T, B, K]
            in_len = (1 - fpad).sum(1).long()
            lab_len = (1 - lpad).sum(1).long()
            return F.ctc_loss(lp, y.long(), in_len, lab_len, reduction="sum") / x.shape[0]

        cases.append(
            Case(
                "ctc",
                f"{bs}×{frames}×{k}, labels {nl}",
                ctc_data,
                lambda x, y, fp, lp: jaxloss.ctc(x, y, logit_paddings=fp, label_paddings=lp),
                lambda x, y, fp, lp: jnp.mean(ol.ctc_loss(x, fp, y, lp)),
                None if T is None else torch_ctc,
                note="PyTorch: log_softmax + ctc_loss (its 'mean' divides by label lengths, so sum / batch)",
            )
        )

    sb, sh, sw, sc = sizes.segmentation
    if have("dice"):

        def seg(rng):
            y = rng.integers(0, sc, (sb, sh, sw))
            return _f32(rng, (sb, sh, sw, sc)), np.eye(sc, dtype=np.float32)[y]

        def torch_dice(x, t, smooth=1.0):
            p = T.softmax(x, dim=-1)
            dims = (1, 2)
            tp = (p * t).sum(dims)
            d = (2 * tp + 2 * smooth) / (p.sum(dims) + t.sum(dims) + 2 * smooth)  # optax's / jaxloss's smoothing
            return (1 - d).mean()

        cases.append(
            Case(
                "dice",
                f"{sb}×{sh}×{sw}×{sc}",
                seg,
                lambda x, t: jaxloss.dice(x, t),
                lambda x, t: jnp.mean(ol.dice_loss(x, t)),
                None if T is None else torch_dice,
                note="softmax over 4 classes, one-hot targets; PyTorch: the formula (no built-in)",
            )
        )
    return cases, skipped


# ---------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------


def _sync_torch(torch_mod):
    if torch_mod is not None and torch_mod.cuda.is_available():
        torch_mod.cuda.synchronize()


def round_robin(candidates: Dict[str, Callable], sizes: Sizes, warm_each: bool = True) -> Dict[str, float]:
    """Median seconds of each candidate (already warmed up), measured in interleaved rounds.

    With ``warm_each`` every timed call directly follows an untimed call of the same candidate, so that each
    starts from its own warm caches (the inputs of a loss are fresh from the model in a training step), not
    from whatever the previous candidate left behind; it is skipped for inputs far larger than any cache.
    """
    times: Dict[str, List[float]] = {k: [] for k in candidates}
    start = time.perf_counter()
    rounds = 0
    while rounds < sizes.min_reps or (
        rounds < sizes.max_reps and time.perf_counter() - start < sizes.target_s * len(candidates)
    ):
        for k, fn in candidates.items():
            if warm_each:
                fn()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        rounds += 1
    return {k: statistics.median(v) for k, v in times.items()}


def _warm_up_torch(*steps: Callable, seconds: float = 1.0, calls: int = 3) -> None:
    """Calls each step at least ``calls`` times and for at least ``seconds`` in all: the first calls of a
    ``torch.compile`` graph on this CPU ran 20-40 ms for a few hundred ms after compiling (then 0.1-0.2 ms at
    2^16 elements), which a median of few repeats can take for the loss's time."""
    start = time.perf_counter()
    n = 0
    while n < calls or time.perf_counter() - start < seconds:
        for step in steps:
            step()
        n += 1


def _dynamo_graphs(torch_mod) -> Optional[int]:
    """The number of graphs torch.compile has compiled so far (``None`` where this PyTorch does not count)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:
        return None


def _jax_compile(fn, args):
    compiled = jax.jit(fn).lower(*args).compile()
    try:
        mem = compiled.memory_analysis()
        temp = None if mem is None else mem.temp_size_in_bytes
    except Exception:  # memory_analysis is not implemented on every backend
        temp = None
    return compiled, temp


def _first_grad(fn):
    return jax.value_and_grad(fn, argnums=0)


_BANDWIDTH: Dict[int, float] = {}


def copy_bandwidth(nbytes: int, sizes: Sizes) -> float:
    """Copy bandwidth in bytes/s at ``nbytes``: a jitted ``x + 1`` reads ``nbytes`` of float32 and writes
    as many into a new buffer (as a loss writes its gradient), measured like the losses; cached per size."""
    n = max(1, nbytes // 4)
    if n not in _BANDWIDTH:
        x = jnp.zeros((n,), jnp.float32)
        f = jax.jit(lambda a: a + 1.0)
        jax.block_until_ready(f(x))
        median = round_robin(
            {"copy": lambda: jax.block_until_ready(f(x))},
            dataclasses.replace(sizes, min_reps=max(5, sizes.min_reps), max_reps=max(20, sizes.max_reps), target_s=0.5),
        )
        _BANDWIDTH[n] = 2 * 4 * n / median["copy"]
    return _BANDWIDTH[n]


@dataclasses.dataclass
class Row:
    case: Case
    times: Dict[str, float]
    temp: Dict[str, Optional[int]]
    floor_fwd: float
    floor_vg: float
    bandwidth: float
    check: str


def run_case(case: Case, sizes: Sizes, torch_mod, torch_device, torch_compile: bool, rng) -> Row:
    arrays = case.arrays(rng)
    jargs = tuple(jnp.asarray(a) for a in arrays)
    fwd_bytes = _nbytes(arrays) + 4
    vg_bytes = fwd_bytes + np.asarray(arrays[0]).nbytes
    candidates: Dict[str, Callable] = {}
    temp: Dict[str, Optional[int]] = {}
    values: Dict[str, float] = {}
    for lib, fn in (("jaxloss", case.jaxloss), ("optax", case.optax)):
        if fn is None:
            continue
        fwd, _ = _jax_compile(fn, jargs)
        vg, temp[lib] = _jax_compile(_first_grad(fn), jargs)
        values[lib] = float(jax.block_until_ready(fwd(*jargs)))
        jax.block_until_ready(vg(*jargs))
        candidates[f"{lib} fwd"] = lambda fwd=fwd: jax.block_until_ready(fwd(*jargs))
        candidates[f"{lib} vg"] = lambda vg=vg: jax.block_until_ready(vg(*jargs))
    if case.torch is not None and torch_mod is not None:
        T = torch_mod
        # PyTorch wants int64 class indices
        targs = [
            T.from_numpy(
                np.asarray(a, np.int64) if np.issubdtype(np.asarray(a).dtype, np.integer) else np.asarray(a)
            ).to(torch_device)
            for a in arrays
        ]
        x = targs[0].clone().requires_grad_(True)
        rest = targs[1:]
        variants = [("torch", case.torch)]
        if torch_compile:
            # A sound torch.compile measurement: a fresh dynamo cache per case (the cross-entropy lambdas share
            # one code object across sizes, so the second size used to hit a recompile and, by dynamo's
            # automatic dynamic shapes, a kernel compiled for symbolic shapes); static shapes (``dynamic=False``:
            # each case is one fixed shape, as the JAX side is); two graphs per case (no_grad forward, training
            # forward + backward), compiled in the warm-up below, and a check that nothing recompiles while
            # timed (``recompiles`` in the row's check otherwise).
            T._dynamo.reset()
            variants.append(("torch.compile", T.compile(case.torch, dynamic=False)))
        for lib, fn in variants:

            def tfwd(fn=fn):
                with T.no_grad():
                    out = fn(targs[0], *rest)
                _sync_torch(T)
                return out

            def tvg(fn=fn):
                x.grad = None
                out = fn(x, *rest)
                out.backward()
                _sync_torch(T)
                return out

            try:
                values[lib] = float(tfwd().detach())
                _warm_up_torch(tfwd, tvg, seconds=1.0 if lib == "torch.compile" else 0.0)
            except Exception as e:  # torch.compile may fail on a loss: report, do not abort the suite
                print(f"  {case.name}: {lib} failed ({type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
                continue
            candidates[f"{lib} fwd"] = tfwd
            candidates[f"{lib} vg"] = tvg
    # One group per library (JAX, PyTorch eager, torch.compile), interleaved within the group: PyTorch's
    # OpenMP threads keep spinning for a while after each call and would slow a JAX call that follows.
    times: Dict[str, float] = {}
    recompiled = False
    for group in ("jaxloss|optax", "torch fwd|torch vg", "torch.compile"):
        members = {k: v for k, v in candidates.items() if re.match(group, k)}
        if members:
            graphs = _dynamo_graphs(torch_mod) if group == "torch.compile" else None
            times.update(round_robin(members, sizes, warm_each=fwd_bytes <= sizes.warm_limit))
            recompiled = recompiled or (graphs is not None and _dynamo_graphs(torch_mod) != graphs)
            time.sleep(0.2 if sizes.min_reps > 1 else 0.0)
    bandwidth = copy_bandwidth(np.asarray(arrays[0]).nbytes, sizes)
    ref = values.get("jaxloss")
    bad = [
        f"{k} {v:.6g}"
        for k, v in values.items()
        if ref is not None and not math.isclose(v, ref, rel_tol=2e-3, abs_tol=1e-5)
    ]
    check = "values agree" if not bad else f"values differ: jaxloss {ref:.6g}, " + ", ".join(bad)
    if recompiled:
        check += "; torch.compile recompiled while timed (its times are not sound)"
    return Row(case, times, temp, fwd_bytes / bandwidth, vg_bytes / bandwidth, bandwidth, check)


# ---------------------------------------------------------------------------------------------------------
# linear_cross_entropy
# ---------------------------------------------------------------------------------------------------------


def _lce_fns():
    fused = lambda h, w, y: jaxloss.linear_cross_entropy(h, w, y)  # noqa: E731
    naive = lambda h, w, y: jaxloss.cross_entropy(h @ w, y)  # noqa: E731
    return {name: jax.value_and_grad(f, argnums=(0, 1)) for name, f in (("fused", fused), ("naive", naive))}


def lce_memory(sizes: Sizes) -> Dict[str, Optional[int]]:
    n, h, v = sizes.lce_memory
    specs = (
        jax.ShapeDtypeStruct((n, h), jnp.float32),
        jax.ShapeDtypeStruct((h, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    return {name: _jax_compile(fn, specs)[1] for name, fn in _lce_fns().items()}


def lce_time(sizes: Sizes, torch_mod, torch_device, rng) -> tuple:
    n, h, v = sizes.lce_time
    hidden, weight = _f32(rng, (n, h), 0.5), _f32(rng, (h, v), 1.0 / math.sqrt(h))
    labels = rng.integers(0, v, n).astype(np.int32)
    jargs = (jnp.asarray(hidden), jnp.asarray(weight), jnp.asarray(labels))
    candidates, values, temps, notes = {}, {}, {}, []
    for name, fn in _lce_fns().items():
        compiled, temps[name] = _jax_compile(fn, jargs)
        values[name] = float(jax.block_until_ready(compiled(*jargs))[0])
        candidates[name] = lambda c=compiled: jax.block_until_ready(c(*jargs))
    T = torch_mod
    if T is not None and hasattr(T.nn.functional, "linear_cross_entropy"):
        th = T.from_numpy(hidden).to(torch_device).requires_grad_(True)
        tw = T.from_numpy(np.ascontiguousarray(weight.T)).to(torch_device).requires_grad_(True)  # [V, H]
        ty = T.from_numpy(labels.astype(np.int64)).to(torch_device)
        options = [("torch linear_cross_entropy", None)]
        if hasattr(T.nn, "LinearCrossEntropyOptions"):
            options.append(("torch linear_cross_entropy (chunked options)", T.nn.LinearCrossEntropyOptions()))
        for name, opt in options:

            def tvg(opt=opt):
                th.grad = tw.grad = None
                out = T.nn.functional.linear_cross_entropy(th, tw, ty, options=opt)
                out.backward()
                _sync_torch(T)
                return out

            try:
                values[name] = float(tvg().detach())
            except Exception as e:
                notes.append(f"{name} failed: {type(e).__name__}: {str(e)[:160]}")
                continue
            candidates[name] = tvg
    elif T is not None:
        notes.append(f"torch {T.__version__} has no torch.nn.functional.linear_cross_entropy")
    reps = 5 if sizes.min_reps > 2 else 1
    few = dataclasses.replace(sizes, min_reps=reps, max_reps=reps)
    times = round_robin({k: v for k, v in candidates.items() if not k.startswith("torch")}, few, warm_each=False)
    times.update(round_robin({k: v for k, v in candidates.items() if k.startswith("torch")}, few, warm_each=False))
    return times, values, temps, notes


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------


def _ms(t: Optional[float]) -> str:
    if t is None:
        return "—"
    return f"{t * 1e3:.3g}" if t * 1e3 < 100 else f"{t * 1e3:.0f}"


def _ratio(a, b, target=None, misses=None, what=""):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    text = f"{r:.2f}"
    if target is not None and r > target:
        text += MISS
        if misses is not None:
            misses.append(f"{what}: {r:.2f}× (target ≤ {target}×)")
    return text


def _human(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def _mib(b: Optional[int]) -> str:
    return "—" if b is None else f"{b / MiB:.1f}"


def machine_info(torch_mod, torch_device, torch_compile: bool = False) -> List[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            if m:
                cpu = m.group(1).strip()
    except OSError:
        pass
    dev = jax.devices()[0]
    import optax

    versions = [
        f"python {platform.python_version()}",
        f"jax {jax.__version__}",
        f"optax {optax.__version__}",
        f"numpy {np.__version__}",
        f"jaxloss {jaxloss.__version__}",
    ]
    if torch_mod is not None:
        versions.insert(3, f"torch {torch_mod.__version__}")
    lines = [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {cpu}, {os.cpu_count()} cores ({platform.system()} {platform.release()})",
        f"- JAX device: {dev.platform} ({getattr(dev, 'device_kind', dev.platform)}), {jax.device_count()} device(s)",
    ]
    if torch_mod is not None:
        lines.append(
            f"- PyTorch device: {torch_device} ({torch_mod.get_num_threads()} threads), eager"
            + (" and `torch.compile` (default mode)" if torch_compile else "")
        )
    lines.append("- versions: " + ", ".join(versions))
    return lines


def report(rows: List[Row], skipped, lce, machine, sizes: Sizes, quick: bool, torch_compile: bool) -> str:
    misses: List[str] = []
    out = ["# jaxloss benchmarks" + (" (quick smoke run: tiny sizes, not meaningful)" if quick else ""), ""]
    out += machine
    out += [
        "- copy bandwidth (jitted `x + 1`, read + write, at the size of each loss's first input): "
        + ", ".join(f"{_human(4 * n)}: {bw / 1e9:.1f} GB/s" for n, bw in sorted(_BANDWIDTH.items())),
        f"- method: median of {sizes.min_reps}–{sizes.max_reps} runs after a warm-up, the candidates of a loss "
        "interleaved (JAX ones together, then PyTorch ones), each timed call preceded by an untimed one of the "
        "same candidate (warm caches; not for "
        f"inputs over {sizes.warm_limit / MiB:g} MiB); *fwd* = the jitted loss value, *v&g* = jitted `value_and_grad` w.r.t. the first "
        "argument (PyTorch: forward + `backward()`); times in ms; *temp* = XLA compiled temp memory of v&g in "
        "MiB; *floor* = bytes a call must move (inputs read once, gradient written once) / copy bandwidth.",
        f"- targets (✗ marks a miss): ≤ {TARGET_OPTAX}× optax, ≤ {TARGET_TORCH}× PyTorch, temp ≤ optax's (+1% or 64 KiB), "
        f"elementwise v&g ≤ {TARGET_FLOOR}× floor.",
        "",
    ]
    libs = ["jaxloss", "optax", "torch"] + (["torch.compile"] if torch_compile else [])
    head = (
        ["loss", "size"]
        + [f"{lib} fwd" for lib in libs]
        + [f"{lib} v&g" for lib in libs]
        + ["floor v&g", "fwd ÷optax", "fwd ÷torch", "v&g ÷optax", "v&g ÷torch"]
        + (["fwd ÷compile", "v&g ÷compile"] if torch_compile else [])
        + ["v&g ÷floor", "temp jaxloss", "temp optax"]
    )
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for r in rows:
        t = r.times
        name = f"{r.case.name} [{r.case.size}]"
        jf, jv = t.get("jaxloss fwd"), t.get("jaxloss vg")
        cells = [r.case.name, r.case.size]
        cells += [_ms(t.get(f"{lib} fwd")) for lib in libs] + [_ms(t.get(f"{lib} vg")) for lib in libs]
        cells.append(_ms(r.floor_vg))
        cells.append(_ratio(jf, t.get("optax fwd"), TARGET_OPTAX, misses, f"{name} fwd vs optax"))
        cells.append(_ratio(jf, t.get("torch fwd"), TARGET_TORCH, misses, f"{name} fwd vs PyTorch"))
        cells.append(_ratio(jv, t.get("optax vg"), TARGET_OPTAX, misses, f"{name} v&g vs optax"))
        cells.append(_ratio(jv, t.get("torch vg"), TARGET_TORCH, misses, f"{name} v&g vs PyTorch"))
        if torch_compile:
            cells.append(_ratio(jf, t.get("torch.compile fwd"), TARGET_TORCH, misses, f"{name} fwd vs torch.compile"))
            cells.append(_ratio(jv, t.get("torch.compile vg"), TARGET_TORCH, misses, f"{name} v&g vs torch.compile"))
        cells.append(
            _ratio(jv, r.floor_vg, TARGET_FLOOR if r.case.elementwise else None, misses, f"{name} v&g vs floor")
        )
        tj, to = r.temp.get("jaxloss"), r.temp.get("optax")
        temp_cell = _mib(tj)
        if tj is not None and to is not None and tj > to + max(0.01 * to, 64 * 1024):
            temp_cell += MISS
            misses.append(f"{name} temp memory: {_mib(tj)} MiB vs optax {_mib(to)} MiB")
        cells += [temp_cell, _mib(to)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    notes = [f"`{r.case.name}` [{r.case.size}]: {r.case.note}" for r in rows if r.case.note]
    notes += [f"`{r.case.name}` [{r.case.size}]: {r.check}" for r in rows if r.check != "values agree"]
    notes += skipped
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]

    mem, (times, values, temps, lce_notes) = lce
    n, h, v = sizes.lce_memory
    out += ["## linear_cross_entropy (fused) vs cross_entropy(hidden @ weight) (naive)", ""]
    mem_ratio = None if not (mem.get("fused") and mem.get("naive")) else mem["fused"] / mem["naive"]
    mark = "" if mem_ratio is None or mem_ratio <= TARGET_LCE_MEMORY else MISS
    if mark:
        misses.append(f"linear_cross_entropy memory ratio {mem_ratio:.4f} (target ≤ 1/16)")
    out += [
        f"Compiled temp memory of `value_and_grad` (w.r.t. hidden and weight; compile only) at tokens={n}, "
        f"hidden={h}, vocab={v}, float32 (the logits alone: {n * v * 4 / MiB:.0f} MiB):",
        "",
        "| fused MiB | naive MiB | fused ÷ naive (target ≤ 1/16 = 0.0625) |",
        "|---|---|---|",
        f"| {_mib(mem.get('fused'))} | {_mib(mem.get('naive'))} | "
        + ("—" if mem_ratio is None else f"{mem_ratio:.4f} (1/{1 / mem_ratio:.0f}){mark}")
        + " |",
        "",
    ]
    n, h, v = sizes.lce_time
    out += [
        f"`value_and_grad` time at tokens={n}, hidden={h}, vocab={v}, float32, where the naive path fits:",
        "",
        "| implementation | ms | ÷ naive | temp MiB | value |",
        "|---|---|---|---|---|",
    ]
    for name, t in times.items():
        r = _ratio(
            t,
            times.get("naive"),
            TARGET_LCE_TIME if name == "fused" else None,
            misses if name == "fused" else None,
            "linear_cross_entropy fused vs naive time",
        )
        out.append(f"| {name} | {_ms(t)} | {r} | {_mib(temps.get(name))} | {values.get(name, float('nan')):.6g} |")
    out.append("")
    out += [f"- {x}" for x in lce_notes]
    if lce_notes:
        out.append("")
    out += ["## Targets missed", ""] + ([f"- {m}" for m in misses] if misses else ["- none"]) + [""]
    return "\n".join(out)


def default_out_path() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        name = "cpu"
    else:
        kind = re.sub(r"[^a-z0-9]+", "-", getattr(dev, "device_kind", dev.platform).lower()).strip("-")
        name = f"{dev.platform}-{kind}"
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{name}.md")


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and few runs: a smoke test (writes no file unless --out)"
    )
    parser.add_argument("--out", default=None, help="markdown output path (default benchmarks/results/<device>.md)")
    parser.add_argument("--only", default=None, help="run only the cases whose loss name contains this string")
    parser.add_argument(
        "--torch-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile (default: on, off with --quick; ~10 s of compilation per loss on a 2-core CPU)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="PyTorch's intra-op threads (default: PyTorch's choice; on a CPU shared with other jobs its OpenMP"
        " barriers wait for descheduled threads, 20-40 ms a call: 1 thread measures it soundly there)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-lce", action="store_true", help="leave the linear_cross_entropy section out")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.torch_compile is None:
        args.torch_compile = not args.quick
    t_start = time.perf_counter()

    torch_mod, torch_device = None, None
    if not args.no_torch:
        try:
            import torch as torch_mod

            torch_device = torch_mod.device("cuda" if torch_mod.cuda.is_available() else "cpu")
        except ImportError:
            torch_mod = None
    if torch_mod is not None and args.torch_threads:
        torch_mod.set_num_threads(args.torch_threads)
    rng = np.random.default_rng(0)
    cases, skipped = build_cases(sizes, torch_mod)
    if args.only:
        cases = [c for c in cases if args.only in c.name]
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        rows.append(run_case(case, sizes, torch_mod, torch_device, args.torch_compile, rng))
        print(f"  {case.name} [{case.size}]: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    if args.no_lce:
        lce = ({}, ({}, {}, {}, ["not run (--no-lce)"]))
    else:
        lce = (lce_memory(sizes), lce_time(sizes, torch_mod, torch_device, rng))
    text = report(
        rows,
        skipped,
        lce,
        machine_info(torch_mod, torch_device, args.torch_compile),
        sizes,
        args.quick,
        args.torch_compile,
    )
    text += f"\nTotal run time: {time.perf_counter() - t_start:.0f} s.\n"
    print(text)
    out = args.out if args.out is not None else (None if args.quick else default_out_path())
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(text)
        print(f"written to {out}", file=sys.stderr)
    return text


if __name__ == "__main__":
    main()
