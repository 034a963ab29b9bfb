"""Regression losses: squared and absolute error, their means, RMSE and Huber.

MSE is the Gaussian negative log-likelihood up to constants (see `jaxloss.gaussian_nll`); MAE the
Laplace one. `squared_error`, `absolute_error` and `huber_loss` are elementwise; `mse`, `rmse` and
`mae` reduce the whole sample to a scalar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxloss import _checks


def _errors(fn: str, predictions, targets) -> jax.Array:
    """`predictions − targets` after the shared checks."""
    predictions, targets = _checks.float_pair(fn, "predictions", predictions, "targets", targets)
    # A mean over no element has no value; a mask selecting nothing is a different, defined case.
    _checks.non_empty(fn, "predictions", predictions)
    _checks.not_nan(fn, "predictions", predictions)
    _checks.not_nan(fn, "targets", targets)
    return predictions - targets


def _masked_errors(fn: str, predictions, targets, where) -> tuple[jax.Array, jax.Array]:
    """The errors with masked-out ones set to 0, and the number of selected ones (at least 1).

    Zeroing the error itself (not the loss) keeps an inf or NaN at a masked position out of both
    the value and the gradient (`0 * inf` would be NaN in the backward pass).
    """
    errors = _errors(fn, predictions, targets)
    if where is None:
        return errors, jnp.asarray(errors.size, errors.dtype)
    where = _checks.real(fn, "where", where)
    _checks.mask_shape(fn, "where", where, errors.shape)
    count = jnp.maximum(jnp.sum(where), 1).astype(errors.dtype)
    return jnp.where(where, errors, 0), count


def _abs(errors: jax.Array) -> jax.Array:
    """|e| with derivative 0 at e = 0 (jnp.abs gives 1 there), as torch's l1_loss."""
    return jnp.where(errors == 0, 0, jnp.abs(errors))


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise squared error `(predictions − targets)²`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape` (float32 for half-precision input).

    Example:
      >>> jaxloss.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))
      Array([1., 4.], dtype=float32)

    Matches `optax.squared_error` (which, unlike this, broadcasts mismatched shapes).
    """
    return jnp.square(_errors("squared_error", predictions, targets))


def absolute_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise absolute error `|predictions − targets|` (gradient 0 where they are equal).

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.

    Returns:
      Array of `predictions.shape`.

    Example:
      >>> jaxloss.absolute_error(jnp.array([1.0, -2.0]), jnp.array([0.0, 0.0]))
      Array([1., 2.], dtype=float32)

    Matches `torch.nn.functional.l1_loss(..., reduction='none')`.
    """
    return _abs(_errors("absolute_error", predictions, targets))


def mse(predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None) -> jax.Array:
    """Mean squared error of one sample: `Σ_i w_i (p_i − t_i)² / Σ_i w_i` over all its elements.

    Args:
      predictions: floating array, any shape (one sample; pass a batch to get the batch mean).
      targets: array of the same shape.
      where: optional boolean mask of the same shape; the mean runs over the selected elements.
        With nothing selected the result is 0 with a zero gradient (a size-0 array, by
        contrast, is a ValueError: it has no mean).

    Returns:
      Scalar. NaN if an input (selected by `where`) is NaN; `jaxloss.checked` raises there.

    Example:
      >>> jaxloss.mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
      Array(5., dtype=float32)

    Matches `torch.nn.functional.mse_loss(reduction='mean')` and `optax.squared_error(...).mean()`.
    """
    errors, count = _masked_errors("mse", predictions, targets, where)
    return jnp.sum(jnp.square(errors)) / count


def rmse(
    predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None
) -> jax.Array:
    """Root mean squared error `√mse`, with a zero (finite) gradient where the error is 0.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      where: optional boolean mask, as in `mse`.

    Returns:
      Scalar. NaN if an input (selected by `where`) is NaN; `jaxloss.checked` raises there.

    Example:
      >>> jaxloss.rmse(jnp.array([3.0, 4.0]), jnp.array([0.0, 0.0]))  # √((9 + 16) / 2)
      Array(3.535534, dtype=float32)

    `torch.sqrt(F.mse_loss(...))` and Keras' RMSE give NaN/inf gradients at zero error: d√m/dm is
    infinite at 0. Here 0 (a valid subgradient) is used there.
    """
    errors, count = _masked_errors("rmse", predictions, targets, where)
    # Scaled by the largest |e| (a constant for autodiff: rmse is homogeneous, so the gradient is
    # unchanged): e² would underflow to 0 from |e| ~ 1e-19 in float32, or overflow from ~ 1e19.
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(errors)))
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1)
    mean_square = jnp.sum(jnp.square(errors / scale)) / count
    # Double where: sqrt's derivative at 0 is infinite, so differentiate only a safe argument.
    # Test `== 0`, not `> 0`: a NaN mean square must stay NaN.
    zero = mean_square == 0
    safe = jnp.where(zero, 1, mean_square)
    return scale * jnp.where(zero, 0, jnp.sqrt(safe))


def mae(predictions: jax.Array, targets: jax.Array, *, where: jax.Array | None = None) -> jax.Array:
    """Mean absolute error of one sample: `Σ_i w_i |p_i − t_i| / Σ_i w_i`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      where: optional boolean mask, as in `mse`.

    Returns:
      Scalar.

    Example:
      >>> jaxloss.mae(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0]))
      Array(2., dtype=float32)

    Matches `torch.nn.functional.l1_loss(reduction='mean')`.
    """
    errors, count = _masked_errors("mae", predictions, targets, where)
    return jnp.sum(_abs(errors)) / count


def huber_loss(predictions: jax.Array, targets: jax.Array, *, delta: float = 1.0) -> jax.Array:
    """Elementwise Huber loss: `½e²` for `|e| ≤ δ`, else `δ(|e| − ½δ)`, with `e = p − t`.

    Quadratic near zero (like MSE), linear in the tails (like MAE, robust to outliers), with a
    continuous first derivative at `|e| = δ`.

    Args:
      predictions: floating array, any shape.
      targets: array of the same shape.
      delta: the switch point, a scalar in (0, inf]; `inf` is the limit `½e²` everywhere. May be
        traced: a traced `delta` ≤ 0 (or NaN) gives NaN, and `jaxloss.checked` raises.

    Returns:
      Array of `predictions.shape`; NaN where an input is NaN.

    Example:
      >>> jaxloss.huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]))
      Array([0.125, 2.5  ], dtype=float32)

    Matches `optax.huber_loss` and `torch.nn.functional.huber_loss(reduction='none')`.
    Reference: Huber, "Robust Estimation of a Location Parameter", 1964.
    """
    fn = "huber_loss"
    abs_error = jnp.abs(_errors(fn, predictions, targets))
    _checks.scalar(fn, "delta", delta)
    valid = _checks.hyperparameter_ok(fn, "delta", delta, low=0, low_inclusive=False)
    delta = jnp.asarray(delta, abs_error.dtype)
    # min/max form: one expression, no branch to differentiate through.
    quadratic = jnp.minimum(abs_error, delta)
    linear = abs_error - quadratic
    # The linear part's slope is δ only where |e| ≥ δ: δ = inf would otherwise give inf · 0 = NaN
    # in the value and in the gradient. (At |e| = δ, min's derivative splits ½/½: the total is δ.)
    slope = jnp.where(abs_error >= delta, delta, 0)
    loss = 0.5 * jnp.square(quadratic) + slope * linear
    return jnp.where(valid, loss, jnp.nan)
