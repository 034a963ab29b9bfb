"""Test configuration: rank promotion raises, so (N,) vs (N, 1) bugs fail loudly."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
# Float64 references need x64; every loss is also tested in float32 explicitly.
jax.config.update("jax_enable_x64", True)
