"""Shared fixtures: a real loss (a small MLP on scikit-learn's digits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest


class DigitsProblem:
  """A two-layer MLP on ``load_digits``, mini-batched by step.

  ``grad_fn(params, step)`` is the gradient of the mean cross-entropy on batch
  ``step % n_batches``; its dtype follows the params' dtype.
  """

  def __init__(self, dtype: Any, hidden: int = 32, batch: int = 128):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float64)
    n = (len(x) // batch) * batch
    self.x = x[:n].reshape(-1, batch, 64)
    self.y = y[:n].reshape(-1, batch)
    self.dtype = dtype
    rng = np.random.default_rng(0)
    self.params = {
      "Dense_0": {
        "kernel": jnp.asarray(rng.normal(0, 0.3, (64, hidden)), dtype),
        "bias": jnp.asarray(rng.normal(0, 0.1, (hidden,)), dtype),
      },
      "Dense_1": {
        "kernel": jnp.asarray(rng.normal(0, 0.3, (hidden, 10)), dtype),
        "bias": jnp.asarray(rng.normal(0, 0.1, (10,)), dtype),
      },
    }

  def loss(self, params, x, y):
    h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    logits = h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]
    logp = jax.nn.log_softmax(logits)
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
