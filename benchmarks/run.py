"""jaxloss benchmark harness: every loss against optax, PyTorch (CPU) and floor kernels; fit, sweep
and taylor_check against hand-written baselines. One process, one table, one JSON file.

    python benchmarks/run.py                        # default sizes; about 10 minutes on 2 CPU cores
    python benchmarks/run.py --quick                # tiny sizes, a smoke test (< 1 minute)
    python benchmarks/run.py --only softmax --sizes 16384x1000 --json /tmp/bench.json
    python benchmarks/run.py --quick --devices 8    # + the devices section, 8 simulated on a CPU

Groups of rows (`--only` takes a group or row name, or a substring of a row name):

- `losses`: for every jaxloss loss, the jitted `value_and_grad` (w.r.t. the logits/predictions) of
  the loss summed over all elements, at each `--sizes` N×C, against the same maths in optax (or a
  one-line jnp reference where optax has no equivalent), PyTorch eager forward + backward where
  torch has the loss ("not installed" without the `bench` extra), and a floor kernel.
- `floors`: the floor kernels alone. `floor_sum`: `value_and_grad` of `Σ x·y` (reads x and y,
  writes an N×C gradient: the least any loss gradient costs). `floor_softmax`: `jax.nn.softmax`
  alone (what every softmax cross-entropy gradient must compute).
- `training`: `fit` against a jitted `lax.scan` of `optax.sgd` (same objective) and a PyTorch
  eager loop; `sweep` of K rates against K sequential `fit` calls; `taylor_check` (64 η) against a
  `value_and_grad` and 64 separate jitted loss evaluations at θ − ηg.
- `devices` (only with `--devices N`, N > 1): for d = 1, 2, 4, ... and N devices, `fit` data
  parallel (the batch split over d devices, the parameters replicated) and `sweep` with
  `mesh=data_parallel_mesh(d)` (the runs split over d devices), each against itself on 1 device:
  time ratio and the largest |difference| of the losses. On a CPU the N devices are simulated
  (they share the host's cores: no speed-up expected; the point is that it runs and agrees).

Method: each comparison runs in this process, round-robin (A, B, torch, floor, A, B, ...) after a
warm-up call, so machine noise hits all alike; a figure is the median of `--repeats` runs, each
blocked until its results are ready; ratios are quotients of those medians (baseline/jaxloss and
torch/jaxloss > 1: jaxloss is faster; jaxloss/floor: how far above the floor). Compile time
(trace + lower + compile) is measured apart from run time; temporaries are
`compiled.memory_analysis().temp_size_in_bytes`. Before timing, every pair's values and gradients
are checked to agree, so no row compares different maths.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

try:  # the optional `bench` extra
    import torch
except ImportError:
    torch = None

DEFAULT_SIZES = "4096x256,16384x1000,65536x1000"
DEFAULT_JSON = Path(__file__).resolve().parent.parent / "results" / "benchmarks.json"
GROUPS = ("losses", "floors", "training", "devices")
DEVICE_ROWS = ("fit_data_parallel", "sweep_mesh")
NOT_INSTALLED = "not installed"
NO_EQUIVALENT = "—"


# ------------------------------------------------------------------------------------- loss rows


@dataclasses.dataclass(frozen=True)
class LossRow:
    """One jaxloss loss and its comparisons. `ours`/`baseline` map (x, y) to the loss array;
    `torch_fn` maps (torch, x, y) to the summed loss tensor; `labels` names the target kind."""

    name: str
    ours: Callable[[jax.Array, jax.Array], jax.Array]
    labels: str
    baseline_name: str = NO_EQUIVALENT
    baseline: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    torch_name: str = NO_EQUIVALENT
    torch_fn: Callable[[Any, Any, Any], Any] | None = None
    floor: str = "sum"


def _optax_smoothed_ce(x, y):
    onehot = jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)
    return optax.softmax_cross_entropy(x, optax.smooth_labels(onehot, 0.1))


def _optax_overlap(alpha, beta):
    # optax's smoothing s' enters as (I + s')/(I + αFP + βFN + s'); jaxloss's s as
    # (2I + s)/(2I + 2αFP + 2βFN + s): identical with s' = s/2. The N positions are one sample.
    def loss(x, y):
        return optax.losses.dice_loss(
            x[None], y[None], smooth=0.5, alpha=alpha, beta=beta, axis=(1,)
        )

    return loss


def _torch_gaussian_nll(t, x, y):
    var = t.ones_like(y)
    return t.nn.functional.gaussian_nll_loss(x, y, var, full=True, reduction="sum")


def _loss_rows() -> list[LossRow]:
    F = "F."  # torch.nn.functional
    # The comparisons shared by a loss and its likelihood twin (same maths, two names).
    bce = {
        "baseline_name": "optax.sigmoid_binary_cross_entropy",
        "baseline": optax.sigmoid_binary_cross_entropy,
        "torch_name": F + "binary_cross_entropy_with_logits",
        "torch_fn": lambda t, x, y: t.nn.functional.binary_cross_entropy_with_logits(
            x, y, reduction="sum"
        ),
    }
    int_ce = {
        "baseline_name": "optax.softmax_cross_entropy_with_integer_labels",
        "baseline": optax.softmax_cross_entropy_with_integer_labels,
        "torch_name": F + "cross_entropy",
        "torch_fn": lambda t, x, y: t.nn.functional.cross_entropy(x, y, reduction="sum"),
        "floor": "softmax",
    }
    return [
        LossRow(
            "sigmoid_binary_cross_entropy", jaxloss.sigmoid_binary_cross_entropy, "binary", **bce
        ),
        LossRow(
            "sigmoid_focal_loss",
            lambda x, y: jaxloss.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0),
            "binary",
            "optax.sigmoid_focal_loss",
            lambda x, y: optax.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0),
        ),
        LossRow(
            "softmax_cross_entropy",
            jaxloss.softmax_cross_entropy,
            "probs",
            "optax.softmax_cross_entropy",
            optax.softmax_cross_entropy,
            F + "cross_entropy",
            lambda t, x, y: t.nn.functional.cross_entropy(x, y, reduction="sum"),
            floor="softmax",
        ),
        LossRow(
            "softmax_cross_entropy_with_integer_labels",
            jaxloss.softmax_cross_entropy_with_integer_labels,
            "int",
            **int_ce,
        ),
        LossRow(
            "integer_cross_entropy_smoothed_0.1",
            lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(
                x, y, label_smoothing=0.1
            ),
            "int",
            "optax.softmax_cross_entropy(smooth_labels(one_hot))",
            _optax_smoothed_ce,
            F + "cross_entropy(label_smoothing)",
            lambda t, x, y: t.nn.functional.cross_entropy(
                x, y, reduction="sum", label_smoothing=0.1
            ),
            floor="softmax",
        ),
        LossRow(
            "softmax_focal_loss",
            lambda x, y: jaxloss.softmax_focal_loss(x, y, gamma=2.0),
            "onehot",
            floor="softmax",
        ),
        LossRow(
            "softmax_focal_loss_with_integer_labels",
            lambda x, y: jaxloss.softmax_focal_loss_with_integer_labels(x, y, gamma=2.0),
            "int",
            floor="softmax",
        ),
        LossRow(
            "squared_error",
            jaxloss.squared_error,
            "real",
            "optax.squared_error",
            optax.squared_error,
            F + "mse_loss(sum)",
            lambda t, x, y: t.nn.functional.mse_loss(x, y, reduction="sum"),
        ),
        LossRow(
            "mse",
            jaxloss.mse,
            "real",
            "mean(optax.squared_error)",
            lambda x, y: jnp.mean(optax.squared_error(x, y)),
            F + "mse_loss",
            lambda t, x, y: t.nn.functional.mse_loss(x, y),
        ),
        LossRow(
            "rmse",
            jaxloss.rmse,
            "real",
            "sqrt(mean(optax.squared_error))",
            lambda x, y: jnp.sqrt(jnp.mean(optax.squared_error(x, y))),
            "sqrt(F.mse_loss)",
            lambda t, x, y: t.sqrt(t.nn.functional.mse_loss(x, y)),
        ),
        LossRow(
            "absolute_error",
            jaxloss.absolute_error,
            "real",
            "jnp.abs(p - t) (no optax equivalent)",
            lambda x, y: jnp.abs(x - y),
            F + "l1_loss(sum)",
            lambda t, x, y: t.nn.functional.l1_loss(x, y, reduction="sum"),
        ),
        LossRow(
            "mae",
            jaxloss.mae,
            "real",
            "jnp.mean(jnp.abs(p - t)) (no optax equivalent)",
            lambda x, y: jnp.mean(jnp.abs(x - y)),
            F + "l1_loss",
            lambda t, x, y: t.nn.functional.l1_loss(x, y),
        ),
        LossRow(
            "huber_loss",
            jaxloss.huber_loss,
            "real",
            "optax.huber_loss",
            optax.huber_loss,
            F + "huber_loss(sum)",
            lambda t, x, y: t.nn.functional.huber_loss(x, y, reduction="sum"),
        ),
        LossRow(
            "dice_loss",
            jaxloss.dice_loss,
            "onehot",
            "optax.losses.dice_loss(smooth=0.5)",
            _optax_overlap(0.5, 0.5),
            floor="softmax",
        ),
        LossRow(
            "tversky_loss",
            lambda x, y: jaxloss.tversky_loss(x, y, alpha=0.3, beta=0.7),
            "onehot",
            "optax.losses.dice_loss(alpha=0.3, beta=0.7, smooth=0.5)",
            _optax_overlap(0.3, 0.7),
            floor="softmax",
        ),
        LossRow(
            "jaccard_loss",
            jaxloss.jaccard_loss,
            "onehot",
            "optax.losses.dice_loss(alpha=1, beta=1, smooth=0.5)",
            _optax_overlap(1.0, 1.0),
            floor="softmax",
        ),
        LossRow("bernoulli_nll", jaxloss.bernoulli_nll, "binary", **bce),
        LossRow("categorical_nll", jaxloss.categorical_nll, "int", **int_ce),
        LossRow(
            "gaussian_nll",
            jaxloss.gaussian_nll,
            "real",
            torch_name=F + "gaussian_nll_loss(var=1, full)",
            torch_fn=_torch_gaussian_nll,
        ),
        LossRow("laplace_nll", jaxloss.laplace_nll, "real"),
        LossRow(
            "mined_cross_entropy",
            lambda x, y: jaxloss.mined_cross_entropy(x, y)[0],
            "int",
            floor="softmax",
        ),
        LossRow(
            "poly_loss_cross_entropy",
            jaxloss.poly_loss_cross_entropy,
            "onehot",
            "optax.poly_loss_cross_entropy",
            optax.losses.poly_loss_cross_entropy,
            floor="softmax",
        ),
        LossRow(
            "l2_loss",
            jaxloss.l2_loss,
            "real",
            "optax.l2_loss",
            optax.losses.l2_loss,
            "F.mse_loss(sum) / 2",
            lambda t, x, y: t.nn.functional.mse_loss(x, y, reduction="sum") / 2,
        ),
        LossRow("log_cosh", jaxloss.log_cosh, "real", "optax.log_cosh", optax.losses.log_cosh),
        LossRow(
            "cosine_similarity",
            jaxloss.cosine_similarity,
            "real",
            "optax.cosine_similarity",
            optax.losses.cosine_similarity,
            F + "cosine_similarity",
            lambda t, x, y: t.nn.functional.cosine_similarity(x, y, dim=-1).sum(),
        ),
        LossRow(
            "cosine_distance",
            jaxloss.cosine_distance,
            "real",
            "optax.cosine_distance",
            optax.losses.cosine_distance,
        ),
        # optax's multiclass_generalized_dice_loss is a different quantity (a weighted mean of
        # per-class dice, not Sudre et al.'s ratio): no baseline.
        LossRow("generalized_dice_loss", jaxloss.generalized_dice_loss, "onehot", floor="softmax"),
    ]


def _floor_kernels() -> dict[str, Callable[[jax.Array, jax.Array], Any]]:
    return {
        "sum": jax.value_and_grad(lambda x, y: jnp.sum(x * y)),
        "softmax": lambda x, y: jax.nn.softmax(x, axis=-1),
    }


def _inputs(n: int, c: int) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Logits (N, C) and every kind of target, float32 (int32 class labels), made with NumPy so
    that no input costs a compilation."""
    rng = np.random.default_rng(0)
    x = 3.0 * rng.standard_normal((n, c), np.float32)
    int_labels = rng.integers(0, c, n, dtype=np.int32)
    z = rng.standard_normal((n, c), np.float32)
    probs = np.exp(z - z.max(axis=-1, keepdims=True))
    labels = {
        "binary": (rng.random((n, c), np.float32) < 0.3).astype(np.float32),
        "probs": probs / probs.sum(axis=-1, keepdims=True),
        "onehot": np.eye(c, dtype=np.float32)[int_labels],
        "int": int_labels,
        "real": 3.0 * rng.standard_normal((n, c), np.float32),
    }
    # No error exactly 0: at |e|'s kink jaxloss's gradient is 0 and jnp.abs's is 1.
    labels["real"] = np.where(labels["real"] == x, x + 1, labels["real"])
    return jnp.asarray(x), {k: jnp.asarray(v) for k, v in labels.items()}


