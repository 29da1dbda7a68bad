"""Loss registry and spec strings: ``get(spec) -> loss``, ``to_spec(loss) -> spec``.

A *spec* is a string naming a loss and its parameters, so losses found by a search are
data (docs/losses.md, "Specs: losses as data") that load the same way in any training code:

* a name: ``"baikal"``, ``"neuroloss3"``, ... (see :func:`names`);
* a parameterized loss: ``"taylorglo(theta=[0.1, -2.5, ...])"``,
  ``"label_smoothing(alpha=0.1)"``, ``"polyloss(epsilon=2.0)"``; numbers, negative
  numbers and lists of numbers only. Losses of the GLO form ``-(1/n) Σ_i f`` also take
  ``class_reduction='sum'`` (default ``'mean'``);
* an expression: ``"expr:log(y) - x / y"`` meaning ``L = -(1/n) Σ_i f(x_i, y_i)``
  (the GLO tree form; :func:`glojax.expr.parse`; ``logits`` may appear). It is run by
  GLO's program interpreter (:func:`glojax.expr.program.program_loss`), and must pass
  GLO's validity rule (:func:`glojax.expr.canonical.trainability_error`: it depends on
  ``x`` and on ``y`` or ``logits``).

Specs are parsed with :mod:`ast` (never ``eval``); a malformed or unknown spec raises a
``ValueError`` naming the offending part. :func:`to_spec` writes the canonical spec of a
loss (all parameters explicit, floats as ``repr``), so ``get(to_spec(loss))`` is the
same loss; for TaylorGLO it is exactly :func:`glojax.losses.taylorglo_spec`.

Two forms of every loss:

* :func:`get` — ``loss(logits, labels) -> float[...]`` with the parameters bound
  (a :class:`Loss`; a drop-in for ``optax.softmax_cross_entropy``);
* :func:`get_parameterized` — ``(loss_fn(params, logits, labels), params)`` with
  ``params: float32[P]`` a flat array (``P = 0`` for fixed losses), so a trainer or a
  search passes the parameters as *traced* arrays (no recompiles between candidates),
  e.g. ``Trainer(model, dataset, loss_fn, config).train(params, key)``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.losses import core, zoo

EXPR_PREFIX = "expr:"
# ParamFn(params: float32[P], logits, labels[, class_reduction]) -> float[...]
ParamFn = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class Param:
  """One parameter of a registered loss.

  Attributes:
    name: keyword in the spec, e.g. ``"alpha"``.
    size: ``None`` for a scalar, else the length of a vector parameter.
    default: value used when the spec omits it; ``None`` makes it required.
    low, high: inclusive bounds checked when a value is bound (``None``: unbounded).
  """
  name: str
  size: Optional[int] = None
  default: Any = None
  low: Optional[float] = None
  high: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class LossEntry:
  """A registered loss.

  Attributes:
    name: the registry name.
    fn: ``fn(params: float32[P], logits, labels[, class_reduction]) -> float[...]``;
      ``params`` is the concatenation of :attr:`params` in order.
    params: the parameters, in spec and array order.
    reducible: whether ``fn`` takes ``class_reduction`` (GLO-form losses).
    summary: one line for listings.
    plain: the plain ``(logits, labels)`` function, for ``to_spec`` on it (fixed losses).
  """
  name: str
  fn: ParamFn
  params: tuple[Param, ...] = ()
  reducible: bool = False
  summary: str = ""
  plain: Optional[Callable] = None

  @property
  def num_params(self) -> int:
    return sum(1 if p.size is None else p.size for p in self.params)


_REGISTRY: dict[str, LossEntry] = {}


def register(name: str, fn: ParamFn, params: Sequence[Param] = (), *,
             reducible: bool = False, summary: str = "",
             plain: Optional[Callable] = None) -> LossEntry:
  """Adds a loss to the registry so ``get(name)`` / ``get("name(k=v)")`` load it.

  Args:
    name: a Python identifier not yet registered (and not ``"expr"``).
    fn: ``fn(params: float32[P], logits, labels[, class_reduction])`` per example.
    params: its parameters (:class:`Param`), in array order.
    reducible: ``fn`` accepts ``class_reduction`` (``"mean"``/``"sum"``).
    summary: one-line description.
    plain: optional fixed ``(logits, labels)`` function that :func:`to_spec` maps to
      ``name``.

  Returns:
    The :class:`LossEntry`.

  Raises:
    ValueError: for an invalid or duplicate name.
  """
  if not isinstance(name, str) or not name.isidentifier() or name == "expr":
    raise ValueError(f"register: invalid loss name {name!r}")
  if name in _REGISTRY:
    raise ValueError(f"register: loss {name!r} is already registered")
  entry = LossEntry(name, fn, tuple(params), reducible, summary, plain)
  _REGISTRY[name] = entry
  return entry


def names() -> list[str]:
  """The registered loss names, sorted."""
  return sorted(_REGISTRY)


def entry(name: str) -> LossEntry:
  """The :class:`LossEntry` of ``name``.

  Raises:
    ValueError: for an unknown name (with the closest known names).
  """
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, names(), n=3)
    hint = f"; did you mean {close}?" if close else ""
    raise ValueError(f"unknown loss {name!r}{hint} Known losses: {names()} "
                     f"(or an expression 'expr:...').")
  return _REGISTRY[name]


# ---- bound losses --------------------------------------------------------------------


class Loss:
  """A loss with its parameters bound: ``loss(logits, labels) -> float[...]``.

  Returned by :func:`get`. ``loss.spec`` is its canonical spec string,
  ``loss.params`` its ``float32[P]`` parameters, ``loss.name`` the registry name
  (``"expr"`` for expressions). Two losses are equal iff their specs are.
  """

  def __init__(self, name: str, spec: str, fn: ParamFn, params: np.ndarray,
               tree=None):
    self.name = name
    self.spec = spec
    self.fn = fn
    self.params = jnp.asarray(params, jnp.float32)
    self.tree = tree
    self.__doc__ = f"glojax loss {spec!r}: (logits, labels) -> per-example loss."

  def __call__(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    return self.fn(self.params, logits, labels)

  def __repr__(self) -> str:
    return f"glojax.losses.get({self.spec!r})"

  def __eq__(self, other) -> bool:
    return isinstance(other, Loss) and other.spec == self.spec

  def __hash__(self) -> int:
    return hash(self.spec)


# ---- spec parsing ----------------------------------------------------------------------


def _segment(spec: str, node: ast.AST) -> str:
  return ast.get_source_segment(spec, node) or ast.dump(node)


def _to_float(spec: str, value: int | float, key: str) -> float:
  try:
    return float(value)
  except OverflowError:  # an integer literal beyond the float range
    raise ValueError(f"in loss spec {spec!r}: {key}= is too large for a float") from None


def _literal(spec: str, node: ast.AST, key: str):
  """A number, a list of numbers, or (for options) a string, from an AST node."""
  if isinstance(node, ast.Constant):
    value = node.value
    if isinstance(value, str):
      return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return _to_float(spec, value, key)
  elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
      and isinstance(node.operand, ast.Constant):
    value = node.operand.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      value = _to_float(spec, value, key)
      return -value if isinstance(node.op, ast.USub) else value
  elif isinstance(node, (ast.List, ast.Tuple)):
    values = [_literal(spec, e, key) for e in node.elts]
    if any(not isinstance(v, float) for v in values):
      raise ValueError(f"in loss spec {spec!r}: {key}= must be a list of numbers, got "
                       f"{_segment(spec, node)!r}")
    return values
  raise ValueError(f"in loss spec {spec!r}: the value of {key}= must be a number or a "
                   f"list of numbers, got {_segment(spec, node)!r}")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
  """Splits a (non-expression) spec into its name and keyword values, without binding.

  Args:
    spec: e.g. ``"label_smoothing(alpha=0.1)"`` or ``"baikal"``.

  Returns:
    ``(name, {keyword: float | list[float] | str})``.

  Raises:
    ValueError: naming the offending part, for anything but ``name`` or
      ``name(key=literal, ...)``.
  """
  try:
    body = ast.parse(spec, mode="eval").body
  except SyntaxError as e:
    raise ValueError(f"cannot parse loss spec {spec!r}: {e.msg}") from None
  except (RecursionError, MemoryError):  # ast's own limits on nesting
    raise ValueError(f"cannot parse loss spec {spec!r}: nested too deeply") from None
  if isinstance(body, ast.Name):
    return body.id, {}
  if not isinstance(body, ast.Call):
    raise ValueError(f"loss spec {spec!r} must be a name like 'baikal', a call like "
                     f"'taylorglo(theta=[...])', or 'expr:...'; got "
                     f"{type(body).__name__} {_segment(spec, body)!r}")
  if not isinstance(body.func, ast.Name):
    raise ValueError(f"in loss spec {spec!r}: {_segment(spec, body.func)!r} is not a "
                     "loss name")
  name = body.func.id
  if body.args:
    raise ValueError(f"in loss spec {spec!r}: positional argument "
                     f"{_segment(spec, body.args[0])!r}; write key=value")
  kwargs = {}
  for kw in body.keywords:
    if kw.arg is None:
      raise ValueError(f"in loss spec {spec!r}: '**' arguments are not allowed")
    if kw.arg in kwargs:
      raise ValueError(f"in loss spec {spec!r}: keyword {kw.arg!r} repeated")
    kwargs[kw.arg] = _literal(spec, kw.value, kw.arg)
  return name, kwargs


def _bind(e: LossEntry, kwargs: dict[str, Any], spec: str) -> tuple[np.ndarray, str]:
  """Checks keyword values against ``e.params``; returns (params float64[P], reduction)."""
  kwargs = dict(kwargs)
  class_reduction = kwargs.pop("class_reduction", "mean")
  if not isinstance(class_reduction, str) or class_reduction not in core.CLASS_REDUCTIONS:
    raise ValueError(f"in loss spec {spec!r}: class_reduction={class_reduction!r} is not "
                     f"one of {core.CLASS_REDUCTIONS}")
  if class_reduction != "mean" and not e.reducible:
    raise ValueError(f"in loss spec {spec!r}: {e.name} does not take class_reduction "
                     "(it is not of the form -(1/n) sum_i f)")
  known = {p.name for p in e.params}
  for key in kwargs:
    if key not in known:
      allowed = sorted(known | ({"class_reduction"} if e.reducible else set()))
      raise ValueError(f"in loss spec {spec!r}: {e.name} has no parameter {key!r}; "
                       f"its parameters: {allowed or 'none'}")
  chunks = []
  for p in e.params:
    value = kwargs.get(p.name, p.default)
    if value is None:
      raise ValueError(f"in loss spec {spec!r}: {e.name} requires {p.name}=")
    if isinstance(value, str):
      raise ValueError(f"in loss spec {spec!r}: {p.name}={value!r} must be numeric")
    arr = np.asarray(value, np.float64)
    if p.size is None and arr.ndim != 0:
      raise ValueError(f"in loss spec {spec!r}: {p.name} must be a number, got {value!r}")
    if p.size is not None and arr.shape != (p.size,):
      raise ValueError(f"in loss spec {spec!r}: {p.name} must be a list of {p.size} "
                       f"numbers, got {arr.size}")
    with np.errstate(over="ignore"):
      # The loss computes in float32: 1e300 is finite here but inf there.
      finite = np.all(np.isfinite(arr.astype(np.float32)))
    if not finite:
      raise ValueError(f"in loss spec {spec!r}: {p.name} must be finite in float32 "
                       f"(|value| < 3.4e38), got {value!r}")
    if (p.low is not None and np.any(arr < p.low)) or \
        (p.high is not None and np.any(arr > p.high)):
      raise ValueError(f"in loss spec {spec!r}: {p.name}={value!r} is outside "
                       f"[{p.low}, {p.high}]")
    chunks.append(arr.reshape(-1))
  params = np.concatenate(chunks) if chunks else np.zeros((0,), np.float64)
  return params, class_reduction


def _canonical(e: LossEntry, params: np.ndarray, class_reduction: str) -> str:
  parts, i = [], 0
  for p in e.params:
    if p.size is None:
      parts.append(f"{p.name}={float(params[i])!r}")
      i += 1
    else:
      parts.append(f"{p.name}=[" + ", ".join(repr(float(v)) for v in params[i:i + p.size])
                   + "]")
      i += p.size
  if class_reduction != "mean":
    parts.append(f"class_reduction={class_reduction!r}")
  return f"{e.name}({', '.join(parts)})" if parts else e.name


def _parse_expr(spec: str):
  from glojax import expr as expr_lib
  text = spec[len(EXPR_PREFIX):]
  try:
    tree = expr_lib.parse(text)
  except ValueError as err:
    raise ValueError(f"in loss spec {spec!r}: {err}") from None
  from glojax.expr import canonical
  # The GLO evaluator's rule (one function): depends on x and on y or logits.
  reason = canonical.trainability_error(tree)
  if reason is not None:
    raise ValueError(f"in loss spec {spec!r}: {reason}")
  return tree


def _resolve(spec: str, class_reduction: Optional[str] = None
             ) -> tuple[str, ParamFn, np.ndarray, str, Any]:
  """Spec → (name, param_fn, params float64[P], canonical spec, tree or None)."""
  if not isinstance(spec, str):
    raise ValueError(f"a loss spec must be a string, got {type(spec).__name__} {spec!r}")
  spec = spec.strip()
  if not spec:
    raise ValueError("empty loss spec")
  if spec.startswith(EXPR_PREFIX):
    from glojax import expr as expr_lib
    if class_reduction not in (None, "mean"):
      raise ValueError(f"loss spec {spec!r}: expression losses are always "
                       f"-(1/n) sum_i f (class_reduction='mean'), got {class_reduction!r}")
    tree = _parse_expr(spec)
    # The tree's program, run by the interpreter GLO trains with: a loss reloaded
    # from best_loss.txt computes exactly what the search trained.
    compiled = expr_lib.compile_jnp(tree)

    def expr_fn(params, logits, labels):
      core._check_shapes(logits, labels, "expr loss")
      return compiled(logits, labels)

    return ("expr", expr_fn, np.zeros((0,), np.float64),
            EXPR_PREFIX + expr_lib.to_string(tree), tree)
  name, kwargs = parse_spec(spec)
  if class_reduction is not None:
    if kwargs.get("class_reduction", class_reduction) != class_reduction:
      raise ValueError(f"loss spec {spec!r} says class_reduction="
                       f"{kwargs['class_reduction']!r} but class_reduction="
                       f"{class_reduction!r} was passed")
    kwargs["class_reduction"] = class_reduction
  e = entry(name)
  params, class_reduction = _bind(e, kwargs, spec)
  fn = e.fn
  if e.reducible:
    fn = functools.partial(e.fn, class_reduction=class_reduction)
  return name, fn, params, _canonical(e, params, class_reduction), None


def get(spec: str | Loss, *, class_reduction: Optional[str] = None) -> Loss:
  """The loss named by ``spec``, parameters bound: ``loss(logits, labels) -> float[...]``.

  Args:
    spec: a spec string (module docstring), or a :class:`Loss` (returned as is).
    class_reduction: optional ``"mean"`` / ``"sum"`` for losses of the GLO form
      ``-(1/n) Σ_i f`` (same as ``class_reduction=`` in the spec).

  Returns:
    A :class:`Loss` (callable on ``logits, labels: float[..., n]``, returning
    ``float[...]``) with ``.spec`` its canonical spec.

  Raises:
    ValueError: naming the offending part of a malformed spec, an unknown loss or
      parameter, a missing required parameter, a wrong length, a non-finite or
      out-of-range value.
  """
  if isinstance(spec, Loss):
    if class_reduction is None:
      return spec
    spec = spec.spec
  name, fn, params, canonical, tree = _resolve(spec, class_reduction)
  return Loss(name, canonical, fn, params, tree=tree)


def get_parameterized(spec: str | Loss, *, class_reduction: Optional[str] = None
                      ) -> tuple[ParamFn, jax.Array]:
  """The loss of ``spec`` with its parameters as an argument, for trainers/searches.

  Args:
    spec, class_reduction: as for :func:`get`.

  Returns:
    ``(loss_fn, params)``: ``loss_fn(params, logits, labels) -> float[...]`` and
    ``params: float32[P]`` the spec's values (``P = 0`` for fixed losses and
    expressions; ``theta: float32[8]`` for ``taylorglo``; ``[alpha]`` for
    ``label_smoothing``; ``[epsilon]`` for ``polyloss``). ``loss_fn`` is the same
    function for every value of the parameters, so passing different ``params`` to a
    jitted trainer does not recompile. ``loss_fn(params, ...) == get(spec)(...)``.

  Raises:
    ValueError: as :func:`get`.
  """
  if isinstance(spec, Loss):
    if class_reduction is None:
      return spec.fn, spec.params
    spec = spec.spec
  _, fn, params, _, _ = _resolve(spec, class_reduction)
  return fn, jnp.asarray(params, jnp.float32)


def to_spec(loss: Loss | Callable) -> str:
  """The canonical spec of ``loss``, so that ``get(to_spec(loss)) == loss``.

  Args:
    loss: a :class:`Loss` from :func:`get`, or a registered fixed function such as
      ``glojax.losses.baikal`` / ``glojax.losses.cross_entropy``.

  Returns:
    The spec string (for TaylorGLO, exactly ``taylorglo_spec(theta)``).

  Raises:
    ValueError: if ``loss`` carries no spec (e.g. an arbitrary function, or a
      parameterized function without its parameters: use ``taylorglo_spec(theta)``).
  """
  if isinstance(loss, Loss):
    return loss.spec
  for e in _REGISTRY.values():
    if e.plain is not None and e.plain is loss:
      return e.name
  raise ValueError(f"to_spec: {loss!r} carries no spec; pass a loss from "
                   "glojax.losses.get(...) or a registered fixed loss function")


# ---- the registered losses ----------------------------------------------------------


def _fixed(plain: Callable) -> ParamFn:
  """Wraps ``plain(logits, labels[, class_reduction])`` as a ``ParamFn`` (P = 0)."""
  def fn(params, logits, labels, **kw):
    del params
    return plain(logits, labels, **kw)
  fn.__name__ = plain.__name__
  fn.__doc__ = plain.__doc__
  return fn


def _taylorglo_fn(params, logits, labels, class_reduction="mean"):
  return core.taylorglo(params, logits, labels, class_reduction=class_reduction)


def _label_smoothing_fn(params, logits, labels):
  return zoo.label_smoothed_cross_entropy(logits, labels, params[0])


def _polyloss_fn(params, logits, labels):
  return zoo.polyloss(logits, labels, params[0])


def _register_builtins():
  register("cross_entropy", _fixed(core.cross_entropy), summary="-Σ x log y (optax)",
           plain=core.cross_entropy)
  register("label_smoothing", _label_smoothing_fn,
           (Param("alpha", default=0.1, low=0.0, high=1.0),),
           summary="CE with x ← x(1-α) + α/n")
  register("polyloss", _polyloss_fn, (Param("epsilon", default=2.0),),
           summary="Poly-1: CE + ε(1 - Σ x y) (optax)")
  register("taylorglo", _taylorglo_fn,
           (Param("theta", size=core.TAYLORGLO_NUM_PARAMS),), reducible=True,
           summary="3rd-order Taylor loss, θ[8] (diss. eq. 5.7, ch. 6 layout)")
  for plain, summary in (
      (zoo.mse, "(1/n) Σ (x - y)² on softmax outputs"),
      (zoo.baikal, "-(1/n) Σ (log y - x/y) (GLO eq. 1)"),
      (zoo.baikal_cma, "Baikal with CMA-ES coefficients (GLO eq. 2)"),
      (zoo.fast_logit, "-(1/n) Σ (ỹ - x)(x/y - (ỹ + 2)) (diss. eq. 4.5)"),
      (zoo.neuroloss1, "NLFS Table 5, NL1"),
      (zoo.neuroloss2, "NLFS Table 5, NL2"),
      (zoo.neuroloss3, "NLFS Table 5, NL3"),
      (zoo.bessel, "NLFS §3.6 Bessel loss"),
  ):
    register(plain.__name__, _fixed(plain), reducible=True, summary=summary, plain=plain)


_register_builtins()
