"""``optaxdecay.compat``'s Keras 3 optimizers against the real ``keras.optimizers`` (JAX backend;
skipped without keras), on the noisy quadratic of ``compat_helpers.problem``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compat_helpers import (
  ATOL32,
  STEPS,
  check,
  keras_schedule,
  keras_traj,
  max_err,
  missing_arguments,
  our_traj,
  problem,
  schedule,
)

import optaxdecay as od
from optaxdecay import compat
from optaxdecay.testing import assert_equivalent, assert_not_equivalent


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
@pytest.mark.parametrize(
  "momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)], ids=["plain", "mom", "nest"]
)
def test_keras_sgd_matches_keras(keras, momentum, nesterov, scheduled):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.05, 0.1
  klr = keras_schedule(keras, lr) if scheduled else lr
  opt = keras.optimizers.SGD(klr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
  ref = keras_traj(keras, opt, params, grad_np)
  tx = compat.keras_sgd(
    schedule(lr) if scheduled else lr, momentum=momentum, nesterov=nesterov, weight_decay=wd
  )
  name = f"keras SGD momentum={momentum} nesterov={nesterov} sched={scheduled}"
  check(name, our_traj(tx, params, grad_fn), ref, ATOL32)


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_keras_adamw_matches_keras(keras, scheduled):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.02, 0.5
  klr = keras_schedule(keras, lr) if scheduled else lr
  ref = keras_traj(keras, keras.optimizers.AdamW(klr, weight_decay=wd), params, grad_np)
  tx = compat.keras_adamw(schedule(lr) if scheduled else lr, weight_decay=wd)
  check(f"keras AdamW sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL32)


def test_keras_adamw_defaults_and_epsilon_hat(keras):
  """Small gradients make Keras' epsilon hat visible: it must still match."""
  params, grad_np, grad_fn = problem(seed=2)

  def tiny(p, step):
    return jax.tree.map(lambda g: 1e-6 * g, grad_np(p, step))

  def tiny_fn(p, step):
    return jax.tree.map(lambda g: 1e-6 * g, grad_fn(p, step))

  ref = keras_traj(keras, keras.optimizers.AdamW(), params, tiny)
  ours = our_traj(compat.keras_adamw(), params, tiny_fn)
  check("keras AdamW defaults, |g|~1e-6", ours, ref, ATOL32)
  torch_style = our_traj(compat.torch_adamw(0.001, eps=1e-7, weight_decay=0.004), params, tiny_fn)
  assert max_err(torch_style, ref) > 10 * ATOL32  # the epsilon convention matters here


def test_keras_adam_weight_decay_is_decoupled(keras):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.02, 0.5
  ref = keras_traj(keras, keras.optimizers.Adam(lr, weight_decay=wd), params, grad_np)
  check(
    "keras Adam(weight_decay)",
    our_traj(compat.keras_adam(lr, weight_decay=wd), params, grad_fn),
    ref,
    ATOL32,
  )


def test_keras_mask_matches_exclude_from_weight_decay(keras):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.02, 0.5
  opt = keras.optimizers.AdamW(lr, weight_decay=wd)
  ref = keras_traj(keras, opt, params, grad_np, exclude=["bias"])
  ours = our_traj(compat.keras_adamw(lr, weight_decay=wd, mask=od.bias_mask), params, grad_fn)
  check("keras AdamW exclude_from_weight_decay(['bias'])", ours, ref, ATOL32)
  unmasked = keras_traj(keras, keras.optimizers.AdamW(lr, weight_decay=wd), params, grad_np)
  assert max_err(unmasked, ref) > 1e-3  # the mask is doing something


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
def test_keras_lion_matches_keras(keras, scheduled):
  params, grad_np, grad_fn = problem()
  lr, wd = 0.01, 0.5
  klr = keras_schedule(keras, lr) if scheduled else lr
  opt = keras.optimizers.Lion(klr, beta_1=0.8, beta_2=0.95, weight_decay=wd)
  ref = keras_traj(keras, opt, params, grad_np, exclude=["bias"])
  tx = compat.keras_lion(
    schedule(lr) if scheduled else lr, 0.8, 0.95, weight_decay=wd, mask=od.bias_mask
  )
  check(
    f"keras Lion exclude=['bias'] sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL32
  )


