"""The final protocol: retrain a discovered loss and a baseline R times, compare.

Dissertation §3.3 / §5.3: the best-validation loss is retrained with full training
``R`` times (10 in the papers), as is the baseline (cross-entropy); their test
accuracies are compared with a one-tailed Welch t-test (eqs. 3.3–3.5). The R runs of
each loss train as one population (:func:`~glojax.train.population.evaluate_population`).
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
