"""Functional training loops: one step, a `lax.scan` loop, a learning-rate sweep, an LR range test.

`θ_{k+1} = θ_k − η ∇L(θ_k)` (or any optax optimizer's step), written over any pytree of
parameters. `fit` runs `steps` of it in one `lax.scan`; `sweep` runs K learning rates × S seeds of
the same scan in one compiled program (one run after another on a CPU, `jax.vmap`-ed on a
GPU/TPU); `lr_range_test` runs one scan whose η grows exponentially. Objectives are known only as
functions `f(params, inputs, targets) -> scalar` (see `jaxloss.objective`).

Parameters: the floating-point array leaves of `params` train; every other leaf (an integer
counter, a boolean mask, a Python callable such as an activation) passes through unchanged and
the objective sees the whole pytree (equinox's `filter` rule). An equinox module is such a
pytree (its arrays train, its activation functions pass through): pass it as `params`. For flax
NNX pass the state of `graphdef, state = nnx.split(model)` and merge inside the objective:
`f = lambda state, x, y: loss(nnx.merge(graphdef, state)(x), y)`. (Neither library is a
dependency; the tests use a hand-made pytree with every kind of leaf.)

Compilation: the loops are jitted once per (objective function, optimizer function, schedule,
batch size, number of steps, `parallel_runs` for a sweep, static leaves of `params`, shapes and
dtypes of the arguments). The learning rate, the data, the initial parameters and the keys are
traced arguments, so new values of them never recompile. Keep the same objective and optimizer
objects between calls: a new `jaxloss.objective(...)`, a new lambda or a new
`functools.partial(optax.sgd, momentum=0.9)` is a new function and compiles afresh.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from jaxloss import _checks, _trees, parallel
from jaxloss.objective import num_samples
from jaxloss.taylor import _hvp, _vdot, power_iteration

# A progress bar is updated this many times: the scan runs in this many chunks.
_PROGRESS_UPDATES = 20
# Sharpness monitor: power iterations per record, warm-started from the previous record's
# eigenvector; the first record starts from a random vector (jax.random.key(0)) and runs longer.
_MONITOR_ITERS = 20
_MONITOR_FIRST_ITERS = 100
# LR range test: fastai's smoothing factor and stop rule (smoothed loss above 4x its minimum).
_RANGE_BETA = 0.98
_RANGE_STOP = 4.0


# --------------------------------------------------------------------------------- results


class Monitor(NamedTuple):
    """What `fit(..., monitor_every=k)` (or `sweep`) records at steps `0, k, 2k, …` and the
    last step.

    Every value is measured at the parameters BEFORE the step, on that step's (mini)batch (the
    batch of `FitResult.losses[step]`); steps after a divergence hold NaN.

    Attributes:
        steps: `(M,)` int32, the recorded steps.
        sharpness: `(M,)` λ_max, the top Hessian eigenvalue of the objective (power iteration on
            Hessian-vector products, warm-started from the previous record's eigenvector).
        grad_norm_sq: `(M,)` ‖g‖².
        first_order_ratio: `(M,)` the one-step Taylor ratio `(L(θ_{t+1}) − L(θ_t)) / (g·u)`,
            `u = θ_{t+1} − θ_t` the optimizer's update (before rounding to the parameters):
            for SGD `g·u = −η_t‖g‖²`, the issue's `actual ΔL / (−η‖g‖²)`. Near 1 while the step is
            in the first-order regime; it falls with curvature and turns negative when the step
            raises the loss.
    """

    steps: Any
    sharpness: Any
    grad_norm_sq: Any
    first_order_ratio: Any


class FitResult(NamedTuple):
    """The outcome of `jaxloss.fit` (a pytree: it can be returned from `jax.jit`).

    Attributes:
        params: the parameters after the last step; for a diverged run, the last parameters whose
            loss was finite (they stop changing instead of filling with NaN). Leaves that do not
            train are the ones passed in.
        losses: `(steps,)`; `losses[t]` is the objective at the parameters BEFORE step `t` (on that
            step's minibatch when `batch_size` is set), so `losses[0]` is the initial loss. From
            `diverged_at` on: the non-finite loss at `diverged_at`, NaN after it.
        diverged_at: `()` int32, the first step whose loss is not finite, or `-1`. It equals
            `steps` when only the loss after the last step is not finite.
        final_loss: `()`, the objective on ALL of `inputs`/`targets` at the returned `params`
            (the loss after the last step); NaN for a diverged run.
        opt_state: the optimizer state that goes with `params` (for a diverged run the state of
            the last finite params), a pytree shaped like `optimizer(η).init(params)` with None
            at the leaves that do not train (equinox's convention).
        monitor: a `Monitor` with `monitor_every`, else None.

    `to_dict()` gives strict JSON (`json.dumps(result.to_dict(), allow_nan=False)` works);
    `FitResult.from_dict(d)` reads it back, with NumPy arrays in place of JAX ones.
    """

    params: Any
    losses: Any
    diverged_at: Any
    final_loss: Any
    opt_state: Any = None
    monitor: Monitor | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain Python for `json.dumps(..., allow_nan=False)`; NaN and ±inf become None.

        `losses`, `final_loss`, `diverged_at` and the monitor are plain numbers and lists;
        `params` and `opt_state` are tagged trees that `from_dict` restores (see `_encode`).
        """
        return {
            "params": _encode(self.params),
            "losses": _trees.to_json(self.losses),
            "diverged_at": _trees.to_json(self.diverged_at),
            "final_loss": _trees.to_json(self.final_loss),
            "opt_state": _encode(self.opt_state),
            "monitor": None if self.monitor is None else _monitor_to_json(self.monitor),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitResult:
        """The `FitResult` `to_dict` wrote: losses as float64 NumPy arrays (null → NaN), params
        and opt_state as nested dicts / lists / tuples / NamedTuples of NumPy arrays of the
        original dtypes; a leaf that is neither an array nor a JSON number or string (a Python
        callable) comes back as None, a custom pytree node (an equinox module) as the list of
        its children."""
        monitor = data.get("monitor")
        return cls(
            params=_decode(data["params"]),
            losses=_trees.from_json(data["losses"]),
            diverged_at=np.int32(data["diverged_at"]),
            final_loss=_trees.from_json(data["final_loss"]),
            opt_state=_decode(data.get("opt_state")),
            monitor=None if monitor is None else _monitor_from_json(monitor),
        )


def _monitor_to_json(monitor: Monitor) -> dict[str, Any]:
    return {name: _trees.to_json(value) for name, value in monitor._asdict().items()}


def _monitor_from_json(data: dict[str, Any]) -> Monitor:
    values = {name: _trees.from_json(data[name]) for name in Monitor._fields}
    return Monitor(**{**values, "steps": values["steps"].astype(np.int32)})


class SweepResult(NamedTuple):
    """The outcome of `jaxloss.sweep`: K learning rates × S seeds, each one `fit` run.

    Attributes:
        learning_rates: `(K,)` NumPy array (the default float dtype).
        seeds: `(S,)` int64 NumPy array, the seed of each column (exact, any 64-bit seed).
        losses: `(K, S, steps)`, `losses[k, s]` as `FitResult.losses` of run (k, s).
        final_losses: `(K, S)`, as `FitResult.final_loss` (NaN where the run diverged).
        diverged_at: `(K, S)` int32, as `FitResult.diverged_at`.
        params: the parameters of every run, each array leaf stacked to `(K, S, *leaf.shape)`
            (leaves that do not train too); other leaves as passed.
        opt_state: the optimizer state of every run, each leaf stacked to `(K, S, ...)`.
        monitor: with `monitor_every`, a `Monitor` whose value arrays are `(K, S, M)` (`steps`
            `(M,)`, shared); else None.
        initial_params: where each seed's runs started, each array leaf stacked to
            `(S, *leaf.shape)` (every learning rate of seed s starts from row s); other leaves as
            passed. `initial(s)` gives one seed's.

    `to_dict()` / `SweepResult.from_dict(d)` as for `FitResult`.
    """

    learning_rates: Any
    seeds: np.ndarray
    losses: Any
    final_losses: Any
    diverged_at: Any
    params: Any
    opt_state: Any = None
    monitor: Monitor | None = None
    initial_params: Any = None

    def initial(self, s: int = 0) -> Any:
        """The parameters every run of seed `seeds[s]` started from (e.g. for `taylor_check`)."""
        s = _index("s", s, np.shape(self.final_losses)[1], fn="SweepResult.initial")
        return jax.tree.map(
            lambda leaf: leaf[s] if _trees._is_array(leaf) else leaf, self.initial_params
        )

    def best(self) -> float:
        """The learning rate with the lowest final loss among those that did not diverge.

        With several seeds: the lowest mean final loss over seeds, among the learning rates for
        which no seed diverged. Raises ValueError if every learning rate diverged.
        """
        return float(np.asarray(self.learning_rates)[self._best_index()])

    def _best_index(self) -> int:
        stable = np.all(np.asarray(self.diverged_at) < 0, axis=1)
        if not stable.any():
            raise ValueError(
                "jaxloss.SweepResult.best: every learning rate diverged (for at least one seed); "
                f"got learning_rates {np.asarray(self.learning_rates)}. Try smaller ones."
            )
        mean_final = np.asarray(self.final_losses, dtype=np.float64).mean(axis=1)
        return int(np.argmin(np.where(stable, mean_final, np.inf)))

    def run(self, k: int, s: int = 0) -> FitResult:
        """Run (k, s) as a `FitResult`: learning rate `learning_rates[k]`, seed `seeds[s]`.

        Indices follow Python's convention: `-1` is the last learning rate (seed); an index
        outside `[-K, K)` (`[-S, S)`) raises IndexError instead of returning a clamped row.
        """
        num_rates, num_seeds = np.shape(self.final_losses)
        k = _index("k", k, num_rates, fn="SweepResult.run")
        s = _index("s", s, num_seeds, fn="SweepResult.run")

        def row(tree):
            return jax.tree.map(lambda leaf: leaf[k, s] if _trees._is_array(leaf) else leaf, tree)

        return FitResult(
            params=row(self.params),
            losses=self.losses[k, s],
            diverged_at=self.diverged_at[k, s],
            final_loss=self.final_losses[k, s],
            opt_state=row(self.opt_state),
            monitor=None if self.monitor is None else _monitor_row(self.monitor, k, s),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain Python for `json.dumps(..., allow_nan=False)`; NaN and ±inf become None."""
        out = {
            name: _trees.to_json(getattr(self, name))
            for name in ("learning_rates", "seeds", "losses", "final_losses", "diverged_at")
        }
        monitor = None if self.monitor is None else _monitor_to_json(self.monitor)
        trees = {
            name: _encode(getattr(self, name)) for name in ("params", "opt_state", "initial_params")
        }
        return {**out, **trees, "monitor": monitor}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        """The `SweepResult` `to_dict` wrote, NumPy arrays throughout (float64 losses and rates,
        int64 seeds, int32 `diverged_at`; params and opt_state as in `FitResult.from_dict`)."""
        return cls(
            learning_rates=_trees.from_json(data["learning_rates"]),
            seeds=_trees.from_json(data["seeds"], np.int64),
            losses=_trees.from_json(data["losses"]),
            final_losses=_trees.from_json(data["final_losses"]),
            diverged_at=_trees.from_json(data["diverged_at"], np.int32),
            params=_decode(data["params"]),
            opt_state=_decode(data.get("opt_state")),
            monitor=None if data.get("monitor") is None else _monitor_from_json(data["monitor"]),
            initial_params=_decode(data.get("initial_params")),
        )


def _monitor_row(monitor: Monitor, k: int, s: int) -> Monitor:
    return Monitor(monitor.steps, *(values[k, s] for values in monitor[1:]))


class LRRangeResult(NamedTuple):
    """The outcome of `jaxloss.lr_range_test`: one run, η growing exponentially each step.

    Attributes:
        learning_rates: `(steps,)` float64, η_t = min_lr·(max_lr/min_lr)^(t/(steps−1)).
        losses: `(steps,)` the loss before step t (taken with η_t), NaN from the stop on.
        smoothed_losses: `(steps,)` fastai's debiased exponential moving average of `losses`
            (β = 0.98), NaN from the stop on.
        suggested: the η_t where the smoothed loss falls fastest against log η (most negative
            finite difference `Δ smoothed / Δ log η`), among the steps before the stop.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggested: float

    def to_dict(self) -> dict[str, Any]:
        """Plain Python for `json.dumps(..., allow_nan=False)`; NaN becomes None."""
        return {name: _trees.to_json(value) for name, value in self._asdict().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LRRangeResult:
        """The `LRRangeResult` `to_dict` wrote (float64 NumPy arrays, null → NaN)."""
        arrays = {name: _trees.from_json(data[name]) for name in cls._fields[:3]}
        suggested = data["suggested"]
        return cls(**arrays, suggested=float("nan") if suggested is None else float(suggested))


def _index(name: str, index: Any, size: int, *, fn: str) -> int:
    index = _checks.integer(fn, name, index)
    if not -size <= index < size:
        raise IndexError(
            f"jaxloss.{fn}: `{name}` must lie in [{-size}, {size - 1}] (the sweep has "
            f"{size} along that axis); got {index}."
        )
    return index


def _encode(tree: Any) -> Any:
    """A pytree as tagged strict JSON: `{"array": values, "dtype", "shape"}`, `{"dict": [[key,
    value], …]}`, `{"list": […]}`, `{"tuple": […]}`, `{"namedtuple": "module:Name", "fields":
    {…}}`, `{"value": number or string}`, `{"node": type, "children": […]}` for other pytree
    nodes, `{"repr": …}` for anything else (a callable), null for None."""
    if tree is None:
        return None
    if _trees._is_array(tree):
        array = np.asarray(tree)
        return {
            "array": _trees.to_json(array),
            "dtype": array.dtype.name,
            "shape": list(array.shape),
        }
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        kind = type(tree)
        return {
            "namedtuple": f"{kind.__module__}:{kind.__qualname__}",
            "fields": {name: _encode(value) for name, value in zip(tree._fields, tree)},
        }
    if isinstance(tree, (tuple, list)):
        return {"tuple" if isinstance(tree, tuple) else "list": [_encode(v) for v in tree]}
    if isinstance(tree, dict):
        return {"dict": [[key, _encode(value)] for key, value in tree.items()]}
    if isinstance(tree, (bool, int, float, str)):
        return {"value": _trees.to_json(tree)}
    children = jax.tree_util.tree_flatten(tree, is_leaf=lambda x: x is not tree)[0]
    if children != [tree]:
        return {"node": type(tree).__qualname__, "children": [_encode(c) for c in children]}
    return {"repr": repr(tree)}


def _decode(data: Any) -> Any:
    """The inverse of `_encode`, NumPy arrays for arrays (see `FitResult.from_dict`)."""
    if data is None:
        return None
    if "array" in data:
        dtype = jnp.dtype(data["dtype"])
        return _trees.from_json(data["array"], dtype).reshape(data["shape"])
    if "namedtuple" in data:
        fields = {name: _decode(value) for name, value in data["fields"].items()}
        module, _, name = data["namedtuple"].partition(":")
        # Only classes of modules already imported: reading a file never imports code.
        kind = sys.modules.get(module)
        for part in name.split("."):
            kind = getattr(kind, part, None)
        if isinstance(kind, type) and getattr(kind, "_fields", None) == tuple(fields):
            return kind(**fields)
        return fields
    if "tuple" in data:
        return tuple(_decode(v) for v in data["tuple"])
    if "list" in data:
        return [_decode(v) for v in data["list"]]
    if "dict" in data:
        return {key: _decode(value) for key, value in data["dict"]}
    if "value" in data:
        return data["value"]
    if "node" in data:
        return [_decode(c) for c in data["children"]]
    return None


# ------------------------------------------------------------------------------- one step


def _sgd_leaf(p: jax.Array, g: jax.Array, learning_rate: jax.Array) -> jax.Array:
    # θ − η g in the leaf's dtype, the learning rate rounded to it first: the same arithmetic as
    # optax.sgd + optax.apply_updates with a Python-float (or same-dtype) learning rate.
    return jnp.asarray(p - jnp.asarray(learning_rate, g.dtype) * g).astype(jnp.result_type(p))


def _ravel(tree: Any) -> tuple[tuple[jax.Array, ...], Callable[[tuple[jax.Array, ...]], Any]]:
    """The leaves of `tree` concatenated into one flat vector per dtype, and the inverse.

    The scan carries these few vectors instead of every leaf: per-leaf selects cost one XLA op
    each per step, which on small models made `fit` ~40% slower than a bare scan. Elementwise
    arithmetic on the concatenation is bit-for-bit the per-leaf arithmetic.
    """
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [jnp.asarray(x) for x in leaves]
    names = sorted({jnp.dtype(x.dtype).name for x in leaves})
    groups = [[i for i, x in enumerate(leaves) if jnp.dtype(x.dtype).name == n] for n in names]
    shapes = [tuple(x.shape) for x in leaves]

    def unravel(flats: tuple[jax.Array, ...]) -> Any:
        out: list[Any] = [None] * len(shapes)
        for group, flat in zip(groups, flats):
            offsets = np.cumsum([0] + [int(np.prod(shapes[i])) for i in group])
            for i, start, stop in zip(group, offsets[:-1], offsets[1:]):
                out[i] = flat[start:stop].reshape(shapes[i])
        return treedef.unflatten(out)

    flats = tuple(jnp.concatenate([leaves[i].ravel() for i in group]) for group in groups)
    return flats, unravel


def _masked(spec: _trees.TreeSpec, trainable: Sequence[Any]) -> Any:
    """The params pytree with None at every leaf that does not train: what the optimizer sees
    (equinox's `filter` convention; optax skips None), so its state mirrors `params`."""
    leaves = [None] * len(spec.roles)
    for i, leaf in zip(_trees.trainable_positions(spec), trainable):
        leaves[i] = leaf
    return spec.treedef.unflatten(leaves)


def sgd_step(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    learning_rate: Any,
) -> tuple[Any, jax.Array]:
    """One gradient-descent step `θ ← θ − η ∇L(θ)`, with `g = jax.grad` (back propagation).

    Pure: nothing is updated in place; jit it, vmap it over `learning_rate`, scan it.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: any pytree with at least one floating-point array leaf. Those leaves step; every
            other leaf (an int counter, a bool mask, a Python callable) is passed to
            `objective_fn` and returned unchanged.
        inputs, targets: the (mini)batch passed to `objective_fn`.
        learning_rate: η, a real scalar (Python float or 0-d array, may be traced); an array of
            another shape is a ValueError (it would broadcast over the leaves). It is rounded to
            each parameter's dtype; parameter dtypes are kept.

    Returns:
        `(new_params, loss)`: `new_params` with the structure and dtypes of `params`, and `loss`
        the objective at the OLD `params`.

    Raises:
        TypeError: if no leaf of `params` is a floating-point array (nothing to train).

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> params = init_fn(jax.random.key(0))
        >>> step = jax.jit(jaxloss.sgd_step, static_argnums=0)  # compiled once, for any η
        >>> params, loss = step(f, params, x, y, 0.1)
        >>> loss  # at the old params
        Array(1.185..., dtype=float32)
        >>> f(params, x, y)  # one step later
        Array(1.171..., dtype=float32)

    Reference: Cauchy (1847); bit-for-bit equal to `optax.sgd(learning_rate)` followed by
    `optax.apply_updates` for a Python-float learning rate or one of the parameters' dtype (a
    float64 learning rate with float32 parameters makes optax compute the update in float64).
    """
    learning_rate = _checks.scalar("sgd_step", "learning_rate", learning_rate)
    trainable, frozen, spec = _trees.partition("sgd_step", "params", params)

    def loss_of(leaves):
        return objective_fn(_trees.combine(spec, leaves, frozen), inputs, targets)

    loss, grads = jax.value_and_grad(loss_of)(trainable)
    stepped = tuple(_sgd_leaf(p, g, learning_rate) for p, g in zip(trainable, grads))
    return _trees.combine(spec, stepped, frozen), loss


# ------------------------------------------------------------------------------ the scan loop


class _Config(NamedTuple):
    """Everything static about a run: ONE hashable jit argument for `fit`, `sweep` and
    `lr_range_test` alike."""

    fn: str  # the public function the user called, for error messages
    objective_fn: Callable
    optimizer: Callable  # learning rate (or schedule) -> optax.GradientTransformation
    rate_kind: str  # "constant" (η traced), "schedule" (`schedule`), "exponential" (η_min, η_max)
    schedule: Callable | None
    spec: _trees.TreeSpec  # the leaves of `params` that do not train
    batch_size: int | None
    length: int  # steps in this chunk
    monitor_every: int | None = None
    parallel_runs: int | None = None  # sweep: runs computed at once; None for one run
    per_seed: bool = False  # sweep: one start per seed (init_fn) instead of one shared start
    batch_sharding: Any = None  # the sharding minibatches keep (data parallelism), or None
    mesh: Any = None  # sweep: the mesh whose devices share the runs, or None


class _State(NamedTuple):
    """A run between chunks: trainable leaves (a tuple) and the optimizer state."""

    params: tuple
    opt_state: Any
    last_good: tuple  # the last params whose loss was finite: where a diverged run stops
    last_good_opt: Any  # the optimizer state that goes with them
    diverged_at: jax.Array
    probe: tuple | None  # sharpness monitor: the eigenvector estimate to warm-start from


def _plain_sgd(config: _Config) -> bool:
    # The default: today's flat θ − η g (optax.sgd's arithmetic, its state is empty).
    return config.optimizer is optax.sgd and config.rate_kind == "constant"


def _transformation(config: _Config, rate: Any, steps: jax.Array) -> Any:
    """`optimizer(η)`, built inside the traced program: the rate is traced into it."""
    if config.rate_kind == "schedule":
        rate = config.schedule
    elif config.rate_kind == "exponential":
        low, high = rate[0], rate[1]
        rate = lambda count: low * (high / low) ** (count / jnp.maximum(steps - 1, 1))  # noqa: E731
    return config.optimizer(rate)


def _start(config: _Config, params: tuple, rate: Any, steps: jax.Array) -> _State:
    """The state before step 0 of one run, from its trainable leaves."""
    opt_state = _transformation(config, rate, steps).init(_masked(config.spec, params))
    probe = None
    if config.monitor_every is not None:
        keys = jax.random.split(jax.random.key(0), len(params))
        probe = tuple(jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, params))
    return _State(params, opt_state, params, opt_state, jnp.int32(-1), probe)


def _run(config, state, frozen, rate, key, inputs, targets, t0, steps):
    """Steps `t0 .. t0 + length - 1` of one run of `steps` (later ones are padding: no-ops).

    The scan carries the params and the optimizer state `_ravel`-ed (one flat vector per dtype).
    Returns the state, the per-step records (losses, and `(3, length)` monitor values or None)
    and the loss after the last step on all the data."""
    n = num_samples(config.fn, inputs, targets)
    params, p_unravel = _ravel(state.params)
    opt_flat, o_unravel = _ravel(state.opt_state)
    opt = _transformation(config, rate, steps)
    plain = _plain_sgd(config)

    def loss_of(leaves, x, y):
        return config.objective_fn(_trees.combine(config.spec, leaves, frozen), x, y)

    def update(params, opt_flat, grads):
        """θ_{t+1} and the optimizer state after the step (flat), and g·u for the update u
        (before rounding to the parameters; its leaves may have other dtypes than θ's)."""
        if plain:
            g_dot_u = -rate * _vdot(grads, grads)
            return tuple(_sgd_leaf(p, g, rate) for p, g in zip(params, grads)), opt_flat, g_dot_u
        tree = _masked(config.spec, p_unravel(params))
        grad_tree = _masked(config.spec, p_unravel(grads))
        updates, new_opt = opt.update(grad_tree, o_unravel(opt_flat), tree)
        stepped = optax.apply_updates(tree, updates)
        return _ravel(stepped)[0], _ravel(new_opt)[0], _vdot(grad_tree, updates)

    def measure(probe, t, params, grads, stepped, g_dot_u, loss, x, y):
        """λ_max (power iteration), ‖g‖² and the one-step Taylor ratio; the next probe."""

        def f(flats):
            return loss_of(p_unravel(flats), x, y)

        iters = jnp.where(t == 0, _MONITOR_FIRST_ITERS, _MONITOR_ITERS)
        sharpness, probe = power_iteration(lambda v: _hvp(f, params, v), probe, iters)
        ratio = (f(stepped) - loss) / g_dot_u
        values = jnp.stack(
            [jnp.asarray(v, loss.dtype) for v in (sharpness, _vdot(grads, grads), ratio)]
        )
        return probe, values

    def body(carry, t):
        params, opt_flat, last_good, last_good_opt, diverged_at, probe = carry
        if config.batch_size is None:
            x, y = inputs, targets
        else:
            idx = jax.random.choice(jax.random.fold_in(key, t), n, (config.batch_size,), False)
            x, y = jax.tree.map(lambda a: a[idx], (inputs, targets))
            if config.batch_sharding is not None:
                # Sharded data: keep the minibatch split too, so each device differentiates its
                # part and one all-reduce sums the gradient (else every device would do it all).
                x, y = jax.lax.with_sharding_constraint((x, y), config.batch_sharding)
        loss, grads = jax.value_and_grad(loss_of)(p_unravel(params), x, y)
        grads = _ravel(grads)[0]
        running = (t < steps) & (diverged_at < 0)
        advance = running & jnp.isfinite(loss)
        stop_now = running & ~jnp.isfinite(loss)
        stepped, new_opt, g_dot_u = update(params, opt_flat, grads)
        # A run that just hit a non-finite loss goes back to its last finite params and stays.
        new_carry = [
            _select(advance, stepped, _select(stop_now, last_good, params)),
            _select(advance, new_opt, _select(stop_now, last_good_opt, opt_flat)),
            _select(advance, params, last_good),
            _select(advance, opt_flat, last_good_opt),
            jnp.where(stop_now, t, diverged_at),
            probe,
        ]
        recorded = jnp.where(diverged_at >= 0, jnp.nan, loss).astype(loss.dtype)
        if config.monitor_every is None:
            return tuple(new_carry), (recorded, None)
        record = running & ((t % config.monitor_every == 0) | (t == steps - 1))
        operands = (probe, t, params, grads, stepped, g_dot_u, loss, x, y)
        skip = lambda probe, *_: (probe, jnp.full(3, jnp.nan, loss.dtype))  # noqa: E731
        new_carry[-1], values = jax.lax.cond(record, measure, skip, *operands)
        return tuple(new_carry), (recorded, values)

    ts = t0 + jnp.arange(config.length, dtype=jnp.int32)
    probe = None if state.probe is None else _ravel(state.probe)[0]
    carry = (
        params,
        opt_flat,
        _ravel(state.last_good)[0],
        _ravel(state.last_good_opt)[0],
        state.diverged_at,
        probe,
    )
    carry, (losses, values) = jax.lax.scan(body, carry, ts)
    params, opt_flat, last_good, last_good_opt, diverged_at, probe = carry

    # The loss after the last step, on all the data: counts as divergence when not finite.
    final = loss_of(p_unravel(params), inputs, targets)
    blew_up = (t0 + config.length >= steps) & (diverged_at < 0) & ~jnp.isfinite(final)
    diverged_at = jnp.where(blew_up, steps, diverged_at)
    final = jnp.where(diverged_at >= 0, jnp.nan, final).astype(final.dtype)
    state = _State(
        params=p_unravel(_select(blew_up, last_good, params)),
        opt_state=o_unravel(_select(blew_up, last_good_opt, opt_flat)),
        last_good=p_unravel(last_good),
        last_good_opt=o_unravel(last_good_opt),
        diverged_at=diverged_at,
        probe=None if probe is None else p_unravel(probe),
    )
    return state, (losses, None if values is None else values.T), final


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _core(config, state, start, frozen, rates, keys, inputs, targets, t0, steps):
    """One chunk of steps of every run; `state` None starts from `start`.

    One run (`fit`): `start` its trainable leaves, `rates` its η, `keys` its batch key.
    K·S runs (`sweep`, run k·S + s has η `rates[k]` and seed s): `start` and `frozen` with a
    leading seed axis S when `config.per_seed` (else shared), `keys` the (S,) batch keys.
    Returns the state, the per-step records and final losses (the step axis last), and for a
    sweep the (K, S)-stacked trainable leaves, optimizer states and frozen leaves."""
    if config.parallel_runs is None:
        if state is None:
            state = _start(config, start, rates, steps)
        return _run(config, state, frozen, rates, keys, inputs, targets, t0, steps)

    num_rates, num_seeds = rates.shape[0], keys.shape[0]
    runs = num_rates * num_seeds
    devices = 1 if config.mesh is None else config.mesh.size
    # Padded with copies of the first runs to a multiple of (devices × runs at once), so that the
    # mapped function is traced (and compiled) once; the copies are dropped at the end.
    chunk = min(config.parallel_runs, -(-runs // devices))
    padded = -(-runs // (chunk * devices)) * chunk * devices

    frozen = _per_run(config, frozen, num_rates, num_seeds)
    args = (
        state,
        _per_run(config, start, num_rates, num_seeds),
        frozen,
        jnp.repeat(rates, num_seeds),
        jnp.tile(keys, num_rates),
    )
    if padded > runs:
        args = jax.tree.map(lambda a: a[np.arange(padded) % runs], args)

    def run(args, inputs, targets):
        run_state, run_start, run_frozen, rate, key = args
        if run_state is None:
            run_state = _start(config, run_start, rate, steps)
        return _run(config, run_state, run_frozen, rate, key, inputs, targets, t0, steps)

    def runs_here(args, inputs, targets):
        """This device's runs: all at once (the GPU/TPU default) or `chunk` at a time."""
        mapped = functools.partial(run, inputs=inputs, targets=targets)
        if chunk == 1:  # the CPU default: no batching copies at all
            return jax.lax.map(mapped, args)
        if chunk == jax.tree.leaves(args)[0].shape[0]:
            return jax.vmap(mapped)(args)
        return jax.lax.map(mapped, args, batch_size=chunk)

    if config.mesh is None:
        out = runs_here(args, inputs, targets)
    else:
        # Hyperparameter parallelism: each device trains whole runs on all the data.
        runs_spec, everywhere = PartitionSpec(config.mesh.axis_names), PartitionSpec()
        out = jax.shard_map(
            runs_here,
            mesh=config.mesh,
            in_specs=(runs_spec, everywhere, everywhere),
            out_specs=runs_spec,
            check_vma=False,  # no collective inside: each device's runs are independent
        )(args, inputs, targets)
    state, (losses, values), final = jax.tree.map(lambda a: a[:runs], out)

    def grid(a):
        return a.reshape(num_rates, num_seeds, *a.shape[1:])

    stacked = jax.tree.map(grid, (state.params, state.opt_state, frozen))
    return state, (grid(losses), None if values is None else grid(values)), grid(final), stacked


_core_jit = jax.jit(_core, static_argnums=(0,))


def _begin(config, start, rates, keys, steps):
    """The initial state of every run, as `_core` would build it (its own small program with a
    progress bar, so that every chunk shares one compilation)."""
    if config.parallel_runs is None:
        return _start(config, start, rates, steps)
    num_rates, num_seeds = rates.shape[0], keys.shape[0]
    starts = _per_run(config, start, num_rates, num_seeds)
    return jax.vmap(lambda p, r: _start(config, p, r, steps))(starts, jnp.repeat(rates, num_seeds))


def _per_run(config, tree, num_rates, num_seeds):
    """Leaves per seed `(S, ...)` (or shared) -> per run `(K·S, ...)`: run k·S + s is seed s."""

    def tile(a):
        a = a if config.per_seed else jnp.broadcast_to(a, (num_seeds, *a.shape))
        return jnp.tile(a, (num_rates,) + (1,) * (a.ndim - 1))

    return jax.tree.map(tile, tree)


_begin_jit = jax.jit(_begin, static_argnums=(0,))


# ---------------------------------------------------------------------------- argument checks


def _batch_size(fn: str, batch_size: Any, n: int, key: Any, needs_key: bool) -> int | None:
    if batch_size is None:
        return None
    batch_size = _checks.positive_int(fn, "batch_size", batch_size)
    if batch_size > n:
        raise ValueError(
            f"jaxloss.{fn}: `batch_size` must be at most the number of samples {n}; got "
            f"{batch_size}."
        )
    if needs_key and key is None:
        raise ValueError(
            f"jaxloss.{fn}: `key` must be given when `batch_size` is set (the minibatches are "
            "drawn from it), e.g. key=jax.random.key(0); got None."
        )
    return batch_size


def _learning_rates(fn: str, name: str, value: Any, ndim: int) -> jax.Array:
    if ndim == 0:
        rates = _checks.scalar(fn, name, value)
    else:
        rates = _checks.real(fn, name, value)
        if rates.ndim != 1 or rates.shape[0] == 0:
            raise ValueError(
                f"jaxloss.{fn}: `{name}` must be a non-empty 1-D array; got shape {rates.shape}."
            )
    _checks.in_range(fn, name, value, low=0.0)
    # One dtype for every call, so that a Python float and a NumPy scalar share one compilation;
    # cast in NumPy when concrete (an eager JAX cast costs more than a small fit's step).
    dtype = jnp.result_type(float)
    return rates.astype(dtype) if isinstance(rates, jax.core.Tracer) else np.asarray(rates, dtype)


def _optimizer(fn: str, optimizer: Any, learning_rate: Any) -> Callable:
    """`optimizer` must map a learning rate (or schedule) to an optax.GradientTransformation;
    called once here on the concrete value, so that a wrong one fails before tracing."""
    if isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"jaxloss.{fn}: `optimizer` must be a function of the learning rate, e.g. optax.adam "
            "or functools.partial(optax.sgd, momentum=0.9); got an optax.GradientTransformation "
            "(pass optax.adam, not optax.adam(1e-3): the learning rate comes from jaxloss)."
        )
    if not callable(optimizer):
        raise TypeError(
            f"jaxloss.{fn}: `optimizer` must be a callable mapping a learning rate to an "
            f"optax.GradientTransformation (e.g. optax.adam); got {optimizer!r}."
        )
    made = optimizer(learning_rate)
    if not isinstance(made, optax.GradientTransformation):
        raise TypeError(
            f"jaxloss.{fn}: `optimizer(learning_rate)` must return an "
            f"optax.GradientTransformation; {optimizer!r} returned {type(made).__name__}."
        )
    return optimizer


def _monitor_every(fn: str, monitor_every: Any) -> int | None:
    if monitor_every is None:
        return None
    return _checks.integer(fn, "monitor_every", monitor_every, low=1, high=2**31 - 1)


def _progress_bar(fn: str, total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            f"jaxloss.{fn}: `progress=True` needs tqdm, which is not installed. Install it with "
            "`pip install 'jaxloss[progress]'` (or `pip install tqdm`), or pass progress=False."
        ) from None
    return tqdm(total=total, desc=f"jaxloss.{fn}", unit="step")


def _drive(config, steps, progress, start, frozen, rates, keys, inputs, targets):
    """Run `_core` over all `steps`: one call, or (with a progress bar) `_PROGRESS_UPDATES`
    chunks sharing one compilation, the bar updated between them. Returns `_core`'s output with
    the per-step records of all chunks concatenated (step axis last)."""
    args = (start, frozen, rates, keys, inputs, targets)
    steps_arg = np.int32(steps)  # NumPy scalars: no eager JAX op before the one compiled call
    if not progress:
        return _core_jit(config, None, *args, np.int32(0), steps_arg)
    bar = _progress_bar(config.fn, steps)
    length = -(-steps // _PROGRESS_UPDATES)
    config = config._replace(length=length)
    state = _begin_jit(config, start, rates, keys, steps_arg)
    pieces = []
    try:
        for t0 in range(0, steps, length):
            out = _core_jit(config, state, *args, np.int32(t0), steps_arg)
            state = out[0]
            pieces.append(jax.block_until_ready(out[1]))
            bar.update(min(length, steps - t0))
    finally:
        bar.close()
    records = jax.tree.map(lambda *a: jnp.concatenate(a, axis=-1)[..., :steps], *pieces)
    return (state, records, *out[2:])


# ------------------------------------------------------------------------------- fit / sweep


def fit(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    learning_rate: Any,
    steps: int,
    batch_size: int | None = None,
    key: jax.Array | None = None,
    progress: bool = False,
    optimizer: Callable[[Any], optax.GradientTransformation] = optax.sgd,
    monitor_every: int | None = None,
) -> FitResult:
    """Gradient descent `θ_{t+1} = θ_t − η ∇L(θ_t)` (or any optax optimizer) for `steps` steps,
    as one `lax.scan`.

    Full-batch by default; with `batch_size`, step `t` uses `batch_size` samples drawn without
    replacement from `jax.random.fold_in(key, t)` (minibatch SGD). A run whose loss stops being
    finite stops there: its params (and optimizer state) stay at the last values with a finite
    loss.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: initial parameters, any pytree with at least one floating-point array leaf.
            Those leaves train; the others (int counters, bool masks, Python callables) reach
            `objective_fn` and come back unchanged (a new Python leaf object compiles afresh).
        inputs, targets: the data set, arrays (or pytrees) with a shared leading axis N ≥ 1.
        learning_rate: η ≥ 0, a real scalar (not an array of another shape; new values do not
            recompile), or an optax schedule `count -> η` (η_t = schedule(t); a new schedule
            object compiles afresh).
        steps: number of steps, an integer ≥ 1 (Python or NumPy int; not a bool or a float).
            One compilation per value; the loop is not unrolled.
        batch_size: None (full batch) or an integer 1 ≤ batch_size ≤ N.
        key: a `jax.random` key (new-style or legacy uint32) or an int seed; required with
            `batch_size`, unused without.
        progress: show a tqdm progress bar (needs `tqdm`, the `progress` extra); the scan then
            runs in 20 chunks with the bar updated between them.
        optimizer: a function mapping the learning rate (or schedule) to an
            `optax.GradientTransformation`: `optax.sgd` (the default: exactly `sgd_step`),
            `optax.adam`, `functools.partial(optax.sgd, momentum=0.9)`, … It is called inside
            the compiled program (η is traced into it) and is a compilation key: define it
            once and pass the same object.
        monitor_every: None (off), or k ≥ 1: record the sharpness λ_max, ‖g‖² and the one-step
            Taylor ratio at steps 0, k, 2k, … and the last step, in the same compiled scan
            (the other steps pay nothing). λ_max: power iteration on Hessian-vector products,
            100 iterations from a random start at step 0, then 20 per record warm-started from
            the previous eigenvector. See `Monitor`.

    Returns:
        `FitResult(params, losses (steps,), diverged_at (), final_loss (), opt_state, monitor)`.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> result = jaxloss.fit(f, init_fn(jax.random.key(0)), x, y, learning_rate=0.5, steps=200)
        >>> result.losses[0], result.final_loss, int(result.diverged_at)
        (Array(1.185..., dtype=float32), Array(0.91..., dtype=float32), -1)
        >>> adam = jaxloss.fit(f, init_fn(jax.random.key(0)), x, y, learning_rate=0.01,
        ...                    steps=200, optimizer=optax.adam)
        >>> adam.final_loss, type(adam.opt_state[0]).__name__
        (Array(0.6..., dtype=float32), 'ScaleByAdamState')

    Reference: Robbins & Monro (1951) for the minibatch case; every step of the default equals
    `jaxloss.sgd_step` (and hence `optax.sgd`) on the same batch; with `optimizer`, every step is
    `optimizer(η).update` followed by `optax.apply_updates`.
    """
    fn = "fit"
    steps = _checks.positive_int(fn, "steps", steps)
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    n = num_samples(fn, inputs, targets)
    batch_size = _batch_size(fn, batch_size, n, key, needs_key=True)
    if callable(learning_rate):
        schedule, rate, kind = learning_rate, None, "schedule"
        _checks.scalar(fn, "learning_rate(0)", learning_rate(0))
        _optimizer(fn, optimizer, schedule)
    else:
        rate = _learning_rates(fn, "learning_rate", learning_rate, ndim=0)
        schedule, kind = None, "constant"
        _optimizer(fn, optimizer, learning_rate)
    if key is not None:
        key = _checks.prng_key(fn, "key", key)
    if batch_size is None:
        key = None
    config = _Config(
        fn,
        objective_fn,
        optimizer,
        kind,
        schedule,
        spec,
        batch_size,
        steps,
        monitor_every=_monitor_every(fn, monitor_every),
        batch_sharding=parallel._minibatch_sharding(inputs, targets, batch_size),
    )
    state, (losses, values), final = _drive(
        config, steps, progress, trainable, frozen, rate, key, inputs, targets
    )
    return FitResult(
        _trees.combine(spec, state.params, frozen),
        losses,
        state.diverged_at,
        final,
        state.opt_state,
        None if values is None else _monitor(values, steps, config.monitor_every),
    )


def _monitor(values: jax.Array, steps: int, every: int) -> Monitor:
    """The recorded steps of `values` (`(..., 3, steps)`, NaN where not recorded)."""
    recorded = np.unique(np.r_[np.arange(0, steps, every), steps - 1]).astype(np.int32)
    picked = values[..., recorded]
    return Monitor(jnp.asarray(recorded), picked[..., 0, :], picked[..., 1, :], picked[..., 2, :])


def sweep(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    learning_rates: Any,
    steps: int,
    seeds: int | Sequence[int] | None = None,
    init_fn: Callable[[jax.Array], Any] | None = None,
    batch_size: int | None = None,
    parallel_runs: int | None = None,
    progress: bool = False,
    optimizer: Callable[[Any], optax.GradientTransformation] = optax.sgd,
    monitor_every: int | None = None,
    mesh: Mesh | None = None,
) -> SweepResult:
    """`fit` for K learning rates × S seeds at once, all K·S runs in one compiled program.

    Run (k, s) is exactly `fit(objective_fn, p_s, inputs, targets, learning_rate=learning_rates[k],
    steps=steps, batch_size=batch_size, key=batch_key_s, optimizer=optimizer)` with
    `init_key_s, batch_key_s = jax.random.split(jax.random.key(seeds[s]))` and
    `p_s = init_fn(init_key_s)` (or `params` when no `init_fn` is given). A seed beyond 32 bits
    gets the key `jax.random.key(seed)` gives with `jax_enable_x64` on (its high and low 32 bits),
    whatever the x64 setting: every Python int seed in [-2**63, 2**63) is used exactly. Runs are
    independent: a diverging learning rate stops only its own runs.

    How the runs share the device: `parallel_runs` of them run at once (`jax.vmap`), in groups
    one after another (`jax.lax.map`). On a CPU one at a time is fastest (vmapping the small
    kernels of a step only adds layout copies); on a GPU/TPU all at once fills the device. Either
    way it is one compilation, and new learning rates, seeds or data never recompile: the rate is
    traced into `optimizer(η)` inside the program.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: initial parameters shared by every run (a pytree with at least one
            floating-point array leaf; the other leaves pass through, as in `fit`), or None when
            `init_fn` is given.
        inputs, targets: the data set, arrays (or pytrees) with a shared leading axis N ≥ 1.
        learning_rates: `(K,)`, every value ≥ 0. New values do not recompile.
        steps: number of steps per run, an integer ≥ 1.
        seeds: a sequence of integer seeds (any Python or NumPy int in [-2**63, 2**63)), or an
            int S for seeds `0 .. S-1`; None means the single seed 0. They select `init_fn`'s
            initialisation and the minibatches.
        init_fn: `init_fn(key) -> params` (e.g. from `jaxloss.mlp`) to re-initialise per seed.
            It is called once per seed before the compiled program; every seed's params must
            have the same leaves that do not train (the same Python objects: define callables
            once, outside `init_fn`) and the same shapes and dtypes.
        batch_size: None (full batch) or an integer 1 ≤ batch_size ≤ N (the minibatch size).
        parallel_runs: how many of the K·S runs (of each device's share, with `mesh`) are
            computed at once, an integer ≥ 1 (values above the count mean all of them; the runs
            are padded to a multiple of it). None (default) picks by `jax.default_backend()`: 1
            on CPU, all of them on GPU/TPU. Results depend on it
            only through float roundoff (vmapped kernels round differently), which training at a
            large, barely stable η can amplify over many steps.
        progress: show a tqdm progress bar (needs `tqdm`), updated between 20 chunks.
        optimizer: as in `fit` (default `optax.sgd`); the same object keeps one compilation.
        monitor_every: as in `fit`, per run. With the runs vmapped (`parallel_runs` > 1) every
            step pays for the monitor: a vmapped `lax.cond` computes both branches.
        mesh: None (default), or a `jax.sharding.Mesh` (e.g. `jaxloss.data_parallel_mesh()`)
            whose devices share the K·S runs: hyperparameter parallelism, each device training
            whole runs on all the data (the data are copied to every device). When K·S is not
            a multiple of the device count, copies of the first runs fill the last devices and
            are dropped. The results are those of the sweep without `mesh`. (For data
            parallelism instead, pass `inputs`/`targets` from `jaxloss.shard_batch`.)

    Returns:
        `SweepResult` with `losses (K, S, steps)`, `final_losses (K, S)`, `diverged_at (K, S)`,
        the stacked `params` and `opt_state`, `best()` and `run(k, s)`.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> result = jaxloss.sweep(f, None, x, y, learning_rates=[0.01, 0.1, 1.0, 100.0],
        ...                        steps=200, seeds=2, init_fn=init_fn)
        >>> result.final_losses.shape, result.best()
        ((4, 2), 1.0)
        >>> result.seeds
        array([0, 1])
        >>> result.run(2, 1).final_loss  # learning rate 1.0, seed 1
        Array(0.65..., dtype=float32)
        >>> f(result.initial(1), x, y)  # where seed 1's runs started: init_fn's params
        Array(1.1..., dtype=float32)

    Reference: the learning-rate range test of Smith, "Cyclical Learning Rates for Training Neural
    Networks" (WACV 2017), run in parallel instead of along one run.
    """
    fn = "sweep"
    steps = _checks.positive_int(fn, "steps", steps)
    n = num_samples(fn, inputs, targets)
    batch_size = _batch_size(fn, batch_size, n, None, needs_key=False)
    rates = _learning_rates(fn, "learning_rates", learning_rates, ndim=1)
    _optimizer(fn, optimizer, rates[0])
    seeds, seed_keys = _seeds(seeds)
    if mesh is not None:
        mesh = parallel._mesh(fn, mesh)
    runs_per_device = -(-rates.shape[0] * seeds.shape[0] // (1 if mesh is None else mesh.size))
    minibatch_sharding = parallel._minibatch_sharding(inputs, targets, batch_size)
    if (init_fn is None) == (params is None):
        raise ValueError(
            "jaxloss.sweep: give exactly one of `params` (shared initial parameters) and "
            "`init_fn` (re-initialise per seed); got "
            + ("both." if init_fn is not None else "neither.")
        )
    init_keys, batch_keys = _split(seed_keys)
    if init_fn is None:
        start, frozen, spec = _trees.partition(fn, "params", params)
        num_seeds = seeds.shape[0]
        initial = jax.tree.map(
            lambda leaf: (
                jnp.broadcast_to(leaf, (num_seeds, *jnp.shape(leaf)))
                if _trees._is_array(leaf)
                else leaf
            ),
            params,
        )
    else:
        start, frozen, spec = _initial_params(init_fn, init_keys)
        initial = _trees.combine(spec, start, frozen)
    config = _Config(
        fn,
        objective_fn,
        optimizer,
        "constant",
        None,
        spec,
        batch_size,
        steps,
        monitor_every=_monitor_every(fn, monitor_every),
        parallel_runs=_parallel_runs(parallel_runs, runs_per_device),
        per_seed=init_fn is not None,
        # With a mesh each device holds all the data: minibatches stay whole.
        batch_sharding=minibatch_sharding if mesh is None else None,
        mesh=mesh,
    )
    state, (losses, values), final, (trainable, opt_state, frozen) = _drive(
        config, steps, progress, start, frozen, rates, batch_keys, inputs, targets
    )
    diverged_at = state.diverged_at.reshape(final.shape)
    params = _trees.combine(spec, trainable, frozen)
    monitor = None if values is None else _monitor(values, steps, config.monitor_every)
    return SweepResult(
        rates, seeds, losses, final, diverged_at, params, opt_state, monitor, initial
    )


def _split(seed_keys):
    keys = jax.vmap(jax.random.split)(seed_keys)
    return keys[:, 0], keys[:, 1]


def _initial_params(init_fn: Callable, init_keys: jax.Array):
    """`init_fn` on every seed's key, split as `_trees.partition`: trainable and frozen leaves
    stacked along a seed axis, and the static part, which every seed must share."""
    parts = []
    for init_key in init_keys:
        parts.append(_trees.partition("sweep", "init_fn(key)", init_fn(init_key)))
        trainable, frozen, spec = parts[-1]
        first = parts[0]
        shapes = [(jnp.shape(a), jnp.result_type(a)) for a in (*trainable, *frozen)]
        first_shapes = [(jnp.shape(a), jnp.result_type(a)) for a in (*first[0], *first[1])]
        if spec != first[2] or shapes != first_shapes:
            raise ValueError(
                "jaxloss.sweep: `init_fn` must give every seed parameters of the same structure, "
                "shapes and dtypes, with the same non-array leaves (compared by identity: define "
                f"callables once, outside init_fn); seed {len(parts) - 1} differs from seed 0: "
                f"{spec.treedef} {shapes} against {first[2].treedef} {first_shapes}."
            )
    trainable, frozen = (
        tuple(map(jnp.stack, zip(*leaves))) for leaves in zip(*(p[:2] for p in parts))
    )
    return trainable, frozen, parts[0][2]


def _parallel_runs(parallel_runs: Any, runs: int) -> int:
    """How many runs to vmap at once: 1 on CPU (vmap only adds layout copies around small
    kernels there), all of them on GPU/TPU; a user's value is clipped to `runs`, so that every
    value from `runs` up shares one compilation."""
    if parallel_runs is None:
        return 1 if jax.default_backend() == "cpu" else runs
    return min(_checks.positive_int("sweep", "parallel_runs", parallel_runs), runs)


def _seeds(seeds: Any) -> tuple[np.ndarray, jax.Array]:
    """The seeds as an exact int64 NumPy array, and their `(S,)` PRNG keys (built on the host:
    a seed array inside the compiled program would be int32 and wrap seeds beyond 32 bits)."""
    if seeds is None:
        seeds = [0]
    elif not isinstance(seeds, (Sequence, np.ndarray, jax.Array)) or np.ndim(seeds) == 0:
        seeds = range(_checks.positive_int("sweep", "seeds", seeds))
    elif np.ndim(seeds) != 1 or len(seeds) == 0:
        raise ValueError(
            "jaxloss.sweep: `seeds` must be an int S or a non-empty 1-D sequence of integer seeds; "
            f"got shape {np.shape(seeds)}."
        )
    exact = [_checks.integer("sweep", f"seeds[{i}]", s) for i, s in enumerate(seeds)]
    keys = jnp.stack([_checks.seed_key("sweep", f"seeds[{i}]", s) for i, s in enumerate(exact)])
    return np.asarray(exact, np.int64), keys


# ------------------------------------------------------------------------------ LR range test


def lr_range_test(
    objective_fn: Callable[[Any, Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    targets: Any,
    *,
    min_lr: float,
    max_lr: float,
    steps: int,
    optimizer: Callable[[Any], optax.GradientTransformation] = optax.sgd,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> LRRangeResult:
    """The learning-rate range test: one run whose η grows exponentially from `min_lr` to
    `max_lr`, stopped once the loss blows up; the η where the loss falls fastest is suggested.

    Step t uses η_t = min_lr·(max_lr/min_lr)^(t/(steps−1)) (an optax schedule passed to
    `optimizer`), all steps in one compiled `lax.scan` (the `fit` loop). The recorded loss is
    smoothed as fastai does, a debiased exponential moving average: `a_t = β a_{t−1} + (1−β) L_t`,
    `smoothed_t = a_t / (1 − β^{t+1})`, β = 0.98. The run stops at the first step whose smoothed
    loss exceeds 4× the smallest one so far (or whose loss is not finite): `losses` and
    `smoothed_losses` are NaN after it. (The rule is applied to the records; the compiled scan
    itself runs every step, frozen only once the loss is not finite, as in `fit`.) `suggested`
    is the η_t with the most negative slope `d smoothed / d log η` (NumPy's `np.gradient`,
    central differences) over the steps before the stop: the steepest descent of the smoothed
    curve. The smoothing lags the raw loss by up to
    ~1/(1−β) = 50 steps: give a few hundred steps over the range for a sharp suggestion.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: initial parameters, any pytree (float array leaves train, as in `fit`).
        inputs, targets: the data set, arrays (or pytrees) with a shared leading axis N ≥ 1.
        min_lr, max_lr: the range, 0 < min_lr < max_lr (new values do not recompile).
        steps: number of steps, an integer ≥ 3.
        optimizer: as in `fit` (default `optax.sgd`): it receives the schedule.
        batch_size, key: minibatches as in `fit` (None: full batch).

    Returns:
        `LRRangeResult(learning_rates, losses, smoothed_losses, suggested)`, NumPy float64.

    Example:
        >>> x, y, _ = jaxloss.linear_regression(64, 3, key=0)
        >>> init_fn, apply_fn = jaxloss.linear(3, 1)
        >>> f = jaxloss.objective(apply_fn, jaxloss.mse)
        >>> result = jaxloss.lr_range_test(f, init_fn(0), x, y, min_lr=1e-3, max_lr=10.0,
        ...                                steps=200)
        >>> round(result.suggested, 4)  # the steepest fall of the smoothed loss
        0.0244
        >>> stop = int(np.isfinite(result.losses).sum()) - 1  # NaN after the stop
        >>> round(float(result.learning_rates[stop]), 2)  # 2/λ_max = 0.76 for these data
        2.17

    Reference: Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017), §3.3;
    the smoothing and the 4× stop of fastai's `lr_find` and pytorch-lr-finder.
    """
    fn = "lr_range_test"
    steps = _checks.integer(fn, "steps", steps, low=3, high=2**31 - 1)
    trainable, frozen, spec = _trees.partition(fn, "params", params)
    n = num_samples(fn, inputs, targets)
    batch_size = _batch_size(fn, batch_size, n, key, needs_key=True)
    _checks.in_range(fn, "min_lr", min_lr, low=0.0, low_inclusive=False)
    _checks.in_range(fn, "max_lr", max_lr, low=float(min_lr), low_inclusive=False)
    rates = jnp.asarray([min_lr, max_lr], jnp.result_type(float))
    _optimizer(fn, optimizer, min_lr)
    if batch_size is None:
        key = None
    elif key is not None:
        key = _checks.prng_key(fn, "key", key)
    config = _Config(
        fn,
        objective_fn,
        optimizer,
        "exponential",
        None,
        spec,
        batch_size,
        steps,
        batch_sharding=parallel._minibatch_sharding(inputs, targets, batch_size),
    )
    _, (losses, _), _ = _drive(config, steps, False, trainable, frozen, rates, key, inputs, targets)
    learning_rates = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    return _range_result(learning_rates, np.asarray(losses, np.float64))


def _range_result(learning_rates: np.ndarray, losses: np.ndarray) -> LRRangeResult:
    """Smoothing, stop and suggestion of `lr_range_test`, on the host in float64."""
    average, smoothed = 0.0, np.full_like(losses, np.nan)
    stop = len(losses)
    for t, loss in enumerate(losses):
        average = _RANGE_BETA * average + (1 - _RANGE_BETA) * loss
        smoothed[t] = average / (1 - _RANGE_BETA ** (t + 1))
        if not np.isfinite(smoothed[t]) or smoothed[t] > _RANGE_STOP * np.min(smoothed[: t + 1]):
            stop = t
            break
    losses = np.where(np.arange(len(losses)) <= stop, losses, np.nan)
    before = slice(0, stop)
    if stop >= 2:
        slope = np.gradient(smoothed[before], np.log(learning_rates[before]))
        suggested = float(learning_rates[np.argmin(slope)])
    else:
        suggested = float("nan")
    return LRRangeResult(learning_rates, losses, smoothed, suggested)