MORE_KERAS = {
  "RMSprop": (compat.keras_rmsprop, dict(rho=0.8, epsilon=1e-6, weight_decay=0.3)),
  "RMSprop-momentum-centered": (
    compat.keras_rmsprop,
    dict(rho=0.8, momentum=0.7, epsilon=1e-6, centered=True, weight_decay=0.3),
  ),
  "Adagrad": (
    compat.keras_adagrad,
    dict(initial_accumulator_value=0.2, epsilon=1e-6, weight_decay=0.3),
  ),
  "Adamax": (compat.keras_adamax, dict(beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.3)),
  "Nadam": (compat.keras_nadam, dict(beta_1=0.85, beta_2=0.99, epsilon=1e-6, weight_decay=0.3)),
  "Lamb": (compat.keras_lamb, dict(beta_1=0.85, beta_2=0.99, epsilon=1e-6, weight_decay=0.3)),
  "Adafactor": (compat.keras_adafactor, dict(beta_2_decay=-0.8, weight_decay=0.3)),
  "Adafactor-unclipped": (
    compat.keras_adafactor,
    dict(
      beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=3.0, relative_step=False, weight_decay=0.1
    ),
  ),
}


def _keras_class(keras, name):
  return getattr(keras.optimizers, name.split("-")[0])


@pytest.mark.parametrize("scheduled", [False, True], ids=["const", "schedule"])
@pytest.mark.parametrize("name", list(MORE_KERAS))
def test_more_keras_optimizers_match_keras(keras, name, scheduled):
  factory, kw = MORE_KERAS[name]
  params, grad_np, grad_fn = problem()
  lr = 0.02
  klr = keras_schedule(keras, lr) if scheduled else lr
  opt = _keras_class(keras, name)(klr, **kw)
  ref = keras_traj(keras, opt, params, grad_np, exclude=["bias"])
  tx = factory(schedule(lr) if scheduled else lr, **kw, mask=od.bias_mask)
  check(
    f"keras {name} exclude=['bias'] sched={scheduled}", our_traj(tx, params, grad_fn), ref, ATOL32
  )


ACCUMULATING = {
  "SGD": (compat.keras_sgd, dict(momentum=0.9, weight_decay=0.1)),
  "Adam": (compat.keras_adam, dict(weight_decay=0.1)),
  "AdamW": (compat.keras_adamw, dict(weight_decay=0.1)),
  "Lion": (compat.keras_lion, dict(weight_decay=0.5)),
  **{k: v for k, v in MORE_KERAS.items() if "-" not in k},
}


@pytest.mark.parametrize("name", list(ACCUMULATING))
def test_keras_gradient_accumulation_matches_keras(keras, name):
  """gradient_accumulation_steps=3 with a schedule: updates (and decay) on every third call only,
  the schedule on Keras' call count, the bias correction on its update count."""
  factory, kw = ACCUMULATING[name]
  params, grad_np, grad_fn = problem()
  lr = 0.01 if name == "Lion" else 0.05
  opt = _keras_class(keras, name)(keras_schedule(keras, lr), gradient_accumulation_steps=3, **kw)
  ref = keras_traj(keras, opt, params, grad_np)
  tx = factory(schedule(lr), **kw, gradient_accumulation_steps=3)
  ours = our_traj(tx, params, grad_fn)
  check(f"keras {name} gradient_accumulation_steps=3", ours, ref, ATOL32)
  np.testing.assert_array_equal(ours["w"][0], params["w"])  # no update before the third call
  assert not np.array_equal(ours["w"][2], ours["w"][1])


