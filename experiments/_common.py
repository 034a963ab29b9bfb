"""What the experiment scripts share: the `--quick`, `--out` and `--no-progress` options, the
JSON + PNG output of `main`, and matplotlib imported lazily (it is the optional `plot` extra).

A script defines `run(args) -> dict` (JSON-ready), `table(result) -> str` and
`plot(result, path) -> bool`, and calls `main(name, args, run, table, plot)`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def parse(parser: argparse.ArgumentParser, quick: dict, argv: list[str] | None) -> Any:
    """Add the shared options to `parser`, parse `argv`; `--quick` sets every value in `quick`."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few-second smoke run: " + ", ".join(f"{k} {v}" for k, v in quick.items()),
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args


def arguments(args: argparse.Namespace) -> dict:
    """The arguments as JSON values."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


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