# ---------------------------------------------------------------------------------------- timing


def _seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def _round_robin(jobs: dict[Any, Callable[[], Any]], repeats: int) -> dict[Any, float]:
    """Median seconds per job over `repeats` interleaved rounds (jobs are already warm)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            times[name].append(_seconds(fn)[0])
    return {name: statistics.median(t) for name, t in times.items()}


@dataclasses.dataclass
class Compiled:
    """A function compiled for fixed arguments: compile seconds, temporaries, its first output."""

    call: Callable[[], Any]
    compile_s: float
    temp_mib: float | None
    first: Any


def _compile(fn: Callable, *args: Any) -> Compiled:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    temp = getattr(memory, "temp_size_in_bytes", None)
    first = jax.block_until_ready(compiled(*args))  # the warm-up call
    return Compiled(
        lambda: compiled(*args), compile_s, None if temp is None else temp / 2**20, first
    )


def _summed_value_and_grad(loss: Callable) -> Callable:
    return jax.value_and_grad(lambda x, y: jnp.sum(loss(x, y)))


def _agree(row: str, what: str, ours: Any, theirs: Any, rtol: float) -> None:
    """Same maths or no row: values and gradients must agree (float32 sums over up to 6.5e7
    terms in different orders differ by more than one ulp, hence rtol on the scale of each)."""
    for part, a, b in zip(("value", "gradient"), ours, theirs):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-30)
        error = float(np.max(np.abs(a - b), initial=0.0))
        if not error <= rtol * scale:
            raise AssertionError(
                f"{row}: jaxloss and {what} disagree ({part}: max |difference| {error:.3g}, "
                f"scale {scale:.3g}); the row would compare different maths."
            )


def _torch_job(row: LossRow, x: jax.Array, y: jax.Array) -> tuple[Callable[[], Any], Any]:
    tx = torch.from_numpy(np.array(x)).requires_grad_(True)
    ty = torch.from_numpy(np.array(y, np.int64 if row.labels == "int" else np.float32))

    def run():
        tx.grad = None
        loss = row.torch_fn(torch, tx, ty)
        loss.backward()
        return loss

    first = run()
    return run, (first.item(), tx.grad.numpy())


def _loss_rows_at(rows: list[LossRow], x, labels, floors: dict[str, Compiled], repeats: int):
    out = []
    for row in rows:
        y = labels[row.labels]
        ours = _compile(_summed_value_and_grad(row.ours), x, y)
        jobs = {"jaxloss": ours.call}
        compiled = {"jaxloss": ours}
        if row.baseline is not None:
            base = _compile(_summed_value_and_grad(row.baseline), x, y)
            _agree(row.name, row.baseline_name, ours.first, base.first, rtol=1e-3)
            jobs["baseline"], compiled["baseline"] = base.call, base
        torch_status = row.torch_name
        if row.torch_fn is not None and torch is None:
            torch_status = NOT_INSTALLED
        elif row.torch_fn is not None:
            jobs["torch"], first = _torch_job(row, x, y)
            _agree(row.name, row.torch_name, ours.first, first, rtol=1e-3)
        jobs["floor"] = floors[row.floor].call
        seconds = _round_robin(jobs, repeats)
        out.append(
            _row(
                "losses",
                row.name,
                "x".join(map(str, x.shape)),
                baseline=row.baseline_name,
                torch=torch_status,
                floor=row.floor,
                ms={k: 1e3 * s for k, s in seconds.items()},
                temp_mib={k: v.temp_mib for k, v in compiled.items()},
                compile_s={k: v.compile_s for k, v in compiled.items()},
            )
        )
    return out


def _floor_rows(floors: dict[str, Compiled], size: str, repeats: int) -> list[dict]:
    seconds = _round_robin({k: v.call for k, v in floors.items()}, repeats)
    return [
        _row(
            "floors",
            f"floor_{k}",
            size,
            ms={"kernel": 1e3 * seconds[k]},
            temp_mib={"kernel": v.temp_mib},
            compile_s={"kernel": v.compile_s},
        )
        for k, v in floors.items()
    ]


def _row(group: str, name: str, size: str, *, ms: dict, **fields: Any) -> dict:
    """A JSON row; ratios are quotients of the medians in `ms` ("a/b" = ms[a] / ms[b])."""
    ratios = {}
    if "jaxloss" in ms:
        for other in ("baseline", "torch"):
            if other in ms:
                ratios[f"{other}/jaxloss"] = ms[other] / ms["jaxloss"]
        if "floor" in ms:
            ratios["jaxloss/floor"] = ms["jaxloss"] / ms["floor"]
    return {"group": group, "name": name, "size": size, **fields, "ms": ms, "ratios": ratios}


# ------------------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class Problem:
    """Spirals (3 classes) and an MLP 2-h-h-3 with tanh, mean integer cross entropy."""

    samples: int
    hidden: int
    steps: int
    rates: int

    def build(self):
        # A new objective function each time: each row pays (and reports) its own compilation.
        x, y = jaxloss.spirals(self.samples, classes=3, noise=0.05, key=0)
        init_fn, apply_fn = jaxloss.mlp([2, self.hidden, self.hidden, 3])
        params = init_fn(jax.random.key(0))
        f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
        return f, params, x, y

    def describe(self, rates: bool = False) -> str:
        text = f"MLP 2-{self.hidden}-{self.hidden}-3, N={self.samples}, {self.steps} steps"
        return text + (f", K={self.rates}" if rates else "")


def _optax_scan(f: Callable, steps: int) -> Callable:
    """The hand-written baseline of `fit`: a jitted `lax.scan` of `optax.sgd` steps."""

    @jax.jit
    def run(params, x, y, learning_rate):
        opt = optax.sgd(learning_rate)

        def body(carry, _):
            p, state = carry
            loss, g = jax.value_and_grad(f)(p, x, y)
            updates, state = opt.update(g, state, p)
            return (optax.apply_updates(p, updates), state), loss

        (p, _), losses = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
        return p, losses

    return run


def _torch_fit(params: list[dict], x: Any, y: Any, learning_rate: float, steps: int):
    """A plain PyTorch eager loop: same MLP, same start, full-batch torch.optim.SGD."""
    tx = torch.from_numpy(np.array(x))
    ty = torch.from_numpy(np.array(y, np.int64))
    layers = [
        (torch.tensor(np.array(p["w"]), requires_grad=True), torch.tensor(np.array(p["b"])))
        for p in params
    ]
    for _, b in layers:
        b.requires_grad_(True)
    opt = torch.optim.SGD([t for layer in layers for t in layer], lr=learning_rate)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        h = tx
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = torch.tanh(h)
        loss = torch.nn.functional.cross_entropy(h, ty)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses).numpy()


def _warm_eager_ops(problem: Problem) -> None:
    """One-step calls: the eager argument handling (keys, learning rates) compiles its small ops
    once per process, so that the first timed calls of the rows measure the programs' compile."""
    f, params, x, y = problem.build()
    rates = np.logspace(-2, 1, problem.rates)
    jax.block_until_ready(jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=1))
    jax.block_until_ready(jaxloss.sweep(f, params, x, y, learning_rates=rates, steps=1))