def test_keras_lamb_is_not_optax_lamb():
  """optax.lamb (the paper's) puts the decay inside the trust ratio; Keras decays first and
  keeps it out."""
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  ours = compat.keras_lamb(0.02, epsilon=1e-6, weight_decay=0.3)
  assert_not_equivalent(ours, optax.lamb(0.02, eps=1e-6, weight_decay=0.3), p, grad_fn, steps=STEPS)
  no_decay = compat.keras_lamb(0.02, epsilon=1e-6)
  assert_equivalent(
    no_decay,
    optax.lamb(0.02, eps=1e-6, weight_decay=0.0),
    p,
    grad_fn,
    steps=STEPS,
    rtol=1e-5,
    atol=1e-6,
  )


def test_keras_accumulation_is_not_plain_multisteps_under_a_schedule():
  """optax.MultiSteps alone shows the inner schedule the update count, Keras the call count."""
  params, _, grad_fn = problem()
  p = jax.tree.map(jnp.asarray, params)
  keras_like = compat.keras_adamw(schedule(0.05), weight_decay=0.1, gradient_accumulation_steps=3)
  plain = optax.MultiSteps(compat.keras_adamw(schedule(0.05), weight_decay=0.1), 3)
  assert_not_equivalent(keras_like, plain.gradient_transformation(), p, grad_fn, steps=STEPS)
  constant = compat.keras_adamw(0.05, weight_decay=0.1, gradient_accumulation_steps=3)
  plain_constant = optax.MultiSteps(compat.keras_adamw(0.05, weight_decay=0.1), 3)
  assert_equivalent(
    constant, plain_constant.gradient_transformation(), p, grad_fn, steps=STEPS, rtol=0, atol=0
  )


@pytest.mark.parametrize("steps", [1, 0, 2.0, True, -3])
def test_keras_gradient_accumulation_steps_must_be_an_integer_of_at_least_2(steps):
  for factory in (compat.keras_sgd, compat.keras_adamw, compat.keras_nadam):
    with pytest.raises((TypeError, ValueError), match=r"keras_\w+: `gradient_accumulation_steps`"):
      factory(gradient_accumulation_steps=steps)


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.keras_rmsprop(rho=1.0), "rho"),
    (lambda: compat.keras_rmsprop(centered=1), "centered"),
    (lambda: compat.keras_adagrad(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: compat.keras_adamax(beta_2=1.0), "beta_2"),
    (lambda: compat.keras_nadam(epsilon=-1e-7), "epsilon"),
    (lambda: compat.keras_adafactor(beta_2_decay=0.1), "beta_2_decay"),
    (lambda: compat.keras_adafactor(relative_step=None), "relative_step"),
    (lambda: compat.keras_lamb(beta_1=1.0), "beta_1"),
  ],
)
def test_more_keras_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=f"`{arg}"):
    build()


MUON_SHAPES = {"w": (3, 4), "bias": (4,), "token_embedding": (5, 3), "proj": (4, 6)}


KERAS_MUON_CASES = {
  # Muon on 'w'; AdamW on the bias (1-D), the embedding (exclude_embeddings) and 'proj'
  # (exclude_layers), with their own weight decay and lr ratio.
  "const": (False, {}),
  "schedule": (True, {}),
  "accumulation": (True, dict(gradient_accumulation_steps=3)),
  # Every matrix to Muon.
  "no-exclusions": (True, dict(exclude_layers=None, exclude_embeddings=False)),
}


@pytest.mark.parametrize("case", list(KERAS_MUON_CASES))
def test_keras_muon_matches_keras(keras, case):
  scheduled, extra = KERAS_MUON_CASES[case]
  params, grad_np, grad_fn = problem(shapes=MUON_SHAPES)
  lr = 0.02
  kw = dict(weight_decay=0.1, adam_weight_decay=0.3, exclude_layers=["proj"], adam_lr_ratio=0.5)
  kw.update(extra)
  klr = keras_schedule(keras, lr) if scheduled else lr
  ref = keras_traj(keras, keras.optimizers.Muon(klr, **kw), params, grad_np)
  ours = our_traj(compat.keras_muon(schedule(lr) if scheduled else lr, **kw), params, grad_fn)
  check(f"keras Muon {case}", ours, ref, ATOL32)
  if case == "no-exclusions":  # the exclusions are doing something
    excluded = our_traj(
      compat.keras_muon(schedule(lr), **dict(kw, exclude_layers=["proj"])), params, grad_fn
    )
    assert max_err(excluded, ref) > 1e-3


