"""Running an experiment script's `--quick` mode from a test, as `python experiments/<name>.py
--quick` would (imported by the tests/test_experiment*.py files)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load(name):
    """The script `experiments/<name>.py` as a module, its folder first on sys.path (for
    `import _common`), as when it runs as a script."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_run(name, tmp_path_factory, *extra):
    """`python experiments/<name>.py --quick --no-progress --out TMP *extra`: the module, the JSON
    it wrote (strict: a NaN or inf in it fails the test) and the output folder."""
    module = load(name)
    out = tmp_path_factory.mktemp(name)
    module.main(["--quick", "--no-progress", "--out", str(out), *extra])
    text = (out / f"{name}.json").read_text()
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert (out / f"{name}.png").stat().st_size > 0
    return module, result, out
