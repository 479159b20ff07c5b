"""compat under ``optax.inject_hyperparams``: every float argument injected, under ``jit``.

PyTorch users edit ``param_groups`` every step and Keras users assign to
``optimizer.learning_rate``; the Optax way is ``inject_hyperparams``. The chain a factory builds
at ``init`` (concrete values) must be the one it rebuilds inside ``update`` (traced values), so
its structure may depend only on arguments that cannot be injected. Each case is checked
against the same factory called with plain Python values: the same trajectory.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optaxdecay import compat

STEPS = 4
#: The value each float argument is injected with where its default is 0 or None: non-zero, so
#: that the branch a zero would skip runs (momentum, dampening, lr_decay, weight_decay).
NONZERO = {
  "momentum": 0.5, "dampening": 0.25, "lr_decay": 0.1, "weight_decay": 0.1,
  "initial_accumulator_value": 0.1, "adam_weight_decay": 0.05, "shrink": 0.1,
}  # fmt: skip
#: Required arguments without defaults.
REQUIRED = {"lr": 0.01, "learning_rate": 0.01, "alpha": 0.01, "weight_decay": 0.1, "b1": 0.9}
#: Matrices only (Muon refuses vectors).
MATRIX_ONLY = {"torch_muon", "scale_by_torch_muon", "scale_by_keras_muon"}


def _factories() -> list[str]:
  return sorted(
    n
    for n in compat.__all__
    if callable(getattr(compat, n)) and "_to_" not in n and not n[0].isupper()
  )


def _float_args(fn) -> tuple[dict, dict]:
  """``(floats, others)``: the factory's float arguments (to inject) and the rest (static)."""
  floats, others = {}, {}
  for p in inspect.signature(fn).parameters.values():
    value = REQUIRED.get(p.name) if p.default is inspect.Parameter.empty else p.default
    if p.name in NONZERO and (value is None or value == 0):
      value = NONZERO[p.name]
    if isinstance(value, float) and not isinstance(value, bool):
      floats[p.name] = value
    elif value is not None and p.default is inspect.Parameter.empty:
      others[p.name] = value
  return floats, others


@pytest.mark.parametrize("name", _factories())
def test_every_float_argument_can_be_injected_under_jit(name):
  factory = getattr(compat, name)
  floats, others = _float_args(factory)
  if name == "scale_by_torch_momentum":
    floats["momentum"] = 0.5
  static = tuple(n for n in inspect.signature(factory).parameters if n not in floats)
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
  if name not in MATRIX_ONLY:
    params["bias"] = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
           for _ in range(STEPS)]  # fmt: skip

  def run(tx):
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    p, s, out = params, tx.init(params), []
    for g in grads:
      u, s = step(g, s, p)
      p = optax.apply_updates(p, u)
      out.append(p)
    return out

  plain = run(factory(**floats, **others))
  injected = optax.inject_hyperparams(factory, static_args=static)(**floats, **others)
  state = injected.init(params)
  assert set(floats) <= set(state.hyperparams), sorted(state.hyperparams)
  # An injected value is a float32 array where the plain call folds a Python float: the two
  # round differently, to float32 precision of the parameters' scale.
  for a, b in zip(run(injected), plain, strict=True):
    for k in a:
      scale = max(1.0, float(np.max(np.abs(b[k]))))
      np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5 * scale, err_msg=f"{name}: {k}")


# ----------------------------------------------------------------------------------------------
# Differential tests with drawn hyperparameters and shapes, against the real torch and Keras.
#
# A seeded generator draws every hyperparameter, flag and shape for each case (EXAMPLES per
# optimizer in CI; OPTAXDECAY_COMPAT_EXAMPLES=200 for a deep local run), the gradients are
# noisy, with some coordinates exactly zero; the assertion is float32 to 1e-5 of the
# parameter scale after 20 steps.

import os  # noqa: E402

import compat_helpers as tc  # noqa: E402

EXAMPLES = int(os.environ.get("OPTAXDECAY_COMPAT_EXAMPLES", "3"))
DRAWN_STEPS = 20
SHAPES = [(), (3,), (4, 2), (2, 5), (2, 2, 3), (2, 1, 2, 2)]


def _u(rng, lo, hi):
  return float(rng.uniform(lo, hi))


