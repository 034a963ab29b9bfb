"""Back propagation written out: the chain rule, layer by layer, for the `jaxloss.mlp` network.

`jax.grad` does exactly this for any program; here it is visible for one model so a reader can see
why one backward pass gives the gradient of every parameter for about the cost of one forward pass,
and `gradient_cost` measures that against forward mode and finite differences (which both need a
pass per parameter).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxloss import _checks

Params = Sequence[dict[str, jax.Array]]
Activation = Callable[[jax.Array], jax.Array]


class MLPCache(NamedTuple):
    """What the backward pass needs from the forward pass (a pytree: works under jit).

    Attributes:
      inputs: per layer l, the activation entering it, `a_{l-1}` (`inputs[0]` is `x`).
      pre_activations: per layer l, `z_l = a_{l-1} @ w_l + b_l`; the last one is the output.
    """

    inputs: tuple[jax.Array, ...]
    pre_activations: tuple[jax.Array, ...]


def _check_params(fn: str, params: Any, x: jax.Array | None = None) -> None:
    """`params` must be `mlp` params: a non-empty list of chaining {"w": (in, out), "b": (out,)}."""
    ok = isinstance(params, (list, tuple)) and len(params) > 0
    ok = ok and all(isinstance(p, dict) and set(p) == {"w", "b"} for p in params)
    if not ok:
        raise ValueError(
            f"jaxloss.{fn}: `params` must be jaxloss.mlp params, a non-empty list of "
            f'{{"w": (in, out), "b": (out,)}} dicts; got {jax.tree_util.tree_structure(params)}.'
        )
    shapes = [(jnp.shape(p["w"]), jnp.shape(p["b"])) for p in params]
    for i, (w_shape, b_shape) in enumerate(shapes):
        chained = i == 0 or w_shape[:1] == shapes[i - 1][0][1:]
        if len(w_shape) != 2 or b_shape != w_shape[1:] or not chained:
            raise ValueError(
                f"jaxloss.{fn}: `params` layer {i} must have w (in, out) with in = the previous "
                f"layer's out, and b (out,); got w {w_shape}, b {b_shape}."
            )
    if x is not None and (x.ndim < 1 or x.shape[-1] != shapes[0][0][0]):
        raise ValueError(
            f"jaxloss.{fn}: `x` must have shape (..., {shapes[0][0][0]}) (the first layer's input "
            f"size); got {x.shape}."
        )


def _affine(x: jax.Array, layer: dict[str, jax.Array]) -> jax.Array:
    # Explicit leading axes for b: a batch (N, in) must not rely on rank promotion.
    b = jnp.expand_dims(layer["b"], tuple(range(x.ndim - 1)))
    return x @ layer["w"] + b


def _activation_derivative(activation: Activation, z: jax.Array, a: jax.Array) -> jax.Array:
    """σ'(z) for an elementwise activation σ, given z and a = σ(z)."""
    if activation is jnp.tanh:  # jax.nn.tanh is jnp.tanh
        return 1 - a * a
    if activation is jax.nn.sigmoid:
        return a * (1 - a)
    if activation is jax.nn.relu:
        return (z > 0).astype(z.dtype)  # jax.nn.relu's own convention: 0 at z = 0
    # Any other elementwise σ (identity included): one JVP with a tangent of ones gives σ'(z).
    return jax.jvp(activation, (z,), (jnp.ones_like(z),))[1]


def mlp_forward_with_cache(
    params: Params, x: jax.Array, activation: Activation = jax.nn.tanh
) -> tuple[jax.Array, MLPCache]:
    """The `jaxloss.mlp` forward pass, keeping every layer's input and pre-activation.

    `z_l = a_{l-1} w_l + b_l`, `a_l = σ(z_l)` for hidden layers, output `z_L` (linear), `a_0 = x`.

    Args:
      params: `mlp` params, a list of `{"w": (in, out), "b": (out,)}`.
      x: one sample `(in,)` or a batch `(..., in)`.
      activation: the `mlp`'s elementwise activation (default `jax.nn.tanh`, as `mlp`).

    Returns:
      `(output, cache)`: output `(..., out)`, equal to `mlp(...)[1](params, x)`; the cache for
      `mlp_backward`.

    Example:
      >>> init_fn, apply_fn = jaxloss.mlp([2, 8, 1])
      >>> params = init_fn(jax.random.key(0))
      >>> y, cache = jaxloss.mlp_forward_with_cache(params, jnp.ones(2))
    """
    x = jnp.asarray(x)
    _check_params("mlp_forward_with_cache", params, x)
    inputs, pre_activations = [], []
    a = x
    for i, layer in enumerate(params):
        z = _affine(a, layer)
        inputs.append(a)
        pre_activations.append(z)
        a = activation(z) if i < len(params) - 1 else z
    return a, MLPCache(tuple(inputs), tuple(pre_activations))


