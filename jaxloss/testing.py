"""Assertions for your own test suite: the checks jaxloss runs on its losses, for your code.

- `assert_gradient_consistent(f, params, *args)`: the Taylor remainder test; the gradient of `f`
  (through any `custom_jvp`/`custom_vjp`) is the derivative of `f`.
- `assert_finite_gradients(loss_fn, *example_args)`: a finite loss has a finite gradient at
  extreme inputs (±1e4, zeros, probabilities 0 and 1), in float16 and bfloat16 too.
- `assert_per_sample_decomposable(objective_fn, params, inputs, targets)`: the objective is the
  sum (or mean) of single-sample objectives, and so is its gradient (minibatch SGD and data
  parallelism rest on it).

Each returns None or raises an `AssertionError` that says what was measured and what it means;
each is deterministic (fixed keys), so a pytest or chex test calls it directly. Parameters are
any pytree: the floating-point array leaves are checked, every other leaf (an integer counter, a
mask, a callable) is passed through unchanged (`jaxloss.taylor_check`'s rule).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _trees
from jaxloss.objective import num_samples
from jaxloss.taylor import (
    _ROUNDOFF_ULPS,
    _SLOPE_ABOVE_ROUNDOFF,
    _normalise,
    _tangent,
    _vdot,
)

__all__ = [
    "assert_finite_gradients",
    "assert_gradient_consistent",
    "assert_per_sample_decomposable",
]


def _split_args(args: tuple) -> tuple[tuple, _trees.TreeSpec]:
    """`(arrays, spec)`: the array leaves of `args` (traced under jit) and the rest as a hashable
    spec (static), so that one jitted function serves any extra arguments."""
    leaves, treedef = jax.tree.flatten(args)
    roles = tuple(_trees._ARRAY if _trees._is_array(x) else _trees._STATIC for x in leaves)
    arrays = tuple(x for x, r in zip(leaves, roles) if r == _trees._ARRAY)
    statics = tuple(_trees._Static(x) for x, r in zip(leaves, roles) if r == _trees._STATIC)
    return arrays, _trees.TreeSpec(treedef, roles, statics)


def _scalar_output(fn: str, name: str, out: Any) -> None:
    if jnp.shape(out) != ():
        raise TypeError(
            f"jaxloss.testing.{fn}: `{name}` must return a scalar; got shape {jnp.shape(out)}."
        )


# ------------------------------------------------------------------ gradient consistency

# η: step lengths along a unit direction, s·10^[-9, 0] at 6 per decade, s = max(1, RMS of the
# params): float64 roundoff ends near s·1e-7, float32's near s·1e-3 for losses of unit scale.
_ETA_DECADES = (-9.0, 0.0)
_ETA_PER_DECADE = 6
# The slope is fitted on the first half decade of η where the remainder is above roundoff: the
# smallest η measurable, where the Taylor expansion holds best (higher orders bend it later).
_WINDOW = 4


def _gradient_impl(f, spec, arg_spec, trainable, frozen, arrays, direction, with_descent, grid):
    args = _trees.combine(arg_spec, (), arrays)
    fp = lambda t: f(_trees.combine(spec, t, frozen), *args)  # noqa: E731
    loss, pullback = jax.vjp(fp, trainable)
    _scalar_output("assert_gradient_consistent", "f", loss)
    (g,) = pullback(jnp.ones_like(loss))
    directions = [_normalise(direction)]
    if with_descent:
        directions.append(_normalise(jax.tree.map(jnp.negative, g)))
    d = jax.tree.map(lambda *x: jnp.stack(x), *directions)
    rms = jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in trainable))
    etas = grid * jnp.maximum(1.0, rms / math.sqrt(sum(x.size for x in trainable)))

    def moved(direction, eta):
        step = tuple(
            (p + eta.astype(p.dtype) * v).astype(p.dtype) for p, v in zip(trainable, direction)
        )
        # The step as taken (rounded to the params' dtype): the first-order term of exactly it.
        return fp(step), _vdot(g, tuple(s - p for s, p in zip(step, trainable)))

    trial, first = jax.vmap(lambda v: jax.vmap(lambda eta: moved(v, eta))(etas))(d)
    return loss, etas, trial, first


_gradient_jit = jax.jit(_gradient_impl, static_argnums=(0, 1, 2, 7))


def _remainder_slope(etas, loss, trial, first, eps):
    """`(slope, lo, hi, ratio, points)` of the remainder on the first η window above roundoff,
    or None when there is nothing to measure (within roundoff everywhere, or the remainder jumps
    out of roundoff at once: a kink crossed, past which there is no Taylor expansion)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        actual = trial - loss
        remainder = np.abs(actual - first)
        finite = np.isfinite(trial)
        noise = _ROUNDOFF_ULPS * eps * (abs(loss) + np.where(finite, np.abs(trial), 0))
        # A value computed with cancellation changes in steps larger than ε|f|: the smallest
        # change seen is roundoff too. An unchanged value says nothing (the step was too small).
        changes = np.abs(actual[finite & (actual != 0)])
        noise = np.maximum(noise, changes.min() if changes.size else 0.0)
        above = finite & (actual != 0) & (remainder > _SLOPE_ABOVE_ROUNDOFF * noise)
    if not above.any():
        return None
    start = int(np.argmax(above))
    if start > 0 and not remainder[start - 1] > noise[start - 1]:
        return None  # from roundoff to 10x above in one step: not a power of η, a kink
    stop = start
    while stop < len(etas) and stop - start < _WINDOW and above[stop]:
        stop += 1
    if stop - start < 3:
        return None
    window = slice(start, stop)
    slope = float(np.polyfit(np.log(etas[window]), np.log(remainder[window]), 1)[0])
    ratio = float(actual[start] / first[start]) if first[start] != 0 else math.nan
    return slope, float(etas[start]), float(etas[stop - 1]), ratio, stop - start


