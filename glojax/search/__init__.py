"""Loss-function searches, all run by one driver (:mod:`glojax.search.driver`).

:data:`SEARCHES` is the registry: name → ``"module:Class"`` of a
:class:`glojax.search.driver.Search`. A new search adds its line here (and a test case
in ``tests/search/search_cases.py``); the parametrized tests then cover it.
"""

import importlib

SEARCHES = {
    "taylorglo": "glojax.search.taylorglo:TaylorGLO",
    "glo": "glojax.search.glo:GLO",
    "gan": "glojax.gan.search:GanSearch",
    "epbt": "glojax.search.epbt:EPBT",
    "nlfs": "glojax.search.nlfs:NLFS",
}


def names() -> list[str]:
  return sorted(SEARCHES)


def get(name: str):
  """The :class:`~glojax.search.driver.Search` class registered as ``name``.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in SEARCHES:
    raise ValueError(f"unknown search {name!r}; known: {names()}")
  module, _, cls = SEARCHES[name].partition(":")
  return getattr(importlib.import_module(module), cls)


def run(name: str, config, workdir: str, **kwargs) -> dict:
  """Runs (or resumes) the search ``name``: :func:`glojax.search.driver.run`."""
  from glojax.search import driver
  return driver.run(get(name), config, workdir, **kwargs)