def _fit_row(problem: Problem, repeats: int) -> list[dict]:
    f, params, x, y = problem.build()
    rate, steps = 0.1, problem.steps
    scan = _optax_scan(f, steps)

    @jax.jit
    def bare_scan(params, x, y, learning_rate):  # fit without its divergence bookkeeping
        def body(p, _):
            return jaxloss.sgd_step(f, p, x, y, learning_rate)

        return jax.lax.scan(body, params, None, length=steps)

    jobs = {
        "jaxloss": lambda: jaxloss.fit(f, params, x, y, learning_rate=rate, steps=steps),
        "baseline": lambda: scan(params, x, y, jnp.float32(rate)),
        "floor": lambda: bare_scan(params, x, y, jnp.float32(rate)),
    }
    if torch is not None:
        jobs["torch"] = lambda: _torch_fit(params, x, y, rate, steps)
    firsts = {k: _seconds(fn) for k, fn in jobs.items()}
    ours = np.asarray(firsts["jaxloss"][1].losses)
    for k, rtol in (("baseline", 1e-4), ("floor", 1e-4), ("torch", 1e-3)):
        if k in firsts:
            theirs = firsts[k][1] if k == "torch" else firsts[k][1][1]
            np.testing.assert_allclose(theirs, ours, rtol=rtol, err_msg=f"fit vs {k}")
    seconds = _round_robin(jobs, repeats)
    row = _row(
        "training",
        "fit",
        problem.describe(),
        baseline="jit(lax.scan(optax.sgd))",
        torch="eager loop, torch.optim.SGD" if torch is not None else NOT_INSTALLED,
        floor="lax.scan(sgd_step)",
        ms={k: 1e3 * s for k, s in seconds.items()},
        compile_s={k: firsts[k][0] - seconds[k] for k in ("jaxloss", "baseline", "floor")},
    )
    return [row]


