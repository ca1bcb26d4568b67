"""The shared plumbing of every jaxloss loss, written once.

A loss function in jaxloss states only its formula. Everything else lives here:

* **validation** with clear, trace-time errors that name the argument and the shapes;
* **dtypes**: float16/bfloat16 inputs are computed in float32 and the result is cast back to the
  predictions' dtype; float32 and float64 are kept as they are; non-float predictions raise ``TypeError``;
* **masks** (``where=``): masked entries are replaced by a harmless fill value *before* the formula runs
  (the "double where"), so they contribute nothing to the value, the count, or the gradient, even when
  the padding holds NaN or inf;
* **weights** (``weights=``) broadcastable to the unreduced loss, and per-entry normalisers (class weights);
* **reduction**: ``"mean"`` (the weighted mean ``sum(w*l)/sum(w)`` over unmasked entries; ``0.0`` when
  nothing is left), ``"sum"``, ``"none"``;
* **labels**: integer class labels, ``ignore_index=``, and labels out of range, which give NaN (never a
  plausible finite number) and are caught by :func:`checked`.

A loss is written as::

    def huber(predictions, targets, *, delta=1.0, weights=None, where=None, reduction="mean"):
        ctx, (p, t) = _core.prepare(predictions, targets, where=where, reduction=reduction)
        err = p - t
        ...
        return ctx.reduce(loss, weights=weights)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

Array = jax.Array
_F = TypeVar("_F", bound=Callable[..., Any])  # a decorated loss keeps its signature for type checkers
ArrayLike = Any

REDUCTIONS = ("mean", "sum", "none")

__all__ = ["checked", "REDUCTIONS"]


# ---------------------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------------------


def check_reduction(reduction: str) -> None:
    """Raises ``ValueError`` unless ``reduction`` is one of ``"mean"``, ``"sum"``, ``"none"``."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}; got {reduction!r}")


def compute_dtype(dtype) -> np.dtype:
    """The dtype a loss computes in: float32 for float16/bfloat16, otherwise the dtype itself."""
    dtype = jnp.dtype(dtype)
    if dtype.itemsize < 4:
        return jnp.dtype(jnp.float32)
    return dtype


def float_array(x: ArrayLike, name: str) -> Array:
    """``x`` as a JAX array, raising ``TypeError`` unless it is floating point."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array; got dtype {x.dtype}")
    return x


def int_array(x: ArrayLike, name: str, hint: str = "") -> Array:
    """``x`` as a JAX array, raising ``TypeError`` unless it has an integer dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"{name} must be an integer array of class indices; got dtype {x.dtype}" + (f" ({hint})" if hint else "")
        )
    return x


def check_same_shape(arrays: Sequence[Array], names: Sequence[str]) -> None:
    """Raises ``ValueError`` naming both shapes when the arrays' shapes differ."""
    first = arrays[0]
    for a, n in zip(arrays[1:], names[1:]):
        if a.shape != first.shape:
            raise ValueError(
                f"{names[0]} and {n} must have the same shape; got {names[0]}.shape={first.shape} and {n}.shape={a.shape}"
            )


def check_broadcastable(x: Array, shape: Tuple[int, ...], name: str, target: str = "the unreduced loss") -> None:
    """Raises ``ValueError`` unless ``x`` broadcasts to exactly ``shape``."""
    try:
        ok = np.broadcast_shapes(x.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} with shape {x.shape} does not broadcast to {target}, of shape {tuple(shape)}")


def is_concrete(x) -> bool:
    """True when ``x`` holds a known value at trace time (a Python number or a concrete array)."""
    try:
        np.asarray(x)
        return True
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError, TypeError):
        return False


def is_zero(x) -> bool:
    """True when ``x`` is known at trace time to be exactly 0 (a term scaled by it can be skipped)."""
    return x is None or (is_concrete(x) and not np.any(np.asarray(x)))


