"""The final protocol: retrain a discovered loss and a baseline R times, compare.

Dissertation §3.3 / §5.3: the best-validation loss is retrained with full training
``R`` times (10 in the papers), as is the baseline (cross-entropy); their test
accuracies are compared with a one-tailed Welch t-test (eqs. 3.3–3.5). The R runs of
each loss train as one population (:func:`~glojax.train.population.evaluate_population`).

**Failed runs** (one rule for the final protocol and ``experiments/train.py``): a run
whose training produced NaN/inf is rerun with the key :func:`retry_key` ``(key,
attempt)``, up to ``retries`` extra attempts per run — the dissertation reruns failed
trainings until enough succeed; glojax bounds the reruns so a loss that always fails
cannot loop forever. A run that still fails is reported (``failed``) and left out of
the mean, the standard deviation and the t-test (:func:`summarize`): it is not counted
as accuracy 0, which would mix "diverged" into "trained badly".
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax import progress as progress_lib
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
  """A progress callback: a bar with ETA on a terminal (:mod:`glojax.progress`), else a
  log line about every 10 % of a long training."""
  last = [0]

  def progress(done: int, total: int) -> None:
    if total >= 5000 and (done - last[0] >= total // 10 or done == total):
      last[0] = done
      log(f"  {name}: step {done}/{total}")
  return progress_lib.step_callback(f"final protocol: {name}", fallback=progress)


DEFAULT_RETRIES = 2


def retry_key(key: jax.Array, attempt: int) -> jax.Array:
  """The key of rerun ``attempt`` (1, 2, ...) of a failed run with key ``key``
  (``evaluate_population``'s retries use the same rule)."""
  return jax.random.fold_in(key, attempt)


def summarize(accuracies, finite=None) -> dict:
  """Summary of R runs under the failed-run rule (module docstring).

  Args:
    accuracies: ``float[R]`` test accuracy per run.
    finite: ``bool[R]``, False for a run that failed after its retries (default: all
      succeeded).

  Returns:
    ``{"runs": accuracies of the successful runs, "mean", "std" (sample std, ddof=1),
    "failed": number of failed runs}``; ``mean`` is None without a successful run and
    ``std`` None with fewer than two.
  """
  acc = np.asarray(accuracies, np.float64)
  ok = np.ones(acc.shape, bool) if finite is None else np.asarray(finite, bool)
  good = acc[ok]
  return {"runs": good.tolist(), "mean": float(good.mean()) if good.size else None,
          "std": float(good.std(ddof=1)) if good.size > 1 else None,
          "failed": int(np.sum(~ok))}


def welch(a, b, alternative: str) -> dict:
  """Welch's t-test of two summaries' runs; all None with fewer than two successful
  runs on a side."""
  if len(a) < 2 or len(b) < 2:
    return {"t": None, "dof": None, "p": None, "alternative": alternative}
  return {**welch_ttest(a, b, alternative=alternative)._asdict(),
          "alternative": alternative}


def compare(candidate: LossUnderTest, baseline: LossUnderTest, *, model, dataset,
            train_config, repeats: int = 10, seed: int = 0, strategy: str = "auto",
            model_name: Optional[str] = None, alternative: str = "greater",
            retries: int = DEFAULT_RETRIES, log: Callable[[str], None] = print) -> dict:
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
    retries: reruns of a failed run (the failed-run rule, module docstring).
    log: progress printer.

  Returns:
    JSON-able dict: per loss ``{"name", "spec", "runs", "mean", "std", "failed"}``
    (test accuracy, fraction in [0, 1], of the successful runs; ``failed`` runs
    failed after their retries, see :func:`summarize`), and ``"welch"``
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
                                 nan_retries=retries,
                                 progress=_progress_printer(loss.name, log))
    out[role] = {"name": loss.name, "spec": loss.spec,
                 **summarize(result.fitness, result.metrics["finite"])}
    if out[role]["failed"]:
      log(f"final protocol: {out[role]['failed']} of {repeats} {loss.name} runs failed "
          f"(NaN/inf) after {retries} reruns each; left out of the statistics")
  out["welch"] = welch(out["candidate"]["runs"], out["baseline"]["runs"], alternative)
  out["repeats"] = repeats
  out["steps"] = train_config.steps
  return out


def format_table(result: dict) -> str:
  """The comparison as a small text table (mean, std, p)."""
  c, b, w = result["candidate"], result["baseline"], result["welch"]
  width = max(len(c["name"]), len(b["name"]), 4)
  num = lambda v: "    n/a" if v is None else f"{v:7.4f}"
  lines = [f"Test accuracy after {result['steps']} steps, {result['repeats']} runs each",
           f"{'loss':<{width}}  {'mean':>7}  {'std':>7}  {'failed':>6}",
           f"{c['name']:<{width}}  {num(c['mean'])}  {num(c['std'])}  {c['failed']:6d}",
           f"{b['name']:<{width}}  {num(b['mean'])}  {num(b['std'])}  {b['failed']:6d}"]
  sign = {"greater": ">", "less": "<", "two-sided": "≠"}[w["alternative"]]
  if w["p"] is None:
    lines.append(f"Welch t-test ({c['name']} {sign} {b['name']}): not computed (fewer "
                 "than two successful runs of a loss)")
    return "\n".join(lines)
  verdict = ("significant" if np.isfinite(w["p"]) and w["p"] < 0.05 else
             "not significant")
  lines.append(f"Welch t-test ({c['name']} {sign} {b['name']}): t = {w['t']:.3f}, "
               f"dof = {w['dof']:.1f}, p = {w['p']:.4g} ({verdict} at 0.05)")
  return "\n".join(lines)


