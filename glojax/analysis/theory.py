r"""The learning-rule theory of loss functions (dissertation ch. 6), as code.

Conventions (see ``docs/theory.md`` for the derivations):

* Notation follows ``docs/losses.md``: ``labels`` = :math:`x`,
  ``probs`` = :math:`h = \mathrm{softmax}(\text{logits})`
  (ch. 6 writes the label as :math:`y_{ik}` and the prediction as :math:`h_k`).
* **γ (eq. 6.3).** SGD on a per-example loss :math:`L(h)` moves weight :math:`\theta_j` by
  :math:`-\eta\,\partial L/\partial\theta_j = \eta\,\frac1n \sum_k \gamma_k D_j h_k` with
  :math:`\gamma_k = -n\,\partial L/\partial h_k`. For :math:`L=-\frac1n\sum_k f(x_k,h_k)` this is
  :math:`\gamma_k = \partial f/\partial h_k` (closed forms: CE :math:`x/h`, MSE :math:`2x-2h`,
  Baikal :math:`1/h + x/h^2`, all written with the papers' mean over classes). The project's
  ``cross_entropy`` sums over classes (optax), so its γ is :math:`n\,x/h`; use
  ``class_reduction="sum"`` (:math:`\gamma_k=-\partial L/\partial h_k`) to drop that factor.
* **Gauge.** :math:`\sum_k D_j h_k = D_j 1 = 0`, so adding a constant to every :math:`\gamma_k`
  leaves the SGD update unchanged. A loss given on *logits* only determines γ up to that constant;
  :func:`gamma` then returns the *centred* representative with :math:`\sum_k h_k\gamma_k = 0`.
  A loss given on *probabilities* (``space="probs"``) yields the raw :math:`\partial f/\partial h`
  of the closed forms. :func:`centre_gamma` maps raw to centred.
* TaylorGLO θ uses the project's factorial-free layout (``docs/losses.md``, ch. 6's λ0…λ7) and the
  default ``class_reduction="mean"``.

Everything here is ``jnp`` and jit/vmap-friendly unless stated.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glojax.losses.core import TAYLORGLO_NUM_PARAMS

Loss = Callable[[jax.Array, jax.Array], jax.Array]

SPACES = ("logits", "probs")
CLASS_REDUCTIONS = ("mean", "sum")
TRAINABILITY_RULES = ("theorem", "centred")


class CCoefficients(NamedTuple):
  r"""Coefficients of TaylorGLO's γ (eq. 6.18).

  :math:`\gamma_k = c_1 + c_h h_k + c_{hh} h_k^2 + c_{hy} h_k x_k + c_y x_k + c_{yy} x_k^2`.
  Each field is ``float[...]`` (the batch shape of θ).
  """
  c1: jax.Array
  c_h: jax.Array
  c_hh: jax.Array
  c_hy: jax.Array
  c_y: jax.Array
  c_yy: jax.Array


class ZeroErrorCoefficients(NamedTuple):
  r"""γ at zero training error, :math:`\gamma_k = a + b x_k + c x_k^2` (eqs. 6.32–6.35)."""
  a: jax.Array
  b: jax.Array
  c: jax.Array


class NullEpoch(NamedTuple):
  r"""γ of non-target and target classes at the null epoch :math:`h_k = 1/n` (eq. 6.37 ff.)."""
  gamma_nontarget: jax.Array
  gamma_target: jax.Array


class CharacteristicCurve(NamedTuple):
  """A loss's zero-training-error attraction curve (eq. 6.51, Figs. 6.1, 6.3); ``float[E]`` each."""
  eps: jax.Array
  gamma_target: jax.Array
  gamma_nontarget: jax.Array
  strength: jax.Array


# --------------------------------------------------------------------------------------------
# Validation helpers


def _as_loss(loss, name):
  """A spec string (``"baikal"``, ``"expr:..."``, ``"taylorglo(theta=[...])"``) loaded
  with ``glojax.losses.get``, as the binaries do; anything else unchanged."""
  if isinstance(loss, str):
    from glojax import losses
    try:
      return losses.get(loss)
    except ValueError as e:
      raise ValueError(f"{name}: {e}") from None
  return loss