def _sweep_rows(problem: Problem, repeats: int) -> list[dict]:
    """`sweep` with its default `parallel_runs` (one run after another on CPU, all at once on
    GPU/TPU) and with all K runs vmapped, both against K sequential `fit` calls."""
    f, params, x, y = problem.build()
    rates = np.logspace(-2, 1, problem.rates)
    steps = problem.steps

    def run_sweep(parallel_runs=None):
        return jaxloss.sweep(
            f, params, x, y, learning_rates=rates, steps=steps, parallel_runs=parallel_runs
        )

    def run_fits():
        return [jaxloss.fit(f, params, x, y, learning_rate=r, steps=steps) for r in rates]

    jobs = {
        "sweep": run_sweep,
        "sweep_vmapped": lambda: run_sweep(parallel_runs=problem.rates),
        "fits": run_fits,
    }
    firsts = {k: _seconds(fn) for k, fn in jobs.items() if k != "fits"}
    firsts["fit"] = _seconds(lambda: jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=steps))
    # The first steps must agree; later, large rates are chaotic and float32 roundoff (batched
    # matmuls in a different order) grows into different trajectories.
    early = min(steps, 10)
    theirs = np.stack([np.asarray(r.losses[:early]) for r in run_fits()])
    for name in ("sweep", "sweep_vmapped"):
        ours = np.asarray(firsts[name][1].losses[:, 0, :early])
        both = np.isfinite(ours) & np.isfinite(theirs)
        np.testing.assert_allclose(ours[both], theirs[both], rtol=1e-3, err_msg=f"{name} vs fits")
    seconds = _round_robin(jobs, repeats)
    # Compile: first call minus a warm one (for fit: a warm call is 1/K of the sequential fits).
    compile_fit = firsts["fit"][0] - seconds["fits"] / problem.rates
    return [
        _row(
            "training",
            name,
            problem.describe(rates=True),
            baseline=f"{problem.rates} sequential fit calls",
            torch=NO_EQUIVALENT,
            ms={"jaxloss": 1e3 * seconds[name], "baseline": 1e3 * seconds["fits"]},
            compile_s={"jaxloss": firsts[name][0] - seconds[name], "baseline": compile_fit},
        )
        for name in ("sweep", "sweep_vmapped")
    ]


