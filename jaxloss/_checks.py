"""Shared input checks and dtype handling for every jaxloss function.

Static problems (shapes, dtypes, hyperparameter ranges) raise at trace time with a message that
names the function, the argument, what was expected and what came. Value problems that exist only
at run time are turned into NaN by the losses, and into a raised error by `jaxloss.checked`.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

_HALF_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))

_state = threading.local()

F = TypeVar("F", bound=Callable[..., Any])


# ----------------------------------------------------------------------------------- dtypes


def as_float(fn: str, name: str, x: Any) -> jax.Array:
    """`x` as a floating array; float16/bfloat16 are upcast to float32 (computed and returned so).

    Python numbers and integer/bool arrays become the default float dtype. Used for arguments whose
    integer values are meaningful (targets, probability labels, masks of weights).
    """
    x = real(fn, name, x)
    if x.dtype in _HALF_DTYPES:
        return x.astype(jnp.float32)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.result_type(float))
    return x


def as_logits(fn: str, name: str, x: Any) -> jax.Array:
    """Like `as_float`, but an integer array is a TypeError: integer logits are almost always labels
    passed in the wrong position, and silently casting them hides the bug."""
    arr = real(fn, name, x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be a floating-point array (model outputs); got dtype "
            f"{arr.dtype}. Did you swap `{name}` and the labels?"
        )
    return as_float(fn, name, arr)


def as_integer_labels(fn: str, name: str, x: Any) -> jax.Array:
    """Integer class labels; a float array is a TypeError (use the probability-label variant)."""
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be an integer array of class indices; got dtype "
            f"{arr.dtype}. For one-hot or probability labels use the function without "
            "'_with_integer_labels'."
        )
    return arr


def real(fn: str, name: str, x: Any) -> jax.Array:
    """`x` as an array; a complex array is a TypeError (its imaginary part would be dropped), and
    so is anything JAX cannot make an array of (a string, None)."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError):
        msg = f"jaxloss.{fn}: `{name}` must be a real number or array; got {x!r}."
        raise TypeError(msg) from None
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be real; got dtype {arr.dtype} (casting would silently "
            "drop the imaginary part)."
        )
    return arr


def float_pair(fn: str, name_a: str, a: Any, name_b: str, b: Any) -> tuple[jax.Array, jax.Array]:
    """Two floating arrays of one shape and one dtype (model output `a` and its target `b`).

    `a` must be floating; an integer/bool `b` takes `a`'s dtype, so integer targets never promote
    float32 predictions to float64. Half precision is upcast to float32. A complex `b` raises.
    """
    a = as_logits(fn, name_a, a)
    b_arr = real(fn, name_b, b)
    b = (
        b_arr.astype(a.dtype)
        if not jnp.issubdtype(b_arr.dtype, jnp.floating)
        else as_float(fn, name_b, b_arr)
    )
    same_shape(fn, name_a, a, name_b, b)
    dtype = jnp.result_type(a, b)
    return a.astype(dtype), b.astype(dtype)


# ----------------------------------------------------------------------------------- shapes


def same_shape(fn: str, name_a: str, a: jax.Array, name_b: str, b: jax.Array) -> None:
    """Raise unless `a` and `b` have exactly the same shape (jaxloss never broadcasts them)."""
    if a.shape != b.shape:
        raise ValueError(
            f"jaxloss.{fn}: `{name_b}` must have the same shape as `{name_a}` {a.shape}; got "
            f"{b.shape}. jaxloss does not broadcast them, since (N,) against (N, 1) would silently "
            "give an (N, N) loss."
        )


def has_class_axis(fn: str, name: str, x: jax.Array) -> None:
    """Raise unless `x` has a last (class) axis."""
    if x.ndim < 1:
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must have a class axis (the last one); got a scalar."
        )