def assert_gradient_consistent(
    f: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    direction: Any = None,
    rtol: float = 0.1,
) -> None:
    """Assert that `jax.grad(f)` is the derivative of `f` at `params` (Taylor remainder test).

    Along a unit direction d, the remainder `|f(θ + ηd) − f(θ) − η ∇f(θ)ᵀd|` of a correct
    gradient falls like η² (log-log slope 2), of a wrong one like η (slope 1). It is measured
    on 55 step lengths η (6 per decade up to max(1, RMS of θ)), all in one compiled call, and the
    slope fitted on the first half decade where the remainder is 10× above roundoff (8ε of
    |f(θ)| + |f(θ + ηd)|, or the smallest change of f seen where larger: a value computed with
    cancellation), so float32 and float64 both work. The first-order term is taken for the step
    as rounded to the params' dtype. Nothing to measure passes: a remainder within roundoff at
    every η (f linear along d, a zero gradient, a masked element), or one that jumps out of
    roundoff at once (a kink crossed: no Taylor expansion reaches past it). At a point exactly
    on a kink (a ReLU at 0) f has no derivative, and the test says so.

    Args:
        f: `f(params, *args) -> scalar`; may contain `jax.custom_jvp`/`custom_vjp` rules.
        params: θ, any pytree with a floating-point array leaf; other leaves pass through.
        *args: passed to `f` unchanged (arrays are traced: new values do not recompile).
        direction: d, a pytree like `params` (its leaves at the floating-point leaves of
            `params`, same shapes and dtypes), normalised to unit length; default: both a random
            unit direction (NumPy seed 0) and the steepest descent direction `−∇f/‖∇f‖`.
        rtol: the slope may fall below 2 by `5·rtol`, in (0, 0.2): at the default 0.1 it must
            be at least 1.5, halfway between a correct gradient's 2 and a wrong one's 1 (float32
            curvature often shows only where higher orders bend the slope a little).

    Returns:
        None; raises `AssertionError` with the slope, the η range, and the ratio of the actual
        change of f to its first-order prediction at the smallest η of that range.

    Example:
        >>> from jaxloss.testing import assert_gradient_consistent
        >>> @jax.custom_jvp
        ... def softplus(x):
        ...     return jnp.logaddexp(x, 0.0)
        >>> softplus.defjvp(lambda p, t: (softplus(p[0]), 1.1 * jax.nn.sigmoid(p[0]) * t[0]))
        <function <lambda> at ...>
        >>> assert_gradient_consistent(lambda x: jnp.logaddexp(x, 0.0).sum(), jnp.ones(3))
        >>> assert_gradient_consistent(lambda x: softplus(x).sum(), jnp.ones(3))
        Traceback (most recent call last):
        AssertionError: jaxloss.testing.assert_gradient_consistent: the gradient of `f` does not ...

    Reference: the Taylor remainder convergence test of pyadjoint (`taylor_test`, Farrell et al.,
    SIAM J. Sci. Comput. 35 (2013)); `jaxloss.taylor_check` for the whole table.
    """
    fn = "assert_gradient_consistent"
    full = f"testing.{fn}"
    trainable, frozen, spec = _trees.partition(full, "params", params)
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 0.2):
        raise ValueError(f"jaxloss.{full}: `rtol` must be a number in (0, 0.2); got {rtol!r}.")
    if direction is not None:
        direction = _tangent(full, "direction", spec, trainable, direction)
    arrays, arg_spec = _split_args(args)
    dtype = jnp.result_type(*trainable)
    num = int(_ETA_DECADES[1] - _ETA_DECADES[0]) * _ETA_PER_DECADE + 1
    grid = jnp.asarray(np.logspace(*_ETA_DECADES, num), dtype)
    with_descent = direction is None
    if with_descent:  # drawn by NumPy: no random-number program to compile
        rng = np.random.default_rng(0)
        direction = tuple(jnp.asarray(rng.standard_normal(x.shape), x.dtype) for x in trainable)
    out = _gradient_jit(f, spec, arg_spec, trainable, frozen, arrays, direction, with_descent, grid)
    eps = float(jnp.finfo(jnp.result_type(out[0])).eps)
    loss, etas, trial, first = (np.asarray(v, np.float64) for v in jax.device_get(out))
    names = (
        ["the given direction"]
        if not with_descent
        else [
            "a random unit direction (NumPy seed 0)",
            "the steepest descent direction -g/|g|",
        ]
    )
    threshold = 2 - 5 * rtol
    for name, t, fo in zip(names, trial, first):
        measured = _remainder_slope(etas, float(loss), t, fo, eps)
        if measured is None or measured[0] >= threshold:
            continue
        slope, lo, hi, ratio, points = measured
        inverse = 1 / ratio if ratio else math.nan
        raise AssertionError(
            f"jaxloss.{full}: the gradient of `f` does not match `f` along {name}. The Taylor "
            f"remainder |f(θ+ηd) - f(θ) - η gᵀd| falls with slope {slope:.2f} (log-log, "
            f"{points} step lengths η in [{lo:.2e}, {hi:.2e}], {dtype}); a correct gradient "
            f"gives 2, at least {threshold:.2f} at rtol {rtol:g}. At η = {lo:.2e} the actual "
            f"change of f over its first-order prediction (actual/predicted) is {ratio:.4g} "
            f"(the gradient's slope along d is {inverse:.4g} times the function's). "
            "Slope ≈ 1: the gradient does not match the function, e.g. a wrong "
            "custom_jvp/custom_vjp rule."
        )


