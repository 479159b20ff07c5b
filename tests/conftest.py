"""Shared fixtures: a real loss (a small MLP on scikit-learn's digits)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _share_compilations() -> None:
  """One persistent XLA compilation cache for the whole run: xdist workers and subprocesses.

  The same programs compile in many places (each parametrized case, the examples' smoke runs,
  the docs build's kernels, the multi-process workers); with a shared cache the second compile
  is a lookup. The cache starts empty for each run (a fresh directory, removed at the end), so
  a run never depends on an earlier one; set ``JAX_COMPILATION_CACHE_DIR`` yourself to keep
  one between runs. Set before JAX is imported, so every process inherits it.
  """
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return
  path = tempfile.mkdtemp(prefix="optaxdecay-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  os.environ["OPTAXDECAY_RUN_XLA_CACHE"] = path  # so xdist workers know it is the run's
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  atexit.register(shutil.rmtree, path, ignore_errors=True)  # this process made it


_share_compilations()
os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import jax  # noqa: E402  (after the cache's environment variables)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Scripts that the tests launch in subprocesses, not test modules: `--doctest-modules` must not
# import them (multiprocess_worker.py parses the command line at import).
collect_ignore = ["multiprocess_worker.py", "sharded_worker.py"]

# The examples' shared module (examples/study.py: data, models, the vmapped trainer) is imported
# by its tests as the scripts import it: from the examples folder, which is not a package and
# not in the wheel.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
  sys.path.insert(0, str(EXAMPLES))


class DigitsProblem:
  """A Flax Linen MLP (64-32-10, tanh) on ``load_digits``, mini-batched by step.

  ``grad_fn(params, step)`` is the gradient of the mean cross-entropy on batch
  ``step % n_batches``; everything is in ``dtype`` (build float64 problems
  inside ``jax.enable_x64(True)``).
  """

  def __init__(self, dtype: Any, hidden: int = 32, batch: int = 128):
    from flax import linen as nn
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float64)
    n = (len(x) // batch) * batch
    self.x = x[:n].reshape(-1, batch, 64)
    self.y = y[:n].reshape(-1, batch)
    self.dtype = dtype

    class MLP(nn.Module):
      @nn.compact
      def __call__(self, x):
        x = jnp.tanh(nn.Dense(hidden, dtype=dtype, param_dtype=dtype)(x))
        return nn.Dense(10, dtype=dtype, param_dtype=dtype)(x)

    self.model = MLP()
    params = self.model.init(jax.random.key(0), jnp.zeros((1, 64), dtype))["params"]
    # Nonzero biases, so that masking them out is visible.
    self.params = jax.tree_util.tree_map_with_path(
      lambda path, w: w + 0.1 if path[-1].key == "bias" else w, params
    )

  def loss(self, params, x, y):
    logp = jax.nn.log_softmax(self.model.apply({"params": params}, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

  @property
  def grad_fn(self) -> Callable[[Any, jax.Array], Any]:
    xs = jnp.asarray(self.x, self.dtype)
    ys = jnp.asarray(self.y)
    n = xs.shape[0]

    def grad_fn(params, step):
      i = step % n
      return jax.grad(self.loss)(params, xs[i], ys[i])

    return grad_fn


@pytest.fixture(scope="session")
def digits32() -> DigitsProblem:
  return DigitsProblem(jnp.float32)


@pytest.fixture(scope="session")
def make_digits() -> type[DigitsProblem]:
  """The problem class, for tests that build it under ``jax.enable_x64``."""
  return DigitsProblem


@pytest.fixture
def nnx_model():
  """``(nnx, model)``: a Flax NNX Linear(4, 8) -> LayerNorm(8) -> Linear(8, 2) network.

  Parameter paths: ``dense/{kernel,bias}``, ``norm/{scale,bias}``,
  ``head/{kernel,bias}``. Skips when flax is missing.
  """
  nnx = pytest.importorskip("flax.nnx", reason="flax is in the [test] extra")

  class Model(nnx.Module):
    def __init__(self, rngs):
      self.dense = nnx.Linear(4, 8, rngs=rngs)
      self.norm = nnx.LayerNorm(8, rngs=rngs)
      self.head = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
      return self.head(jax.nn.relu(self.norm(self.dense(x))))

  return nnx, Model(nnx.Rngs(0))


@pytest.fixture
def eqx_block():
  """``(eqx, params)``: an Equinox block with Embedding, LayerNorm, RMSNorm and an MLP.

  Fields ``token_embeddings``, ``ln``, ``rms``, ``mlp`` (lower-case names, so that only the
  module *classes* say what is a norm or an embedding); params are its inexact arrays.
  Skips when equinox is missing.
  """
  eqx = pytest.importorskip("equinox", reason="equinox is in the [test] extra")

  class Block(eqx.Module):
    token_embeddings: eqx.nn.Embedding
    ln: eqx.nn.LayerNorm
    rms: eqx.nn.RMSNorm
    mlp: eqx.nn.MLP

    def __init__(self, key):
      k1, k2 = jax.random.split(key)
      self.token_embeddings = eqx.nn.Embedding(10, 4, key=k1)
      self.ln = eqx.nn.LayerNorm(4)
      self.rms = eqx.nn.RMSNorm(4)
      self.mlp = eqx.nn.MLP(4, 2, 8, 1, key=k2)

  return eqx, eqx.filter(Block(jax.random.key(0)), eqx.is_inexact_array)


# --- the frameworks the compat tests compare with, and float64 -----------------------------


@pytest.fixture
def x64():
  """float64 inside one test only (a scoped jax.enable_x64)."""
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope="module")
def torch():
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  torch.set_num_threads(1)
  return torch


@pytest.fixture(scope="module")
def keras():
  keras = pytest.importorskip("keras", reason="keras is not installed (extra: compat)")
  if keras.backend.backend() != "jax":
    pytest.skip(f"keras was imported with the {keras.backend.backend()!r} backend, not 'jax'")
  return keras


# --- the inner loop: `pytest --quick` -------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
  parser.addoption(
    "--quick",
    action="store_true",
    help="the inner loop while editing: the first case of every test function, no tests marked "
    "slow (subprocesses, the docs build, smoke runs). CI and the README command run everything.",
  )


def pytest_configure(config: pytest.Config) -> None:
  config.addinivalue_line(
    "markers", "slow: launches subprocesses or builds something big; left out by --quick"
  )
  run_cache = os.environ.get("OPTAXDECAY_RUN_XLA_CACHE")
  if config.getoption("--quick") and run_cache == os.environ["JAX_COMPILATION_CACHE_DIR"]:
    # The inner loop keeps its compilations between runs (git-ignored): a rerun after an edit
    # recompiles only what the edit changed. Set before this process compiles anything.
    jax.config.update("jax_compilation_cache_dir", str(config.rootpath / ".cache" / "jax"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
  if not config.getoption("--quick"):
    return
  keep, drop, seen = [], [], set()
  for item in items:
    key = (item.path, getattr(item, "originalname", item.name))
    if item.get_closest_marker("slow") is not None or key in seen:
      drop.append(item)
    else:
      seen.add(key)
      keep.append(item)
  config.hook.pytest_deselected(items=drop)
  items[:] = keep