def _check_n(n, name):
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
    raise ValueError(f"{name}: the number of classes n must be an int >= 2, got {n!r}.")
  return int(n)


def _check_theta(theta, name):
  theta = jnp.asarray(theta)
  if theta.ndim == 0 or theta.shape[-1] != TAYLORGLO_NUM_PARAMS:
    raise ValueError(f"{name}: theta must have shape [..., {TAYLORGLO_NUM_PARAMS}], got "
                     f"{tuple(theta.shape)}.")
  if not jnp.issubdtype(theta.dtype, jnp.floating):
    theta = theta.astype(jnp.float32)
  return theta


def _check_choice(value, choices, what, name):
  if value not in choices:
    raise ValueError(f"{name}: {what}={value!r} is not one of {choices}.")


def _class_scale(n, class_reduction, name):
  _check_choice(class_reduction, CLASS_REDUCTIONS, "class_reduction", name)
  return float(n) if class_reduction == "mean" else 1.0


# --------------------------------------------------------------------------------------------
# γ: closed forms and autodiff


def gamma_cross_entropy(probs: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Closed-form γ of cross-entropy, :math:`\gamma_k = x_k/h_k` (eq. 6.9).

  Written, as in the dissertation, for :math:`L = -\frac1n\sum_k x_k\log h_k`.

  Args:
    probs: ``float[..., n]`` predicted probabilities :math:`h`.
    labels: ``float[..., n]`` targets :math:`x`.

  Returns:
    ``float[..., n]``.
  """
  return labels / probs


def gamma_mse(probs: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Closed-form γ of MSE on softmax outputs, :math:`\gamma_k = 2x_k - 2h_k` (eq. 6.6).

  Args:
    probs: ``float[..., n]``.
    labels: ``float[..., n]``.

  Returns:
    ``float[..., n]`` for :math:`L=\frac1n\sum_k (x_k-h_k)^2`.
  """
  return 2.0 * labels - 2.0 * probs


def gamma_baikal(probs: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Closed-form γ of the Baikal loss, :math:`\gamma_k = 1/h_k + x_k/h_k^2` (eq. 6.12).

  Args:
    probs: ``float[..., n]``.
    labels: ``float[..., n]``.

  Returns:
    ``float[..., n]`` for :math:`L=-\frac1n\sum_k(\log h_k - x_k/h_k)` (GLO eq. 1).
  """
  return 1.0 / probs + labels / probs**2


def gamma_taylorglo(theta: jax.Array, probs: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Closed-form γ of a TaylorGLO loss via the c-coefficients (eq. 6.18).

  Args:
    theta: ``float[8]`` (project layout).
    probs: ``float[..., n]``.
    labels: ``float[..., n]``.

  Returns:
    ``float[..., n]`` for the ``class_reduction="mean"`` loss.
  """
  c = c_coefficients(theta)
  h, x = probs, labels
  return c.c1 + c.c_h * h + c.c_hh * h**2 + c.c_hy * h * x + c.c_y * x + c.c_yy * x**2


def centre_gamma(gamma_values: jax.Array, probs: jax.Array) -> jax.Array:
  r"""The centred representative :math:`\gamma - \sum_j h_j\gamma_j` of a γ vector.

  Adding a constant to all :math:`\gamma_k` does not change the SGD update (eq. 6.3), since
  :math:`\sum_k D_j h_k = 0`; the centred form is the one with :math:`\sum_k h_k\gamma_k=0`,
  which is what :func:`gamma` returns for losses on logits.

  Args:
    gamma_values: ``float[..., n]``.
    probs: ``float[..., n]``.

  Returns:
    ``float[..., n]``.
  """
  return gamma_values - jnp.sum(probs * gamma_values, axis=-1, keepdims=True)


def gamma(loss: Loss,
          probs: jax.Array,
          labels: jax.Array,
          *,
          space: str = "logits",
          from_logits: bool = False,
          class_reduction: str = "mean") -> jax.Array:
  r"""Per-class update coefficients :math:`\gamma_k` of eq. 6.3, by autodiff, for any loss.

  :math:`\gamma_k = -n\,\partial L/\partial h_k` (``class_reduction="mean"``, the papers'
  :math:`L=-\frac1n\sum_k f` so that :math:`\gamma_k=\partial f/\partial h_k`) or
  :math:`-\partial L/\partial h_k` (``"sum"``).

  * ``space="logits"`` (default): ``loss(logits, labels)`` is any project loss (e.g. from
    ``glojax.losses.get``). It is differentiated at ``logits = log(probs)``; as a function of
    logits it only determines γ up to an additive constant (the gauge, see module docstring),
    so the **centred** γ (:math:`\sum_k h_k\gamma_k = 0`) is returned:
    :math:`\gamma_k = -s\,(\partial L/\partial z_k)/h_k` with :math:`s` the class scale.
    For a loss that also reads raw logits (e.g. ``fast_logit``) eq. 6.3 does not hold exactly;
    the result is then the γ reproducing the logit gradient at ``logits = log(probs)``.
  * ``space="probs"``: ``loss(probs, labels)`` is written on probabilities (the dissertation's
    form, :math:`h` treated as free variables), and the raw :math:`\partial f/\partial h` is
    returned; e.g. CE :math:`x/h`, MSE :math:`2x-2h`, Baikal :math:`1/h + x/h^2`.

  Args:
    loss: ``loss(logits_or_probs, labels) -> float[...]`` per-example loss, or a loss spec
      string (``"baikal"``, ``"expr:log(y) - x / y"``; loaded with ``glojax.losses.get``).
    probs: ``float[..., n]`` probabilities in (0, 1) summing to 1 (or logits if
      ``from_logits``).
    labels: ``float[..., n]``.
    space: ``"logits"`` or ``"probs"``: what the loss takes as its first argument.
    from_logits: if True, ``probs`` holds logits and is passed through softmax first.
    class_reduction: ``"mean"`` (eq. 6.3 as printed) or ``"sum"``.

  Returns:
    ``float[..., n]`` γ values.

  Raises:
    ValueError: on unknown ``space``/``class_reduction`` or mismatched shapes.

  References:
    Gonzalez (2020) dissertation, eqs. 6.1–6.3, 6.6, 6.9, 6.12.
  """
  _check_choice(space, SPACES, "space", "gamma")
  loss = _as_loss(loss, "gamma")
  probs = jnp.asarray(probs)
  labels = jnp.asarray(labels)
  if probs.shape != labels.shape or probs.ndim == 0:
    raise ValueError(f"gamma: probs and labels must have the same shape [..., n], got "
                     f"{tuple(probs.shape)} and {tuple(labels.shape)}.")
  dtype = jnp.result_type(probs.dtype, jnp.float32)
  probs, labels = probs.astype(dtype), labels.astype(dtype)
  if from_logits:
    probs = jax.nn.softmax(probs, axis=-1)
  scale = _class_scale(probs.shape[-1], class_reduction, "gamma")
  try:
    hash(loss)
  except TypeError:  # unhashable callable: no compile cache, trace directly
    return _gamma_trace(loss, probs, labels, space, scale)
  return _gamma_jit(loss, probs, labels, space, scale)


def _gamma_trace(loss, probs, labels, space, scale):
  if space == "probs":
    grad = jax.grad(lambda h: jnp.sum(loss(h, labels)))(probs)
    return -scale * grad
  logits = jnp.log(probs)
  grad = jax.grad(lambda z: jnp.sum(loss(z, labels)))(logits)
  return -scale * grad / probs


# Jitted per (loss, space, scale, shapes): repeated analyses of one loss compile once.
_gamma_jit = jax.jit(_gamma_trace, static_argnums=(0, 3, 4))


# --------------------------------------------------------------------------------------------
# TaylorGLO closed forms


def c_coefficients(theta: jax.Array) -> CCoefficients:
  r"""TaylorGLO's γ coefficients :math:`\langle c_1,c_h,c_{hh},c_{hy},c_y,c_{yy}\rangle`.

  .. math::
     c_1 &= -2\lambda_1\lambda_3 + 2\lambda_0\lambda_1\lambda_6 + \lambda_2 - \lambda_5\lambda_0
            + \lambda_7\lambda_0^2 + 3\lambda_4\lambda_1^2 \\
     c_h &= 2\lambda_3 - 2\lambda_6\lambda_0 - 6\lambda_4\lambda_1,\quad c_{hh} = 3\lambda_4,\quad
     c_{hy} = 2\lambda_6 \\
     c_y &= -2\lambda_1\lambda_6 + \lambda_5 - 2\lambda_7\lambda_0,\quad c_{yy} = \lambda_7

  Args:
    theta: ``float[..., 8]`` θ in the project layout (= ch. 6's λ).

  Returns:
    :class:`CCoefficients` of ``float[...]`` arrays (for ``class_reduction="mean"``).

  Raises:
    ValueError: if the last axis is not 8.

  References:
    Dissertation eqs. 6.18–6.24.
  """
  t = _check_theta(theta, "c_coefficients")
  l0, l1, l2, l3, l4, l5, l6, l7 = (t[..., i] for i in range(TAYLORGLO_NUM_PARAMS))
  c1 = -2 * l1 * l3 + 2 * l0 * l1 * l6 + l2 - l5 * l0 + l7 * l0**2 + 3 * l4 * l1**2
  c_h = 2 * l3 - 2 * l6 * l0 - 6 * l4 * l1
  c_hh = 3 * l4
  c_hy = 2 * l6
  c_y = -2 * l1 * l6 + l5 - 2 * l7 * l0
  c_yy = l7
  return CCoefficients(c1, c_h, c_hh, c_hy, c_y, c_yy)


def theta_from_c_coefficients(c, theta0=0.0, theta1=0.0) -> jax.Array:
  r"""Inverse of :func:`c_coefficients` for a chosen expansion centre :math:`(\theta_0,\theta_1)`.

  γ fixes six combinations of the eight θ; the centre is free. Solves eqs. 6.19–6.24 for
  :math:`\lambda_4,\lambda_6,\lambda_7` (from :math:`c_{hh},c_{hy},c_{yy}`), then :math:`\lambda_3`,
  :math:`\lambda_5`, and :math:`\lambda_2`.

  Args:
    c: :class:`CCoefficients` (or any 6-sequence in its order) of ``float[...]``.
    theta0, theta1: centre, scalars or ``float[...]``.

  Returns:
    ``float[..., 8]`` θ with ``c_coefficients(theta) == c``.

  Raises:
    ValueError: if ``c`` does not have six entries.
  """
  if len(c) != 6:
    raise ValueError(f"theta_from_c_coefficients: expected 6 coefficients, got {len(c)}.")
  c1, c_h, c_hh, c_hy, c_y, c_yy = (jnp.asarray(v, dtype=jnp.result_type(v, jnp.float32))
                                    for v in c)
  l0 = jnp.asarray(theta0, dtype=c1.dtype)
  l1 = jnp.asarray(theta1, dtype=c1.dtype)
  l4 = c_hh / 3
  l6 = c_hy / 2
  l7 = c_yy
  l3 = (c_h + 2 * l6 * l0 + 6 * l4 * l1) / 2
  l5 = c_y + 2 * l1 * l6 + 2 * l7 * l0
  l2 = c1 + 2 * l1 * l3 - 2 * l0 * l1 * l6 + l5 * l0 - l7 * l0**2 - 3 * l4 * l1**2
  parts = jnp.broadcast_arrays(l0, l1, l2, l3, l4, l5, l6, l7)
  return jnp.stack(parts, axis=-1)


def zero_error_coefficients(theta: jax.Array) -> ZeroErrorCoefficients:
  r"""γ at zero training error (:math:`h = x`), :math:`\gamma_k = a + b x_k + c x_k^2`.

  :math:`a = c_1`, :math:`b = c_h + c_y`, :math:`c = c_{hh} + c_{hy} + c_{yy}`; with one-hot
  labels the non-target rule is ``a`` and the target rule ``a + b + c`` (eq. 6.36).

  Args:
    theta: ``float[..., 8]``.

  Returns:
    :class:`ZeroErrorCoefficients` of ``float[...]``.

  References:
    Dissertation eqs. 6.32–6.36.
  """
  c = c_coefficients(theta)
  return ZeroErrorCoefficients(c.c1, c.c_h + c.c_y, c.c_hh + c.c_hy + c.c_yy)


def null_epoch(theta_or_loss, n: int, *, space: str = "logits",
               class_reduction: str = "mean") -> NullEpoch:
  r"""γ of non-target and target classes at the null epoch, :math:`h_k = 1/n` (eq. 6.37).

  For TaylorGLO θ (an array ``float[..., 8]``), eq. 6.47:
  :math:`\gamma_{\neg T} = c_1 + c_h/n + c_{hh}/n^2`,
  :math:`\gamma_T = \gamma_{\neg T} + c_y + c_{yy} + c_{hy}/n` (raw polynomial γ).
  For a loss callable, :func:`gamma` at uniform probabilities and a one-hot label
  (``space``/``class_reduction`` as there). Correct values for the paper's examples
  (``space="probs"``): CE ``(0, n)`` (eq. 6.39), MSE ``(-2/n, 2-2/n)`` (eq. 6.38 prints both
  signs flipped), Baikal ``(n, n+n²)`` (eq. 6.40).

  Args:
    theta_or_loss: ``float[..., 8]`` θ, or a loss callable or spec string.
    n: number of classes (int ≥ 2).
    space, class_reduction: see :func:`gamma` (callables only).

  Returns:
    :class:`NullEpoch` of ``float[...]``.

  Raises:
    ValueError: on bad ``n`` or θ shape.

  References:
    Dissertation eqs. 6.37–6.43, 6.47.
  """
  n = _check_n(n, "null_epoch")
  theta_or_loss = _as_loss(theta_or_loss, "null_epoch")
  if callable(theta_or_loss):
    probs = jnp.full((n,), 1.0 / n, dtype=jnp.float32)
    labels = jax.nn.one_hot(0, n, dtype=jnp.float32)
    g = gamma(theta_or_loss, probs, labels, space=space, class_reduction=class_reduction)
    return NullEpoch(g[1], g[0])
  c = c_coefficients(theta_or_loss)
  nontarget = c.c1 + c.c_h / n + c.c_hh / n**2
  target = nontarget + c.c_y + c.c_yy + c.c_hy / n
  return NullEpoch(nontarget, target)


def _trainable_from_null(ne: NullEpoch, n: int, rule: str) -> jax.Array:
  if rule == "theorem":
    # Eq. 6.49/6.50: untrainable when γ_T < (n-1) γ_¬T; the boundary (e.g. θ = 0, "zero
    # gradients everywhere", §6.5) is untrainable too.
    return ne.gamma_target > (n - 1) * ne.gamma_nontarget
  return ne.gamma_target > ne.gamma_nontarget


def is_trainable(theta: jax.Array, n: int, *, rule: str = "theorem") -> jax.Array:
  r"""Theorem 6.5.1's trainability invariant for TaylorGLO θ; works on one θ or a batch.

  ``rule="theorem"`` (default, the dissertation's search filter of §7.2): θ is *not* trainable
  when :math:`c_y + c_{yy} + c_{hy}/n \le (n-2)(c_1 + c_h/n + c_{hh}/n^2)` (eq. 6.50, i.e.
  :math:`\gamma_T \le (n-1)\gamma_{\neg T}` at the null epoch; equality — including the
  degenerate θ = 0 — counts as untrainable).

  ``rule="centred"``: the same inequality applied to the centred γ (see :func:`gamma`), which
  reduces to :math:`\gamma_T > \gamma_{\neg T}`, i.e. :math:`c_y + c_{yy} + c_{hy}/n > 0`: the
  target logit rises under SGD at the null epoch. This is the criterion the update rule
  itself implies (the theorem's form changes if a constant is added to γ, which SGD cannot see).

  Args:
    theta: ``float[8]`` or ``float[K, 8]`` (any ``[..., 8]``), project layout.
    n: number of classes (static Python int ≥ 2).
    rule: ``"theorem"`` or ``"centred"``.

  Returns:
    ``bool[]`` or ``bool[K]`` (``bool[...]``); jit-able with ``n``/``rule`` static.

  Raises:
    ValueError: on bad θ shape, ``n`` or ``rule``.

  References:
    Dissertation theorem 6.5.1 (eqs. 6.44–6.50), §7.2.
  """
  n = _check_n(n, "is_trainable")
  _check_choice(rule, TRAINABILITY_RULES, "rule", "is_trainable")
  return _trainable_from_null(null_epoch(theta, n), n, rule)


def is_trainable_loss(loss: Loss, n: int, *, space: str = "logits",
                      class_reduction: str = "mean") -> bool:
  r"""Theorem 6.5.1 generalised to any loss through its null-epoch γ.

  Computes :math:`\gamma_T, \gamma_{\neg T}` at :math:`h = 1/n` with :func:`gamma` and applies
  the theorem's inequality :math:`\gamma_T > (n-1)\gamma_{\neg T}`. For a loss on logits
  (default) γ is centred, :math:`\gamma_T = -(n-1)\gamma_{\neg T}`, and the test is exactly
  :math:`\gamma_T > \gamma_{\neg T}` (the target logit rises); with ``space="probs"`` it is the
  theorem verbatim on the raw :math:`\partial f/\partial h`. CE, MSE and Baikal pass both ways.

  Args:
    loss: loss callable or spec string (see :func:`gamma`).
    n: number of classes.
    space, class_reduction: see :func:`gamma`.

  Returns:
    Python bool.
  """
  n = _check_n(n, "is_trainable_loss")
  ne = null_epoch(loss, n, space=space, class_reduction=class_reduction)
  return bool(_trainable_from_null(ne, n, "theorem"))


# --------------------------------------------------------------------------------------------
# Label smoothing as a reparameterization (§6.7)


def _check_alpha(alpha, name):
  a = float(alpha)
  if not 0.0 <= a < 1.0:
    raise ValueError(f"{name}: label-smoothing alpha must be in [0, 1), got {alpha!r}.")
  return a


def label_smoothing_c(c: CCoefficients, alpha: float, n: int) -> CCoefficients:
  r"""c-coefficients that apply label smoothing α implicitly on hard labels (eqs. 6.77–6.82).

  Smoothed targets: :math:`1 - \alpha\frac{n-1}{n}` and :math:`\alpha/n` (optax's
  ``smooth_labels``). :math:`\hat c_1 = c_1 + c_y\frac{\alpha}{n} + c_{yy}\frac{\alpha^2}{n^2}`,
  :math:`\hat c_h = c_h + c_{hy}\frac{\alpha}{n}`, :math:`\hat c_{hh}=c_{hh}`,
  :math:`\hat c_{hy} = (1-\alpha)c_{hy}`, :math:`\hat c_y = (1-\alpha)c_y`,
  :math:`\hat c_{yy} = c_{yy}[(1-\alpha\frac{n-1}{n})^2 - \frac{\alpha^2}{n^2}]`.

  Args:
    c: :class:`CCoefficients`.
    alpha: smoothing strength in [0, 1).
    n: number of classes.

  Returns:
    :class:`CCoefficients` ĉ.

  Raises:
    ValueError: on α outside [0, 1) or bad ``n``.
  """
  a = _check_alpha(alpha, "label_smoothing_c")
  n = _check_n(n, "label_smoothing_c")
  on, off = 1.0 - a * (n - 1) / n, a / n
  return CCoefficients(
      c1=c.c1 + c.c_y * off + c.c_yy * off**2,
      c_h=c.c_h + c.c_hy * off,
      c_hh=c.c_hh,
      c_hy=c.c_hy * (on - off),
      c_y=c.c_y * (on - off),
      c_yy=c.c_yy * (on**2 - off**2),
  )


def label_smoothing_c_inverse(c_hat: CCoefficients, alpha: float, n: int) -> CCoefficients:
  """Inverse of :func:`label_smoothing_c`: the c of the loss that, with smoothing α, acts as ĉ.

  Args:
    c_hat: :class:`CCoefficients` of a loss used on hard labels.
    alpha: smoothing strength in [0, 1).
    n: number of classes.

  Returns:
    :class:`CCoefficients` c with ``label_smoothing_c(c, alpha, n) == c_hat``.

  Raises:
    ValueError: on α outside [0, 1) or bad ``n``.
  """
  a = _check_alpha(alpha, "label_smoothing_c_inverse")
  n = _check_n(n, "label_smoothing_c_inverse")
  on, off = 1.0 - a * (n - 1) / n, a / n
  c_hy = c_hat.c_hy / (on - off)
  c_y = c_hat.c_y / (on - off)
  c_yy = c_hat.c_yy / (on**2 - off**2)
  return CCoefficients(
      c1=c_hat.c1 - c_y * off - c_yy * off**2,
      c_h=c_hat.c_h - c_hy * off,
      c_hh=c_hat.c_hh,
      c_hy=c_hy,
      c_y=c_y,
      c_yy=c_yy,
  )


def label_smoothing_theta(theta: jax.Array, alpha: float, n: int) -> jax.Array:
  r"""θ̂ whose TaylorGLO loss on hard labels trains like θ's on labels smoothed by α.

  Theorem 6.7.1: maps θ → c (eqs. 6.19–6.24) → ĉ (eqs. 6.77–6.82) → θ̂, keeping the
  expansion centre (θ0, θ1). γ̂(h, x_hard) = γ(h, x_smooth) for every class, so the
  gradients of the two losses with respect to logits agree exactly.

  Args:
    theta: ``float[..., 8]``.
    alpha: smoothing strength in [0, 1).
    n: number of classes.

  Returns:
    ``float[..., 8]`` θ̂.

  Raises:
    ValueError: on bad θ shape, α, or ``n``.
  """
  t = _check_theta(theta, "label_smoothing_theta")
  c_hat = label_smoothing_c(c_coefficients(t), alpha, n)
  return theta_from_c_coefficients(c_hat, t[..., 0], t[..., 1])


def label_smoothing_theta_inverse(theta_hat: jax.Array, alpha: float, n: int) -> jax.Array:
  """Inverse of :func:`label_smoothing_theta` (decomposes θ̂ into θ and smoothing α).

  Args:
    theta_hat: ``float[..., 8]``.
    alpha: smoothing strength in [0, 1).
    n: number of classes.

  Returns:
    ``float[..., 8]`` θ with the same centre.
  """
  t = _check_theta(theta_hat, "label_smoothing_theta_inverse")
  c = label_smoothing_c_inverse(c_coefficients(t), alpha, n)
  return theta_from_c_coefficients(c, t[..., 0], t[..., 1])


# --------------------------------------------------------------------------------------------
# Attraction towards zero training error (§6.6)


def attraction(eps, gamma_target, gamma_nontarget, n: int, *, step_size: float = 1.0):
  r"""Strength of attraction to zero training error: one-step change of the target's softmax.

  State: target probability :math:`1-\epsilon`, each non-target :math:`\epsilon/(n-1)`. One
  update of the logits :math:`\Delta f_j = \eta\sum_k\gamma_k\,\partial h_k/\partial f_j` with
  :math:`\partial h_k/\partial f_j = h_k(\delta_{kj}-h_j)` gives
  :math:`\Delta f_T - \Delta f_{\neg T} = D =
  \eta\,\epsilon(1-\epsilon)(\gamma_T-\gamma_{\neg T})\,n/(n-1)`
  and

  .. math:: S = \sigma'_T - (1-\epsilon)
            = \frac{\epsilon(1-\epsilon)(1-e^{-D})}{(1-\epsilon) + \epsilon e^{-D}},

  positive = attraction (entropy falls), negative = repulsion. This is eq. 6.51 with two
  misprints of its derivation fixed: eq. 6.53's spurious factor :math:`f_k`, and eq. 6.59's lost
  minus sign on the :math:`(n-2)\gamma_{\neg T}\epsilon^2/(n-1)^2` term (which puts a wrong
  second exponent into 6.51; the printed form agrees with this one only when
  :math:`\gamma_{\neg T}=0`, e.g. CE). Only :math:`\gamma_T-\gamma_{\neg T}` matters, so raw
  and centred γ give the same S.

  Args:
    eps: ``float[...]`` deviation from memorization, in (0, 1).
    gamma_target, gamma_nontarget: ``float[...]`` γ values (broadcast with ``eps``).
    n: number of classes (int ≥ 2).
    step_size: η multiplying the logit update (1 in the dissertation).

  Returns:
    ``float[...]`` change of the target probability after one step (dimensionless).

  Raises:
    ValueError: on bad ``n``.

  References:
    Dissertation theorem 6.6.1 (eqs. 6.51–6.68), Figs. 6.1–6.3.
  """
  n = _check_n(n, "attraction")
  eps = jnp.asarray(eps)
  dtype = jnp.result_type(eps.dtype, jnp.asarray(gamma_target).dtype, jnp.float32)
  eps = eps.astype(dtype)
  d = (step_size * eps * (1 - eps) * (jnp.asarray(gamma_target, dtype)
                                      - jnp.asarray(gamma_nontarget, dtype)) * n / (n - 1))
  # Two algebraically equal forms so no exp overflows (jnp.where evaluates both branches).
  d_pos = jnp.where(d >= 0, d, 0.0)
  d_neg = jnp.where(d < 0, d, 0.0)
  s_pos = eps * (1 - eps) * -jnp.expm1(-d_pos) / ((1 - eps) + eps * jnp.exp(-d_pos))
  s_neg = eps * (1 - eps) * jnp.expm1(d_neg) / ((1 - eps) * jnp.exp(d_neg) + eps)
  return jnp.where(d >= 0, s_pos, s_neg)


def attraction_state(eps, n: int):
  """Probabilities and one-hot labels of the state analysed in §6.6 (target = class 0).

  Args:
    eps: ``float[E]`` values in (0, 1).
    n: number of classes.

  Returns:
    ``(probs float[E, n], labels float[E, n])``.

  Raises:
    ValueError: on bad ``n`` or ``eps`` outside (0, 1).
  """
  n = _check_n(n, "attraction_state")
  eps_np = np.asarray(eps, dtype=np.float64).reshape(-1)
  if eps_np.size == 0 or np.any(~(eps_np > 0)) or np.any(~(eps_np < 1)):
    raise ValueError(f"attraction_state: eps must be a non-empty array in (0, 1), got "
                     f"min={eps_np.min() if eps_np.size else None}, "
                     f"max={eps_np.max() if eps_np.size else None}.")
  e = jnp.asarray(eps_np, dtype=jnp.float32)[:, None]
  col = jnp.arange(n)[None, :]
  probs = jnp.where(col == 0, 1 - e, e / (n - 1))
  labels = jnp.broadcast_to(jax.nn.one_hot(0, n, dtype=jnp.float32), probs.shape)
  return probs, labels


def characteristic_curve(loss, n: int, eps_grid=None, *, space: str = "logits",
                         class_reduction: str = "mean",
                         step_size: float = 1.0) -> CharacteristicCurve:
  r"""A loss's characteristic curve in the attraction phase space (Figs. 6.1, 6.3).

  For each ε, γ is evaluated at the §6.6 state (target probability 1-ε, non-targets ε/(n-1))
  and fed to :func:`attraction`.

  Args:
    loss: a loss callable or spec string (``"baikal"``; see :func:`gamma`), or a TaylorGLO
      θ ``float[8]`` (closed form).
    n: number of classes.
    eps_grid: ``float[E]`` in (0, 1); default 199 points from 0.005 to 0.995.
    space, class_reduction: see :func:`gamma` (callables only).
    step_size: see :func:`attraction`.

  Returns:
    :class:`CharacteristicCurve` with ``float[E]`` fields.

  Raises:
    ValueError: on bad ``n`` or ``eps_grid``.
  """
  n = _check_n(n, "characteristic_curve")
  loss = _as_loss(loss, "characteristic_curve")
  if eps_grid is None:
    eps_grid = np.linspace(0.005, 0.995, 199)
  probs, labels = attraction_state(eps_grid, n)
  if callable(loss):
    g = gamma(loss, probs, labels, space=space, class_reduction=class_reduction)
  else:
    g = gamma_taylorglo(_check_theta(loss, "characteristic_curve"), probs, labels)
  eps = jnp.asarray(np.asarray(eps_grid, dtype=np.float32).reshape(-1))
  strength = attraction(eps, g[:, 0], g[:, 1], n, step_size=step_size)
  return CharacteristicCurve(eps, g[:, 0], g[:, 1], strength)
