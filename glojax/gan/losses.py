"""GAN loss triples: the three functions that define a GAN's losses (dissertation §7.4).

A GAN formulation is three univariate functions of the discriminator's output
(dissertation §7.4.1, Table 7.3):

* ``d_real(d)`` — the discriminator's loss on a real sample, ``d = D(x)``;
* ``d_fake(d)`` — the discriminator's loss on a generated sample, ``d = D(G(z))``;
* ``g_fake(d)`` — the generator's loss on a generated sample.

The discriminator minimizes ``E[d_real(D(x))] + E[d_fake(D(G(z)))]`` and the generator
``E[g_fake(D(G(z)))]``. ``d`` is always the discriminator's *raw* output (a logit, or a
critic value): for the sigmoid formulations ``D(x) = σ(d)`` and the components are
written in ``d`` so they stay finite (``-log σ(d) = softplus(-d)``).

The evolvable family (``gan_taylor``) makes each component a 3rd-order univariate Taylor
polynomial around its own centre, the constant term dropped (it has no gradient):

.. math:: f(d) = k_1 (d - c) + k_2 (d - c)^2 + k_3 (d - c)^3

so a triple is 12 numbers, held as one pytree :class:`TaylorTriple` (``d_real``,
``d_fake``, ``g_fake``: ``float32[4] = (c, k1, k2, k3)`` each); the flat layout
``theta[12]`` is the three rows in that order.

Spec strings (parsed with :func:`glojax.losses.parse_spec`, never ``eval``) name a triple:

* ``"minimax"``, ``"non_saturating"``, ``"wgan"``, ``"lsgan"`` — Table 7.3's rows;
* ``"gan_taylor(theta=[12 floats])"`` — a Taylor triple;
* ``"taylorglo_facade"`` — the triple TaylorGLO evolved for pix2pix-HD on CMP Facade
  (dissertation eqs. 7.2–7.4), with its evolved learning rate 1e-4, feature-matching
  weight 4.0877 and perceptual weight 10.3155.

Any spec may add training hyperparameters that travel with the loss
(``learning_rate=``, ``feature_weight=``, ``perceptual_weight=``), so one string holds a
whole 12 + 3 GA genome: ``"gan_taylor(theta=[...], learning_rate=0.0002,
feature_weight=10.0, perceptual_weight=10.0)"``. :func:`get` loads a spec,
:func:`to_spec` writes the canonical one, and ``get(to_spec(loss)) == loss``.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.losses import parse_spec

COMPONENTS = ("d_real", "d_fake", "g_fake")
NUM_PARAMS = 12                    # 3 components × (centre, k1, k2, k3)
THETA_BOUNDS = (-10.0, 10.0)       # each parameter's search range (dissertation §7.4.2)
HPARAMS = ("learning_rate", "feature_weight", "perceptual_weight")


class TaylorTriple(NamedTuple):
  """A Taylor GAN loss triple: one pytree of 12 parameters.

  Attributes:
    d_real, d_fake, g_fake: ``float32[..., 4]`` = ``(centre, k1, k2, k3)`` of
      :func:`taylor_component` for each component (a leading candidate axis is allowed).
  """
  d_real: jax.Array
  d_fake: jax.Array
  g_fake: jax.Array

  @classmethod
  def from_theta(cls, theta) -> "TaylorTriple":
    """``theta: float[..., 12]`` (rows d_real, d_fake, g_fake) → a triple.

    Raises:
      ValueError: if the last axis is not 12.
    """
    theta = jnp.asarray(theta, jnp.float32)
    if theta.shape[-1:] != (NUM_PARAMS,):
      raise ValueError(f"a GAN Taylor triple needs theta[..., {NUM_PARAMS}], got shape "
                       f"{tuple(theta.shape)}")
    return cls(theta[..., 0:4], theta[..., 4:8], theta[..., 8:12])

  def to_theta(self) -> jax.Array:
    """The flat ``float32[..., 12]`` layout."""
    return jnp.concatenate([self.d_real, self.d_fake, self.g_fake], axis=-1)


def taylor_component(p: jax.Array, d: jax.Array) -> jax.Array:
  r"""One univariate 3rd-order Taylor component, elementwise.

  .. math:: f(d) = k_1 (d - c) + k_2 (d - c)^2 + k_3 (d - c)^3

  Args:
    p: ``float32[4]`` = ``(c, k1, k2, k3)``.
    d: ``float32[...]`` discriminator outputs.

  Returns:
    ``float32[...]``, same shape as ``d``.

  References:
    Dissertation §7.4.1 and eqs. 7.2–7.4 (the printed form, constant term dropped).
  """
  h = d - p[0]
  return h * (p[1] + h * (p[2] + h * p[3]))


class ParamTriple(NamedTuple):
  """Three component functions ``f(params, d) -> float[...]`` sharing one ``params``.

  ``params`` is the triple's parameter pytree (a :class:`TaylorTriple`, or ``()`` for a
  closed form); passing different ``params`` to a jitted trainer does not recompile.
  """
  d_real: Callable[[Any, jax.Array], jax.Array]
  d_fake: Callable[[Any, jax.Array], jax.Array]
  g_fake: Callable[[Any, jax.Array], jax.Array]


# One object for every Taylor triple: a trainer compiled for it serves them all.
TAYLOR_FNS = ParamTriple(lambda p, d: taylor_component(p.d_real, d),
                         lambda p, d: taylor_component(p.d_fake, d),
                         lambda p, d: taylor_component(p.g_fake, d))


# ---- Table 7.3 in the raw discriminator output d (D = σ(d) for the first two) -------

def _fixed(f):
  return lambda params, d: f(d)


_MINIMAX = ParamTriple(_fixed(lambda d: jax.nn.softplus(-d)),   # -log σ(d)
                       _fixed(jax.nn.softplus),                 # -log(1 - σ(d))
                       _fixed(lambda d: -jax.nn.softplus(d)))   # log(1 - σ(d))
_NON_SATURATING = ParamTriple(_MINIMAX.d_real, _MINIMAX.d_fake,
                              _fixed(lambda d: jax.nn.softplus(-d)))  # -log σ(d)
_WGAN = ParamTriple(_fixed(lambda d: -d), _fixed(lambda d: d), _fixed(lambda d: -d))
_LSGAN = ParamTriple(_fixed(lambda d: 0.5 * (d - 1.0) ** 2), _fixed(lambda d: 0.5 * d ** 2),
                     _fixed(lambda d: 0.5 * (d - 1.0) ** 2))

# WGAN and LSGAN are polynomials of degree ≤ 2, so they are exactly Taylor triples.
WGAN_THETA = (0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0)
LSGAN_THETA = (1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.5, 0.0)
# Dissertation eqs. 7.2–7.4 (CMP Facade, pix2pix-HD, 49 generations), with the
# learning rate and additive-loss weights that evolved with it (§7.4.3).
FACADE_THETA = (8.3399, 5.6484, 9.4935, 8.2695,
                8.6177, 6.7549, 2.4328, 8.0006,
                5.2232, 0.0, 5.2849, 0.0)
FACADE_HPARAMS = {"learning_rate": 1e-4, "feature_weight": 4.0877,
                  "perceptual_weight": 10.3155}


@dataclasses.dataclass(frozen=True)
class _Entry:
  name: str
  fns: ParamTriple
  theta: Optional[tuple]        # fixed theta of a named Taylor triple, else None
  takes_theta: bool             # gan_taylor: theta= required
  hparams: dict                 # hyperparameters that come with the named triple
  summary: str


_REGISTRY: dict[str, _Entry] = {}


def _register(name, fns, summary, theta=None, takes_theta=False, hparams=None):
  _REGISTRY[name] = _Entry(name, fns, theta, takes_theta, dict(hparams or {}), summary)


_register("minimax", _MINIMAX, "-log D(x) | -log(1-D(G(z))) | log(1-D(G(z))), D = σ(d) "
          "(Goodfellow et al. 2014; Table 7.3)")
_register("non_saturating", _NON_SATURATING, "-log D(x) | -log(1-D(G(z))) | -log D(G(z)), "
          "D = σ(d) (Goodfellow et al. 2014; Table 7.3)")
_register("wgan", _WGAN, "-D(x) | D(G(z)) | -D(G(z)) (Arjovsky et al. 2017; Table 7.3)")
_register("lsgan", _LSGAN, "½(D(x)-1)² | ½D(G(z))² | ½(D(G(z))-1)² (Mao et al. 2017; "
          "Table 7.3)")
_register("gan_taylor", TAYLOR_FNS, "three 3rd-order Taylor polynomials, theta[12] "
          "(dissertation §7.4.1)", takes_theta=True)
_register("taylorglo_facade", TAYLOR_FNS, "TaylorGLO's evolved triple on CMP Facade "
          "(dissertation eqs. 7.2–7.4), lr 1e-4, weights 4.0877 / 10.3155",
          theta=FACADE_THETA, hparams=FACADE_HPARAMS)


def names() -> list[str]:
  """The registered GAN loss names, sorted."""
  return sorted(_REGISTRY)


def describe() -> dict[str, str]:
  """``{name: one-line summary}`` of the registered triples."""
  return {n: _REGISTRY[n].summary for n in names()}


class GanLoss:
  """A GAN loss triple with its parameters bound; returned by :func:`get`.

  Attributes:
    name: registry name (``"wgan"``, ``"gan_taylor"``, ...).
    spec: canonical spec string (:func:`to_spec`).
    fns: the :class:`ParamTriple` of component functions ``f(params, d)``.
    params: the parameter pytree (a :class:`TaylorTriple` of ``float32[4]`` rows for
      Taylor triples, ``()`` for closed forms).
    hparams: ``{learning_rate, feature_weight, perceptual_weight}`` values carried by
      the spec (only those it sets; the trainer's config supplies the rest).

  Calling ``loss.d_real(d)``, ``loss.d_fake(d)``, ``loss.g_fake(d)`` gives the
  elementwise component values; :meth:`discriminator_loss` and
  :meth:`generator_loss` the scalar objectives. Two losses are equal iff their specs are.
  """

  def __init__(self, name: str, spec: str, fns: ParamTriple, params, hparams: dict):
    self.name, self.spec, self.fns, self.params = name, spec, fns, params
    self.hparams = dict(hparams)

  @property
  def theta(self) -> Optional[np.ndarray]:
    """``float32[12]`` for a Taylor triple, else None."""
    if isinstance(self.params, TaylorTriple):
      return np.asarray(self.params.to_theta())
    return None

  def d_real(self, d):
    return self.fns.d_real(self.params, d)

  def d_fake(self, d):
    return self.fns.d_fake(self.params, d)

  def g_fake(self, d):
    return self.fns.g_fake(self.params, d)

  def discriminator_loss(self, d_real_out, d_fake_out) -> jax.Array:
    """``mean(d_real(D(x))) + mean(d_fake(D(G(z))))`` (scalar)."""
    return jnp.mean(self.d_real(d_real_out)) + jnp.mean(self.d_fake(d_fake_out))

  def generator_loss(self, d_fake_out) -> jax.Array:
    """``mean(g_fake(D(G(z))))`` (scalar)."""
    return jnp.mean(self.g_fake(d_fake_out))

  def __repr__(self) -> str:
    return f"glojax.gan.get({self.spec!r})"

  def __eq__(self, other) -> bool:
    return isinstance(other, GanLoss) and other.spec == self.spec

  def __hash__(self) -> int:
    return hash(self.spec)


def _number(spec: str, key: str, value, positive: bool) -> float:
  if not isinstance(value, float):
    raise ValueError(f"in GAN loss spec {spec!r}: {key}= must be a number, got {value!r}")
  if not np.isfinite(np.float32(value)) or (positive and value <= 0) or value < 0:
    need = "> 0" if positive else ">= 0"
    raise ValueError(f"in GAN loss spec {spec!r}: {key}={value!r} must be finite and "
                     f"{need}")
  return value


def get(spec: "str | GanLoss") -> GanLoss:
  """The GAN loss triple named by ``spec`` (module docstring).

  Args:
    spec: a spec string, or a :class:`GanLoss` (returned as is).

  Returns:
    A :class:`GanLoss`.

  Raises:
    ValueError: naming the offending part of a malformed spec, an unknown name or
      keyword, a ``theta`` that is missing, not 12 numbers or not finite in float32,
      or a hyperparameter out of range (``learning_rate > 0``, weights ``>= 0``).
  """
  if isinstance(spec, GanLoss):
    return spec
  if not isinstance(spec, str):
    raise ValueError(f"a GAN loss spec must be a string, got {type(spec).__name__} "
                     f"{spec!r}")
  name, kwargs = parse_spec(spec.strip())
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, names(), n=3)
    hint = f"; did you mean {close}?" if close else ""
    raise ValueError(f"unknown GAN loss {name!r}{hint} Known: {names()}")
  e = _REGISTRY[name]
  allowed = set(HPARAMS) | ({"theta"} if e.takes_theta else set())
  for key in kwargs:
    if key not in allowed:
      raise ValueError(f"in GAN loss spec {spec!r}: {name} has no parameter {key!r}; "
                       f"its parameters: {sorted(allowed)}")
  hparams = dict(e.hparams)
  for key in HPARAMS:
    if key in kwargs:
      hparams[key] = _number(spec, key, kwargs[key], positive=key == "learning_rate")
  params: Any = ()
  if e.takes_theta:
    if "theta" not in kwargs:
      raise ValueError(f"in GAN loss spec {spec!r}: {name} requires theta=[{NUM_PARAMS} "
                       "numbers]")
    theta = np.asarray(kwargs["theta"], np.float64)
    if theta.shape != (NUM_PARAMS,):
      raise ValueError(f"in GAN loss spec {spec!r}: theta must be a list of "
                       f"{NUM_PARAMS} numbers, got {theta.size}")
    with np.errstate(over="ignore"):
      if not np.all(np.isfinite(theta.astype(np.float32))):
        raise ValueError(f"in GAN loss spec {spec!r}: theta must be finite in float32")
    params = TaylorTriple.from_theta(theta)
  elif e.theta is not None:
    params = TaylorTriple.from_theta(np.asarray(e.theta))
  return GanLoss(name, _canonical(name, params if e.takes_theta else None, hparams, e),
                 e.fns, params, hparams)


def _canonical(name: str, params, hparams: dict, e: _Entry) -> str:
  parts = []
  if params is not None:
    theta = np.asarray(params.to_theta(), np.float64)
    parts.append("theta=[" + ", ".join(repr(float(v)) for v in theta) + "]")
  for key in HPARAMS:
    if key in hparams and hparams[key] != e.hparams.get(key):
      parts.append(f"{key}={float(hparams[key])!r}")
  return f"{name}({', '.join(parts)})" if parts else name


def to_spec(loss: GanLoss) -> str:
  """The canonical spec of ``loss``, so that ``get(to_spec(loss)) == loss``.

  Raises:
    ValueError: if ``loss`` is not a :class:`GanLoss`.
  """
  if not isinstance(loss, GanLoss):
    raise ValueError(f"to_spec: {loss!r} is not a GanLoss (use glojax.gan.get(spec))")
  return loss.spec


def taylor_spec(theta: Sequence[float], **hparams: float) -> str:
  """The spec of a Taylor triple, e.g. ``gan_taylor(theta=[...], learning_rate=1e-4)``.

  Args:
    theta: ``float[12]`` in the flat layout.
    **hparams: any of ``learning_rate``, ``feature_weight``, ``perceptual_weight``.

  Raises:
    ValueError: as :func:`get`.
  """
  theta = np.asarray(theta, np.float64).reshape(-1)
  parts = ["theta=[" + ", ".join(repr(float(v)) for v in theta) + "]"]
  parts += [f"{k}={float(v)!r}" for k, v in hparams.items()]
  return get(f"gan_taylor({', '.join(parts)})").spec


def as_taylor(spec: "str | GanLoss") -> Optional[GanLoss]:
  """The same triple written as a Taylor triple, or None if it has no exact Taylor form.

  ``gan_taylor`` and ``taylorglo_facade`` are Taylor triples already; ``wgan`` and
  ``lsgan`` are polynomials of degree ≤ 2 (:data:`WGAN_THETA`, :data:`LSGAN_THETA`);
  the sigmoid formulations (``minimax``, ``non_saturating``) have none. The result keeps
  the spec's hyperparameters, so it trains the same GAN through the Taylor trainer.

  Raises:
    ValueError: for a bad spec.
  """
  loss = get(spec)
  if isinstance(loss.params, TaylorTriple):
    return loss
  theta = {"wgan": WGAN_THETA, "lsgan": LSGAN_THETA}.get(loss.name)
  return None if theta is None else get(taylor_spec(theta, **loss.hparams))


def with_hparams(spec: "str | GanLoss", hparams: dict) -> GanLoss:
  """``spec``'s triple with its hyperparameters replaced by ``hparams`` (any of
  ``learning_rate``, ``feature_weight``, ``perceptual_weight``).

  Used to train a baseline with another loss's evolved hyperparameters, so that a
  comparison isolates the effect of the triple itself.

  Raises:
    ValueError: for a bad spec or value.
  """
  loss = get(spec)
  hp = {**loss.hparams, **hparams}
  parts = []
  if loss.name in ("gan_taylor",):
    parts.append("theta=[" + ", ".join(repr(float(v)) for v in loss.theta) + "]")
  parts += [f"{k}={float(hp[k])!r}" for k in HPARAMS if k in hp]
  return get(f"{loss.name}({', '.join(parts)})")


def get_parameterized(spec: "str | GanLoss") -> tuple[ParamTriple, Any]:
  """``(fns, params)`` of ``spec`` for trainers: ``fns.d_real(params, d)`` etc.

  ``fns`` is the same object for every Taylor triple, so a population of triples
  trains in one compiled program with ``params`` (a :class:`TaylorTriple`) traced.

  Raises:
    ValueError: as :func:`get`.
  """
  loss = get(spec)
  return loss.fns, loss.params

