"""The final protocol: retrain a discovered loss and a baseline R times, compare.

Dissertation §3.3 / §5.3: the best-validation loss is retrained with full training
``R`` times (10 in the papers), as is the baseline (cross-entropy); their test
accuracies are compared with a one-tailed Welch t-test (eqs. 3.3–3.5). The R runs of
each loss train as one population (:func:`~glojax.train.population.evaluate_population`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.analysis.stats import welch_ttest
from glojax.train.population import evaluate_population
from glojax.train.trainer import Trainer



@dataclasses.dataclass
class LossUnderTest:
  """A named loss for the protocol: ``loss_fn(loss_params, logits, labels)`` + params.

  ``loss_params`` may be a :class:`~glojax.train.trainer.ScaledLearningRate` (the loss
  trains at its own learning rate); ``learning_rate`` is then the rate it trains at,
  for the table (None: the train config's).
  """
  name: str
  loss_fn: Callable
  loss_params: Any
  spec: str = ""
  learning_rate: Optional[float] = None


def _progress_printer(name: str, log: Callable[[str], None]):
  """A progress callback that logs about every 10 % of a long training."""
  last = [0]

  def progress(done: int, total: int) -> None:
    if total >= 5000 and (done - last[0] >= total // 10 or done == total):
      last[0] = done
      log(f"  {name}: step {done}/{total}")
  return progress


def summarize(accuracies) -> dict:
  """``{"runs": [...], "mean": m, "std": s}`` with the sample std (ddof=1)."""
  acc = np.asarray(accuracies, np.float64)
  return {"runs": acc.tolist(), "mean": float(acc.mean()),
          "std": float(acc.std(ddof=1)) if acc.size > 1 else 0.0}


def compare(candidate: LossUnderTest, baseline: LossUnderTest, *, model, dataset,
            train_config, repeats: int = 10, seed: int = 0, strategy: str = "auto",
            model_name: Optional[str] = None, alternative: str = "greater",
            log: Callable[[str], None] = print) -> dict:
  """Trains ``candidate`` and ``baseline`` ``repeats`` times each and compares them.

  Both losses use the same ``repeats`` PRNG keys (same initial weights and batch
  order per run index), so the comparison isolates the loss.

  Args:
    candidate, baseline: the losses.
    model, dataset, train_config: what to train (full training length).
    repeats: runs per loss (R; ≥ 2 for the t-test).
    seed: seed of the runs' keys.
    strategy: population strategy for the R runs (see ``evaluate_population``).
    model_name: registry name of the model (for ``strategy="auto"``).
    alternative: Welch alternative for candidate vs baseline (``"greater"``).
    log: progress printer.

  Returns:
    JSON-able dict: per loss ``{"name", "spec", "runs", "mean", "std", "failed"}``
    (test accuracy, fraction in [0, 1]; failed runs count as 0), and ``"welch"``
    ``{"t", "dof", "p", "alternative"}``.

  Raises:
    ValueError: if ``repeats < 2`` or ``alternative`` is unknown.
  """
  if alternative not in ("greater", "less", "two-sided"):
    raise ValueError(f"alternative={alternative!r} is not one of "
                     f"('greater', 'less', 'two-sided')")
  if repeats < 2:
    raise ValueError(f"final protocol needs repeats ≥ 2 for the t-test, got {repeats}")
  keys = jax.random.split(jax.random.PRNGKey(seed), repeats)
  out = {}
  for role, loss in (("candidate", candidate), ("baseline", baseline)):
    trainer = Trainer(model, dataset, loss.loss_fn, train_config)
    params = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(jnp.asarray(a), (repeats,) + jnp.shape(a)),
        loss.loss_params)
    log(f"final protocol: training {loss.name} {repeats}× for {train_config.steps} steps")
    result = evaluate_population(trainer, params, keys, strategy=strategy,
                                 split="test", model_name=model_name,
                                 progress=_progress_printer(loss.name, log))
    out[role] = {"name": loss.name, "spec": loss.spec, **summarize(result.fitness),
                 "failed": result.num_failed}
  out["welch"] = {**welch_ttest(out["candidate"]["runs"], out["baseline"]["runs"],
                                alternative=alternative)._asdict(),
                  "alternative": alternative}
  out["repeats"] = repeats
  out["steps"] = train_config.steps
  return out


def format_table(result: dict) -> str:
  """The comparison as a small text table (mean, std, p)."""
  c, b, w = result["candidate"], result["baseline"], result["welch"]
  width = max(len(c["name"]), len(b["name"]), 4)
  lines = [f"Test accuracy after {result['steps']} steps, {result['repeats']} runs each",
           f"{'loss':<{width}}  {'mean':>7}  {'std':>7}  {'failed':>6}",
           f"{c['name']:<{width}}  {c['mean']:7.4f}  {c['std']:7.4f}  {c['failed']:6d}",
           f"{b['name']:<{width}}  {b['mean']:7.4f}  {b['std']:7.4f}  {b['failed']:6d}"]
  sign = {"greater": ">", "less": "<", "two-sided": "≠"}[w["alternative"]]
  verdict = ("significant" if np.isfinite(w["p"]) and w["p"] < 0.05 else
             "not significant")
  lines.append(f"Welch t-test ({c['name']} {sign} {b['name']}): t = {w['t']:.3f}, "
               f"dof = {w['dof']:.1f}, p = {w['p']:.4g} ({verdict} at 0.05)")
  return "\n".join(lines)


def compare_all(candidate: LossUnderTest, baselines: Sequence[LossUnderTest], *, model,
                dataset, train_config, repeats: int = 10, seed: int = 0,
                strategy: str = "auto", model_name: Optional[str] = None,
                alternative: str = "greater", log: Callable[[str], None] = print,
                make_trainer: Callable[..., Trainer] = Trainer) -> dict:
  """Trains ``candidate`` and every baseline ``repeats`` times; Welch's test vs each.

  Every loss uses the same ``repeats`` PRNG keys (same initial weights and batch order
  per run index) and the test split, as :func:`compare`.

  Args:
    candidate: the loss under test.
    baselines: one or more comparison losses (names must be distinct).
    model, dataset, train_config, repeats, seed, strategy, model_name, alternative,
      log: as for :func:`compare`.
    make_trainer: ``(model, dataset, loss_fn, train_config) -> Trainer`` (a caching
      factory lets reruns in one process skip compiling).

  Returns:
    JSON-able dict: ``"candidate"`` and ``"baselines"`` (list) rows ``{"name", "spec",
    "learning_rate", "runs", "mean", "std", "failed"}`` (test accuracy; failed runs
    count as 0); ``"comparisons"``: per baseline ``{"baseline", "t", "dof", "p",
    "alternative"}`` (candidate vs that baseline); ``"repeats"``, ``"steps"``. For
    readers of :func:`compare`'s format, ``"baseline"`` and ``"welch"`` repeat the first
    baseline's row and test.

  Raises:
    ValueError: if ``repeats < 2``, ``alternative`` is unknown, no baseline is given or
      two losses share a name.
  """
  if alternative not in ("greater", "less", "two-sided"):
    raise ValueError(f"alternative={alternative!r} is not one of "
                     f"('greater', 'less', 'two-sided')")
  if repeats < 2:
    raise ValueError(f"final protocol needs repeats ≥ 2 for the t-test, got {repeats}")
  names = [candidate.name] + [b.name for b in baselines]
  if not baselines or len(set(names)) != len(names):
    raise ValueError(f"compare_all needs ≥ 1 baseline and distinct names, got {names}")
  keys = jax.random.split(jax.random.PRNGKey(seed), repeats)
  rows = []
  trainers: dict[int, Trainer] = {}  # losses sharing a loss_fn share compiled programs
  for loss in (candidate, *baselines):
    if id(loss.loss_fn) not in trainers:
      trainers[id(loss.loss_fn)] = make_trainer(model, dataset, loss.loss_fn, train_config)
    trainer = trainers[id(loss.loss_fn)]
    params = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(jnp.asarray(a), (repeats,) + jnp.shape(a)),
        loss.loss_params)
    lr = train_config.learning_rate if loss.learning_rate is None else loss.learning_rate
    log(f"final protocol: training {loss.name} (lr {lr:.4g}) {repeats}× for "
        f"{train_config.steps} steps")
    result = evaluate_population(trainer, params, keys, strategy=strategy,
                                 split="test", model_name=model_name,
                                 progress=_progress_printer(loss.name, log))
    rows.append({"name": loss.name, "spec": loss.spec, "learning_rate": float(lr),
                 **summarize(result.fitness), "failed": result.num_failed})
  comparisons = [{"baseline": b["name"],
                  **welch_ttest(rows[0]["runs"], b["runs"],
                                alternative=alternative)._asdict(),
                  "alternative": alternative} for b in rows[1:]]
  return {"candidate": rows[0], "baselines": rows[1:], "comparisons": comparisons,
          "baseline": rows[1], "welch": comparisons[0], "repeats": repeats,
          "steps": train_config.steps}


def format_comparison(result: dict) -> str:
  """:func:`compare_all`'s result as a text table: one row per loss (learning rate,
  mean, std, failed runs, Welch p of the candidate against that row)."""
  c, rows = result["candidate"], [result["candidate"], *result["baselines"]]
  tests = {w["baseline"]: w for w in result["comparisons"]}
  alternative = result["comparisons"][0]["alternative"]
  sign = {"greater": ">", "less": "<", "two-sided": "≠"}[alternative]
  width = max(max(len(r["name"]) for r in rows), 4)
  lines = [f"Test accuracy after {result['steps']} steps, {result['repeats']} runs each; "
           f"p: one Welch t-test per row, H1 {c['name']} {sign} row",
           f"{'loss':<{width}}  {'lr':>8}  {'mean':>7}  {'std':>7}  {'failed':>6}  "
           f"{'t':>7}  {'p':>9}"]
  for r in rows:
    w = tests.get(r["name"]) if r is not c else None
    stat = (f"  {w['t']:7.3f}  {w['p']:9.3g}{' *' if np.isfinite(w['p']) and w['p'] < 0.05 else ''}"
            if w else "")
    lines.append(f"{r['name']:<{width}}  {r['learning_rate']:8.4g}  {r['mean']:7.4f}  "
                 f"{r['std']:7.4f}  {r['failed']:6d}{stat}")
  lines.append("(* significant at 0.05)")
  return "\n".join(lines)