def check_hyper(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> None:
    """Checks a (possibly traced) hyperparameter's range; only concrete values can be checked.

    Traced values (under ``jax.grad``/``vmap`` of the hyperparameter) are not checked at trace time.
    """
    if value is None or not is_concrete(value):
        return
    v = np.asarray(value)
    if low is not None and (np.any(v <= low) if low_open else np.any(v < low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (np.any(v >= high) if high_open else np.any(v > high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")


def _np_contains(spec, value) -> bool:
    """Whether a concrete ``value`` lies in ``spec`` (NumPy, at trace time)."""
    return bool(np.all(np.asarray(spec.contains(np.asarray(value)))))


# ---------------------------------------------------------------------------------------------------------
# Domains: each loss declares the domain of its inputs and hyperparameters once (``@domain``); the contract
# tests read the declarations, the docstrings state them, and ``LossContext.enforce`` applies them.
# ---------------------------------------------------------------------------------------------------------


def _fmt(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


@dataclasses.dataclass(frozen=True)
class Interval:
    """Real values in an interval (NaN is never inside; infinite bounds admit the infinities)."""

    low: float = -np.inf
    high: float = np.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, x):
        ok = (x > self.low) if self.low_open else (x >= self.low)
        return ok & ((x < self.high) if self.high_open else (x <= self.high))

    def describe(self) -> str:
        lo, hi = np.isfinite(self.low), np.isfinite(self.high)
        if lo and hi:
            return (
                f"in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"
            )
        if lo:
            return f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        if hi:
            return f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        return "a real number (not NaN)"

    def bad_value(self, dtype=np.float32):
        """A value outside the interval (for tests)."""
        if np.isfinite(self.low):
            return np.asarray(self.low - 0.5, dtype)
        if np.isfinite(self.high):
            return np.asarray(self.high + 0.5, dtype)
        return np.asarray(np.nan, dtype)


@dataclasses.dataclass(frozen=True)
class Values:
    """A finite set of admitted values (binary labels)."""

    values: Tuple[float, ...]

    def contains(self, x):
        ok = x == self.values[0]
        for v in self.values[1:]:
            ok = ok | (x == v)
        return ok

    def describe(self) -> str:
        return "in {" + ", ".join(_fmt(v) for v in self.values) + "}"

    def bad_value(self, dtype=np.float32):
        return np.asarray(0.5, dtype)


@dataclasses.dataclass(frozen=True)
class ClassIndex:
    """Integer class labels in ``[0, C)`` (checked by :func:`prepare_classes`), or, where the loss accepts
    them (``probabilities=True``), float probability targets in ``[0, 1]`` of the logits' shape."""

    probabilities: bool = False
    what: str = "class"

    def contains(self, x):
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer):
            return jnp.ones(jnp.shape(x), bool)  # the range [0, C) is checked where C is known
        return PROBABILITY.contains(x)

    def describe(self) -> str:
        text = f"integer {self.what} indices in [0, C) (C the size of the class axis)"
        return text + (", or probabilities in [0, 1] of the logits' shape" if self.probabilities else "")

    def bad_value(self, dtype):
        return np.asarray(-7, dtype) if np.issubdtype(np.dtype(dtype), np.integer) else np.asarray(-0.5, dtype)


@dataclasses.dataclass(frozen=True)
class Cond:
    """``spec`` applies only when the static ``option`` satisfies ``test`` (described by ``text``)."""

    option: str
    test: Callable[[Any], bool]
    spec: Any
    text: str

    def active(self, options) -> bool:
        return bool(self.test(options[self.option]))

    def describe(self) -> str:
        return f"{self.spec.describe()} {self.text}"


REAL = Interval()
NONNEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, low_open=True)
PROBABILITY = Interval(0.0, 1.0)
BINARY_01 = Values((0.0, 1.0))
BINARY_PM1 = Values((-1.0, 1.0))
BINARY_ANY = Values((-1.0, 0.0, 1.0))  # {-1, 1} or {0, 1}: 0 is read as -1
CLASS_LABELS = ClassIndex()
CLASS_OR_PROBABILITIES = ClassIndex(probabilities=True)


def at_least(low) -> Interval:
    return Interval(float(low))


def in_range(low, high, *, low_open=False, high_open=False) -> Interval:
    return Interval(float(low), float(high), low_open, high_open)


def when(option: str, value, spec) -> Cond:
    """``spec`` applies when the static keyword ``option`` equals ``value``."""
    return Cond(option, lambda v: v == value, spec, f"(when {option}={value!r})")


def _active_specs(spec, options):
    """The plain specs that apply given the static options (a spec, a ``Cond`` or a tuple of them)."""
    specs = spec if isinstance(spec, tuple) else (spec,)
    out = []
    for s in specs:
        if isinstance(s, Cond):
            if s.active(options):
                out.append(s.spec)
        else:
            out.append(s)
    return out


def _describe(spec) -> str:
    specs = spec if isinstance(spec, tuple) else (spec,)
    return "; ".join(s.describe() for s in specs)


@dataclasses.dataclass(frozen=True)
class Domain:
    """The declared domain of one loss: ``inputs`` (array arguments) and ``hypers`` (keyword hyperparameters)."""

    loss: str
    inputs: Dict[str, Any]
    hypers: Dict[str, Any]
    defaults: Dict[str, Any]

    def options(self, kwargs) -> Dict[str, Any]:
        """The keyword options of a call (the defaults updated with ``kwargs``)."""
        return {**self.defaults, **kwargs}

    def specs(self, name, options):
        spec = self.inputs.get(name, self.hypers.get(name))
        return [] if spec is None else _active_specs(spec, self.options(options or {}))


def domain(**specs: Any) -> Callable[[_F], _F]:
    """Declares the domain of a loss's inputs and hyperparameters (the one place it is written).

    Each keyword names a parameter of the loss: a positional array argument (an *input*) or a keyword
    hyperparameter. The decorated loss

    * raises ``ValueError`` at trace time for a concrete hyperparameter outside its range;
    * carries the declaration as ``loss.domain`` (read by the contract tests and :func:`domain_table`);
    * gets a ``Domain:`` section appended to its docstring.

    The loss body applies the declaration to traced values with :meth:`LossContext.enforce`: entries
    outside the domain give NaN in the unreduced loss and fail under :func:`checked`; masked entries are
    never checked.
    """

    def deco(fn: _F) -> _F:
        sig = inspect.signature(fn)
        params = sig.parameters
        for name in specs:
            if name not in params:
                raise TypeError(f"domain of {fn.__name__}: no parameter {name!r}")
        keyword = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
        dom = Domain(
            fn.__name__,
            {n: s for n, s in specs.items() if n not in keyword},
            {n: s for n, s in specs.items() if n in keyword},
            defaults,
        )

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if dom.hypers:
                options = dom.options(kwargs)
                for name in dom.hypers:
                    value = kwargs.get(name)
                    if value is None or not is_concrete(value):
                        continue
                    for spec in dom.specs(name, options):
                        if not _np_contains(spec, value):
                            raise ValueError(f"{fn.__name__}: {name} must be {spec.describe()}; got {value}")
            return fn(*args, **kwargs)

        wrapper.domain = dom  # type: ignore[attr-defined]
        lines = [f"      {n}: {_describe(s)}" for n, s in {**dom.inputs, **dom.hypers}.items()]
        wrapper.__doc__ = (fn.__doc__ or "").rstrip() + (
            "\n\n    Domain:\n"
            + "\n".join(lines)
            + "\n\n      Inputs outside their domain give NaN in the affected entries of the"
            " unreduced loss and fail under :func:`jaxloss.checked`; masked entries are never checked."
            " Concrete hyperparameters outside their range raise ``ValueError``.\n"
        )
        return typing.cast(_F, wrapper)

    return deco


def domain_table(modules: Optional[Sequence[Any]] = None) -> list:
    """Rows ``(loss, argument, "input" | "hyperparameter", domain)`` of every public loss with a declared domain."""
    import importlib

    names = (
        "regression",
        "classification",
        "divergence",
        "embedding",
        "ranking",
        "sequence",
        "segmentation",
        "rl",
        "fused",
    )
    if modules is None:
        modules = [importlib.import_module(f"jaxloss.{n}") for n in names]
    rows = []
    for mod in modules:
        for public in getattr(mod, "__all__", ()):
            dom = getattr(getattr(mod, public), "domain", None)
            if dom is None:
                continue
            for n, s in dom.inputs.items():
                rows.append((public, n, "input", _describe(s)))
            for n, s in dom.hypers.items():
                rows.append((public, n, "hyperparameter", _describe(s)))
    return rows


def move_axis_last(x: Array, axis: int, name: str) -> Array:
    """Moves the class/feature ``axis`` of ``x`` to the end, raising a clear error for a bad axis."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be a Python int; got {axis!r}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class/feature axis); got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for {name} of shape {x.shape}")
    return jnp.moveaxis(x, axis, -1)


# ---------------------------------------------------------------------------------------------------------
# Checked mode: catch value errors that XLA cannot raise under jit (labels out of range, ...)
# ---------------------------------------------------------------------------------------------------------


def checked(fn: Callable) -> Callable:
    """Wraps ``fn`` (a loss, or any function calling jaxloss losses) with runtime value checks.

    Some errors cannot be raised by XLA under ``jax.jit``: a class label outside ``[0, num_classes)``, a
    negative target where the loss needs it non-negative, and so on. By default jaxloss turns such entries
    into NaN (never a plausible finite number). Every loss also emits a
    :func:`jax.experimental.checkify.debug_check` for them: a no-op (dead code, removed by XLA) in an
    ordinary program, which ``checked`` turns into a real check. The wrapped function returns
    ``(error, output)`` exactly as ``checkify.checkify`` does, and works under ``jax.jit``.

    The checks are part of every traced program, so checked mode cannot be lost to a cached trace: a
    function jitted and called once unchecked reports errors when it is later called through ``checked``.

    Examples:
        >>> import jax.numpy as jnp, jaxloss
        >>> err, value = jaxloss.checked(jaxloss.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 5]))
        >>> print(err.get())  # doctest: +ELLIPSIS
        labels must lie in [0, 3) ...
    """
    return functools.wraps(fn)(checkify.checkify(fn, errors=checkify.user_checks))


def _escape(message: str) -> str:
    """``message`` with braces escaped (checkify formats its messages with ``str.format``)."""
    return message.replace("{", "{{").replace("}", "}}")


def value_check(ok: Array, message: str) -> None:
    """A check of ``ok`` (all true) reported by :func:`checked`; dead code in an unchecked program."""
    checkify.debug_check(jnp.all(ok), _escape(message))


# ---------------------------------------------------------------------------------------------------------
# The full reduction (sums over every axis), written for XLA:CPU
# ---------------------------------------------------------------------------------------------------------

# XLA:CPU (jaxlib 0.10) hands a single-operand ``reduce(add)`` to its YNNPACK fusion, which cannot share a pass
# with other outputs: in ``value_and_grad`` the loss's producers (``p - t``, even broadcast constants) are then
# written to memory and read again (e.g. huber at 2^22: 5 fusions, 32 MiB temp, 3-8x slower than with one
# pass). A *variadic* reduce is not taken by YNNPACK and is fused by XLA's own loop emitter with its producers,
# in parallel, with no temporaries. ``full_sums`` therefore sums on CPU through a variadic reduce (the operands
# it is asked for, plus an int8 zero that keeps a single sum variadic), over rows of up to 4096 entries (:func:`_row_length`) (row
# sums accumulate in vector lanes; the row sums are then summed again: accuracy as ``jnp.sum``'s, ~1e-8
# relative at 2^22, where one flat variadic reduce loses ~1e-5). Other platforms use ``jnp.sum``. Derivatives of
# every order are those of ``jnp.sum`` (a ``custom_jvp`` whose tangent is ``jnp.sum`` of the tangents).
_MIN_FAST_SUM = 1 << 14  # below this a plain sum costs nothing worth a second kernel


def _row_length(n: int) -> Optional[int]:
    """The row length of the CPU sum of ``n`` entries: a power of two from 8 to 4096 dividing ``n``, at least
    1024 where it divides (sequential runs short enough for ``jnp.sum``'s accuracy: ~1e-9 relative at 2^22)
    and long enough to leave at most 4096 row sums (20 KiB of temporaries) up to 2^24 entries."""
    target = min(max(1024, 1 << max(0, (n - 1) // 4096).bit_length()), 4096)
    row = target
    while row >= 8 and n % row:
        row //= 2
    return row if row >= 8 else None


def _plain_sums(*xs: Array) -> Tuple[Array, ...]:
    return tuple(jnp.sum(x) for x in xs)


def _variadic_sums(xs: Sequence[Array], axes: Tuple[int, ...]) -> Tuple[Array, ...]:
    """``jnp.sum(x, axes)`` of each of the same-shaped ``xs`` as one variadic reduce with an int8 zero operand,
    which XLA:CPU's loop emitter fuses with the producers of ``xs`` (YNNPACK does not take it)."""
    k = len(xs)

    def combine(a, b):
        return (*(a[i] + b[i] for i in range(k)), jnp.maximum(a[k], b[k]))

    operands = (*xs, jnp.zeros(xs[0].shape, jnp.int8))
    inits = (*(jnp.zeros((), x.dtype) for x in xs), jnp.zeros((), jnp.int8))
    *sums, pad = jax.lax.reduce(operands, inits, combine, axes)
    # ``pad`` is all zeros; adding it keeps the int8 output alive (else XLA drops it, and YNNPACK takes the sum).
    return tuple(s + pad.astype(s.dtype) for s in sums)


def _cpu_sums(*xs: Array) -> Tuple[Array, ...]:
    n = int(np.prod(xs[0].shape))
    row = _row_length(n)
    if row is None or n < _MIN_FAST_SUM:
        return _plain_sums(*xs)
    return tuple(jnp.sum(s) for s in _variadic_sums([x.reshape(n // row, row) for x in xs], (1,)))


@jax.custom_jvp
def full_sums(*xs: Array) -> Tuple[Array, ...]:
    """``tuple(jnp.sum(x) for x in xs)`` for same-shaped arrays, in one pass over memory on CPU.

    Values and derivatives of every order equal ``jnp.sum``'s (up to the summation order); see the comment
    above for why this exists.
    """
    if len({x.shape for x in xs}) != 1:
        return _plain_sums(*xs)
    return jax.lax.platform_dependent(*xs, cpu=_cpu_sums, default=_plain_sums)


@full_sums.defjvp
def _full_sums_jvp(primals, tangents):
    return full_sums(*primals), tuple(jnp.sum(t) for t in tangents)


def _cpu_any(flags: Array, axes: Tuple[int, ...]) -> Array:
    pad_in = jnp.zeros(flags.shape, jnp.int8)

    def combine(a, b):
        return a[0] | b[0], jnp.maximum(a[1], b[1])

    found, pad = jax.lax.reduce((flags, pad_in), (jnp.asarray(False), jnp.zeros((), jnp.int8)), combine, axes)
    return found | (pad > 0)


def any_over(flags: Array, axes: Tuple[int, ...]) -> Array:
    """``jnp.any(flags, axis=axes)``; on CPU a variadic reduce, fused with the comparisons that make ``flags``
    (XLA:CPU rewrites a plain ``reduce(or)`` over a long axis into a reduce-window that reads the flags from
    memory: a domain check of probability targets ``[8192, 1000]`` wrote an 8 MiB boolean temporary)."""
    flags = jnp.asarray(flags, bool)
    return jax.lax.platform_dependent(flags, cpu=lambda f: _cpu_any(f, axes), default=lambda f: jnp.any(f, axis=axes))


def full_sum(x: Array) -> Array:
    """``jnp.sum(x)`` over every axis, in one fused pass on CPU (see :func:`full_sums`)."""
    return full_sums(x)[0]


# ---------------------------------------------------------------------------------------------------------
# The loss context: mask, dtypes and reduction for one call
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a loss needs to finish: the unreduced loss shape, the mask, the dtypes and the reduction.

    Attributes:
      loss_shape: shape of the unreduced loss (the ``reduction="none"`` output).
      mask: boolean array broadcast to ``loss_shape``, or ``None`` when nothing is masked.
      dtype: the compute dtype (float32 for half-precision inputs).
      out_dtype: the dtype of the result (the predictions' dtype).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      invalid: boolean array of unmasked entries whose input values are invalid (e.g. a label out of
        range); they give NaN. ``None`` when there is nothing to flag.
    """

    loss_shape: Tuple[int, ...]
    mask: Optional[Array]
    dtype: Any
    out_dtype: Any
    reduction: str
    invalid: Optional[Array] = None

    # -- inputs ---------------------------------------------------------------------------------------

    def fill(self, x: Array, value=0.0) -> Array:
        """Replaces the masked entries of an input with ``value`` (so that they cannot give NaN).

        ``x`` has the loss shape plus any number of trailing axes (class or feature axes).
        """
        if self.mask is None:
            return x
        m = self.mask.reshape(self.mask.shape + (1,) * (x.ndim - self.mask.ndim))
        return jnp.where(m, x, jnp.asarray(value, x.dtype))

    def value_check(self, ok: Array, message: str) -> None:
        """A checked-mode check (see :func:`checked`) of unmasked entries only: masked entries may hold anything."""
        value_check(ok if self.mask is None else ok | ~self._to_loss_shape(self.mask), message)

    def _to_loss_shape(self, flags: Array) -> Array:
        """Boolean ``flags`` of the loss shape plus trailing axes (any over them), or broadcastable to it."""
        flags = jnp.asarray(flags, bool)
        n = len(self.loss_shape)
        if flags.ndim > n:
            flags = any_over(flags, tuple(range(n, flags.ndim)))
        try:
            np.broadcast_shapes(flags.shape, tuple(self.loss_shape))
        except ValueError:
            flags = jnp.any(flags)  # e.g. a per-class hyperparameter: it affects every entry
        return jnp.broadcast_to(flags, self.loss_shape)

    def flag(self, bad: Array, message: str) -> "LossContext":
        """Marks entries as invalid: NaN in the unreduced loss, and a :func:`checked` error with ``message``.

        ``bad`` has the loss shape (plus trailing class/feature axes, reduced with ``any``) or broadcasts to
        it. Masked entries are never flagged.
        """
        bad = self._to_loss_shape(bad)
        if self.mask is not None:
            bad = bad & self.mask
        value_check(~bad, message)
        return dataclasses.replace(self, invalid=bad if self.invalid is None else self.invalid | bad)

    def enforce(self, loss: Callable, options: Optional[dict] = None, **values) -> "LossContext":
        """Applies the declared domain of ``loss`` (see :func:`domain`) to ``values`` (name=array).

        Values outside the domain make the affected unmasked entries NaN and fail under :func:`checked`,
        with a message naming the loss and the argument. ``options`` holds the static keyword options that
        conditional domains depend on (e.g. ``from_logits``). ``None`` values and concrete hyperparameters
        (already checked at trace time, raising ``ValueError``) are skipped.
        """
        out = self
        for value, spec, message in _domain_checks(loss, options, values):
            out = out.flag(~spec.contains(value), message)
        return out

    def enforce_inline(self, loss: Callable, options: Optional[dict] = None, **values) -> Array:
        """:meth:`enforce` for inputs that the loss reads in a pass of its own (probability targets summed over
        the class axis): returns ``poison`` of the loss shape, 0 where the values are in their domain and
        NaN where one is outside (a scalar 0 when nothing is checked), and registers the :func:`checked`-mode
        checks.

        The caller adds ``poison`` to its unreduced loss. For a closed finite interval (probabilities in
        ``[0, 1]``) ``poison`` is ``0 * sqrt(min(min_c x - low, high - max_c x))``: a min and a max over the
        class axis, which XLA:CPU's YNNPACK fusion computes in the pass that already reads the values. A
        boolean flag pass read ``[N, C]`` probability targets once more (cross-entropy was 1.3-1.5x optax's
        forward time on CPU), and a ``where`` select per entry stops YNNPACK from taking the loss (it then
        wrote ``[N, C]`` temporaries). Masked entries are zeroed by :meth:`reduce` afterwards, so they are
        never NaN; the checked-mode check skips them too.
        """
        poison = None
        for value, spec, message in _domain_checks(loss, options, values):
            self.value_check(~self._to_loss_shape(~spec.contains(value)), message)
            p = self._nan_outside(spec, value)
            poison = p if poison is None else poison + p
        return jnp.zeros((), self.dtype) if poison is None else poison

    def _nan_outside(self, spec, x: Array) -> Array:
        """0 where every entry of ``x`` (the loss shape plus trailing axes) is inside ``spec``, else NaN, of the
        loss shape, without derivatives (see :meth:`enforce_inline`)."""
        x = jax.lax.stop_gradient(jnp.asarray(x))
        if isinstance(spec, ClassIndex) and jnp.issubdtype(x.dtype, jnp.floating):
            spec = PROBABILITY
        axes = tuple(range(len(self.loss_shape), x.ndim))
        closed = isinstance(spec, Interval) and not (spec.low_open or spec.high_open)
        if closed and np.isfinite([spec.low, spec.high]).all() and jnp.issubdtype(x.dtype, jnp.floating):
            # NaN and infinite entries give NaN too (min/max propagate NaN; inf - inf is NaN).
            room = jnp.minimum(jnp.min(x, axis=axes) - spec.low, spec.high - jnp.max(x, axis=axes))
            return jnp.broadcast_to(0.0 * jnp.sqrt(room), self.loss_shape).astype(self.dtype)
        bad = self._to_loss_shape(~spec.contains(x))
        return jnp.where(bad, jnp.nan, 0.0).astype(self.dtype)

    def cast(self, x: ArrayLike) -> Array:
        """``x`` (a hyperparameter or a float input) as an array of the compute dtype."""
        return jnp.asarray(x, self.dtype)

    # -- output ---------------------------------------------------------------------------------------

    def reduce(self, loss: Array, *, weights: Optional[ArrayLike] = None, norm: Optional[Array] = None) -> Array:
        """Applies weights, the mask and the reduction to the unreduced ``loss``.

        Args:
          loss: the unreduced loss, of shape ``loss_shape``.
          weights: user weights broadcastable to ``loss_shape``; they multiply the loss and, for
            ``"mean"``, the denominator: ``sum(w*l)/sum(w)``.
          norm: per-entry normaliser already folded into ``loss`` by the formula (class weights of the
            labels, as in PyTorch's weighted cross-entropy); it enters only the ``"mean"`` denominator.

        Returns:
          a scalar for ``"mean"``/``"sum"``, an array of ``loss_shape`` for ``"none"`` (masked entries 0),
          in ``out_dtype``.
        """
        loss = jnp.asarray(loss, self.dtype)
        if loss.shape != tuple(self.loss_shape):
            loss = jnp.broadcast_to(loss, self.loss_shape)
        denom = None
        if weights is not None:
            w = float_array(weights, "weights") if not isinstance(weights, (int, float)) else jnp.asarray(weights)
            check_broadcastable(w, self.loss_shape, "weights")
            w = w.astype(self.dtype)
            loss = loss * w
            denom = jnp.broadcast_to(w, self.loss_shape)
        if norm is not None:
            norm = jnp.broadcast_to(jnp.asarray(norm, self.dtype), self.loss_shape)
            denom = norm if denom is None else denom * norm
        if self.invalid is not None:
            loss = jnp.where(self.invalid, jnp.nan, loss)
        if self.mask is not None:
            loss = jnp.where(self.mask, loss, 0.0)
            if denom is not None:
                denom = jnp.where(self.mask, denom, 0.0)
        if self.reduction == "none":
            return loss.astype(self.out_dtype)
        if self.reduction == "sum":
            return full_sum(loss).astype(self.out_dtype)
        if denom is None and self.mask is None:
            # Static count: a plain mean. (Going through the count == 0 guard below costs XLA:CPU a
            # materialised broadcast of the cotangent in value_and_grad, e.g. 16 MiB more for huber at 2^22.)
            return (full_sum(loss) / max(int(np.prod(self.loss_shape)), 1)).astype(self.out_dtype)
        if denom is None:
            denom = jnp.asarray(self.mask, self.dtype)
        # The numerator and the denominator in one pass.
        total, count = full_sums(loss, jnp.broadcast_to(denom, self.loss_shape))
        safe = jnp.where(count == 0, 1.0, count)
        return jnp.where(count == 0, 0.0, total / safe).astype(self.out_dtype)


def _domain_checks(loss: Callable, options: Optional[dict], values: dict):
    """``(value, spec, message)`` for each declared domain of ``loss`` that applies to ``values`` (name=array):
    ``None`` values and concrete hyperparameters (checked at trace time, raising ``ValueError``) are skipped."""
    dom: Domain = loss.domain  # type: ignore[attr-defined]  # set by @domain
    for name, value in values.items():
        if value is None or (name in dom.hypers and is_concrete(value)):
            continue
        for spec in dom.specs(name, options):
            yield value, spec, f"{dom.loss}: {name} must be {spec.describe()}; found a value outside its domain"


def _make_mask(where: Optional[ArrayLike], loss_shape) -> Optional[Array]:
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask; got dtype {where.dtype}")
    check_broadcastable(where, loss_shape, "where")
    return jnp.broadcast_to(where, loss_shape)


def _and_mask(a: Optional[Array], b: Optional[Array]) -> Optional[Array]:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def split_mask(
    where: Optional[ArrayLike], items_shape: Sequence[int], *, groups: bool = True, what: str = "the items"
) -> Tuple[Optional[Array], Optional[Array]]:
    """Splits ``where`` of a loss over groups of items (lists of a ranking, groups of embeddings).

    ``where`` with the items' rank (broadcastable to ``items_shape = [..., N]``) masks single items; with a
    lower rank (only when ``groups``) it masks whole groups ``[...]``. Returns ``(item_mask, group_mask)``,
    each broadcast to its shape or ``None``.
    """
    if where is None:
        return None, None
    w = jnp.asarray(where)
    if w.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean mask; got dtype {w.dtype}")
    items_shape = tuple(items_shape)
    if not groups or w.ndim == len(items_shape):
        check_broadcastable(w, items_shape, "where", what)
        return jnp.broadcast_to(w, items_shape), None
    check_broadcastable(w, items_shape[:-1], "where", "the groups")
    return None, jnp.broadcast_to(w, items_shape[:-1])


def prepare(
    *arrays: ArrayLike,
    names: Sequence[str] = ("predictions", "targets"),
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    axis: Optional[int] = None,
    fill: Sequence[float] = (),
) -> Tuple[LossContext, Tuple[Array, ...]]:
    """Validates and prepares same-shaped float inputs of an elementwise or per-vector loss.

    Args:
      *arrays: the float inputs (predictions first); all must have one shape.
      names: their names, for error messages.
      where: optional boolean mask broadcastable to the unreduced loss.
      reduction: validated here.
      axis: ``None`` for an elementwise loss (the unreduced loss has the inputs' shape); an int for a loss
        over a feature axis (the axis is moved last and dropped from the loss shape).
      fill: the value each array takes at masked entries (default 0).

    Returns:
      ``(ctx, arrays)`` with the arrays in the compute dtype, masked entries filled.
    """
    check_reduction(reduction)
    xs: Sequence[Array] = [float_array(a, n) for a, n in zip(arrays, names)]
    check_same_shape(xs, names)
    out_dtype = xs[0].dtype
    dtype = compute_dtype(out_dtype)
    if axis is not None:
        xs = [move_axis_last(x, axis, n) for x, n in zip(xs, names)]
        loss_shape = xs[0].shape[:-1]
    else:
        loss_shape = xs[0].shape
    ctx = LossContext(tuple(loss_shape), _make_mask(where, loss_shape), dtype, out_dtype, reduction)
    fills = list(fill) + [0.0] * (len(xs) - len(fill))
    xs = tuple(ctx.fill(x.astype(dtype), f) for x, f in zip(xs, fills))
    return ctx, xs


def classes_last(x: Array, axis, name: str) -> Array:
    """``x`` with its class axis (an int) or axes (a tuple, flattened row-major in the given order) last."""
    if isinstance(axis, tuple):
        if not axis or not all(isinstance(a, (int, np.integer)) for a in axis):
            raise TypeError(f"axis must be an int or a non-empty tuple of ints; got {axis!r}")
        for a in axis:
            if not -x.ndim <= a < x.ndim:
                raise ValueError(f"axis={axis} is out of range for {name} of shape {x.shape}")
        axes = [a % x.ndim for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis={axis} repeats an axis")
        x = jnp.moveaxis(x, axes, list(range(x.ndim - len(axes), x.ndim)))
        return x.reshape(x.shape[: x.ndim - len(axes)] + (-1,))
    return move_axis_last(x, axis, name)


def prepare_classes(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis=-1,
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = None,
    names: Tuple[str, str] = ("logits", "labels"),
    allow_probabilities: bool = True,
) -> Tuple[LossContext, Array, Array, bool]:
    """Validates and prepares the inputs of a loss over a class axis.

    ``targets`` are integer class labels (shape = logits' shape without ``axis``) or, when
    ``allow_probabilities``, float class probabilities of the logits' shape; the dtype decides.

    ``axis`` is an int or a tuple of class axes (optax's convention: the axes are flattened, row-major in
    the given order, and an integer label is a flat index into that slice).

    ``where`` is a mask of examples (broadcastable to the loss shape) or, when it has the logits' rank, a
    mask of classes (broadcastable to the logits' shape; optax's convention): masked classes are left out
    of the softmax (their logits are replaced by a huge negative number, so they get probability 0 and zero
    gradient, even when they hold NaN), probability targets there are ignored, an integer label pointing at
    a masked class is invalid (NaN, and an error under :func:`checked`), and an example without any
    unmasked class is masked.

    Integer labels: ``ignore_index`` entries are masked; labels outside ``[0, num_classes)`` that are not
    masked give NaN and fail under :func:`checked`; masked labels are replaced by 0 so that indexing is safe.

    Returns:
      ``(ctx, logits, targets, is_int)``: logits in the compute dtype with the class axis last, targets
      (int labels, or probabilities in the compute dtype with the class axis last).
    """
    check_reduction(reduction)
    logits = float_array(logits, names[0])
    shape_in = logits.shape
    out_dtype = logits.dtype
    dtype = compute_dtype(out_dtype)
    logits = classes_last(logits, axis, names[0])
    num_classes = logits.shape[-1]
    loss_shape = logits.shape[:-1]
    class_mask = None
    if where is not None and jnp.ndim(where) == len(shape_in):
        cm = jnp.asarray(where)
        if cm.dtype != jnp.bool_:
            raise TypeError(f"where must be a boolean mask; got dtype {cm.dtype}")
        check_broadcastable(cm, shape_in, "where", f"{names[0]} (a class mask)")
        class_mask = classes_last(jnp.broadcast_to(cm, shape_in), axis, "where")
        where = jnp.any(class_mask, axis=-1)
    targets = jnp.asarray(targets)
    is_int = bool(jnp.issubdtype(targets.dtype, jnp.integer))
    if not is_int:
        if not allow_probabilities:
            int_array(targets, names[1], "float targets are not accepted by this loss")
        if not jnp.issubdtype(targets.dtype, jnp.floating):
            raise TypeError(
                f"{names[1]} must be integer class labels or float probabilities; got dtype {targets.dtype}"
            )
        if targets.shape != shape_in:
            raise ValueError(
                f"probability {names[1]} must have the shape of {names[0]}; got {names[0]}.shape="
                f"{shape_in} and {names[1]}.shape={targets.shape}"
            )
        targets = classes_last(targets, axis, names[1])
        if ignore_index is not None:
            raise ValueError("ignore_index applies to integer labels only; mask probability targets with where=")
        ctx = LossContext(tuple(loss_shape), _make_mask(where, loss_shape), dtype, out_dtype, reduction)
        x, t = ctx.fill(logits.astype(dtype)), ctx.fill(targets.astype(dtype))
        if class_mask is not None:
            x = _mask_classes(x, class_mask)
            t = jnp.where(class_mask, t, 0.0)
        return ctx, x, t, False

    if targets.shape != loss_shape:
        raise ValueError(
            f"integer {names[1]} must have the shape of {names[0]} without the class axis {axis}; got "
            f"{names[0]}.shape={shape_in} and {names[1]}.shape={targets.shape} (expected {loss_shape})"
        )
    ctx, targets = prepare_labels(
        targets,
        num_classes,
        loss_shape=loss_shape,
        where=where,
        ignore_index=ignore_index,
        dtype=dtype,
        out_dtype=out_dtype,
        reduction=reduction,
        name=names[1],
    )
    x = ctx.fill(logits.astype(dtype))
    if class_mask is not None:
        ctx = ctx.flag(~take_class(class_mask, targets), f"{names[1]} must not point at a class masked by where")
        x = _mask_classes(x, class_mask)
    return ctx, x, targets, True


def _mask_classes(x: Array, class_mask: Array) -> Array:
    """Logits of masked classes replaced by a huge finite negative number: probability 0, zero gradient,
    and ``0 * log_softmax`` stays 0 (``-inf`` would give ``0 * -inf = NaN`` in the probability-target form)."""
    return jnp.where(class_mask, x, jnp.asarray(jnp.finfo(x.dtype).min / 4, x.dtype))


def prepare_labels(
    labels: Array,
    num_classes: int,
    *,
    loss_shape: Tuple[int, ...],
    where: Optional[ArrayLike],
    ignore_index: Optional[int],
    dtype,
    out_dtype,
    reduction: str,
    name: str = "labels",
    extra_mask: Optional[Array] = None,
) -> Tuple[LossContext, Array]:
    """The label preparation of every class-axis loss: masks, ``ignore_index`` and the label range.

    ``labels`` are integer class indices of ``loss_shape``. The returned context masks ``where`` (the user's
    mask), ``extra_mask`` (entries the loss leaves out) and the labels equal to ``ignore_index``; unmasked
    labels outside ``[0, num_classes)`` are flagged (NaN, and an error under :func:`checked`). The returned
    labels are safe to index with: flagged and masked entries hold 0.

    Used by :func:`prepare_classes` and by losses that never form the ``[..., C]`` logits (the fused
    ``linear_cross_entropy``) or reduce labels differently (segmentation).
    """
    labels = int_array(labels, name)
    mask = _and_mask(
        _make_mask(where, loss_shape), None if extra_mask is None else jnp.broadcast_to(extra_mask, loss_shape)
    )
    if ignore_index is not None:
        mask = _and_mask(mask, labels != ignore_index)
    ok = (labels >= 0) & (labels < num_classes)
    ctx = LossContext(tuple(loss_shape), mask, dtype, out_dtype, reduction)
    ctx = ctx.flag(
        ~ok,
        f"{name} must lie in [0, {num_classes}) (or equal ignore_index / be masked); found a label out of range",
    )
    keep = ok if mask is None else (ok & mask)
    return ctx, jnp.where(keep, labels, 0)


# ---------------------------------------------------------------------------------------------------------
# Small numerics shared by several formulas
# ---------------------------------------------------------------------------------------------------------


def take_class(x: Array, labels: Array) -> Array:
    """``x[..., labels]`` along the last axis, without materialising a one-hot."""
    return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def safe_log(x: Array, floor: float = -100.0) -> Array:
    """``log(x)`` clamped below at ``floor`` (PyTorch's BCE clamp), with a finite gradient at ``x = 0``."""
    tiny = jnp.exp(jnp.asarray(floor, x.dtype))
    ok = x > tiny
    return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), jnp.asarray(floor, x.dtype))


@jax.custom_jvp
def xlogx(x: Array) -> Array:
    """``x * log(x)`` with value and gradient 0 at ``x = 0`` (the gradient there is a finite subgradient).

    The derivative ``log(x) + 1`` is written out, so the second derivative is ``1 / x`` (differentiating
    ``x log x`` twice by the product rule forms ``dx^2 / x^2``, which underflows to ``0 / 0`` for tiny ``x``).
    """
    pos = x > 0
    return jnp.where(pos, x * jnp.log(jnp.where(pos, x, 1.0)), 0.0)


@xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    pos = x > 0
    return xlogx(x), jnp.where(pos, jnp.log(jnp.where(pos, x, 1.0)) + 1.0, 0.0) * dx


def _pow(base: Array, exponent: Array, clamp: bool) -> Array:
    """``base ** exponent`` (``base >= 0``) as ``exp(exponent * log(base))``; 0 at ``base = 0`` (1 if ``exponent == 0``).

    With ``clamp``, ``exponent * log(base)`` is clamped below the overflow of the dtype (see :func:`safe_pow`).
    """
    pos = base > 0
    t = exponent * jnp.log(jnp.where(pos, base, 1.0))
    if clamp:
        cap = 0.75 * float(np.log(np.finfo(jnp.result_type(t)).max))
        t = jnp.where(t > cap, cap, t)
    return jnp.where(pos, jnp.exp(t), jnp.where(exponent == 0, 1.0, 0.0))


def _pow_jvp(fn, primals, tangents):
    base, exponent = primals
    d_base, d_exponent = tangents
    out = fn(base, exponent)
    pos = base > 0
    log_base = jnp.where(pos, jnp.log(jnp.where(pos, base, 1.0)), 0.0)
    # d/d base: exponent * base^(exponent - 1), itself through the clamped power, so that every order of
    # derivative is a product of powers of base (no 1/base^2 that underflows to 0/0 for a tiny base).
    coef = jnp.where(exponent == 0, 0.0, exponent * _dpow(base, exponent - 1.0))
    return out, coef * d_base + out * log_base * d_exponent


@jax.custom_jvp
def _dpow(base, exponent):
    return _pow(base, exponent, True)


_dpow.defjvp(lambda primals, tangents: _pow_jvp(_dpow, primals, tangents))


@jax.custom_jvp
def safe_pow(base: Array, exponent: Array) -> Array:
    """``base ** exponent`` for ``base >= 0``, with finite derivatives of every order at any ``base >= 0``.

    The value is ``exp(exponent * log(base))`` (0 at ``base = 0``, 1 when ``exponent == 0``). The derivative
    with respect to ``base`` is ``exponent * base^(exponent - 1)``, formed again as a power (recursively for
    higher orders), so second derivatives stay finite where the first ones are: differentiating
    ``exp(g log u)`` twice would form ``du^2 / u^2``, which underflows to ``0 / 0`` for a tiny ``u`` (the
    focal loss at confident logits). At ``base = 0`` the derivative is that of the constant branch
    (``exponent`` when ``exponent == 1``, else 0: a finite subgradient where the true one is infinite), and
    the power inside derivatives is capped at ``exp(0.75 log(max))`` of the dtype (only reached by bases
    so small that the product with their tangent is negligible).
    """
    return _pow(base, exponent, False)


safe_pow.defjvp(lambda primals, tangents: _pow_jvp(safe_pow, primals, tangents))


def _cpu_axis_sum(x: Array, axis: int) -> Array:
    """``jnp.sum(x, axis)`` as a variadic reduce (:func:`_variadic_sums`), which XLA:CPU runs on every core,
    where YNNPACK takes a plain row sum on one thread."""
    return _variadic_sums([x], (axis % x.ndim,))[0]


def _norm2_value(x: Array, axis: int, fast: bool) -> Array:
    tiny = jnp.finfo(x.dtype).tiny
    if fast:
        ssq = jax.lax.platform_dependent(
            x, cpu=lambda v: _cpu_axis_sum(v * v, axis), default=lambda v: jnp.sum(v * v, axis=axis)
        )
    else:
        ssq = jnp.sum(x * x, axis=axis)
    return jnp.sqrt(ssq + tiny) - np.sqrt(tiny).astype(x.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _norm2(x: Array, axis: int) -> Array:
    """``sqrt(sum x^2 + tiny) - sqrt(tiny)``: exactly 0 at the zero vector, ``|x|`` to rounding elsewhere; no
    select, which XLA:CPU would not fuse. The derivative ``x . dx / sqrt(sum x^2 + tiny)`` is written out, so
    that the second derivative at the zero vector is finite (through ``sqrt``'s own second derivative it
    would be ``tiny^-1.5 * 0 = inf * 0``)."""
    return _norm2_value(x, axis, fast=False)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _norm2_fast(x: Array, axis: int) -> Array:
    """:func:`_norm2` whose undifferentiated value (a forward pass) sums on CPU through a variadic reduce
    (:func:`_cpu_axis_sum`: parallel, fused with the difference that makes ``x``; triplet_margin forward
    ~0.6x the plain sum's time). Its derivatives are :func:`_norm2`'s, whose value uses ``jnp.sum``: with the
    variadic reduce in ``value_and_grad`` XLA:CPU wrote the difference to memory for the gradient (5x
    slower), and contrastive's forward was slower with it (so only triplet_margin uses it)."""
    return _norm2_value(x, axis, fast=True)


def _norm2_jvp(axis, primals, tangents):
    (x,), (dx,) = primals, tangents
    n = jnp.sqrt(jnp.sum(x * x, axis=axis) + jnp.finfo(x.dtype).tiny)
    return _norm2(x, axis), jnp.sum(x * dx, axis=axis) / n


_norm2.defjvp(_norm2_jvp)
_norm2_fast.defjvp(_norm2_jvp)


def safe_norm(x: Array, axis: int = -1, ord: float = 2.0, fast_forward: bool = False) -> Array:
    """The ``ord``-norm over ``axis`` with a finite (zero) gradient at the zero vector. ``fast_forward``: the
    2-norm's undifferentiated value through a variadic reduce on CPU (see :func:`_norm2_fast`)."""
    ax = jnp.abs(x)
    if ord == 2:
        return _norm2_fast(x, axis) if fast_forward else _norm2(x, axis)
    if ord == 1:
        return jnp.sum(ax, axis=axis)
    if ord == np.inf:
        return jnp.max(ax, axis=axis)
    s = jnp.sum(safe_pow(ax, jnp.asarray(ord, x.dtype)), axis=axis)
    return safe_pow(s, jnp.asarray(1.0 / ord, x.dtype))


def class_weight_array(class_weights: Optional[ArrayLike], num_classes: int, dtype) -> Optional[Array]:
    """Validates ``class_weights`` (shape ``[num_classes]``) and casts it to ``dtype``; ``None`` passes."""
    if class_weights is None:
        return None
    cw = jnp.asarray(class_weights)
    if cw.shape != (num_classes,):
        raise ValueError(f"class_weights must have shape ({num_classes},) (one per class); got shape {cw.shape}")
    return cw.astype(dtype)


def numeric_targets(labels: ArrayLike, name: str = "labels") -> Array:
    """Targets that may be given as int, bool or float (e.g. binary labels), as a float array."""
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        return labels
    if jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        return labels.astype(jnp.float32)
    raise TypeError(f"{name} must be numeric (float, int or bool); got dtype {labels.dtype}")


def prepare_binary(
    loss: Callable,
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    signed: bool,
    names: Tuple[str, str] = ("scores", "labels"),
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    axis: Optional[int] = None,
    options: Optional[dict] = None,
) -> Tuple[LossContext, Array, Array]:
    """:func:`prepare` for a loss of scores and binary (or soft) labels of one shape, the domain enforced.

    The labels (int, bool or float) are checked against ``loss``'s declared domain *before* any mapping,
    then returned as floats; with ``signed=True`` they are mapped to ``{-1, 1}`` (0 is read as -1).
    ``options`` are the static options the declared domain depends on (e.g. ``from_logits``).
    """
    ctx, (s, y) = prepare(
        scores, numeric_targets(labels, names[1]), names=names, where=where, reduction=reduction, axis=axis
    )
    ctx = ctx.enforce(loss, options, **{names[0]: s, names[1]: y})
    return ctx, s, (to_signed(y) if signed else y)


def to_signed(y: Array) -> Array:
    """Binary labels in ``{-1, 0, 1}`` mapped to ``{-1, 1}`` (0 -> -1), arithmetic only.

    ``y^2 + y - 1``: a select here would stop XLA:CPU from fusing the loss into its reduction (an extra pass
    and a full-size temporary). Other values are not binary labels (they map to plausible numbers: -2 to
    1), so the labels are checked against the loss's domain first (:func:`prepare_binary`).
    """
    return y * y + y - 1


def signed_labels(labels: ArrayLike, name: str = "labels") -> Array:
    """Binary labels as floats in {-1, 1}: accepts {-1, 1} or {0, 1} (0 maps to -1), int, bool or float.

    Only the values -1, 0 and 1 are meaningful; other (soft) values are not binary labels.
    """
    labels = numeric_targets(labels, name)
    # y^2 + y - 1 maps 0 -> -1, 1 -> 1, -1 -> -1 with arithmetic only: a select here would stop XLA:CPU from
    # fusing the loss into its reduction (an extra pass and a full-size temporary).
    return labels * labels + labels - 1


# ---------------------------------------------------------------------------------------------------------
# A context for a loss whose unreduced shape is not an input's shape (sequence and segmentation losses)
# ---------------------------------------------------------------------------------------------------------


def context(
    loss_shape: Sequence[int],
    dtype,
    *,
    where: Optional[ArrayLike] = None,
    reduction: str = "mean",
    invalid: Optional[Array] = None,
    extra_mask: Optional[Array] = None,
) -> LossContext:
    """A :class:`LossContext` for a loss whose unreduced shape ``loss_shape`` is not an input's shape.

    ``dtype`` is the predictions' dtype (the compute dtype is derived from it); ``where`` (the user's mask,
    broadcastable to ``loss_shape``) is combined with ``extra_mask`` (entries that the loss itself leaves
    out, e.g. sequences without any valid token). ``reduction`` is validated here.
    """
    check_reduction(reduction)
    mask = _make_mask(where, loss_shape)
    if extra_mask is not None:
        mask = _and_mask(mask, jnp.broadcast_to(extra_mask, tuple(loss_shape)))
    return LossContext(tuple(loss_shape), mask, compute_dtype(dtype), jnp.dtype(dtype), reduction, invalid)


# ---------------------------------------------------------------------------------------------------------
# Regularised max operators over the last axis (multiclass_sparsemax, fenchel_young)
# ---------------------------------------------------------------------------------------------------------


def sparsemax(z: Array) -> Array:
    """The sparsemax projection of ``z`` onto the simplex along the last axis (Martins & Astudillo, 2016).

    ``p = max(z - tau, 0)`` with ``tau`` chosen so that ``sum p = 1``: sort ``z`` in decreasing order, the
    support is the ``k`` largest entries with ``1 + k z_(k) > sum_{i<=k} z_(i)``, and
    ``tau = (sum_{i<=k} z_(i) - 1) / k``. Differentiable (the support is locally constant).
    """
    z = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))  # sparsemax is shift-invariant
    z_sorted = -jnp.sort(-z, axis=-1)
    cumsum = jnp.cumsum(z_sorted, axis=-1)
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    support = jnp.sum(1.0 + k * z_sorted > cumsum, axis=-1, keepdims=True)  # >= 1: the top entry is always in
    tau = (jnp.take_along_axis(cumsum, support - 1, axis=-1) - 1.0) / support.astype(z.dtype)
    return jax.nn.relu(z - tau)


@jax.custom_jvp
def gini_max(z: Array) -> Array:
    """The Gini-entropy conjugate ``max_{p in simplex} <p, z> + (1 - |p|^2) / 2``; its gradient is sparsemax(z)."""
    p = sparsemax(z)
    return jnp.sum(p * z, axis=-1) + 0.5 * (1.0 - jnp.sum(p * p, axis=-1))


@gini_max.defjvp
def _gini_max_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    p = sparsemax(z)
    value = jnp.sum(p * z, axis=-1) + 0.5 * (1.0 - jnp.sum(p * p, axis=-1))
    return value, jnp.sum(p * dz, axis=-1)
