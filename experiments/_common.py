"""What the experiment scripts share: the `--quick`, `--out`, `--no-progress` and `--devices`
options, the JSON + PNG output of `main`, progress bars, strict-JSON numbers, and matplotlib
imported lazily (it is the optional `plot` extra).

`--devices N` makes `args.mesh` (`jaxloss.data_parallel_mesh(N, simulate_on_cpu=True)`, before
any JAX computation); the scripts pass `sweep_options(args)` to `jaxloss.sweep` (the runs split
over the devices) and `place(args, ...)`/`replicate(args, ...)` data and parameters to `fit` and
the other training calls (data parallelism). Without it `args.mesh` is None and these change
nothing.

A script defines `run(args) -> dict` (JSON-ready), `table(result) -> str` and
`plot(result, path) -> bool`, and calls `main(name, args, run, table, plot)`. It writes
`<out>/<name>.json` and `<out>/<name>.png`, `<out>` defaulting to `results/<name>/`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxloss


def parse(
    parser: argparse.ArgumentParser,
    quick: dict,
    argv: list[str] | None,
    *,
    name: str,
    trains: bool = True,
) -> Any:
    """Add the shared options to `parser`, parse `argv`; `--quick` sets every value in `quick`.
    `name` is the script's name: `--out` defaults to `results/<name>/`. `trains=False`: the
    script trains nothing, `--devices` is accepted and ignored (`args.mesh` stays None)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of seconds: " + ", ".join(f"{k} {v}" for k, v in quick.items()),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results") / name,
        help=f"output folder (default results/{name}/)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help=(
            "train on N devices (on a CPU: N simulated devices sharing its cores): sweeps split "
            "their runs over them, fits split the data (sample counts must divide by N); "
            "default: one device"
            if trains
            else "no effect here (this script trains nothing); accepted like in the others"
        ),
    )
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    # Before the script's first JAX computation: simulated CPU devices are set up only then.
    use = trains and args.devices is not None
    args.mesh = jaxloss.data_parallel_mesh(args.devices, simulate_on_cpu=True) if use else None
    return args


def arguments(args: argparse.Namespace) -> dict:
    """The arguments as JSON values (`--devices` as its number; the mesh made from it left out)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "mesh"}


def sweep_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for `jaxloss.sweep`: `{"mesh": mesh}` with `--devices` (its K·S runs
    split over the devices), else none."""
    return {} if args.mesh is None else {"mesh": args.mesh}


def place(args: argparse.Namespace, *arrays: Any, option: str) -> Any:
    """The arrays with their leading (sample) axis split over the devices of `--devices`
    (`jaxloss.shard_batch`: data-parallel training), or unchanged without it; one array for
    one argument, a tuple for several. `option` is the script option that sets the sample
    count, named in the error when it does not divide by the device count."""
    if args.mesh is not None:
        devices = args.mesh.size
        for leaf in jax.tree.leaves(arrays):
            n = np.shape(leaf)[0]
            if n % devices:
                fits = max(d for d in range(1, devices + 1) if n % d == 0)
                raise ValueError(
                    f"_common.place: with --devices {devices} the data are split over "
                    f"{devices} devices, so `{option}` must give a multiple of {devices} "
                    f"samples; got {n}. Use `{option} {n + devices - n % devices}` (or "
                    f"{n - n % devices}), or `--devices {fits}`."
                )
        return jaxloss.shard_batch(args.mesh, *arrays)
    return arrays[0] if len(arrays) == 1 else arrays


def replicate(args: argparse.Namespace, params: Any) -> Any:
    """`params` copied to every device of `--devices` (`jaxloss.replicate`), or unchanged."""
    return params if args.mesh is None else jaxloss.replicate(args.mesh, params)


def progress(items: Iterable, args: argparse.Namespace, desc: str, total: int | None = None):
    """`items` under a tqdm bar (unless `--no-progress`, or tqdm is not installed)."""
    if args.no_progress:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, total=total)


def finite_or_none(values: Any) -> Any:
    """An array as nested lists of floats for strict JSON: NaN and ±inf become None."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, None).tolist()


def downsample(curve: Any, points: int = 200) -> tuple[list[int], Any]:
    """(steps, values) of a long curve (last axis) at about `points` evenly spaced steps, the
    first and the last included; values as `finite_or_none`."""
    curve = np.asarray(curve)
    length = curve.shape[-1]
    steps = np.unique(np.linspace(0, length - 1, min(points, length)).round().astype(int))
    return steps.tolist(), finite_or_none(curve[..., steps])


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(fig: Any, path: Path, dpi: int) -> bool:
    """Write `fig` to `path` and free it; True (the figure was written)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return True


def main(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], dict],
    table: Callable[[dict], str],
    plot: Callable[[dict, Path], bool],
) -> dict:
    """Run, print the table, write `<out>/<name>.json` (strict JSON) and `<out>/<name>.png`."""
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mesh is not None:
        platform = args.mesh.devices.flat[0].platform
        shared = " (simulated: they share the CPU's cores)" if platform == "cpu" else ""
        print(f"on {args.mesh.size} {platform} devices{shared}", flush=True)
    result = run(args)
    print(table(result))
    json_path = args.out / f"{name}.json"
    json_path.write_text(json.dumps(result, allow_nan=False))
    print(f"wrote {json_path}")
    png_path = args.out / f"{name}.png"
    if plot(result, png_path):
        print(f"wrote {png_path}")
    else:
        print('matplotlib is not installed: no figure (pip install -e ".[plot]")')
    return result