def _taylor_row(problem: Problem, repeats: int) -> list[dict]:
    f, params, x, y = problem.build()
    value_and_grad = jax.jit(jax.value_and_grad(f))

    @jax.jit
    def trial(params, g, eta):
        return f(jax.tree.map(lambda p, gi: p - eta * gi, params, g), x, y)

    first_ours, report = _seconds(lambda: jaxloss.taylor_check(f, params, x, y))
    etas = [jnp.float32(eta) for eta in report.learning_rates]

    def run_baseline():
        _, g = value_and_grad(params, x, y)
        return [trial(params, g, eta) for eta in etas]

    first_base, trials = _seconds(run_baseline)
    np.testing.assert_allclose(
        np.asarray(trials, np.float64),
        report.actual + report.loss,
        rtol=1e-5,
        err_msg="taylor_check vs separate loss evaluations",
    )
    seconds = _round_robin(
        {"jaxloss": lambda: jaxloss.taylor_check(f, params, x, y), "baseline": run_baseline},
        repeats,
    )
    row = _row(
        "training",
        "taylor_check",
        f"MLP 2-{problem.hidden}-{problem.hidden}-3, N={problem.samples}, {len(etas)} η",
        baseline=f"value_and_grad + {len(etas)} jitted loss calls",
        torch=NO_EQUIVALENT,
        ms={k: 1e3 * s for k, s in seconds.items()},
        compile_s={
            "jaxloss": first_ours - seconds["jaxloss"],
            "baseline": first_base - seconds["baseline"],
        },
    )
    return [row]


