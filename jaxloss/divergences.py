"""Divergences between distributions: Kullback-Leibler (targets as probabilities or in log space)
and the generalized KL divergence of unnormalised measures.

Each takes the model's log-probabilities first and the target second, and sums its elementwise
terms over `axis` (the last one by default), as optax does. A class whose target is 0 contributes
exactly 0 to the KL sum, with zero (finite) gradients with respect to both arguments, also where
its log-prediction is -inf (optax and torch give NaN there).
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks


def _axes(fn: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (an int, a tuple of ints or None for all) as a tuple of distinct axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    many = isinstance(axis, (tuple, list))
    items = tuple(axis) if many else (axis,)
    try:
        if any(isinstance(a, (bool, np.bool_)) for a in items):
            raise TypeError
        axes = tuple(operator.index(a) for a in items)
    except TypeError:
        raise TypeError(
            f"jaxloss.{fn}: `axis` must be an int, a tuple of ints or None; got {axis!r}."
        ) from None
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(
            f"jaxloss.{fn}: `axis` {axis!r} is out of range for `log_predictions` of rank {ndim}"
            " (a scalar has no class axis; pass axis=None to sum everything)."
        )
    axes = tuple(a % ndim for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"jaxloss.{fn}: `axis` must not repeat an axis; got {axis!r}.")
    return axes


def _inputs(fn: str, log_predictions: Any, targets: Any, target_name: str, axis: Any, where: Any):
    """Checked float arrays of one shape, the axes to sum and the mask applied: a left-out element
    becomes log-prediction 0 and target 1 (or log-target 0), where every term is exactly 0 and its
    derivatives finite, so no inf or NaN there reaches the value or the gradient."""
    lp, t = _checks.float_pair(fn, "log_predictions", log_predictions, target_name, targets)
    axes = _axes(fn, axis, lp.ndim)
    if where is not None:
        where = _checks.real(fn, "where", where)
        _checks.mask_shape(fn, "where", where, lp.shape)
        lp = jnp.where(where, lp, 0)
        t = jnp.where(where, t, 0 if target_name == "log_targets" else 1)
    _checks.not_nan(fn, "log_predictions", lp)
    _checks.not_nan(fn, target_name, t)
    return lp, t, axes


def _non_negative(fn: str, t: jax.Array) -> None:
    _checks.runtime_check(fn, ~(t < 0), "`targets` has negative values.")


def _where_target_zero(t: jax.Array, lp: jax.Array, value_at_zero: jax.Array) -> jax.Array:
    """`value_at_zero` where t = 0, NaN where t < 0 (t log t has no value) or lp is NaN (a zero
    target never hides a NaN input)."""
    ok = (t == 0) & ~jnp.isnan(lp)
    return jnp.where(ok, value_at_zero, jnp.nan)


def kl_divergence(
    log_predictions: Any, targets: Any, *, axis: Any = -1, where: Any = None
) -> jax.Array:
    """Kullback-Leibler divergence `KL(t || p) = sum_c t_c (log t_c - log p_c)` over `axis`.

    A class with t_c = 0 contributes exactly 0 (the limit of t log t), with zero gradients with
    respect to both arguments, also where log p_c = -inf: optax and torch `kl_div` give NaN
    (the value 0 * inf there, and 0 / 0 in the target gradient at every zero target). (The
    derivative of t log t at t = 0 is -inf; the finite 0, as `jax.scipy.special.rel_entr` has,
    lets a chain rule through a target that underflowed to 0, e.g. a softmax, give its limit 0.)

    Args:
      log_predictions: float array of log-probabilities log p, any shape (e.g. `log_softmax`);
        -inf allowed (a class given probability 0: the loss is +inf where its target is > 0).
      targets: same shape, probabilities t >= 0. A negative target gives NaN (t log t has no
        value) and `jaxloss.checked` raises. Targets are not required to sum to 1 (the formula is
        applied as written; for unnormalised measures use `generalized_kl_divergence`).
      axis: the axis or tuple of axes summed over (the class axis; default the last); None sums
        everything.
      where: None or a boolean mask of log_predictions' shape: elements left out of the sum (as in
        optax's `where=`); their values, inf or NaN included, reach neither value nor gradient.

    Returns:
      log_predictions' shape without `axis`; float32 for half-precision inputs.

    Example:
      >>> jnp.set_printoptions(precision=4)
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]))
      >>> print(jaxloss.kl_divergence(log_p, jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])))
      [0.6931 0.7136]

    Reference: Kullback and Leibler, "On Information and Sufficiency", 1951. Equals
    `optax.losses.kl_divergence` and `torch.nn.functional.kl_div(log_predictions, targets,
    reduction='none', log_target=False).sum(axis)` where those are finite.
    """
    fn = "kl_divergence"
    lp, t, axes = _inputs(fn, log_predictions, targets, "targets", axis, where)
    _non_negative(fn, t)
    return _kl_core(lp, t, axes)


# The numeric cores are jitted: an un-jitted call compiles one program instead of one per
# operation. The checks stay outside them, so `jaxloss.checked` still sees every one.
@functools.partial(jax.jit, static_argnames="axes")
def _kl_core(lp: jax.Array, t: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    pos = t > 0
    # Double where: the t = 0 branch computes on (t, lp) = (1, 0), so no 0 * inf or 1/0 reaches
    # the gradient.
    t_pos, lp_pos = jnp.where(pos, t, 1), jnp.where(pos, lp, 0)
    term = jnp.where(pos, t_pos * (jnp.log(t_pos) - lp_pos), _where_target_zero(t, lp, 0))
    return jnp.sum(term, axis=axes)


def kl_divergence_with_log_targets(
    log_predictions: Any, log_targets: Any, *, axis: Any = -1, where: Any = None
) -> jax.Array:
    """KL divergence with targets in log space: `sum_c exp(log t_c) (log t_c - log p_c)`.

    A class with log t_c = -inf (target 0) contributes exactly 0 with zero gradients (the true
    limits: d/d(log t) = t (log t - log p + 1) -> 0), also where log p_c = -inf; optax and torch
    give NaN there (exp(-inf) * inf). A log-target so negative that its exp underflows to 0,
    against log p = -inf, gives +inf, the true value, not 0 * inf.

    Args:
      log_predictions: float array of log-probabilities log p, any shape; -inf allowed.
      log_targets: same shape, log-probabilities log t in [-inf, inf) (every real value is a
        valid target exp(log t) >= 0).
      axis: the axis or tuple of axes summed over (default the last); None sums everything.
      where: None or a boolean mask of log_predictions' shape: elements left out of the sum.

    Returns:
      log_predictions' shape without `axis`; float32 for half-precision inputs.

    Example:
      >>> jnp.set_printoptions(precision=4)
      >>> log_p = jnp.log(jnp.array([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0]]))
      >>> log_t = jnp.log(jnp.array([0.5, 0.5, 0.0]))
      >>> print(jaxloss.kl_divergence_with_log_targets(log_p, jnp.stack([log_t, log_t])))
      [0.1438 0.    ]

    Reference: equals `optax.losses.kl_divergence_with_log_targets` and
    `torch.nn.functional.kl_div(log_predictions, log_targets, reduction='none',
    log_target=True).sum(axis)` where those are finite.
    """
    fn = "kl_divergence_with_log_targets"
    return _kl_log_core(*_inputs(fn, log_predictions, log_targets, "log_targets", axis, where))


@functools.partial(jax.jit, static_argnames="axes")
def _kl_log_core(lp: jax.Array, lt: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    pos = lt > -jnp.inf
    lt_pos, lp_pos = jnp.where(pos, lt, 0), jnp.where(pos, lp, 0)
    gap = lt_pos - lp_pos
    # exp(log t) may underflow to 0 with log t finite: against log p = -inf the value is +inf.
    value = jnp.where(gap == jnp.inf, jnp.inf, jnp.exp(lt_pos) * gap)
    zero = jnp.where(jnp.isnan(lp), jnp.nan, 0)
    return jnp.sum(jnp.where(pos, value, jnp.where(jnp.isnan(lt), jnp.nan, zero)), axis=axes)


def generalized_kl_divergence(
    log_predictions: Any, targets: Any, *, axis: Any = -1, where: Any = None
) -> jax.Array:
    """Generalized KL divergence of unnormalised measures: `sum_c t_c log(t_c / p_c) - t_c + p_c`.

    The Bregman divergence of `x log x - x`; >= 0, and 0 only at p = t. Each term is computed as
    `t (expm1(r) - r)` with `r = log p - log t` where r < 1: accurate near the minimum p = t,
    where the written-out sum (optax's) cancels (see the tests: optax's float32 relative error
    there is orders of magnitude larger), and never negative. A class with t_c = 0 contributes
    p_c, with derivatives p_c in log p and -1 in t (the t log(t/p) part's derivative in t, -inf
    at t = 0, taken as 0 as in `kl_divergence` and `jax.scipy.special.kl_div`), finite also for
    log p = -inf.

    Args:
      log_predictions: float array log p of any shape (p > 0 need not sum to 1); -inf allowed.
      targets: same shape, t >= 0 (no upper bound; a negative value gives NaN and
        `jaxloss.checked` raises).
      axis: the axis or tuple of axes summed over (default the last); None sums everything.
      where: None or a boolean mask of log_predictions' shape: elements left out of the sum.

    Returns:
      log_predictions' shape without `axis`; float32 for half-precision inputs.

    Example:
      >>> jnp.set_printoptions(precision=4)
      >>> log_p = jnp.log(jnp.array([[1.0, 2.0, 3.0], [2.0, 2.0, 1e-3]]))
      >>> t = jnp.array([2.0, 2.0, 0.0])
      >>> print(jaxloss.generalized_kl_divergence(log_p, jnp.stack([t, t])))
      [3.3863e+00 1.0000e-03]

    Reference: Boyd and Vandenberghe, "Convex Optimization", 2004, p. 90; Bregman 1967. Equals
    `optax.losses.generalized_kl_divergence` (up to its rounding) and the sum of
    `scipy.special.kl_div(targets, exp(log_predictions))`.
    """
    return _generalized_kl("generalized_kl_divergence", log_predictions, targets, axis, where)


def convex_kl_divergence(
    log_predictions: Any, targets: Any, *, axis: Any = -1, where: Any = None
) -> jax.Array:
    """`generalized_kl_divergence` under its older optax name (deprecated in optax 0.2.8).

    `sum_c t_c log(t_c / p_c) - t_c + p_c`; arguments, shapes and values exactly as
    `generalized_kl_divergence` (errors name this function). No deprecation warning is raised:
    the name is kept so that code moving from optax runs unchanged.

    Example:
      >>> jnp.set_printoptions(precision=4)
      >>> log_p = jnp.log(jnp.array([[0.5, 0.5, 1.0], [0.2, 0.3, 0.5]]))
      >>> t = jnp.array([[0.2, 0.8, 0.0], [0.2, 0.3, 0.5]])
      >>> print(jaxloss.convex_kl_divergence(log_p, t))
      [1.1927 0.    ]

    Reference: equals `optax.losses.convex_kl_divergence`.
    """
    return _generalized_kl("convex_kl_divergence", log_predictions, targets, axis, where)


def _generalized_kl(fn, log_predictions, targets, axis, where):
    lp, t, axes = _inputs(fn, log_predictions, targets, "targets", axis, where)
    _non_negative(fn, t)
    return _generalized_kl_core(lp, t, axes)


@functools.partial(jax.jit, static_argnames="axes")
def _generalized_kl_core(lp: jax.Array, t: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.sum(_generalized_kl_terms(lp, t), axis=axes)


@jax.custom_jvp
def _generalized_kl_terms(lp: jax.Array, t: jax.Array) -> jax.Array:
    """t log(t / p) - t + p elementwise; p (and NaN for t < 0) where t = 0."""
    pos = t > 0
    t_pos, lp_pos = jnp.where(pos, t, 1), jnp.where(pos, lp, 0)
    r = lp_pos - jnp.log(t_pos)  # log(p / t), -inf for p = 0
    near = r < 1
    # Near the minimum: t (e^r - 1 - r) >= 0, no cancellation of t log(t / p) against p - t.
    # Far (p > e t): p - t (1 + r) directly, as expm1(r) would overflow while p is finite.
    r_near = jnp.where(near, r, 0)
    r_far = jnp.where(near, 1, r)
    value = jnp.where(
        near,
        t_pos * (jnp.expm1(r_near) - r_near),
        jnp.where(r_far == jnp.inf, jnp.inf, jnp.exp(lp_pos) - t_pos * (1 + r_far)),
    )
    return jnp.where(pos, value, _where_target_zero(t, lp, jnp.exp(jnp.where(pos, 0, lp))))


@_generalized_kl_terms.defjvp
def _generalized_kl_jvp(primals, tangents):
    # Derivatives p - t in log p (written so: through expm1(r) - r they would carry r's
    # rounding) and log(t / p) in t, -1 at t = 0 (the t log(t / p) part's, -inf there, taken as
    # 0, as jax.scipy.special.kl_div does). Differentiable again: jvp-of-grad works.
    lp, t = primals
    d_lp, d_t = tangents
    pos = t > 0
    t_pos, lp_pos = jnp.where(pos, t, 1), jnp.where(pos, lp, 0)
    slope_t = jnp.where(pos, jnp.log(t_pos) - lp_pos, -1)
    return _generalized_kl_terms(lp, t), (jnp.exp(lp) - t) * d_lp + slope_t * d_t
