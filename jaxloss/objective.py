"""The objective: a per-sample loss, `jax.vmap`-ed over the data set, then summed or averaged.

`L(θ) = Σ_i loss_fn(apply_fn(θ, x_i), y_i)` (or that sum ÷ N), built literally: `apply_fn` and
`loss_fn` see one sample each, `jax.vmap` maps them over the leading axis of `inputs` and `targets`
(arrays or pytrees of arrays). Losses are known here only as functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks

ObjectiveFn = Callable[[Any, Any, Any], jax.Array]

_REDUCTIONS = ("mean", "sum")


def num_samples(fn: str, inputs: Any, targets: Any) -> int:
    """The common length N ≥ 1 of the leading (sample) axis of every leaf of `inputs` and
    `targets` (a ValueError otherwise: an objective over no sample has no value)."""
    sizes = {}
    for name, tree in (("inputs", inputs), ("targets", targets)):
        leaves = jax.tree_util.tree_leaves(tree)
        if not leaves:
            raise ValueError(f"jaxloss.{fn}: `{name}` must hold at least one array; got {tree!r}.")
        for leaf in leaves:
            shape = jnp.shape(leaf)
            if not shape:
                raise ValueError(
                    f"jaxloss.{fn}: every array in `{name}` must have a leading sample axis; got "
                    "a scalar."
                )
            sizes.setdefault(shape[0], []).append(f"{name} {shape}")
    if len(sizes) != 1:
        found = "; ".join(", ".join(v) for v in sizes.values())
        raise ValueError(
            f"jaxloss.{fn}: `inputs` and `targets` must share the length of their leading (sample) "
            f"axis; got {found}."
        )
    _checks.non_empty(fn, "inputs", jax.tree_util.tree_leaves(inputs)[0], axis=0)
    return next(iter(sizes))


def per_sample_losses(
    apply_fn: Callable[[Any, Any], Any], loss_fn: Callable[[Any, Any], jax.Array]
) -> Callable[[Any, Any, Any], jax.Array]:
    """The loss of every sample: `f(θ, inputs, targets)[i] = loss_fn(apply_fn(θ, x_i), y_i)`.

    Args:
        apply_fn: `apply_fn(params, x) -> prediction` for ONE sample `x` (e.g. from `jaxloss.mlp`).
        loss_fn: `loss_fn(prediction, target) -> scalar` for ONE sample, e.g.
            `jaxloss.softmax_cross_entropy_with_integer_labels` or `jaxloss.mse`.

    Returns:
        `f(params, inputs, targets) -> (N,)`, where `inputs` and `targets` are arrays (or pytrees
        of arrays) whose leaves share the leading sample axis N.

    Raises:
        ValueError (when `f` is traced): if `loss_fn` does not return a scalar per sample, the
        leading axes of `inputs` and `targets` differ, or they are empty (N = 0).

    Example:
        >>> init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
        >>> f = jaxloss.per_sample_losses(apply_fn, optax.softmax_cross_entropy_with_integer_labels)
        >>> f(init_fn(jax.random.key(0)), jnp.ones((5, 2)), jnp.zeros(5, int)).shape
        (5,)
    """
    return _per_sample(apply_fn, loss_fn, "per_sample_losses")


def _per_sample(apply_fn, loss_fn, fn: str):
    def sample_loss(params, x, y):
        value = jnp.asarray(loss_fn(apply_fn(params, x), y))
        if value.shape != ():
            raise ValueError(
                f"jaxloss.{fn}: `loss_fn` must return a scalar for one sample; got shape "
                f"{value.shape}. Reduce it inside the loss, e.g. "
                "`lambda p, y: jaxloss.mse(p, y)` (a mean over the sample) or "
                "`lambda p, y: my_loss(p, y).sum()`."
            )
        return value

    def f(params, inputs, targets):
        num_samples(fn, inputs, targets)
        # One sample at a time, mapped: the model and the loss never see the batch axis.
        return jax.vmap(sample_loss, in_axes=(None, 0, 0))(params, inputs, targets)

    return f


def objective(
    apply_fn: Callable[[Any, Any], Any],
    loss_fn: Callable[[Any, Any], jax.Array],
    *,
    reduction: str = "mean",
) -> ObjectiveFn:
    """The data-set loss `L(θ) = Σ_i loss_fn(apply_fn(θ, x_i), y_i)`, or that sum ÷ N.

    Built literally: `jax.vmap` of the per-sample loss over the leading axis of `inputs` and
    `targets`, then a sum (`reduction="sum"`) or a mean (`"mean"`, the sum ÷ N: the same gradient
    direction, an N times smaller step for the same learning rate). Because the total is a sum,
    its gradient is the sum of the per-sample gradients, and the sum over data shards of
    per-shard sums is exactly the total.

    Args:
        apply_fn: `apply_fn(params, x) -> prediction` for ONE sample `x`.
        loss_fn: `loss_fn(prediction, target) -> scalar` for ONE sample.
        reduction: `"mean"` (default) or `"sum"`.

    Returns:
        `f(params, inputs, targets) -> scalar`, for `inputs` and `targets` arrays (or pytrees of
        arrays) with a shared leading sample axis N. Pass it to `jaxloss.fit`, `jaxloss.sweep`,
        `jaxloss.taylor_check` or `jax.grad`.

    Raises:
        ValueError: for an unknown `reduction`; and when `f` is traced, if `loss_fn` does not
        return a scalar per sample, the leading axes of `inputs` and `targets` differ, or they
        are empty (N = 0: a mean over no sample is undefined, a sum of none would hide the bug).

    Example:
        >>> init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
        >>> f = jaxloss.objective(apply_fn, optax.softmax_cross_entropy_with_integer_labels)
        >>> f(init_fn(jax.random.key(0)), jnp.ones((5, 2)), jnp.zeros(5, int))
        Array(1.38..., dtype=float32)

    Reference: empirical risk minimisation, e.g. Goodfellow, Bengio & Courville, *Deep Learning*
    (2016), §5.5 and §8.1; matches a Python loop summing the per-sample losses.
    """
    _checks.one_of("objective", "reduction", reduction, _REDUCTIONS)
    losses = _per_sample(apply_fn, loss_fn, "objective")

    def f(params, inputs, targets):
        values = losses(params, inputs, targets)
        return values.sum() if reduction == "sum" else values.mean()

    return f