# The rows each training measurement gives.
TRAINING = {
    ("fit",): _fit_row,
    ("sweep", "sweep_vmapped"): _sweep_rows,
    ("taylor_check",): _taylor_row,
}


# --------------------------------------------------------------------------------------- devices


def _device_counts(n: int) -> list[int]:
    """1, 2, 4, ... up to n, then n itself."""
    counts = [1]
    while counts[-1] * 2 <= n:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == n else [*counts, n]


def _where(d: int) -> str:
    """What the d devices of a row are: simulated CPU devices are said to be so."""
    if jax.default_backend() == "cpu":
        if d == 1:
            return "simulated on CPU (1 device: the reference)"
        return f"simulated on CPU ({d} devices share the host's cores: no speed-up expected)"
    return f"{d} × {jax.devices()[0].device_kind} ({jax.default_backend()})"


def _max_abs_difference(ours: Any, reference: Any) -> float | None:
    """max |ours − reference| over the losses; None when a run diverged (NaN from there on) in
    one and not at the same step in the other."""
    a, b = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return None
    return float(np.max(np.abs(a - b)[np.isfinite(a)], initial=0.0))


def _devices_rows(problem: Problem, counts: list[int], names: list[str], repeats: int):
    """`fit` data parallel and `sweep(mesh=...)` on each device count, round-robin over all of
    them, each against its own 1-device run (same process, same round-robin)."""
    f, params, x, y = problem.build()
    rates = np.logspace(-2, 1, problem.rates)
    jobs = {}
    for d in counts:
        mesh = jaxloss.data_parallel_mesh(d)
        xd, yd = jaxloss.shard_batch(mesh, x, y)
        pd = jaxloss.replicate(mesh, params)
        run = {
            "fit_data_parallel": functools.partial(
                jaxloss.fit, f, pd, xd, yd, learning_rate=0.1, steps=problem.steps
            ),
            "sweep_mesh": functools.partial(
                jaxloss.sweep,
                f,
                params,
                x,
                y,
                learning_rates=rates,
                steps=problem.steps,
                mesh=mesh,
            ),
        }
        jobs.update({(name, d): run[name] for name in names})
    firsts = {key: _seconds(fn) for key, fn in jobs.items()}
    seconds = _round_robin(jobs, repeats)
    rows = []
    for name, d in jobs:
        size = problem.describe(rates=name == "sweep_mesh")
        how = "batch split, params replicated" if name == "fit_data_parallel" else "runs split"
        rows.append(
            _row(
                "devices",
                name,
                size,
                devices=d,
                where=_where(d),
                baseline=f"the same on 1 device ({how} over d devices)",
                torch=NO_EQUIVALENT,
                agrees=_max_abs_difference(firsts[name, d][1].losses, firsts[name, 1][1].losses),
                ms={"jaxloss": 1e3 * seconds[name, d], "baseline": 1e3 * seconds[name, 1]},
                compile_s={"jaxloss": firsts[name, d][0] - seconds[name, d]},
            )
        )
    return rows