def _log(rng, lo, hi):
  return float(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def _maybe(rng, value, p=0.5):
  return value if rng.random() < p else 0.0


def _torch_sgd(rng):
  m = _maybe(rng, _u(rng, 0.0, 0.99))
  d = _maybe(rng, _u(rng, 0.0, 0.9)) if m else 0.0
  kw = dict(lr=_log(rng, 1e-3, 0.1), momentum=m, dampening=d,
            weight_decay=_maybe(rng, _u(rng, 0, 0.5)), nesterov=bool(m and not d and rng.random() < 0.5),  # noqa: E501
            maximize=bool(rng.random() < 0.3))  # fmt: skip
  return kw, kw


def _betas(rng):
  return (_maybe(rng, _u(rng, 0.0, 0.99), 0.8), _u(rng, 0.5, 0.9999))


def _torch_adam(rng, **extra):
  kw = dict(lr=_log(rng, 1e-4, 0.05), betas=_betas(rng), eps=_log(rng, 1e-10, 1e-3),
            weight_decay=_maybe(rng, _u(rng, 0, 0.5)), maximize=bool(rng.random() < 0.3), **extra)  # fmt: skip  # noqa: E501
  return kw, kw


def _torch_rmsprop(rng):
  kw = dict(lr=_log(rng, 1e-4, 0.05), alpha=_u(rng, 0.5, 0.999), eps=_log(rng, 1e-8, 1e-3),
            weight_decay=_maybe(rng, _u(rng, 0, 0.5)), momentum=_maybe(rng, _u(rng, 0, 0.9)),
            centered=bool(rng.random() < 0.5), maximize=bool(rng.random() < 0.3))  # fmt: skip
  return kw, kw


def _torch_adagrad(rng):
  kw = dict(lr=_log(rng, 1e-3, 0.1), lr_decay=_maybe(rng, _u(rng, 0, 0.1)),
            weight_decay=_maybe(rng, _u(rng, 0, 0.5)), initial_accumulator_value=_u(rng, 0, 0.5),
            eps=_log(rng, 1e-10, 1e-4), maximize=bool(rng.random() < 0.3))  # fmt: skip
  return kw, kw


def _torch_adafactor(rng):
  kw = dict(lr=_log(rng, 1e-3, 0.05), beta2_decay=_u(rng, -1.0, 0.0),
            eps=(None if rng.random() < 0.5 else _log(rng, 1e-30, 1e-6), _log(rng, 1e-4, 1e-2)),
            d=_u(rng, 0.5, 2.0), weight_decay=_maybe(rng, _u(rng, 0, 0.5)),
            maximize=bool(rng.random() < 0.3))  # fmt: skip
  return kw, kw


def _torch_muon(rng):
  kw = dict(lr=_log(rng, 1e-3, 0.05), weight_decay=_maybe(rng, _u(rng, 0, 0.5)),
            momentum=_u(rng, 0.5, 0.99), nesterov=bool(rng.random() < 0.5),
            eps=_log(rng, 1e-9, 1e-5), ns_steps=int(rng.integers(3, 7)),
            adjust_lr_fn=[None, "original", "match_rms_adamw"][int(rng.integers(3))])  # fmt: skip
  return kw, kw


TORCH = {
  "SGD": ("torch_sgd", _torch_sgd),
  "Muon": ("torch_muon", _torch_muon),
  "Adafactor": ("torch_adafactor", _torch_adafactor),
  "Adam": ("torch_adam", lambda r: _torch_adam(r, amsgrad=bool(r.random() < 0.3))),
  "AdamW": ("torch_adamw", lambda r: _torch_adam(r, amsgrad=bool(r.random() < 0.3))),
  "RMSprop": ("torch_rmsprop", _torch_rmsprop),
  "Adagrad": ("torch_adagrad", _torch_adagrad),
  "Adamax": ("torch_adamax", _torch_adam),
  "NAdam": ("torch_nadam", lambda r: _torch_adam(
    r, momentum_decay=_u(r, 0, 0.01), decoupled_weight_decay=bool(r.random() < 0.5))),
  "RAdam": ("torch_radam", lambda r: _torch_adam(r, decoupled_weight_decay=bool(r.random() < 0.5))),
}  # fmt: skip


def _keras_adam_like(rng, **extra):
  kw = dict(learning_rate=_log(rng, 1e-4, 0.05), beta_1=_u(rng, 0.1, 0.99),
            beta_2=_u(rng, 0.5, 0.9999), epsilon=_log(rng, 1e-8, 1e-3), **extra)  # fmt: skip
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw["weight_decay"] = wd if wd else None
  return kw, kw


def _keras_sgd(rng):
  m = _maybe(rng, _u(rng, 0, 0.99))
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw = dict(learning_rate=_log(rng, 1e-3, 0.1), momentum=m, nesterov=bool(m and rng.random() < 0.5),
            weight_decay=wd if wd else None)  # fmt: skip
  return kw, kw


def _keras_rmsprop(rng):
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw = dict(learning_rate=_log(rng, 1e-4, 0.05), rho=_u(rng, 0.5, 0.999),
            momentum=_maybe(rng, _u(rng, 0, 0.9)), epsilon=_log(rng, 1e-7, 1e-3),
            centered=bool(rng.random() < 0.5), weight_decay=wd if wd else None)  # fmt: skip
  return kw, kw


def _keras_lion(rng):
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw = dict(learning_rate=_log(rng, 1e-4, 0.01), beta_1=_u(rng, 0, 0.99), beta_2=_u(rng, 0.5, 0.999),  # noqa: E501
            weight_decay=wd if wd else None)  # fmt: skip
  return kw, kw


def _keras_adamw(rng):
  kw, _ = _keras_adam_like(rng, amsgrad=bool(rng.random() < 0.3))
  kw["weight_decay"] = kw["weight_decay"] or 0.0
  return kw, kw


def _keras_adagrad(rng):
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw = dict(learning_rate=_log(rng, 1e-3, 0.1), initial_accumulator_value=_u(rng, 0.01, 0.5),
            epsilon=_log(rng, 1e-8, 1e-4), weight_decay=wd if wd else None)  # fmt: skip
  return kw, kw


def _keras_adafactor(rng):
  wd = _maybe(rng, _u(rng, 0, 0.5))
  kw = dict(learning_rate=_log(rng, 1e-3, 0.05), beta_2_decay=_u(rng, -1.0, -0.1),
            epsilon_1=_log(rng, 1e-30, 1e-10), epsilon_2=_log(rng, 1e-4, 1e-2),
            clip_threshold=_u(rng, 0.5, 2.0), weight_decay=wd if wd else None)  # fmt: skip
  return kw, kw


def _keras_muon(rng):
  kw, _ = _keras_adam_like(rng)
  kw = {"adam_" + k if k in ("beta_1", "beta_2") else k: v for k, v in kw.items()}
  kw.update(momentum=_u(rng, 0.5, 0.99), nesterov=bool(rng.random() < 0.5),
            ns_steps=int(rng.integers(3, 7)), adam_weight_decay=_maybe(rng, _u(rng, 0, 0.5)),
            weight_decay=_maybe(rng, _u(rng, 0, 0.5)) or None)  # fmt: skip
  return kw, kw


KERAS = {
  "SGD": ("keras_sgd", _keras_sgd),
  "Muon": ("keras_muon", _keras_muon),
  "Adagrad": ("keras_adagrad", _keras_adagrad),
  "Lamb": ("keras_lamb", _keras_adam_like),
  "Adafactor": ("keras_adafactor", _keras_adafactor),
  "Adam": ("keras_adam", lambda r: _keras_adam_like(r, amsgrad=bool(r.random() < 0.3))),
  "AdamW": ("keras_adamw", _keras_adamw),
  "RMSprop": ("keras_rmsprop", _keras_rmsprop),
  "Adamax": ("keras_adamax", _keras_adam_like),
  "Nadam": ("keras_nadam", _keras_adam_like),
  "Lion": ("keras_lion", _keras_lion),
}


def _drawn_problem(rng, shapes_from=SHAPES):
  """Two leaves of drawn shapes; gradients ``c * p + noise`` with ~20% exact zeros."""
  pick = lambda: shapes_from[rng.integers(len(shapes_from))]
  shapes = {"a": pick(), "b": pick()}
  params = {k: (0.5 * rng.normal(size=s)).astype(np.float32) for k, s in shapes.items()}
  curv = {k: rng.uniform(0.5, 2.0, size=s).astype(np.float32) for k, s in shapes.items()}
  noise = {
    k: (rng.normal(size=(DRAWN_STEPS, *s)) * (rng.random((DRAWN_STEPS, *s)) > 0.2)).astype(
      np.float32
    )
    for k, s in shapes.items()
  }
  grad_np = lambda p, step: {k: curv[k] * p[k] + noise[k][step] for k in p}
  grad_fn = lambda p, step: {
    k: jnp.asarray(curv[k]) * p[k] + jnp.asarray(noise[k])[step] for k in p
  }
  return params, grad_np, grad_fn


def _within(ours, ref, what):
  for k in ref:
    scale = max(1.0, float(np.max(np.abs(ref[k]))))
    err = float(np.max(np.abs(ours[k] - ref[k]), initial=0.0))
    assert err <= 1e-5 * scale, f"{what}: leaf {k!r} off by {err:.2e} (scale {scale:.2f})"


@pytest.fixture
def short_runs(monkeypatch):
  monkeypatch.setattr(tc, "STEPS", DRAWN_STEPS)


@pytest.mark.parametrize("name", list(TORCH))
def test_drawn_hyperparameters_match_torch(name, short_runs):
  torch = pytest.importorskip("torch", reason="torch is not installed (extra: compat)")
  torch.set_num_threads(1)
  fn, draw = TORCH[name]
  rng = np.random.default_rng(sum(map(ord, name)))
  for _ in range(EXAMPLES):
    # torch's Muon takes matrices only (tall, wide and square drawn).
    shapes = [(4, 2), (2, 5), (3, 3), (6, 4)] if name == "Muon" else SHAPES
    params, grad_np, grad_fn = _drawn_problem(rng, shapes)
    theirs, ours = draw(rng)
    ours = dict(ours)
    # A LambdaLR schedule (ours: the same multiplier as an Optax schedule), half the time.
    scheduled = rng.random() < 0.5
    if scheduled:
      ours["lr"] = tc.schedule(theirs["lr"])
    # Param groups: the second leaf without weight decay (ours: a mask), a third of the time.
    grouped = theirs.get("weight_decay", 0) > 0 and rng.random() < 0.33
    if grouped:
      ours["mask"] = {"a": True, "b": False}

    def opt(tp, theirs=theirs, grouped=grouped):
      if grouped:
        groups = [{"params": [tp["a"]]}, {"params": [tp["b"]], "weight_decay": 0.0}]
        return getattr(torch.optim, name)(groups, **theirs)
      return getattr(torch.optim, name)(tp.values(), **theirs)

    lam = tc.lr_factor if scheduled else None
    ref = tc.torch_traj(torch, opt, params, grad_np, lam)
    got = tc.our_traj(getattr(compat, fn)(**ours), params, grad_fn)
    what = f"torch {name}({theirs}), schedule={scheduled}, groups={grouped}"
    _within(got, ref, f"{what}, shapes {[np.shape(v) for v in params.values()]}")


@pytest.mark.parametrize("name", list(KERAS))
def test_drawn_hyperparameters_match_keras(name, short_runs):
  keras = pytest.importorskip("keras", reason="keras is not installed (extra: compat)")
  if keras.backend.backend() != "jax":
    pytest.skip(f"keras was imported with the {keras.backend.backend()!r} backend, not 'jax'")
  fn, draw = KERAS[name]
  rng = np.random.default_rng(sum(map(ord, name)) + 1)
  for _ in range(EXAMPLES):
    params, grad_np, grad_fn = _drawn_problem(rng)
    theirs, ours = draw(rng)
    scheduled = rng.random() < 0.5  # a LearningRateSchedule (ours: the same, in Optax)
    lr = theirs["learning_rate"]
    k_kw = dict(theirs, learning_rate=tc.keras_schedule(keras, lr)) if scheduled else theirs
    o_kw = dict(ours, learning_rate=tc.schedule(lr)) if scheduled else ours
    ref = tc.keras_traj(keras, getattr(keras.optimizers, name)(**k_kw), params, grad_np)
    got = tc.our_traj(getattr(compat, fn)(**o_kw), params, grad_fn)
    what = f"keras {name}({theirs}), schedule={scheduled}"
    _within(got, ref, f"{what}, shapes {[np.shape(v) for v in params.values()]}")