def mlp_backward(
    params: Params, cache: MLPCache, output_grad: jax.Array, activation: Activation = jax.nn.tanh
) -> list[dict[str, jax.Array]]:
    """The chain rule run backwards through the MLP: ∂L/∂params from ∂L/∂output.

    With `δ_L = ∂L/∂z_L` (= `output_grad`, the output is linear), each layer gives
    `∂L/∂w_l = a_{l-1}ᵀ δ_l`, `∂L/∂b_l = Σ δ_l`, and passes `δ_{l-1} = (δ_l w_lᵀ) ⊙ σ'(z_{l-1})`
    down. σ' is closed-form for `jax.nn.tanh` (1 − a²), `jax.nn.sigmoid` (a(1 − a)) and
    `jax.nn.relu` (1[z > 0]); any other elementwise activation (the identity `lambda x: x`
    included) gets σ'(z) from one `jax.jvp` with a tangent of ones, which is exact only for
    elementwise functions.

    Args:
      params: the params used in `mlp_forward_with_cache`.
      cache: its cache.
      output_grad: `∂L/∂output`, the shape of the output (`(out,)` or `(..., out)`); for a batch,
        the gradient of a loss summed (or averaged) over it. Any loss works:
        `output_grad = jax.grad(loss)(output, targets)`.
      activation: the activation used in the forward pass.

    Returns:
      Gradients with the structure of `params` (a list of `{"w", "b"}` dicts), equal to
      `jax.grad` of `L(mlp(params, x))`.

    Example:
      >>> init_fn, apply_fn = jaxloss.mlp([2, 8, 1])
      >>> params = init_fn(jax.random.key(0))
      >>> x, targets = jaxloss.xor()
      >>> y, cache = jaxloss.mlp_forward_with_cache(params, x)
      >>> grads = jaxloss.mlp_backward(params, cache, jax.grad(jaxloss.mse)(y, targets))
      >>> expected = jax.grad(lambda p: jaxloss.mse(apply_fn(p, x), targets))(params)
      >>> bool(jnp.allclose(grads[0]["w"], expected[0]["w"], atol=1e-6))
      True

    Reference: Rumelhart, Hinton & Williams, "Learning representations by back-propagating
    errors", Nature 1986.
    """
    fn = "mlp_backward"
    _check_params(fn, params)
    output_grad = jnp.asarray(output_grad)
    out_shape = cache.pre_activations[-1].shape
    if output_grad.shape != out_shape:
        raise ValueError(
            f"jaxloss.{fn}: `output_grad` must have the output's shape {out_shape} (∂L/∂output); "
            f"got {output_grad.shape}."
        )
    if len(cache.inputs) != len(params):
        raise ValueError(
            f"jaxloss.{fn}: `cache` must come from mlp_forward_with_cache with these {len(params)}"
            f"-layer params; it has {len(cache.inputs)} layers."
        )
    grads = [None] * len(params)
    delta = output_grad
    for i in reversed(range(len(params))):
        a_prev = cache.inputs[i]
        # Sum over any batch axes: the loss of a batch is the sum of its samples' losses.
        grads[i] = {
            "w": jnp.einsum("...i,...j->ij", a_prev, delta),
            "b": jnp.sum(delta, axis=tuple(range(delta.ndim - 1))),
        }
        if i > 0:
            sigma_prime = _activation_derivative(activation, cache.pre_activations[i - 1], a_prev)
            delta = (delta @ params[i]["w"].T) * sigma_prime
    return grads


def _central_differences(f: Callable, theta: jax.Array, step: float, *args: Any) -> jax.Array:
    """∂f/∂θ_i ≈ (f(θ + h e_i) − f(θ − h e_i)) / 2h, one parameter at a time (2P evaluations)."""

    def one(i):
        e = jnp.zeros_like(theta).at[i].set(step)
        return (f(theta + e, *args) - f(theta - e, *args)) / (2 * step)

    return jax.lax.map(one, jnp.arange(theta.size))


