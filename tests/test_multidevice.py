"""The 8-device tests (tests/multidevice/) in their own pytest session: the number of simulated CPU
devices is read when JAX's CPU backend starts, so it cannot change inside this session."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import MULTIDEVICE_SESSION

ROOT = Path(__file__).resolve().parent.parent
SIMULATED_DEVICES = "--xla_force_host_platform_device_count=8"


def test_the_multidevice_suite_passes_on_8_simulated_cpu_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {SIMULATED_DEVICES}".strip(),
        "JAX_PLATFORMS": "cpu",
        MULTIDEVICE_SESSION: "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "tests/multidevice"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    progress = done.stdout.splitlines()[0]  # one dot per test: none failed, skipped or missing
    assert set(progress.split("[")[0].strip()) == {"."}, done.stdout[-2000:]
    assert progress.count(".") >= 15, done.stdout[-2000:]