@pytest.mark.parametrize(
  ("build", "arg"),
  [
    (lambda: compat.keras_muon(exclude_layers="proj"), "exclude_layers"),
    (lambda: compat.keras_muon(exclude_layers=["("]), "exclude_layers"),
    (lambda: compat.keras_muon(adam_lr_ratio=0.0), "adam_lr_ratio"),
    (lambda: compat.keras_muon(rms_rate=-0.2), "rms_rate"),
    (lambda: compat.keras_muon(adam_weight_decay=-1.0), "adam_weight_decay"),
  ],
)
def test_keras_muon_bad_arguments(build, arg):
  with pytest.raises((TypeError, ValueError), match=rf"keras_muon: `{arg}"):
    build()


def test_keras_adafactor_takes_a_0d_parameter_like_keras(keras):
  params = {"s": np.float32(0.7), "w": np.ones((2, 3), np.float32)}
  shapes = {"s": (), "w": (2, 3)}
  rng = np.random.default_rng(3)
  noise = {k: rng.normal(size=(STEPS, *s)).astype(np.float32) for k, s in shapes.items()}
  grad_np = lambda p, step: {k: p[k] + noise[k][step] for k in p}
  grad_fn = lambda p, step: {k: p[k] + jnp.asarray(noise[k])[step] for k in p}
  ref = keras_traj(keras, keras.optimizers.Adafactor(0.05, weight_decay=0.1), params, grad_np)
  check(
    "keras Adafactor 0-d",
    our_traj(compat.keras_adafactor(0.05, weight_decay=0.1), params, grad_fn),
    ref,
    ATOL32,
  )


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_keras_amsgrad_matches_keras(keras, name):
  params, base_np, base_fn = problem()
  # Large gradients first, small ones after: the running max of v then differs from v.
  big = lambda step: 3.0 if step < 5 else 0.1
  grad_np = lambda p, step: {k: big(step) * v for k, v in base_np(p, step).items()}
  grad_fn = lambda p, step: {
    k: jnp.where(step < 5, 3.0, 0.1) * v for k, v in base_fn(p, step).items()
  }
  kw = dict(learning_rate=0.02, weight_decay=0.1, amsgrad=True)
  ref = keras_traj(keras, getattr(keras.optimizers, name)(**kw), params, grad_np)
  factory = compat.keras_adam if name == "Adam" else compat.keras_adamw
  check(f"keras {name} amsgrad", our_traj(factory(**kw), params, grad_fn), ref, ATOL32)
  plain = our_traj(factory(**dict(kw, amsgrad=False)), params, grad_fn)
  assert max_err(plain, ref) > 10 * ATOL32  # the flag changes the trajectory here


KERAS_NOT_TAKEN = {
  "name",  # a label
  "clipnorm", "clipvalue", "global_clipnorm",  # optax.clip_by_*, chained before
  "use_ema", "ema_momentum", "ema_overwrite_frequency",  # optax.ema of the params, outside
  "loss_scale_factor",  # mixed-precision loss scaling, outside the optimizer
}  # fmt: skip


KERAS_PAIRS = {
  n: f"keras_{n.lower()}"
  for n in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Nadam", "Lamb", "Lion")
} | {"Adafactor": "keras_adafactor", "Muon": "keras_muon"}


def test_every_keras_constructor_argument_is_reproduced_or_listed(keras):
  for cls, fn in KERAS_PAIRS.items():
    assert not missing_arguments(
      getattr(keras.optimizers, cls), getattr(compat, fn), KERAS_NOT_TAKEN
    ), cls
