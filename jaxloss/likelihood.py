"""Negative log-likelihoods: where the common losses come from.

Maximum likelihood picks θ to make the observed targets most probable under the distribution the
model predicts; minimising `−Σ_i log p(y_i | f_θ(x_i))` is the same thing. The output's type picks
the distribution, and the distribution is the loss:

- continuous targets → a density on the real line. Gaussian with fixed σ: the NLL is
  `(y − μ)²/2σ² + const`, i.e. squared error / MSE (the optimum is the conditional mean).
  Laplace with fixed b: `|y − μ|/b + const`, absolute error / MAE (the conditional median, less
  sensitive to outliers through its heavier tails). Learning σ (or b) as well gives a model that
  also says how uncertain it is.
- discrete targets → a probability mass function. Bernoulli with p = sigmoid(logit): the NLL is
  sigmoid binary cross entropy; categorical with p = softmax(logits): softmax cross entropy.
  Squared error on probabilities is not a likelihood of a discrete label, and under a sigmoid its
  gradient vanishes where the prediction is confidently wrong; cross entropy's does not.

Every function is elementwise over positions (the class axis of `categorical_nll` is reduced).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks
from jaxloss.classification import _integer_ce, _sigmoid_bce

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def _scale_array(fn: str, name: str, value: Any, shape: tuple[int, ...]) -> jax.Array:
    """A scale (or log-scale): a scalar or an array of exactly the location's shape."""
    arr = _checks.as_float(fn, name, value)
    if arr.shape not in ((), shape):
        raise ValueError(
            f"jaxloss.{fn}: `{name}` must be a scalar or have the location's shape {shape}; got "
            f"{arr.shape}."
        )
    return arr