def integer_labels_shape(
    fn: str,
    logits: jax.Array,
    labels: jax.Array,
    *,
    logits_name: str = "logits",
    labels_name: str = "labels",
) -> None:
    """Integer labels must have the logits' shape without the class axis."""
    has_class_axis(fn, logits_name, logits)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"jaxloss.{fn}: `{labels_name}` must have shape {logits_name}.shape[:-1] = "
            f"{logits.shape[:-1]} (one class index per position); got {labels.shape}."
        )


def mask_shape(fn: str, name: str, where: jax.Array | None, shape: tuple[int, ...]) -> None:
    """A boolean mask must have the given shape (no broadcasting)."""
    if where is None:
        return
    if where.shape != shape:
        raise ValueError(f"jaxloss.{fn}: `{name}` must have shape {shape}; got {where.shape}.")
    if where.dtype != jnp.bool_:
        raise TypeError(f"jaxloss.{fn}: `{name}` must be a boolean mask; got dtype {where.dtype}.")


def class_vector_shape(fn: str, name: str, x: jax.Array, num_classes: int) -> None:
    """A per-class vector (class weights, alpha) must have shape (C,)."""
    if x.shape != (num_classes,):
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must have shape ({num_classes},), one value per class; got "
            f"{x.shape}."
        )


def non_empty(fn: str, name: str, x: Any, *, axis: int | None = None) -> None:
    """Raise unless `x` has at least one element (along `axis` when given): a mean over nothing,
    a softmax over no class, a data set of no sample have no value to return."""
    shape = jnp.shape(x)
    if axis is None and 0 in shape:
        raise ValueError(f"jaxloss.{fn}: `{name}` must not be empty; got shape {shape}.")
    if axis is not None and shape and shape[axis] == 0:
        entry = _AXIS_ENTRIES.get(axis, f"entry along axis {axis}")
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must have at least one {entry}; got shape {shape}."
        )


_AXIS_ENTRIES = {0: "sample (its leading axis)", -1: "class (its last axis)"}


# --------------------------------------------------------------------- Python-side arguments

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def integer(
    fn: str,
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """A static integer as a Python int: Python and NumPy integers (0-d integer arrays too) pass;
    bools, floats and anything else are a TypeError; a value outside [low, high] a ValueError."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (np.ndarray, jax.Array))
        and (value.ndim or not np.issubdtype(value.dtype, np.integer))
    ):
        number = None
    else:
        try:
            number = operator.index(value)
        except TypeError:
            number = None
    if number is None:
        raise TypeError(f"jaxloss.{fn}: `{name}` must be an integer; got {value!r}.")
    if (low is not None and number < low) or (high is not None and number > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(f"jaxloss.{fn}: `{name}` must lie in [{lo}, {hi}]; got {number}.")
    return number


def positive_int(fn: str, name: str, value: Any) -> int:
    """`integer` ≥ 1 (a count of steps, samples, iterations)."""
    return integer(fn, name, value, low=1)


def int32(fn: str, name: str, value: Any) -> int:
    """`integer` that fits the int32 arrays it is compared with (an index, a count)."""
    return integer(fn, name, value, low=_INT32[0], high=_INT32[1])


def seed_key(fn: str, name: str, seed: Any) -> jax.Array:
    """A typed PRNG key from an int seed, exactly: every seed in [-2**63, 2**63) gets its own key.

    Every seed gets the key `jax.random.key(seed)` gives with x64 on (the high and low 32 bits of
    the 64-bit seed), whether x64 is on or not: without x64, `jax.random.key` would wrap seeds
    beyond 32 bits and read negative ones differently. Seeds in [0, 2**32) are the same either way.
    """
    seed = integer(fn, name, seed, low=_INT64[0], high=_INT64[1])
    if 0 <= seed < 2**32:
        return jax.random.key(seed)
    bits = seed % 2**64
    data = np.array([bits >> 32, bits & 0xFFFFFFFF], np.uint32)
    return jax.random.wrap_key_data(jnp.asarray(data))


def prng_key(fn: str, name: str, key: Any) -> jax.Array:
    """A PRNG key from a `jax.random.key`, a legacy `jax.random.PRNGKey` (uint32, shape (2,)) or an
    int seed (a traced integer scalar too); a float, a bool or None is a TypeError."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (
        jnp.issubdtype(dtype, jax.dtypes.prng_key)
        or (dtype == jnp.uint32 and jnp.shape(key)[-1:] == (2,))
    ):
        return key
    if isinstance(key, jax.core.Tracer) and jnp.issubdtype(dtype, jnp.integer) and not key.ndim:
        return jax.random.key(key)
    try:
        return seed_key(fn, name, key)
    except TypeError:
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be a jax.random key or an int seed; got {key!r}."
        ) from None