def _median_seconds(fn: Callable, args: tuple, repeats: int) -> tuple[float, float, Any]:
    """(first-call seconds including compilation, median of `repeats` later calls, result)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), out


_METHODS = ("reverse", "forward", "finite_difference")


def gradient_cost(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    methods: Sequence[str] = _METHODS,
    repeats: int = 5,
    step: float | None = None,
) -> dict[str, Any]:
    """Time one gradient of `objective_fn` by reverse mode, forward mode and finite differences.

    For P parameters, reverse mode (`jax.grad`, back propagation) costs a small constant times one
    evaluation of the objective; forward mode (`jax.jacfwd`, P Jacobian-vector products, batched)
    and central finite differences (2P evaluations, run one after another with `lax.map`) grow
    with P. That gap is what made gradient descent on many parameters affordable.

    Each method is jitted, called once (compilation, reported as `first_call_seconds`), then timed
    over `repeats` calls; the median is reported. No method is run inside another's timing.

    Args:
      objective_fn: `f(params, inputs, targets) -> scalar` (e.g. from `jaxloss.objective`); a
        non-scalar output is a ValueError.
      params: pytree of floating arrays (an integer leaf is a TypeError).
      inputs, targets: passed through to `objective_fn` (as jit arguments, not constants).
      methods: which of "reverse", "forward", "finite_difference" to time ("reverse" is always
        computed: it is the reference for `max_abs_diff`). Forward mode holds P tangents at once,
        finite differences take 2P evaluations: leave them out for large P.
      repeats: timed calls per method, an integer >= 1.
      step: finite-difference step h; default `eps**(1/3)` of the params' dtype (about 6e-6 in
        float64, 5e-3 in float32), which balances truncation O(h²) against rounding O(eps/h).

    Returns:
      A dict: `num_params` (P), `value` (the objective, a float), `seconds` and
      `first_call_seconds` (dicts method -> float, with "objective" for one evaluation as the unit
      of cost), `gradients` (method -> pytree like `params`), and `max_abs_diff` (method -> largest
      absolute difference from the reverse-mode gradient, for the other methods).

    Example:
      >>> init_fn, apply_fn = jaxloss.mlp([2, 8, 1])
      >>> params = init_fn(jax.random.key(0))
      >>> x, y = jaxloss.xor()
      >>> f = lambda p, x, y: jnp.mean((apply_fn(p, x) - y) ** 2)
      >>> r = jaxloss.gradient_cost(f, params, x, y, repeats=3)
      >>> r["num_params"], sorted(r["seconds"])
      (33, ['finite_difference', 'forward', 'objective', 'reverse'])
      >>> r["max_abs_diff"]["forward"] < 1e-6, r["max_abs_diff"]["finite_difference"] < 1e-2
      (True, True)

    Reference: Baydin et al., "Automatic differentiation in machine learning: a survey", JMLR 2018.
    """
    fn = "gradient_cost"
    methods = tuple(methods)
    for m in methods:
        if m not in _METHODS:
            raise ValueError(
                f"jaxloss.{fn}: `methods` must contain only {', '.join(map(repr, _METHODS))}; "
                f"got {m!r}."
            )
    repeats = _checks.positive_int(fn, "repeats", repeats)
    _checks.float_params(fn, params)
    theta, unravel = ravel_pytree(params)
    if step is None:
        step = float(jnp.finfo(theta.dtype).eps) ** (1 / 3)
    elif not step > 0:
        raise ValueError(f"jaxloss.{fn}: `step` must be > 0; got {step!r}.")

    def flat(t, x, y):
        return objective_fn(unravel(t), x, y)

    out = jax.eval_shape(flat, theta, inputs, targets)
    if jnp.shape(out) != ():
        raise ValueError(
            f"jaxloss.{fn}: `objective_fn` must return a scalar (the loss to differentiate); got "
            f"shape {jnp.shape(out)}. Reduce it, e.g. with .mean() or .sum()."
        )

    compiled = {
        "objective": jax.jit(flat),
        "reverse": jax.jit(jax.grad(flat)),
        "forward": jax.jit(jax.jacfwd(flat)),
        "finite_difference": jax.jit(lambda t, x, y: _central_differences(flat, t, step, x, y)),
    }
    args = (theta, inputs, targets)
    seconds, first_call, results = {}, {}, {}
    for name in ("objective", "reverse", *[m for m in methods if m != "reverse"]):
        first_call[name], seconds[name], results[name] = _median_seconds(
            compiled[name], args, repeats
        )
    reference = results["reverse"]
    gradients = {m: unravel(results[m]) for m in results if m != "objective"}
    max_abs_diff = {
        m: float(jnp.max(jnp.abs(results[m] - reference), initial=0.0))
        for m in gradients
        if m != "reverse"
    }
    return {
        "num_params": int(theta.size),
        "value": float(results["objective"]),
        "seconds": seconds,
        "first_call_seconds": first_call,
        "gradients": gradients,
        "max_abs_diff": max_abs_diff,
    }