def _standardised(
    fn: str, loc: Any, targets: Any, scale: Any, log_scale: Any, names: tuple[str, str, str]
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """`(z, log σ, valid)` with z = (loc − y)/σ, from either σ (default 1) or log σ.

    `valid` is the σ > 0 mask for the σ parametrisation (None for log σ, where every real is valid).
    """
    loc_name, scale_name, log_name = names
    loc, targets = _checks.float_pair(fn, loc_name, loc, "targets", targets)
    _checks.not_nan(fn, loc_name, loc)
    _checks.not_nan(fn, "targets", targets)
    if scale is not None and log_scale is not None:
        raise ValueError(
            f"jaxloss.{fn}: pass at most one of `{scale_name}` and `{log_name}`; got both."
        )
    residual = loc - targets
    if log_scale is not None:
        log_scale = _scale_array(fn, log_name, log_scale, loc.shape)
        _checks.not_nan(fn, log_name, log_scale)
        # σ = exp(log σ): positive for every real input, and the loss is smooth in log σ.
        return residual * jnp.exp(-log_scale), log_scale, None
    if scale is not None:
        _checks.in_range(fn, scale_name, scale, low=0.0, low_inclusive=False)
    scale = _scale_array(fn, scale_name, 1.0 if scale is None else scale, loc.shape)
    valid = scale > 0
    _checks.runtime_check(fn, valid, f"`{scale_name}` must be > 0.")
    # Double where: σ ≤ 0 gives NaN below, and its discarded branch must not divide by 0.
    safe = jnp.where(valid, scale, 1)
    return residual / safe, jnp.log(safe), valid


def _finish(nll: jax.Array, valid: jax.Array | None) -> jax.Array:
    return nll if valid is None else jnp.where(valid, nll, jnp.nan)


def gaussian_nll(
    mean: jax.Array,
    targets: jax.Array,
    *,
    std: jax.Array | float | None = None,
    log_std: jax.Array | float | None = None,
) -> jax.Array:
    """Elementwise Gaussian negative log-likelihood `−log N(y; μ, σ²)`.

    `log σ + (y − μ)²/(2σ²) + ½ log 2π`. With σ = 1 this is `½ squared_error + ½ log 2π`: the same
    gradient as ½ MSE, which is why least squares is maximum likelihood for continuous outputs
    with Gaussian noise.

    Two parametrisations (pass at most one; neither means σ = 1):
      - `std=σ`: a fixed or given standard deviation (σ ≤ 0 gives NaN).
      - `log_std=log σ`: for learning σ (a parameter, or a second model output for
        heteroscedastic regression); every real value is valid and the loss is smooth in it,
        `log σ + ½ (y − μ)² e^{−2 log σ} + ½ log 2π`.

    Args:
      mean: predicted mean μ, floating, any shape.
      targets: observed y, the shape of `mean`.
      std: σ > 0, a scalar or an array of `mean`'s shape.
      log_std: log σ, a scalar or an array of `mean`'s shape.

    Returns:
      Array of `mean.shape` (float32 for half-precision input).

    Example:
      >>> jaxloss.gaussian_nll(jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0]), std=2.0)
      Array([1.737..., 1.612...], dtype=float32)
      >>> # heteroscedastic: a model predicting (μ, log σ) per sample
      >>> loss_fn = lambda out, y: jaxloss.gaussian_nll(out[0], y, log_std=out[1])

    Matches `torch.nn.functional.gaussian_nll_loss(mean, targets, std**2, full=True,
    reduction='none')` for σ² ≥ 1e-6. Torch takes the variance, not σ, and clamps it below at
    `eps=1e-6` (so for σ < 1e-3 it returns the NLL of a wider Gaussian); this function does not
    clamp. Reference: Bishop, *Pattern Recognition and Machine Learning* (2006), §1.2.5.
    """
    z, log_scale, valid = _standardised(
        "gaussian_nll", mean, targets, std, log_std, ("mean", "std", "log_std")
    )
    return _finish(0.5 * jnp.square(z) + log_scale + _HALF_LOG_2PI, valid)


def laplace_nll(
    location: jax.Array,
    targets: jax.Array,
    *,
    scale: jax.Array | float | None = None,
    log_scale: jax.Array | float | None = None,
) -> jax.Array:
    """Elementwise Laplace negative log-likelihood `−log Laplace(y; μ, b)`.

    `|y − μ|/b + log 2b`. With b = 1 this is `absolute_error + log 2`: MAE is maximum likelihood
    under Laplace noise (heavier tails than Gaussian, so outliers pull less; the optimum is the
    median).

    Two parametrisations (pass at most one; neither means b = 1): `scale=b` (b ≤ 0 gives NaN) or
    `log_scale=log b` (any real; `|y − μ| e^{−log b} + log b + log 2`) for learning b.

    Args:
      location: predicted location μ, floating, any shape.
      targets: observed y, the shape of `location`.
      scale: b > 0, a scalar or an array of `location`'s shape.
      log_scale: log b, a scalar or an array of `location`'s shape.

    Returns:
      Array of `location.shape` (float32 for half-precision input). The gradient in μ at y = μ
      is 0 (as torch's `l1_loss`; `jax.numpy.abs` would give 1 there).

    Example:
      >>> jaxloss.laplace_nll(jnp.array([0.0, 2.0]), jnp.array([1.0, 2.0]))
      Array([1.693..., 0.693...], dtype=float32)

    Reference: the Laplace density `exp(−|y − μ|/b) / 2b`; e.g. Murphy, *Probabilistic Machine
    Learning: An Introduction* (2022), §2.7.3. (torch has no Laplace NLL loss.)
    """
    z, log_scale, valid = _standardised(
        "laplace_nll", location, targets, scale, log_scale, ("location", "scale", "log_scale")
    )
    # |z| with gradient 0 (not jnp.abs's 1) at y = μ: the median stays a stationary point.
    abs_z = jnp.where(z == 0, 0, jnp.abs(z))
    return _finish(abs_z + log_scale + _LOG_2, valid)


def bernoulli_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Elementwise Bernoulli negative log-likelihood of labels y under p = sigmoid(logits).

    `−y log p − (1 − y) log(1 − p)`, computed in log space from the logits: exactly
    `sigmoid_binary_cross_entropy`. The right loss for a binary (discrete) output: it is the
    likelihood of the label, and its gradient `p − y` does not vanish when a confident sigmoid is
    wrong (squared error's `(p − y) p (1 − p)` does).

    Args:
      logits: floating, any shape.
      labels: 0/1 labels (bool, int or float) of the same shape; soft labels in [0, 1] give the
        cross entropy to Bernoulli(y).

    Returns:
      Array of `logits.shape`.

    Example:
      >>> jaxloss.bernoulli_nll(jnp.array([0.0, 2.0]), jnp.array([1, 0]))
      Array([0.693..., 2.126...], dtype=float32)

    Reference: Bishop, *Pattern Recognition and Machine Learning* (2006), §4.3.2.
    """
    return _sigmoid_bce("bernoulli_nll", logits, labels)


def categorical_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Categorical negative log-likelihood of integer labels under p = softmax(logits).

    `−log softmax(logits)[label] = logsumexp(logits) − logits[label]`: exactly
    `softmax_cross_entropy_with_integer_labels`, the maximum-likelihood loss for a class
    (discrete) output.

    Args:
      logits: `(..., C)` floating, class axis last.
      labels: `(...)` integer classes in [0, C) (out of range gives NaN).

    Returns:
      Array of `labels.shape`.

    Example:
      >>> jaxloss.categorical_nll(jnp.array([[0.0, 0.0], [2.0, 0.0]]), jnp.array([0, 1]))
      Array([0.693..., 2.126...], dtype=float32)

    Reference: Bishop, *Pattern Recognition and Machine Learning* (2006), §4.3.4.
    """
    return _integer_ce("categorical_nll", logits, labels)