def scalar(fn: str, name: str, value: Any) -> jax.Array:
    """A real scalar array (a learning rate, a hyperparameter); may be traced."""
    arr = real(fn, name, value)
    if arr.ndim != 0:
        raise ValueError(f"jaxloss.{fn}: `{name}` must be a scalar; got shape {arr.shape}.")
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"jaxloss.{fn}: `{name}` must be a real number; got dtype {arr.dtype}.")
    return arr


def float_params(fn: str, params: Any, name: str = "params") -> jnp.dtype:
    """Raise unless `params` is a non-empty pytree of floating-point arrays; their common dtype."""
    leaves = jax.tree_util.tree_leaves(params)
    dtypes = [
        jnp.result_type(x) if isinstance(x, (jax.Array, np.ndarray, float, int)) else type(x)
        for x in leaves
    ]
    ok = leaves and all(not isinstance(d, type) and jnp.issubdtype(d, jnp.floating) for d in dtypes)
    if not ok:
        got = [str(d) if not isinstance(d, type) else d.__name__ for d in dtypes]
        raise TypeError(
            f"jaxloss.{fn}: `{name}` must be a non-empty pytree of floating-point arrays (the "
            f"parameters to differentiate); got leaves of types {got}."
        )
    return jnp.result_type(*leaves)


# ----------------------------------------------------------------------- hyperparameter ranges


def _concrete(value: Any) -> np.ndarray | None:
    """The value as a NumPy array when it is known at trace time, else None (traced)."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def in_range(
    fn: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise if a hyperparameter known at trace time lies outside [low, high] (or open ends).

    A traced hyperparameter (e.g. vmapped over) cannot be checked here; `jaxloss.checked` covers it.
    """
    arr = _concrete(value)
    if arr is None:
        return
    ok = np.ones(arr.shape, bool)
    if low is not None:
        ok &= arr >= low if low_inclusive else arr > low
    if high is not None:
        ok &= arr <= high if high_inclusive else arr < high
    if not bool(np.all(ok)):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must lie in {left}{lo}, {hi}{right}; got {value!r}."
        )


def hyperparameter_ok(
    fn: str,
    name: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    low_inclusive: bool = True,
) -> jax.Array:
    """`in_range` at trace time, plus the same test at run time for a traced value.

    Returns a scalar bool, False when some value is outside [low, high] (or (low, high] with
    `low_inclusive=False`), so the loss can give NaN; `jaxloss.checked` raises there.
    """
    in_range(fn, name, value, low=low, high=high, low_inclusive=low_inclusive)
    v = jnp.asarray(value)
    ok = v >= low if low_inclusive else v > low
    if high is not None:
        ok &= v <= high
    hi = "inf" if high is None else f"{high:g}"
    left = "[" if low_inclusive else "("
    runtime_check(fn, ok, f"`{name}` must lie in {left}{low:g}, {hi}].")
    return jnp.all(ok)


def one_of(fn: str, name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must be one of {', '.join(map(repr, allowed))}; got {value!r}."
        )


