r"""General TaylorGLO builder: k-th order Taylor losses in m variables (``docs/losses.md``).

A loss in the GLO form :math:`L = -\frac{1}{n}\sum_i f(v_i)` (dissertation eq. 5.5)
whose summand :math:`f` is replaced by its k-th order multivariate Taylor expansion
around an evolved centre :math:`a` (eq. 5.3):

.. math:: f(v) = \sum_{|\alpha| \le k} c_\alpha \,(v - a)^\alpha,
          \qquad (v-a)^\alpha = \prod_j (v_j - a_j)^{\alpha_j}

in the *factorial-free* convention (the ``1/α!`` of eq. 5.3 folded into
:math:`c_\alpha`, as the project's :func:`glojax.losses.taylorglo` and the authors' code
do). The input variables :math:`v` are chosen from

* ``"x"`` — the label of the class (one-hot or soft),
* ``"y"`` — the softmax output of the class,
* ``"logits"`` — the raw logit of the class,
* ``"t"`` — training progress (a scalar or per-example value, e.g. step / steps).

**Parameter count** (eq. 5.4): ``m`` centre coordinates plus one coefficient per
multi-index with ``|α| ≤ k``: ``m + C(m+k, k)`` (12 for ``(x, y)``, ``k = 3``).

**Trimming** (§5.3): only the gradient with respect to the network's outputs trains
the network, so every term whose multi-index has exponent 0 on all prediction
variables (``y`` and ``logits``) is dropped; for ``(x, y)`` that means "no ``y``",
leaving 8 parameters for ``k = 3`` (eq. 5.7). All ``m`` centre coordinates are kept.

**θ layout**: ``theta = [a_0, …, a_{m-1}, c_α for α in terms]``, centres in the order
of ``variables``, then the coefficients of the kept multi-indices in lexicographic
order of ``(α_0, …, α_{m-1})`` (see :attr:`TaylorLoss.terms`). For
``variables=("x", "y")`` this is exactly eq. 5.6's order (full) and eq. 5.7's order
(trimmed): ``[θ0=a_x, θ1=a_y, y, y², y³, xy, xy², x²y]`` — the layout of
:func:`glojax.losses.taylorglo`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.losses.core import (CLASS_REDUCTIONS, _check_shapes, _reduce_classes, softmax,
                                upcast)

TAYLOR_VARIABLES = ("x", "y", "logits", "t")
PREDICTION_VARIABLES = ("y", "logits")


def num_params(num_variables: int, order: int) -> int:
  """Untrimmed parameter count ``m + C(m+k, k)`` (dissertation eq. 5.4).

  Args:
    num_variables: ``m ≥ 1``.
    order: ``k ≥ 0``.

  Returns:
    The number of parameters of a k-th order Taylor expansion in m variables.

  Raises:
    ValueError: for negative or non-integer arguments, or ``m = 0``.
  """
  for name, value, low in (("num_variables", num_variables, 1), ("order", order, 0)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
      raise ValueError(f"num_params: {name} must be an integer >= {low}, got {value!r}")
  return num_variables + math.comb(num_variables + order, order)


def multi_indices(num_variables: int, order: int) -> tuple[tuple[int, ...], ...]:
  """All multi-indices ``α`` with ``|α| ≤ order``, in lexicographic order.

  Args:
    num_variables: ``m``, the length of each ``α``.
    order: ``k``.

  Returns:
    ``C(m+k, k)`` tuples of ``m`` non-negative ints; for ``m = 2, k = 3``:
    ``(0,0), (0,1), (0,2), (0,3), (1,0), (1,1), (1,2), (2,0), (2,1), (3,0)``.
  """
  num_params(num_variables, order)  # validates
  return tuple(a for a in itertools.product(range(order + 1), repeat=num_variables)
               if sum(a) <= order)


@dataclasses.dataclass(frozen=True)
class TaylorLoss:
  r"""A k-th order Taylor loss ``loss(theta, logits, labels, t=None) -> float[...]``.

  Build it with :func:`taylor_loss`. It is a pure function of its arguments (``theta``
  is traced), so one compiled program serves every candidate θ.

  Attributes:
    order: ``k``.
    variables: the ``m`` input variables, a subset of :data:`TAYLOR_VARIABLES`.
    trim: whether terms without a prediction variable were dropped.
    class_reduction: ``"mean"`` (the papers' ``-(1/n) Σ``) or ``"sum"``.
    terms: the kept multi-indices, in θ order (after the ``m`` centre entries).
  """
  order: int
  variables: tuple[str, ...]
  trim: bool
  class_reduction: str
  terms: tuple[tuple[int, ...], ...]

  @property
  def num_params(self) -> int:
    """Length of ``theta``: ``m`` centres plus one coefficient per kept term."""
    return len(self.variables) + len(self.terms)

  def term_names(self) -> list[str]:
    """Human-readable names of the θ entries, e.g. ``["a_x", "a_y", "(y-a_y)", …]``."""
    names = [f"a_{v}" for v in self.variables]
    for alpha in self.terms:
      factors = []
      for v, e in zip(self.variables, alpha):
        if e:
          factors.append(f"({v}-a_{v})" + (f"^{e}" if e > 1 else ""))
      names.append("*".join(factors) or "1")
    return names

  def _factorials(self) -> np.ndarray:
    """``α!`` for every θ entry (1 for the centres)."""
    facts = [1.0] * len(self.variables)
    facts += [float(np.prod([math.factorial(e) for e in alpha])) for alpha in self.terms]
    return np.asarray(facts, np.float64)

  def _check_theta(self, theta, where: str):
    if jnp.shape(theta) != (self.num_params,):
      raise ValueError(f"{where}: theta must have shape ({self.num_params},) for order "
                       f"{self.order} in {self.variables} (trim={self.trim}), got "
                       f"{tuple(jnp.shape(theta))}.")

  def theta_from_factorial(self, theta_factorial: Sequence[float] | jax.Array) -> jax.Array:
    r"""Converts coefficients printed with eq. 5.3's ``1/α!`` factors to this layout.

    Eqs. 5.6/5.7 write e.g. ``½θ (y-a_y)²`` and ``⅙θ (y-a_y)³``; the factorial-free
    coefficient is ``θ / α!``. Centres are unchanged.

    Args:
      theta_factorial: ``float[num_params]`` in the ``1/α!`` convention.

    Returns:
      ``float32[num_params]`` in the factorial-free layout used by ``__call__``.

    Raises:
      ValueError: if the shape is wrong.
    """
    theta_factorial = jnp.asarray(theta_factorial, jnp.float32)
    self._check_theta(theta_factorial, "theta_from_factorial")
    return theta_factorial / self._factorials().astype(np.float32)

  def theta_to_factorial(self, theta: Sequence[float] | jax.Array) -> jax.Array:
    """Inverse of :meth:`theta_from_factorial` (``float[P]`` → ``float32[P]``)."""
    theta = jnp.asarray(theta, jnp.float32)
    self._check_theta(theta, "theta_to_factorial")
    return theta * self._factorials().astype(np.float32)

  def __call__(self, theta: jax.Array, logits: jax.Array, labels: jax.Array,
               t: float | jax.Array | None = None) -> jax.Array:
    """Evaluates the loss, per example.

    Args:
      theta: ``float[num_params]`` in the layout of the module docstring.
      logits: ``float[..., n]``.
      labels: ``float[..., n]`` (one-hot or soft).
      t: training progress, required iff ``"t"`` is a variable: a scalar, or
        ``float[...]`` (one value per example).

    Returns:
      ``float[...]``: ``-reduce_i f(v_i)``.

    Raises:
      ValueError: for a wrong ``theta`` shape, mismatched ``logits``/``labels``, or a
        missing/unexpected ``t``.
    """
    self._check_theta(theta, "TaylorLoss")
    _check_shapes(logits, labels, "TaylorLoss")
    if ("t" in self.variables) != (t is not None):
      raise ValueError("TaylorLoss: pass t (training progress) exactly when 't' is one "
                       f"of the variables {self.variables}; got t={t!r}.")
    logits, labels, out = upcast(logits, labels)
    infinite = jnp.isinf(logits)
    # ±inf logits: a polynomial in them diverges like its top power with a nonzero
    # coefficient; evaluate at 0 there (no inf * 0) and put the limit in below.
    values = {"x": labels, "logits": jnp.where(infinite, 0.0, logits)}
    if "y" in self.variables:
      values["y"] = softmax(logits)
    if t is not None:
      t = jnp.asarray(t, logits.dtype)
      values["t"] = jnp.broadcast_to(t if t.ndim == 0 else t[..., None], jnp.shape(logits))
    m = len(self.variables)
    # powers[j][e] = (v_j - a_j)^e, built by repeated multiplication (e ≤ k).
    powers = []
    for j, name in enumerate(self.variables):
      d = values[name] - theta[j]
      p = [jnp.ones_like(d), d]
      for _ in range(2, self.order + 1):
        p.append(p[-1] * d)
      powers.append(p)
    zl = self.variables.index("logits") if "logits" in self.variables else None
    # coef[k] = Σ of the terms with logits exponent k, without their logits factor.
    coef = [jnp.zeros(jnp.shape(logits), jnp.result_type(logits, theta))
            for _ in range(self.order + 1)]
    for c, alpha in enumerate(self.terms):
      term = theta[m + c]
      for j, e in enumerate(alpha):
        if e and j != zl:
          term = term * powers[j][e]
      k = alpha[zl] if zl is not None else 0
      coef[k] = coef[k] + term
    if zl is None:
      f = coef[0]
    else:
      f = coef[0]
      for k in range(1, self.order + 1):
        f = f + coef[k] * powers[zl][k]
      f = jnp.where(infinite, _polynomial_limit(coef, jnp.sign(logits)), f)
    return (-_reduce_classes(f, self.class_reduction, "TaylorLoss")).astype(out)


def _polynomial_limit(coef, sign):
  """``lim Σ_k coef[k] (±T)^k``: the top power with a nonzero coefficient decides."""
  out = coef[0]
  for k in range(1, len(coef)):
    # An infinite value has no gradient (stop_gradient: no 0 * inf in the VJP).
    lead = jax.lax.stop_gradient(jnp.sign(coef[k]) * sign ** k * jnp.inf)
    out = jnp.where(coef[k] != 0, lead, out)
  return out


def taylor_loss(order: int = 3,
                variables: Sequence[str] = ("x", "y"),
                trim: bool = True,
                class_reduction: str = "mean") -> TaylorLoss:
  """Builds a k-th order Taylor loss in the given variables (dissertation §5.1–5.3).

  ``taylor_loss(3, ("x", "y"), trim=True)`` is :func:`glojax.losses.taylorglo`
  (8 parameters, same θ layout); ``trim=False`` gives eq. 5.6's 12 parameters.

  Args:
    order: ``k ≥ 1`` (``k = 0`` leaves nothing after trimming; allowed untrimmed).
    variables: distinct names from :data:`TAYLOR_VARIABLES`; must contain ``"y"`` or
      ``"logits"`` (a loss needs a prediction variable).
    trim: drop terms with no prediction variable (§5.3).
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    A :class:`TaylorLoss`; ``loss.num_params`` is the length of θ.

  Raises:
    ValueError: for an unknown/duplicate variable, no prediction variable, a bad order
      or ``class_reduction``, or no terms left after trimming.
  """
  variables = tuple(variables)
  for v in variables:
    if v not in TAYLOR_VARIABLES:
      raise ValueError(f"taylor_loss: unknown variable {v!r}; known: {TAYLOR_VARIABLES}")
  if len(set(variables)) != len(variables):
    raise ValueError(f"taylor_loss: duplicate variable in {variables}")
  if not set(variables) & set(PREDICTION_VARIABLES):
    raise ValueError(f"taylor_loss: variables {variables} contain no prediction "
                     f"variable {PREDICTION_VARIABLES}; the loss could not train a model.")
  if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 0:
    raise ValueError(f"taylor_loss: order must be an integer >= 0, got {order!r}")
  if class_reduction not in CLASS_REDUCTIONS:
    raise ValueError(f"taylor_loss: class_reduction={class_reduction!r} is not one of "
                     f"{CLASS_REDUCTIONS}")
  terms = multi_indices(len(variables), int(order))
  if trim:
    pred = [j for j, v in enumerate(variables) if v in PREDICTION_VARIABLES]
    terms = tuple(a for a in terms if any(a[j] for j in pred))
  if not terms:
    raise ValueError(f"taylor_loss: order {order} leaves no terms after trimming.")
  return TaylorLoss(order=int(order), variables=variables, trim=bool(trim),
                    class_reduction=class_reduction, terms=terms)
