"""What the experiment scripts share: the `--quick`, `--out` and `--no-progress` options, the
JSON + PNG output of `main`, progress bars, strict-JSON numbers, and matplotlib imported lazily
(it is the optional `plot` extra).

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

import numpy as np


def parse(
    parser: argparse.ArgumentParser, quick: dict, argv: list[str] | None, *, name: str
) -> Any:
    """Add the shared options to `parser`, parse `argv`; `--quick` sets every value in `quick`.
    `name` is the script's name: `--out` defaults to `results/<name>/`."""
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
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args


def arguments(args: argparse.Namespace) -> dict:
    """The arguments as JSON values."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


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