def flag(fn: str, name: str, value: Any) -> bool:
    """A static on/off option as a Python bool: only `True`/`False` (NumPy bools too) pass; any
    other value is a TypeError (the string "no" or an array would otherwise read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"jaxloss.{fn}: `{name}` must be True or False; got {value!r}.")
    return bool(value)


# ------------------------------------------------------------------------- run-time checks


def runtime_check(fn: str, predicate: jax.Array, message: str) -> None:
    """Record a value check that `jaxloss.checked` turns into a raised error.

    Outside `checked` this does nothing (the loss itself returns NaN for the bad value), so plain
    losses stay free of checkify's functionalisation requirements under jit.
    """
    if getattr(_state, "enabled", False):
        checkify.check(jnp.all(predicate), f"jaxloss.{fn}: {message}")


def not_nan(fn: str, name: str, x: jax.Array) -> None:
    """Run-time check: no NaN in `x` (inf is allowed where the loss has a limit there)."""
    runtime_check(fn, ~jnp.isnan(x), f"`{name}` contains NaN.")


def softmax_logits(fn: str, name: str, x: jax.Array) -> None:
    """Run-time check: no NaN or +inf in logits fed to a softmax (-inf is a class switched off;
    +inf has no softmax, inf − inf, and gives NaN like NaN does)."""
    runtime_check(fn, x < jnp.inf, f"`{name}` contains NaN or +inf.")


def probabilities(fn: str, name: str, x: jax.Array) -> None:
    """Run-time check: every value of `x` in [0, 1]."""
    runtime_check(fn, (x >= 0) & (x <= 1), f"`{name}` has values outside [0, 1].")


@contextlib.contextmanager
def _checks_enabled():
    previous = getattr(_state, "enabled", False)
    _state.enabled = True
    try:
        yield
    finally:
        _state.enabled = previous


def checked(fn: F) -> F:
    """Wrap a jaxloss function (or anything built from them) so that run-time value problems raise.

    Unchecked, a label outside [0, C), NaN input or a probability label outside [0, 1] gives NaN.
    `checked(fn)(...)` runs `fn` under `jax.experimental.checkify` with jaxloss's value checks on,
    plus a final check that no floating output is NaN, and raises `checkify.JaxRuntimeError` naming
    the problem. (checkify's own `nan_checks` are not used: the stable formulas deliberately compute
    NaN in branches that `jnp.where` then discards.)

    Example:
        >>> logits, labels = jnp.zeros((2, 3)), jnp.array([0, 3])
        >>> jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels)
        Array([1.0986123,       nan], dtype=float32)
        >>> jaxloss.checked(jaxloss.softmax_cross_entropy_with_integer_labels)(logits, labels)
        Traceback (most recent call last):
        ...
        jax...JaxRuntimeError: jaxloss.softmax_cross_entropy_with_integer_labels: `labels` has ...

    It traces `fn` afresh with the checks compiled in (a debugging tool, not for the hot loop).
    `checked(jax.jit(f))` works too (its arguments are then traced, so a hyperparameter out of
    range is a run-time check): jit's cache is cleared around the checked call, so neither the
    unchecked nor the checked compilation leaks into the other. A `jax.jit` nested deeper inside
    `fn` and already compiled keeps its unchecked version; check the un-jitted function.
    """

    name = getattr(fn, "__name__", "function")
    clear_jit_cache = getattr(fn, "clear_cache", lambda: None)

    def traced(*args, **kwargs):
        with _checks_enabled():
            out = fn(*args, **kwargs)
            for leaf in jax.tree_util.tree_leaves(out):
                if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                    runtime_check(name, ~jnp.isnan(leaf), "the result is NaN.")
        return out

    checkified = checkify.checkify(traced, errors=checkify.user_checks)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        clear_jit_cache()
        try:
            error, out = checkified(*args, **kwargs)
        finally:
            clear_jit_cache()
        error.throw()
        return out

    return wrapper  # type: ignore[return-value]