# ------------------------------------------------------------------------ finite gradients

_LARGE = 1e4
_HALF = (jnp.float16, jnp.bfloat16)


def _extremes(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The inputs derived from one example argument `x` (see `assert_finite_gradients`)."""
    flat = np.arange(x.size).reshape(x.shape)
    if x.size and np.all((x >= 0) & (x <= 1)):
        fills, cycle = [("0", 0.0), ("1", 1.0)], (1.0, 0.0)
        half = "even entries 1, 0, 1, ..."
    else:
        fills, cycle = [("+1e4", _LARGE), ("-1e4", -_LARGE), ("0", 0.0)], (_LARGE, -_LARGE)
        half = "even entries +1e4, -1e4, ..."
    derived = [(f"all {label}", np.full_like(x, value)) for label, value in fills]
    mixed = np.where(flat % 4 == 0, cycle[0], np.where(flat % 4 == 2, cycle[1], x))
    derived.append((half, mixed.astype(x.dtype)))
    return derived


def _finite_impl(loss_fn, argnums, arg_spec, arrays, stacked):
    args = list(_trees.combine(arg_spec, (), arrays))

    def total(*varied):
        call = list(args)
        for i, v in zip(argnums, varied):
            call[i] = v
        value = jnp.asarray(loss_fn(*call)).astype(jnp.float32)
        return jnp.sum(value), jnp.all(jnp.isfinite(value))

    def one(*varied):
        (value, finite), grads = jax.value_and_grad(
            total, argnums=tuple(range(len(varied))), has_aux=True
        )(*varied)
        bad = [jnp.sum(~jnp.isfinite(g)) for g in grads]
        return value, finite, jnp.stack(bad)

    return [jax.vmap(one)(*per_dtype) for per_dtype in stacked]


_finite_jit = jax.jit(_finite_impl, static_argnums=(0, 1, 2))


def assert_finite_gradients(
    loss_fn: Callable[..., jax.Array],
    *example_args: Any,
    argnums: int | tuple[int, ...] = 0,
    half_precision: bool = True,
) -> None:
    """Assert that wherever `loss_fn` is finite at extreme inputs, so is its gradient.

    Derived from each argument `x = example_args[i]`, `i` in `argnums` (one varied at a time,
    the others as given): if every entry of `x` is in [0, 1] (probabilities), `x` all 0, all 1,
    and `x` with every fourth entry 1 and every fourth (shifted by two) 0; otherwise (logits,
    predictions) `x` all +1e4, all −1e4, all 0, and `x` with every fourth entry +1e4 and every
    fourth (shifted by two) −1e4. These and the example itself, each in the argument's dtype,
    float16 and bfloat16 (the varied arguments cast), in one compiled call. At each, the value
    is all of `loss_fn`'s outputs and the gradient that of their sum (in float32); an input
    where the value is not finite (outside the loss's domain) is not checked.

    Args:
        loss_fn: `loss_fn(*args) -> array`, e.g. a per-sample or batched loss.
        *example_args: a valid call; arguments not in `argnums` keep their values.
        argnums: the index (or tuple of indices) of the floating-point arguments to vary and
            differentiate.
        half_precision: also in float16 and bfloat16 (default); False: the arguments' dtypes
            only (a third of the compile time).

    Returns:
        None; raises `AssertionError` with a table of the inputs whose value is finite and whose
        gradient is not.

    Example:
        >>> from jaxloss.testing import assert_finite_gradients
        >>> x, y = jnp.array([1.0, -2.0]), jnp.array([1.0, 0.0])
        >>> assert_finite_gradients(jaxloss.sigmoid_focal_loss, x, y)
        >>> def naive_focal(x, y):  # (1 - p_t)**0.5: infinite slope at p_t = 1
        ...     p = jax.nn.sigmoid(x)
        ...     p_t = p * y + (1 - p) * (1 - y)
        ...     return optax.sigmoid_binary_cross_entropy(x, y) * (1 - p_t) ** 0.5
        >>> assert_finite_gradients(naive_focal, x, y)
        Traceback (most recent call last):
        AssertionError: jaxloss.testing.assert_finite_gradients: ...
    """
    fn = "testing.assert_finite_gradients"
    if isinstance(argnums, int):
        argnums = (argnums,)
    argnums = tuple(argnums)
    if not argnums or not all(
        isinstance(i, int) and -len(example_args) <= i < len(example_args) for i in argnums
    ):
        raise ValueError(
            f"jaxloss.{fn}: `argnums` must be indices of `example_args` (0 to "
            f"{len(example_args) - 1}); got {argnums!r}."
        )
    argnums = tuple(operator.index(i) % len(example_args) for i in argnums)
    examples = []
    for i in argnums:
        x = np.asarray(jnp.asarray(example_args[i]))  # a Python float: JAX's default dtype
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"jaxloss.{fn}: argument {i} (in `argnums`) must be a floating-point array; "
                f"got dtype {x.dtype}."
            )
        examples.append(x)
    variants = [("example", tuple(examples))]
    for k, (i, x) in enumerate(zip(argnums, examples)):
        for label, value in _extremes(x):
            call = list(examples)
            call[k] = value
            variants.append((f"arg {i} {label}", tuple(call)))
    # None: each argument in its own dtype; then all varied arguments in each half dtype.
    halves = _HALF if half_precision else ()
    dtypes = [None] + [jnp.dtype(d) for d in halves if any(x.dtype != d for x in examples)]
    stacked = tuple(
        tuple(
            jnp.asarray(np.stack([v[1][k] for v in variants]), x.dtype if d is None else d)
            for k, x in enumerate(examples)
        )
        for d in dtypes
    )
    others = tuple(None if i in argnums else a for i, a in enumerate(example_args))
    arrays, arg_spec = _split_args(others)
    out = jax.device_get(_finite_jit(loss_fn, argnums, arg_spec, arrays, stacked))
    rows = []
    for d, (values, finite, bad) in zip(dtypes, out):
        dtype = examples[0].dtype if d is None else d
        for (label, _), value, ok, nbad in zip(variants, values, finite, bad):
            if ok and nbad.any():
                counts = ", ".join(
                    f"arg {i}: {n} of {examples[k].size}"
                    for k, (i, n) in enumerate(zip(argnums, nbad))
                    if n
                )
                rows.append(f"  {label:<34} {str(dtype):<9} {value:<12.6g} {counts}")
    if rows:
        header = f"  {'input':<34} {'dtype':<9} {'loss (sum)':<12} non-finite gradient entries"
        raise AssertionError(
            f"jaxloss.{fn}: `loss_fn` is finite but its gradient is not (NaN or inf) at "
            f"{len(rows)} of {len(variants) * len(dtypes)} inputs derived from the example:\n"
            + "\n".join([header, *rows])
            + "\nA gradient step there writes NaN into the parameters: a formula with an infinite "
            "slope where the value is finite (e.g. (1 - p_t)**gamma with gamma < 1 at p_t = 1, "
            "sqrt or log at 0) needs the double-where trick or a hand-written derivative."
        )


# ---------------------------------------------------------------- per-sample decomposition


def _decomposition_impl(objective_fn, spec, trainable, frozen, inputs, targets):
    def f(t, x, y):
        value = objective_fn(_trees.combine(spec, t, frozen), x, y)
        _scalar_output("assert_per_sample_decomposable", "objective_fn", value)
        return value

    whole = jax.value_and_grad(f)(trainable, inputs, targets)

    def single(x, y):
        one = lambda a: a[None]  # noqa: E731  the slice [i:i+1]
        return jax.value_and_grad(f)(trainable, jax.tree.map(one, x), jax.tree.map(one, y))

    return whole, jax.vmap(single)(inputs, targets)


_decomposition_jit = jax.jit(_decomposition_impl, static_argnums=(0, 1))

_COUPLED = (
    "The samples are coupled: the objective of one depends on the others in the batch (e.g. a "
    "model that normalises over the batch, batch statistics, a loss that pairs or ranks samples "
    "across the batch). This breaks minibatch SGD (a minibatch's gradient is not its share of "
    "the full gradient) and data parallelism (the sum over shards of per-shard objectives is not "
    "the objective of the whole batch)."
)


def assert_per_sample_decomposable(
    objective_fn: Callable[[Any, Any, Any], jax.Array], params: Any, inputs: Any, targets: Any
) -> None:
    """Assert that the objective is the sum (or mean) of single-sample objectives, and its
    gradient the sum (or mean) of theirs.

    `objective_fn(θ, X, Y) = Σ_i objective_fn(θ, X[i:i+1], Y[i:i+1])` (or that ÷ N; which one
    is detected from the values), within `1000·ε` of the sum of magnitudes in the params'
    dtype, and likewise the gradient with respect to every floating-point leaf of `params`.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: θ, any pytree with a floating-point array leaf; other leaves pass through.
        inputs, targets: arrays (or pytrees of arrays) with a shared leading sample axis N.

    Returns:
        None; raises `AssertionError` with the batch objective, the sum and mean of the single-
        sample ones (or the gradient leaf that differs) and what the coupling breaks.

    Example:
        >>> from jaxloss.testing import assert_per_sample_decomposable
        >>> x, y = jaxloss.spirals(8, classes=2, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 4, 2])
        >>> loss = jaxloss.softmax_cross_entropy_with_integer_labels
        >>> f = jaxloss.objective(apply_fn, loss)
        >>> assert_per_sample_decomposable(f, init_fn(jax.random.key(0)), x, y)
        >>> def batch_normalised(params, x, y):  # divides by the batch's standard deviation
        ...     return f(params, (x - x.mean(0, keepdims=True)) / x.std(0, keepdims=True), y)
        >>> assert_per_sample_decomposable(batch_normalised, init_fn(jax.random.key(0)), x, y)
        Traceback (most recent call last):
        AssertionError: jaxloss.testing.assert_per_sample_decomposable: ...
    """
    fn = "testing.assert_per_sample_decomposable"
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    n = num_samples(fn, inputs, targets)
    (value, grad), (values, grads) = jax.device_get(
        _decomposition_jit(objective_fn, spec, trainable, frozen, inputs, targets)
    )
    tol = 1000 * float(jnp.finfo(jnp.result_type(value)).eps)
    value, values = float(value), np.asarray(values, np.float64)
    total, scale = float(values.sum()), float(np.abs(values).sum())
    candidates = {"sum": 1.0, "mean": 1.0 / n}
    close = [k for k, c in candidates.items() if abs(value - c * total) <= tol * c * scale]
    if not close:
        if math.isfinite(total):
            off = f"off by {min(abs(value - total), abs(value - total / n)):.3g}"
        else:  # e.g. a standard deviation over one sample is 0
            off = "a single sample alone gives a non-finite objective"
        raise AssertionError(
            f"jaxloss.{fn}: the objective is neither the sum nor the mean of its single-sample "
            f"objectives: objective_fn over the batch of N = {n} is {value:.6g}, the sum of the "
            f"{n} single-sample objectives (objective_fn on inputs[i:i+1], targets[i:i+1]) is "
            f"{total:.6g} and their mean {total / n:.6g} ({off}). " + _COUPLED
        )
    kind = close[0]
    factor = candidates[kind]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    names = [paths[i] for i in _trees.trainable_positions(spec)]
    for name, g, gs in zip(names, grad, grads):
        g, gs = np.asarray(g, np.float64), np.asarray(gs, np.float64)
        want = factor * gs.sum(0)
        norms = np.sqrt((gs.reshape(n, -1) ** 2).sum(1)).sum() * factor
        err = float(np.sqrt(((g - want) ** 2).sum()))
        if not err <= tol * (norms + np.sqrt((g**2).sum())):
            raise AssertionError(
                f"jaxloss.{fn}: the objective is the {kind} of its {n} single-sample objectives, "
                f"but its gradient is not the {kind} of theirs: params leaf {name or '(root)'} "
                f"differs by {err:.3g} (norm of the difference; the {kind} of the single-sample "
                f"gradients has norm {float(np.sqrt((want**2).sum())):.3g}). " + _COUPLED
            )
