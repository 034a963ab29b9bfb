"""Functional gradient descent: one step, a `lax.scan` loop, and a learning-rate sweep.

`θ_{k+1} = θ_k − η ∇L(θ_k)`, written over any pytree of parameters. `fit` runs `steps` of it in one
`lax.scan`; `sweep` runs K learning rates × S seeds of the same scan in one compiled program
(one run after another on a CPU, `jax.vmap`-ed on a GPU/TPU). Objectives are known only as
functions `f(params, inputs, targets) -> scalar` (see `jaxloss.objective`).

Compilation: the loops are jitted once per (objective function, batch size, number of steps,
`parallel_runs` for a sweep, shapes and dtypes of the arguments). The learning rate, the data,
the initial parameters and the keys are traced arguments, so new values of them never recompile.
Keep the same objective function object between calls: a new `jaxloss.objective(...)` (or a new
lambda) is a new function and compiles afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks
from jaxloss.objective import num_samples

# A progress bar is updated this many times: the scan runs in this many chunks.
_PROGRESS_UPDATES = 20


class FitResult(NamedTuple):
    """The outcome of `jaxloss.fit` (a pytree: it can be returned from `jax.jit`).

    Attributes:
        params: the parameters after the last step; for a diverged run, the last parameters whose
            loss was finite (they stop changing instead of filling with NaN).
        losses: `(steps,)`; `losses[t]` is the objective at the parameters BEFORE step `t` (on that
            step's minibatch when `batch_size` is set), so `losses[0]` is the initial loss. From
            `diverged_at` on: the non-finite loss at `diverged_at`, NaN after it.
        diverged_at: `()` int32, the first step whose loss is not finite, or `-1`. It equals
            `steps` when only the loss after the last step is not finite.
        final_loss: `()`, the objective on ALL of `inputs`/`targets` at the returned `params`
            (the loss after the last step); NaN for a diverged run.
    """

    params: Any
    losses: jax.Array
    diverged_at: jax.Array
    final_loss: jax.Array


class SweepResult(NamedTuple):
    """The outcome of `jaxloss.sweep`: K learning rates × S seeds, each one `fit` run.

    Attributes:
        learning_rates: `(K,)`.
        seeds: `(S,)` int64 NumPy array, the seed of each column (exact, any 64-bit seed).
        losses: `(K, S, steps)`, `losses[k, s]` as `FitResult.losses` of run (k, s).
        final_losses: `(K, S)`, as `FitResult.final_loss` (NaN where the run diverged).
        diverged_at: `(K, S)` int32, as `FitResult.diverged_at`.
        params: the parameters of every run, each leaf stacked to `(K, S, *leaf.shape)`.
    """

    learning_rates: jax.Array
    seeds: np.ndarray
    losses: jax.Array
    final_losses: jax.Array
    diverged_at: jax.Array
    params: Any

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
        k = _index("k", k, num_rates)
        s = _index("s", s, num_seeds)
        return FitResult(
            params=jax.tree.map(lambda leaf: leaf[k, s], self.params),
            losses=self.losses[k, s],
            diverged_at=self.diverged_at[k, s],
            final_loss=self.final_losses[k, s],
        )


def _index(name: str, index: Any, size: int) -> int:
    index = _checks.integer("SweepResult.run", name, index)
    if not -size <= index < size:
        raise IndexError(
            f"jaxloss.SweepResult.run: `{name}` must lie in [{-size}, {size - 1}] (the sweep has "
            f"{size} along that axis); got {index}."
        )
    return index


class _State(NamedTuple):
    params: Any
    last_good: Any  # the last params whose loss was finite: where a diverged run stops
    diverged_at: jax.Array


def _sgd_leaf(p: jax.Array, g: jax.Array, learning_rate: jax.Array) -> jax.Array:
    # θ − η g in the leaf's dtype, the learning rate rounded to it first: the same arithmetic as
    # optax.sgd + optax.apply_updates with a Python-float (or same-dtype) learning rate.
    return jnp.asarray(p - jnp.asarray(learning_rate, g.dtype) * g).astype(jnp.result_type(p))


def _sgd_update(params: Any, grads: Any, learning_rate: jax.Array) -> Any:
    return jax.tree.map(lambda p, g: _sgd_leaf(p, g, learning_rate), params, grads)


def _ravel(tree: Any) -> tuple[tuple[jax.Array, ...], Callable[[tuple[jax.Array, ...]], Any]]:
    """The leaves of `tree` concatenated into one flat vector per dtype, and the inverse.

    The scan carries these few vectors instead of every leaf: per-leaf selects cost one XLA op
    each per step, which on small models made `fit` ~40% slower than a bare scan. Elementwise
    arithmetic on the concatenation is bit-for-bit the per-leaf arithmetic.
    """
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [jnp.asarray(x) for x in leaves]
    groups, unravel = _unraveler(treedef, leaves)
    flats = tuple(jnp.concatenate([leaves[i].ravel() for i in group]) for group in groups)
    return flats, unravel


def _unraveler(treedef: Any, leaves: Sequence[Any]) -> tuple[list[list[int]], Callable]:
    """The leaf indices of each dtype group of `_ravel`, and its inverse; `leaves` need only
    `shape` and `dtype` (arrays or `jax.ShapeDtypeStruct`s)."""
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

    return groups, unravel


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
        params: any pytree of floating arrays.
        inputs, targets: the (mini)batch passed to `objective_fn`.
        learning_rate: η, a real scalar (Python float or 0-d array, may be traced); an array of
            another shape is a ValueError (it would broadcast over the leaves). It is rounded to
            each parameter's dtype; parameter dtypes are kept.

    Returns:
        `(new_params, loss)`: `new_params` with the structure and dtypes of `params`, and `loss`
        the objective at the OLD `params`.

    Raises:
        TypeError: if a leaf of `params` is not a floating array (`jax.grad` needs real floats).

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
    _checks.float_params("sgd_step", params)
    loss, grads = jax.value_and_grad(objective_fn)(params, inputs, targets)
    return _sgd_update(params, grads, learning_rate), loss


# ------------------------------------------------------------------------------ the scan loop


def _chunk(
    fn, objective_fn, batch_size, length, state, learning_rate, inputs, targets, key, t0, steps
):
    """Steps `t0 .. t0 + length - 1` of a run of `steps` (later ones are padding: no-ops).

    `fn` is the public function the user called (`fit` or `sweep`), for error messages."""
    flat, unravel = _ravel(state.params)
    flat_state = _State(flat, _ravel(state.last_good)[0], state.diverged_at)
    flat_state, losses, final = _run(
        fn,
        objective_fn,
        unravel,
        batch_size,
        length,
        flat_state,
        learning_rate,
        inputs,
        targets,
        key,
        t0,
        steps,
    )
    state = _State(
        unravel(flat_state.params), unravel(flat_state.last_good), flat_state.diverged_at
    )
    return state, losses, final


def _run(
    fn,
    objective_fn,
    unravel,
    batch_size,
    length,
    state,
    learning_rate,
    inputs,
    targets,
    key,
    t0,
    steps,
):
    """`_chunk` on a state whose params are `_ravel`-ed (one flat vector per dtype)."""
    n = num_samples(fn, inputs, targets)

    def body(carry, t):
        params, last_good, diverged_at = carry
        if batch_size is None:
            batch_x, batch_y = inputs, targets
        else:
            idx = jax.random.choice(jax.random.fold_in(key, t), n, (batch_size,), replace=False)
            batch_x, batch_y = jax.tree.map(lambda a: a[idx], (inputs, targets))
        loss, grads = jax.value_and_grad(objective_fn)(unravel(params), batch_x, batch_y)
        running = (t < steps) & (diverged_at < 0)
        advance = running & jnp.isfinite(loss)
        stop_now = running & ~jnp.isfinite(loss)
        stepped = tuple(_sgd_leaf(p, g, learning_rate) for p, g in zip(params, _ravel(grads)[0]))
        # A run that just hit a non-finite loss goes back to its last finite params and stays.
        new_params = _select(advance, stepped, _select(stop_now, last_good, params))
        new_carry = (
            new_params,
            _select(advance, params, last_good),
            jnp.where(stop_now, t, diverged_at),
        )
        recorded = jnp.where(diverged_at >= 0, jnp.nan, loss).astype(loss.dtype)
        return new_carry, recorded

    ts = t0 + jnp.arange(length, dtype=jnp.int32)
    (params, last_good, diverged_at), losses = jax.lax.scan(body, tuple(state), ts)

    # The loss after the last step, on all the data: counts as divergence when not finite.
    final = objective_fn(unravel(params), inputs, targets)
    blew_up = (t0 + length >= steps) & (diverged_at < 0) & ~jnp.isfinite(final)
    state = _State(
        params=_select(blew_up, last_good, params),
        last_good=last_good,
        diverged_at=jnp.where(blew_up, steps, diverged_at),
    )
    final = jnp.where(state.diverged_at >= 0, jnp.nan, final).astype(final.dtype)
    return state, losses, final


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


_fit_chunk = jax.jit(_chunk, static_argnums=(0, 1, 2, 3))


def _sweep_impl(
    objective_fn,
    init_fn,
    batch_size,
    length,
    parallel_runs,
    state,
    params,
    learning_rates,
    seed_keys,
    inputs,
    targets,
    t0,
    steps,
):
    """A chunk of steps of all K·S runs, (k, s) flattened to run k·S + s. The state is flat
    (`_ravel`-ed params, a few (K·S, P) arrays): fewer arrays to map over and stack, so a
    smaller program to compile. Returns the state, the (K, S)-stacked params, losses and final
    losses."""
    num_rates, num_seeds = learning_rates.shape[0], seed_keys.shape[0]
    runs = num_rates * num_seeds
    leaves, treedef = jax.tree.flatten(_template(init_fn, params, seed_keys))
    unravel = _unraveler(treedef, leaves)[1]
    if state is None:
        state = _sweep_start(init_fn, params, learning_rates, seed_keys)
    # Padded with copies of run 0 to a multiple of the number run at once, so that the mapped
    # function is traced (and compiled) once.
    chunk = min(parallel_runs, runs)
    padded = -(-runs // chunk) * chunk

    def pad(a):
        return jnp.concatenate([a, a[: padded - runs]]) if padded > runs else a

    batch_keys = _split(seed_keys)[1]
    per_run = (
        jax.tree.map(pad, state),
        pad(jnp.repeat(learning_rates, num_seeds)),
        pad(jnp.tile(batch_keys, num_rates)),
    )

    def run(args):
        run_state, learning_rate, batch_key = args
        return _run(
            "sweep",
            objective_fn,
            unravel,
            batch_size,
            length,
            run_state,
            learning_rate,
            inputs,
            targets,
            batch_key,
            t0,
            steps,
        )

    if chunk == padded:  # all at once (GPU/TPU default)
        out = jax.vmap(run)(per_run)
    elif chunk == 1:  # one after another (CPU default): no batching copies at all
        out = jax.lax.map(run, per_run)
    else:
        out = jax.lax.map(run, per_run, batch_size=chunk)
    state, losses, final = jax.tree.map(lambda a: a[:runs], out)
    stacked = jax.tree.map(
        lambda a: a.reshape(num_rates, num_seeds, *a.shape[1:]), jax.vmap(unravel)(state.params)
    )
    grid = (num_rates, num_seeds)
    return state, stacked, losses.reshape(*grid, -1), final.reshape(grid)


_sweep_chunk = jax.jit(_sweep_impl, static_argnums=(0, 1, 2, 3, 4))


def _split(seed_keys):
    keys = jax.vmap(jax.random.split)(seed_keys)
    return keys[:, 0], keys[:, 1]


def _template(init_fn, params, seed_keys):
    """Shapes and dtypes of one run's params (`jax.ShapeDtypeStruct` leaves)."""
    return jax.eval_shape(lambda key: params if init_fn is None else init_fn(key), seed_keys[0])


def _sweep_start(init_fn, params, learning_rates, seed_keys):
    """The initial state of the K·S runs (run k·S + s starts from seed s), params flat."""

    def start(init_key):
        p = params if init_fn is None else init_fn(init_key)
        if init_fn is not None:
            _checks.float_params("sweep", p, "init_fn(key)")
        return _ravel(p)[0]

    per_seed = jax.vmap(start)(_split(seed_keys)[0])
    flat = tuple(jnp.tile(a, (learning_rates.shape[0], 1)) for a in per_seed)
    return _State(flat, flat, jnp.full(flat[0].shape[:1], -1, jnp.int32))


# With a progress bar the start is its own small program, so that every chunk shares one.
_sweep_start_jit = jax.jit(_sweep_start, static_argnums=(0,))


# ---------------------------------------------------------------------------- argument checks


def _batch_size(fn: str, batch_size: Any, n: int, key: Any) -> int | None:
    if batch_size is None:
        return None
    batch_size = _checks.positive_int(fn, "batch_size", batch_size)
    if batch_size > n:
        raise ValueError(
            f"jaxloss.{fn}: `batch_size` must be at most the number of samples {n}; got "
            f"{batch_size}."
        )
    if fn == "fit" and key is None:
        raise ValueError(
            "jaxloss.fit: `key` must be given when `batch_size` is set (the minibatches are drawn "
            "from it), e.g. key=jax.random.key(0); got None."
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
    # One dtype for every call, so that a Python float and a NumPy scalar share one compilation.
    return rates.astype(jnp.result_type(float))


def _progress_bar(fn: str, total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            f"jaxloss.{fn}: `progress=True` needs tqdm, which is not installed. Install it with "
            "`pip install 'jaxloss[progress]'` (or `pip install tqdm`), or pass progress=False."
        ) from None
    return tqdm(total=total, desc=f"jaxloss.{fn}", unit="step")


def _in_chunks(fn: str, steps: int, progress: bool, run_chunk):
    """Call `run_chunk(length, t0)` once (no bar) or in chunks with a progress bar between them.

    `run_chunk` returns `(losses, final)` with the step axis last in `losses`; returns the losses
    of all `steps` concatenated and the last `final`.
    """
    if not progress:
        return run_chunk(steps, 0)
    bar = _progress_bar(fn, steps)
    length = -(-steps // _PROGRESS_UPDATES)
    pieces = []
    try:
        for t0 in range(0, steps, length):
            losses, final = run_chunk(length, t0)
            jax.block_until_ready(losses)
            pieces.append(losses)
            bar.update(min(length, steps - t0))
    finally:
        bar.close()
    return jnp.concatenate(pieces, axis=-1)[..., :steps], final


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
) -> FitResult:
    """Gradient descent `θ_{t+1} = θ_t − η ∇L(θ_t)` for `steps` steps, as one `lax.scan`.

    Full-batch by default; with `batch_size`, step `t` uses `batch_size` samples drawn without
    replacement from `jax.random.fold_in(key, t)` (minibatch SGD). A run whose loss stops being
    finite stops there: its params stay at the last values with a finite loss.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: initial parameters, any pytree of floating arrays (an integer or non-array leaf
            is a TypeError).
        inputs, targets: the data set, arrays (or pytrees) with a shared leading axis N ≥ 1.
        learning_rate: η ≥ 0, a real scalar (not an array of another shape). New values do not
            recompile.
        steps: number of steps, an integer ≥ 1 (Python or NumPy int; not a bool or a float).
            One compilation per value; the loop is not unrolled.
        batch_size: None (full batch) or an integer 1 ≤ batch_size ≤ N.
        key: a `jax.random` key (new-style or legacy uint32) or an int seed; required with
            `batch_size`, unused without.
        progress: show a tqdm progress bar (needs `tqdm`, the `progress` extra); the scan then
            runs in 20 chunks with the bar updated between them.

    Returns:
        `FitResult(params, losses (steps,), diverged_at (), final_loss ())`; see `FitResult`.

    Example:
        >>> x, y = jaxloss.spirals(64, classes=3, key=0)
        >>> init_fn, apply_fn = jaxloss.mlp([2, 16, 3])
        >>> f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        >>> result = jaxloss.fit(f, init_fn(jax.random.key(0)), x, y, learning_rate=0.5, steps=200)
        >>> result.losses[0], result.final_loss, int(result.diverged_at)
        (Array(1.185..., dtype=float32), Array(0.91..., dtype=float32), -1)

    Reference: Robbins & Monro (1951) for the minibatch case; every step equals `jaxloss.sgd_step`
    (and hence `optax.sgd`) on the same batch.
    """
    steps = _checks.positive_int("fit", "steps", steps)
    _checks.float_params("fit", params)
    n = num_samples("fit", inputs, targets)
    batch_size = _batch_size("fit", batch_size, n, key)
    learning_rate = _learning_rates("fit", "learning_rate", learning_rate, ndim=0)
    if key is not None:
        key = _checks.prng_key("fit", "key", key)
    if batch_size is None:
        key = None
    state = _State(params, params, jnp.int32(-1))

    def run_chunk(length, t0):
        nonlocal state
        state, losses, final = _fit_chunk(
            "fit",
            objective_fn,
            batch_size,
            length,
            state,
            learning_rate,
            inputs,
            targets,
            key,
            jnp.int32(t0),
            jnp.int32(steps),
        )
        return losses, final

    losses, final = _in_chunks("fit", steps, progress, run_chunk)
    return FitResult(state.params, losses, state.diverged_at, final)


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
) -> SweepResult:
    """`fit` for K learning rates × S seeds at once, all K·S runs in one compiled program.

    Run (k, s) is exactly `fit(objective_fn, p_s, inputs, targets, learning_rate=learning_rates[k],
    steps=steps, batch_size=batch_size, key=batch_key_s)` with
    `init_key_s, batch_key_s = jax.random.split(jax.random.key(seeds[s]))` and
    `p_s = init_fn(init_key_s)` (or `params` when no `init_fn` is given). A seed beyond 32 bits
    gets the key `jax.random.key(seed)` gives with `jax_enable_x64` on (its high and low 32 bits),
    whatever the x64 setting: every Python int seed in [-2**63, 2**63) is used exactly. Runs are
    independent: a diverging learning rate stops only its own runs.

    How the runs share the device: `parallel_runs` of them run at once (`jax.vmap`), in groups
    one after another (`jax.lax.map`). On a CPU one at a time is fastest (vmapping the small
    kernels of a step only adds layout copies); on a GPU/TPU all at once fills the device. Either
    way it is one compilation, and new learning rates, seeds or data never recompile.

    Args:
        objective_fn: `f(params, inputs, targets) -> scalar`, e.g. from `jaxloss.objective`.
        params: initial parameters shared by every run (a pytree of floating arrays), or None
            when `init_fn` is given.
        inputs, targets: the data set, arrays (or pytrees) with a shared leading axis N ≥ 1.
        learning_rates: `(K,)`, every value ≥ 0. New values do not recompile.
        steps: number of steps per run, an integer ≥ 1.
        seeds: a sequence of integer seeds (any Python or NumPy int in [-2**63, 2**63)), or an
            int S for seeds `0 .. S-1`; None means the single seed 0. They select `init_fn`'s
            initialisation and the minibatches.
        init_fn: `init_fn(key) -> params` (e.g. from `jaxloss.mlp`) to re-initialise per seed.
        batch_size: None (full batch) or an integer 1 ≤ batch_size ≤ N (the minibatch size).
        parallel_runs: how many of the K·S runs are computed at once, an integer ≥ 1 (values
            above K·S mean all of them; the runs are padded to a multiple of it). None (default)
            picks by `jax.default_backend()`: 1 on CPU, all K·S on GPU/TPU. Results depend on it
            only through float roundoff (vmapped kernels round differently), which training at a
            large, barely stable η can amplify over many steps.
        progress: show a tqdm progress bar (needs `tqdm`), updated between 20 chunks.

    Returns:
        `SweepResult` with `losses (K, S, steps)`, `final_losses (K, S)`, `diverged_at (K, S)`,
        the stacked `params` and `best()`.

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

    Reference: the learning-rate range test of Smith, "Cyclical Learning Rates for Training Neural
    Networks" (WACV 2017), run in parallel instead of along one run.
    """
    steps = _checks.positive_int("sweep", "steps", steps)
    n = num_samples("sweep", inputs, targets)
    batch_size = _batch_size("sweep", batch_size, n, None)
    rates = _learning_rates("sweep", "learning_rates", learning_rates, ndim=1)
    seeds, seed_keys = _seeds(seeds)
    if (init_fn is None) == (params is None):
        raise ValueError(
            "jaxloss.sweep: give exactly one of `params` (shared initial parameters) and "
            "`init_fn` (re-initialise per seed); got "
            + ("both." if init_fn is not None else "neither.")
        )
    if params is not None:
        _checks.float_params("sweep", params)
    parallel_runs = _parallel_runs(parallel_runs, rates.shape[0] * seeds.shape[0])
    state = _sweep_start_jit(init_fn, params, rates, seed_keys) if progress else None

    stacked = None

    def run_chunk(length, t0):
        nonlocal state, stacked
        state, stacked, losses, final = _sweep_chunk(
            objective_fn,
            init_fn,
            batch_size,
            length,
            parallel_runs,
            state,
            params,
            rates,
            seed_keys,
            inputs,
            targets,
            jnp.int32(t0),
            jnp.int32(steps),
        )
        return losses, final

    losses, final = _in_chunks("sweep", steps, progress, run_chunk)
    diverged_at = state.diverged_at.reshape(final.shape)
    return SweepResult(rates, seeds, losses, final, diverged_at, stacked)


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