def compare_all(candidate: LossUnderTest, baselines: Sequence[LossUnderTest], *, model,
                dataset, train_config, repeats: int = 10, seed: int = 0,
                strategy: str = "auto", model_name: Optional[str] = None,
                alternative: str = "greater", retries: int = DEFAULT_RETRIES,
                log: Callable[[str], None] = print,
                make_trainer: Callable[..., Trainer] = Trainer) -> dict:
  """Trains ``candidate`` and every baseline ``repeats`` times; Welch's test vs each.

  Every loss uses the same ``repeats`` PRNG keys (same initial weights and batch order
  per run index), the test split and the failed-run rule (module docstring), as
  :func:`compare`.

  Args:
    candidate: the loss under test.
    baselines: one or more comparison losses (names must be distinct).
    model, dataset, train_config, repeats, seed, strategy, model_name, alternative,
      retries, log: as for :func:`compare`.
    make_trainer: ``(model, dataset, loss_fn, train_config) -> Trainer`` (a caching
      factory lets reruns in one process skip compiling). Losses sharing a
      ``loss_fn`` share one trainer.

  Returns:
    JSON-able dict: ``"candidate"`` and ``"baselines"`` (list) rows ``{"name", "spec",
    "learning_rate", "runs", "mean", "std", "failed"}`` (:func:`summarize`);
    ``"comparisons"``: per baseline ``{"baseline", "t", "dof", "p", "alternative"}``
    (candidate vs that baseline, :func:`welch`); ``"repeats"``, ``"steps"``. For
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
  trainers: dict[int, Trainer] = {}
  for loss in (candidate, *baselines):
    if id(loss.loss_fn) not in trainers:
      trainers[id(loss.loss_fn)] = make_trainer(model, dataset, loss.loss_fn, train_config)
    params = jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(jnp.asarray(a), (repeats,) + jnp.shape(a)),
        loss.loss_params)
    lr = train_config.learning_rate if loss.learning_rate is None else loss.learning_rate
    log(f"final protocol: training {loss.name} (lr {lr:.4g}) {repeats}× for "
        f"{train_config.steps} steps")
    result = evaluate_population(trainers[id(loss.loss_fn)], params, keys,
                                 strategy=strategy, split="test", model_name=model_name,
                                 nan_retries=retries,
                                 progress=_progress_printer(loss.name, log))
    row = {"name": loss.name, "spec": loss.spec, "learning_rate": float(lr),
           **summarize(result.fitness, result.metrics["finite"])}
    if row["failed"]:
      log(f"final protocol: {row['failed']} of {repeats} {loss.name} runs failed "
          f"(NaN/inf) after {retries} reruns each; left out of the statistics")
    rows.append(row)
  comparisons = [{"baseline": b["name"], **welch(rows[0]["runs"], b["runs"], alternative)}
                 for b in rows[1:]]
  return {"candidate": rows[0], "baselines": rows[1:], "comparisons": comparisons,
          "baseline": rows[1], "welch": comparisons[0], "repeats": repeats,
          "steps": train_config.steps}


def format_comparison(result: dict) -> str:
  """:func:`compare_all`'s result as a text table: one row per loss (learning rate,
  mean, std, failed runs, Welch t and p of the candidate against that row)."""
  c, rows = result["candidate"], [result["candidate"], *result["baselines"]]
  tests = {w["baseline"]: w for w in result["comparisons"]}
  sign = {"greater": ">", "less": "<", "two-sided": "≠"}[
      result["comparisons"][0]["alternative"]]
  width = max(max(len(r["name"]) for r in rows), 4)
  num = lambda v, f="7.4f": f"{'n/a':>{f.split('.')[0]}}" if v is None else f"{v:{f}}"
  lines = [f"Test accuracy after {result['steps']} steps, {result['repeats']} runs each; "
           f"t, p: Welch's test of H1 {c['name']} {sign} that row",
           f"{'loss':<{width}}  {'lr':>8}  {'mean':>7}  {'std':>7}  {'failed':>6}  "
           f"{'t':>7}  {'p':>9}"]
  for r in rows:
    w = None if r is c else tests[r["name"]]
    stat = ""
    if w is not None:
      star = " *" if w["p"] is not None and np.isfinite(w["p"]) and w["p"] < 0.05 else ""
      stat = f"  {num(w['t'], '7.3f')}  {num(w['p'], '9.3g')}{star}"
    lines.append(f"{r['name']:<{width}}  {r['learning_rate']:8.4g}  {num(r['mean'])}  "
                 f"{num(r['std'])}  {r['failed']:6d}{stat}")
  lines.append("(* significant at 0.05; failed runs are left out of mean, std and test)")
  return "\n".join(lines)