# ---------------------------------------------------------------------------------------- output


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            models = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "optax": optax.__version__,
        "torch": torch.__version__ if torch is not None else NOT_INSTALLED,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return NO_EQUIVALENT
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _ratio(value: float | None) -> str:
    return NO_EQUIVALENT if value is None else f"{value:.2f}×"


def table(result: dict) -> str:
    """The printed table (Markdown), its header line and the baselines each row compares with."""
    meta = result["meta"]
    header = [
        f"jax {meta['jax']}, optax {meta['optax']}, torch {meta['torch']}; backend "
        f"{meta['backend']} ({meta['device_count']} × {meta['device']}), {meta['cpu_count']} CPUs "
        f"({meta['cpu_model']}); median of {meta['repeats']} runs",
    ]
    lines = [
        "",
        "| row | size | jaxloss ms | baseline ms | baseline/jaxloss | jaxloss/floor | "
        "temp MiB jaxloss / baseline | torch ms | torch/jaxloss | compile s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [row for row in result["rows"] if row["group"] != "devices"]
    for row in rows:
        ms, ratios = row["ms"], row["ratios"]
        temp = row.get("temp_mib", {})
        if row["group"] == "floors":
            lines.append(
                f"| {row['name']} | {row['size']} | {_fmt(ms['kernel'])} | | | | "
                f"{_fmt(temp.get('kernel'))} | | | {_fmt(row['compile_s']['kernel'], 2)} |"
            )
            continue
        floor = ratios.get("jaxloss/floor")
        floor_text = f"{_ratio(floor)} ({row['floor']})" if floor is not None else ""
        temps = (
            f"{_fmt(temp.get('jaxloss'))} / {_fmt(temp.get('baseline'))}" if temp else NO_EQUIVALENT
        )
        torch_ms = _fmt(ms["torch"]) if "torch" in ms else row["torch"]
        if torch_ms == NO_EQUIVALENT:
            torch_ms = NO_EQUIVALENT
        lines.append(
            f"| {row['name']} | {row['size']} | {_fmt(ms['jaxloss'])} | "
            f"{_fmt(ms.get('baseline'))} | {_ratio(ratios.get('baseline/jaxloss'))} | "
            f"{floor_text} | {temps} | {torch_ms} | {_ratio(ratios.get('torch/jaxloss'))} | "
            f"{_fmt(row['compile_s']['jaxloss'], 2)} |"
        )
    baselines = {}
    for row in rows:
        if row["group"] != "floors":
            baselines.setdefault(row["name"], (row["baseline"], row["torch"]))
    if baselines:
        lines += ["", "Baselines (— : no equivalent; the row is measured against its floor only):"]
        lines += [f"- {name}: {base}; torch: {tr}" for name, (base, tr) in baselines.items()]
    devices = [row for row in result["rows"] if row["group"] == "devices"]
    lines = header + (lines if rows else []) + (_devices_table(devices) if devices else [])
    return "\n".join(lines)


def _devices_table(rows: list[dict]) -> list[str]:
    lines = [
        "",
        "Devices: fit_data_parallel = `fit` on the batch split over d devices (`shard_batch`), "
        "params replicated; sweep_mesh = `sweep(mesh=data_parallel_mesh(d))`, the runs split over "
        "d devices. Each row against the same on 1 device, in the same run; agrees = max |losses "
        "− losses on 1 device|.",
        "",
        "| row | devices | size | ms | 1-device ms | 1 device / d | agrees | compile s | where |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        agrees = row["agrees"]
        lines.append(
            f"| {row['name']} | {row['devices']} | {row['size']} | {_fmt(row['ms']['jaxloss'])} | "
            f"{_fmt(row['ms']['baseline'])} | {_ratio(row['ratios']['baseline/jaxloss'])} | "
            f"{'diverged differently' if agrees is None else f'{agrees:.2g}'} | "
            f"{_fmt(row['compile_s']['jaxloss'], 2)} | {row['where']} |"
        )
    return lines


# ------------------------------------------------------------------------------------------ main


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        try:
            n, c = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"sizes are N x C pairs like 4096x256,16384x1000; got {part!r}"
            ) from None
        if n < 1 or c < 2:
            raise argparse.ArgumentTypeError(f"need N >= 1 and C >= 2; got {part!r}")
        sizes.append((n, c))
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 repeats: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only rows whose group or name is NAME, or whose name contains it (repeatable)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help=f"N x C sizes of the loss rows (default {DEFAULT_SIZES}; --quick: 64x8)",
    )
    parser.add_argument("--repeats", type=_positive, help="timed runs per figure (default 5)")
    parser.add_argument(
        "--devices",
        type=_positive,
        default=1,
        help="N > 1 adds the devices section (fit and sweep on 1, 2, 4, ... N devices; on a CPU N "
        "simulated devices). Default 1: no such section",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"where to write (default {DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = _sizes("64x8" if args.quick else DEFAULT_SIZES)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    samples = _problem(args.quick).samples
    if samples % args.devices:
        parser.error(
            f"--devices must divide the training problem's {samples} samples (the batch is split "
            f"evenly over the devices); got {args.devices}"
        )
    return args


def _selected(only: list[str] | None, group: str, name: str) -> bool:
    return only is None or any(o in (group, name) or o in name for o in only)


def _problem(quick: bool) -> Problem:
    if quick:
        return Problem(samples=64, hidden=32, steps=20, rates=4)
    return Problem(samples=512, hidden=32, steps=300, rates=16)


def run(args: argparse.Namespace) -> dict:
    """Measure every selected row; returns {"meta": ..., "rows": [...]} (also the JSON)."""
    problem = _problem(args.quick)
    losses = [r for r in _loss_rows() if _selected(args.only, "losses", r.name)]
    kernels = _floor_kernels()
    shown = [k for k in kernels if _selected(args.only, "floors", f"floor_{k}")]
    needed = set(shown) | {r.floor for r in losses}
    rows: list[dict] = []
    for n, c in args.sizes if needed else []:
        x, labels = _inputs(n, c)
        floors = {k: _compile(kernels[k], x, labels["binary"]) for k in kernels if k in needed}
        rows += _floor_rows({k: floors[k] for k in shown}, f"{n}x{c}", args.repeats)
        rows += _loss_rows_at(losses, x, labels, floors, args.repeats)
        _progress(f"{n}x{c} done")
    training = {
        names: measure
        for names, measure in TRAINING.items()
        if any(_selected(args.only, "training", name) for name in names)
    }
    devices = [n for n in DEVICE_ROWS if args.devices > 1 and _selected(args.only, "devices", n)]
    if (training or devices) and not args.quick:  # --quick's compile times mean nothing
        _warm_eager_ops(problem)
    for names, measure in training.items():
        measured = measure(problem, args.repeats)
        rows += [r for r in measured if _selected(args.only, "training", r["name"])]
        _progress(f"{', '.join(names)} done")
    if devices:
        rows += _devices_rows(problem, _device_counts(args.devices), devices, args.repeats)
        _progress(f"devices 1 … {args.devices} done")
    meta = {
        **_machine(),
        "command": "python benchmarks/run.py " + " ".join(args.argv),
        "repeats": args.repeats,
        "devices": args.devices,
        "sizes": [f"{n}x{c}" for n, c in args.sizes],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return {"meta": meta, "rows": rows}


_START = time.perf_counter()


def _progress(message: str) -> None:
    elapsed = time.perf_counter() - _START
    print(f"[benchmarks {elapsed:5.0f} s] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.argv = argv
    if args.devices > 1:  # before any JAX computation: on a CPU, simulate that many devices
        try:
            jaxloss.data_parallel_mesh(args.devices, simulate_on_cpu=True)
        except ValueError as error:
            raise SystemExit(f"benchmarks/run.py --devices {args.devices}: {error}") from None
    names = [("losses", r.name) for r in _loss_rows()] + [
        ("training", n) for names in TRAINING for n in names
    ]
    names += [("floors", f"floor_{k}") for k in _floor_kernels()]
    names += [("devices", n) for n in DEVICE_ROWS if args.devices > 1]
    if not any(_selected(args.only, group, name) for group, name in names):
        raise SystemExit(
            f"benchmarks/run.py: no row matches --only {args.only} (the devices rows need "
            "--devices N > 1)"
        )
    result = run(args)
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    print(f"\nwritten to {args.json}")
    return result


if __name__ == "__main__":
    main()
