"""Tests that need 8 devices: `tests/test_multidevice.py` runs this folder in its own pytest session
with 8 simulated CPU devices (`--xla_force_host_platform_device_count=8`, set before JAX starts).
In a session with fewer devices (the main one) the folder is not collected."""

import jax

NUM_DEVICES = 8

if jax.device_count() < NUM_DEVICES:
    collect_ignore_glob = ["test_*.py"]
