"""A bounded real-valued genetic algorithm: the GAN search's genome operators.

Dissertation §7.4.2 evolves the 12 Taylor parameters (each in [−10, 10]) plus the
learning rate and the two additive-loss weights with LEAF's genetic algorithm "as if
they were hyperparameters". LEAF's GA is not public, so this is a standard bounded GA
(pure functions of a key and arrays, jit-able):

* **elitism** — the ``elites`` best genomes pass unchanged (and are retrained with new
  keys next generation: GAN fitness is noisy, a lucky score must be confirmed);
* **tournament selection** of each parent (``tournament_size``, with replacement);
* **uniform crossover** with probability ``crossover_probability`` (each gene from
  either parent);
* **Gaussian mutation** of each gene with probability ``mutation_probability``,
  standard deviation ``mutation_scale × (high − low)`` of that gene's range, then
  **reflection** into the bounds.

Why not evosax's ``SimpleGA``: it has no bounds, one isotropic σ for all genes (ours
mix ranges of width 20, 2 decades of learning rate and weights in [0, 20]), and it
mutates its elites instead of carrying them over. The selection and elitism rules here
are the same ones GLO's tree GA uses (:mod:`glojax.search.glo`: elites pass unchanged);
the crossover and mutation are the real-valued counterparts of its tree operators.

Failed candidates (non-finite fitness) rank last in every tournament and are never elites.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def ranking_fitness(fitness: jax.Array) -> jax.Array:
  """Non-finite fitness → −inf, so NaN never wins a comparison (``float32[K]``)."""
  fitness = jnp.asarray(fitness, jnp.float32)
  return jnp.where(jnp.isfinite(fitness), fitness, -jnp.inf)


def sample_uniform(key: jax.Array, count: int, low: jax.Array, high: jax.Array
                   ) -> jax.Array:
  """``count`` genomes uniform in the box ``[low, high]`` (``float32[count, D]``)."""
  return jax.random.uniform(key, (count, low.shape[0]), jnp.float32, low, high)


def reflect(genomes: jax.Array, low: jax.Array, high: jax.Array) -> jax.Array:
  """Folds values back into ``[low, high]`` by reflection at the bounds.

  A mutation that overshoots a bound by ``δ`` lands ``δ`` inside it (any overshoot: the
  fold is periodic with period ``2 (high − low)``). Genes with ``high == low`` are set
  to ``low``.
  """
  width = high - low
  safe = jnp.where(width > 0, width, 1.0)
  t = jnp.mod(genomes - low, 2.0 * safe)
  folded = low + jnp.where(t > safe, 2.0 * safe - t, t)
  return jnp.where(width > 0, folded, low)


@functools.partial(jax.jit, static_argnames=("count", "size"))
def tournament(key: jax.Array, fitness: jax.Array, count: int, size: int) -> jax.Array:
  """Indices of ``count`` tournament winners (``int32[count]``), ``size`` entrants each
  drawn with replacement; the fittest entrant wins (first on ties)."""
  entrants = jax.random.randint(key, (count, size), 0, fitness.shape[0])
  best = jnp.argmax(ranking_fitness(fitness)[entrants], axis=1)
  return jnp.take_along_axis(entrants, best[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("elites", "tournament_size"))
def next_generation(key: jax.Array, genomes: jax.Array, fitness: jax.Array, *,
                    low: jax.Array, high: jax.Array, elites: int, tournament_size: int,
                    crossover_probability: float, mutation_probability: float,
                    mutation_scale: float) -> jax.Array:
  """The next population from evaluated ``genomes: float32[K, D]`` and ``fitness[K]``.

  Args:
    key: PRNG key of this generation's variation.
    genomes, fitness: the evaluated population (higher fitness is better; NaN/inf is
      worst).
    low, high: ``float32[D]`` bounds.
    elites: genomes carried over unchanged (the best, in order), ``< K``.
    tournament_size, crossover_probability, mutation_probability, mutation_scale:
      the operators' settings (module docstring).

  Returns:
    ``float32[K, D]``: the elites first, then ``K − elites`` children, all in bounds.
  """
  k, dim = genomes.shape
  rank = ranking_fitness(fitness)
  order = jnp.argsort(-rank, stable=True)
  n_children = k - elites
  k_a, k_b, k_cross, k_gene, k_mut, k_noise = jax.random.split(key, 6)
  parent_a = genomes[tournament(k_a, fitness, n_children, tournament_size)]
  parent_b = genomes[tournament(k_b, fitness, n_children, tournament_size)]
  do_cross = jax.random.bernoulli(k_cross, crossover_probability, (n_children, 1))
  from_b = jax.random.bernoulli(k_gene, 0.5, (n_children, dim)) & do_cross
  children = jnp.where(from_b, parent_b, parent_a)
  mutate = jax.random.bernoulli(k_mut, mutation_probability, (n_children, dim))
  noise = jax.random.normal(k_noise, (n_children, dim)) * mutation_scale * (high - low)
  children = reflect(jnp.where(mutate, children + noise, children), low, high)
  return jnp.concatenate([genomes[order[:elites]], children]).astype(jnp.float32)
