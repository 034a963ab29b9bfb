"""Time one `jaxloss.sweep` over K learning rates against K sequential `jaxloss.fit` calls.

Both train the same MLP on the same spirals with full-batch gradient descent. Compilation is
timed separately (the first call); steady-state times are medians over `--repeats` runs in the
same process, every run blocked until its results are ready. A bare `lax.scan` of
`jaxloss.sgd_step` (no divergence bookkeeping) is the floor for one `fit`. The sweep is timed
with the backend's default `parallel_runs` (1 on CPU: runs one after another inside the
program; all K on GPU/TPU) and with all K runs vmapped (`parallel_runs=K`).

    python benchmarks/sweep_vs_fit.py            # 16 rates, < 1 minute on 2 CPU cores
    python benchmarks/sweep_vs_fit.py --help
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

import jaxloss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, default=16, help="number of learning rates K")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per run")
    parser.add_argument("--samples", type=int, default=512, help="training samples N")
    parser.add_argument("--hidden", type=int, default=32, help="width of the two hidden layers")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (median)")
    return parser.parse_args()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def main() -> None:
    args = parse_args()
    x, y = jaxloss.spirals(args.samples, classes=3, noise=0.05, key=0)
    init_fn, apply_fn = jaxloss.mlp([2, args.hidden, args.hidden, 3])
    params = init_fn(jax.random.key(0))
    f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
    rates = np.logspace(-2, 1, args.rates)
    steps = args.steps

    def run_sweep():
        return jaxloss.sweep(f, params, x, y, learning_rates=rates, steps=steps)

    def run_vmapped():
        return jaxloss.sweep(
            f, params, x, y, learning_rates=rates, steps=steps, parallel_runs=args.rates
        )

    def run_fits():
        return [jaxloss.fit(f, params, x, y, learning_rate=r, steps=steps) for r in rates]

    @jax.jit
    def bare_scan(params, x, y, learning_rate):
        def body(p, _):
            return jaxloss.sgd_step(f, p, x, y, learning_rate)

        return jax.lax.scan(body, params, None, length=steps)

    def run_bare():
        return [bare_scan(params, x, y, r) for r in rates]

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; MLP [2, {args.hidden}, "
        f"{args.hidden}, 3], N={args.samples}, {steps} full-batch steps, K={args.rates} rates"
    )
    # One-step calls first: the eager argument handling (keys, learning rates) compiles its small
    # ops once per process; the first calls below then time the compilation of the programs.
    jax.block_until_ready(jaxloss.sweep(f, params, x, y, learning_rates=rates, steps=1))
    jax.block_until_ready(jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=1))
    first_sweep, result = timed(run_sweep)
    first_vmapped, _ = timed(run_vmapped)
    first_fit, _ = timed(lambda: jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=steps))
    first_bare, _ = timed(lambda: bare_scan(params, x, y, 0.1))

    methods = (
        ("sweep", run_sweep),
        ("vmapped", run_vmapped),
        ("fits", run_fits),
        ("bare", run_bare),
    )
    # Interleaved rounds, so that a burst of load on a shared machine hits every method alike.
    times = {name: [] for name, _ in methods}
    for _ in range(args.repeats):
        for name, fn in methods:
            times[name].append(timed(fn)[0])
    medians = {name: statistics.median(t) for name, t in times.items()}
    compile_sweep = first_sweep - medians["sweep"]
    compile_fit = first_fit - medians["fits"] / args.rates
    compile_bare = first_bare - medians["bare"] / args.rates

    print(f"\nmedian of {args.repeats} runs after warm-up (seconds):")
    default = 1 if jax.default_backend() == "cpu" else args.rates
    print(f"  sweep, parallel_runs={default} (default)       {medians['sweep']:8.4f}")
    print(f"  sweep, parallel_runs={args.rates} (all vmapped)   {medians['vmapped']:8.4f}")
    print(f"  {args.rates} sequential fit calls            {medians['fits']:8.4f}")
    print(f"  {args.rates} bare lax.scan of sgd_step       {medians['bare']:8.4f}")
    print("compile (first call minus a warm call):")
    compile_vmapped = first_vmapped - medians["vmapped"]
    print(
        f"  sweep {compile_sweep:.3f}   vmapped sweep {compile_vmapped:.3f}   fit {compile_fit:.3f}"
        f"   bare scan {compile_bare:.3f}"
    )
    print("ratios:")
    print(f"  sequential fits / sweep           {medians['fits'] / medians['sweep']:6.2f}x")
    print(f"  sequential fits / vmapped sweep   {medians['fits'] / medians['vmapped']:6.2f}x")
    print(f"  sequential fits / bare scans      {medians['fits'] / medians['bare']:6.2f}x")
    print(
        f"  incl. compile: fits / sweep       "
        f"{(first_fit + medians['fits'] - medians['fits'] / args.rates) / first_sweep:6.2f}x"
    )
    diverged = int(np.sum(np.asarray(result.diverged_at) >= 0))
    print(f"best learning rate {result.best():.4g}; {diverged} of {args.rates} runs diverged")


if __name__ == "__main__":
    main()
