"""glojax: evolutionary loss-function metalearning in JAX.

Subpackages: ``losses`` (published and parameterized losses), ``data`` (in-memory
datasets), ``models`` (flax modules), ``train`` (single-candidate and population
trainers), ``search`` (TaylorGLO, ...), ``analysis`` (statistics, theory, plots).
"""

__version__ = "0.1.0"

from glojax import losses  # noqa: F401  (the most common entry point: glojax.losses.get)
