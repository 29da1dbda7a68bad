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
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax.analysis.stats import welch_ttest
from glojax.train.population import evaluate_population
from glojax.train.trainer import Trainer



@dataclasses.dataclass
class LossUnderTest:
  """A named loss for the protocol: ``loss_fn(loss_params, logits, labels)`` + params."""
  name: str
  loss_fn: Callable
  loss_params: Any
  spec: str = ""


def _progress_printer(name: str, log: Callable[[str], None]):
  """A progress callback that logs about every 10 % of a long training."""
  last = [0]

  def progress(done: int, total: int) -> None:
    if total >= 5000 and (done - last[0] >= total // 10 or done == total):
      last[0] = done
      log(f"  {name}: step {done}/{total}")
  return progress


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
