"""Flag parsing for every binary in ``experiments/``: bad flags are one-line errors (exit 2).

absl's own parser prints ``FATAL Flags parsing error: ...`` and exits 1, and
ml_collections raises a traceback for an override of a key the config does not have.
:func:`parse_flags` (pass it as ``app.run(main, flags_parser=parse_flags)``) turns every
such mistake into one line on stderr and exit status 2, the same status a bad config value
gets once the run has started::

  error: config.search.generations='abc' is not a valid int (invalid literal for ...)
  error: --config.serach.sigma: the config has no key 'serach'; did you mean 'search'?
  error: unknown flag --wrkdir; did you mean --workdir?

This module defines no flags, so binaries with different flags can share it;
:func:`check_options` checks a config's model/dataset options before a run starts.
"""

import re
import sys

from absl import flags

EXIT_BAD_FLAGS = 2


def fail(message: str) -> None:
  """Prints ``error: message`` to stderr and exits with status 2.

  The first line says what is wrong; further lines (a missing dataset's instructions)
  follow as they are.
  """
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_FLAGS)


def parse_flags(argv):
  """absl's flag parsing with one-line errors (exit 2) instead of absl's FATAL (exit 1).

  Args:
    argv: the command line, program name first.

  Returns:
    The remaining arguments (program name first), as ``app.parse_flags_with_usage``.
  """
  try:
    return flags.FLAGS(argv)
  except OSError as e:  # --config file missing or unreadable
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    fail(f"cannot load the --config file: {lines[-1] if lines else e}")
  except flags.UnrecognizedFlagError as e:
    fail(_one_line(_unknown_flag_message(e)))
  except flags.IllegalFlagValueError as e:
    fail(_one_line(_illegal_value_message(str(e))))
  except flags.Error as e:  # a required flag missing, a validator failing, ...
    fail(_one_line(str(e)))
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    fail(_one_line(_config_override_message(e, argv)))


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


def _unknown_flag_message(e) -> str:
  name = getattr(e, "flagname", "") or ""
  hint = re.search(r"Did you mean: (.+?)\s*\??$", str(e))
  message = f"unknown flag --{name}" if name else str(e)
  if hint:
    message += f"; did you mean --{hint.group(1).split(',')[0].strip()}?"
  return message + " (--helpfull lists every flag)"


def _illegal_value_message(text: str) -> str:
  """``flag --config.a.b=v: reason`` -> ``config.a.b='v' is not a valid T (reason)``."""
  m = re.match(r"flag --([\w.]+)=(.*?): (.*)$", text, re.S)
  if not m:
    return text
  name, value, reason = m.groups()
  if "must have a value other than None" in reason:
    return f"--{name} is required (--helpfull lists every flag)"
  if "Non-boolean argument" in reason:
    reason = "use True or False"
  expected = _expected_type(name)
  what = f"is not a valid {expected}" if expected else "is not a valid value"
  return f"{name}={value!r} {what} ({' '.join(reason.split())})"


def _expected_type(name: str) -> str:
  """The type the config field ``name`` holds (``int``, ``float``, ...), if known."""
  try:
    flag = flags.FLAGS[name]
  except KeyError:
    return ""
  value = flag.default if flag.default is not None else flag.value
  if value is None:
    return ""
  return type(value).__name__


def _config_override_message(e, argv) -> str:
  """ml_collections' AttributeError/KeyError (with a "did you mean") for an override of
  a key the config does not have, as one line naming the override."""
  text = str(e.args[0] if e.args else e)
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  hint = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  if hint:
    bad = [a for a in overrides if hint.group(2) in a.split(".")] or overrides
    return (f"{', '.join(bad)}: the config has no key {hint.group(2)!r}; did you "
            f"mean {hint.group(1)!r}?")
  if isinstance(e, (AttributeError, KeyError)):
    key = text.strip("'\"")
    bad = [a for a in overrides if key in a.split(".")] or overrides
    return f"{', '.join(bad)}: the config has no key {key!r}"
  return f"cannot apply {', '.join(overrides) or '--config'}: {text}"


def check_options(config) -> None:
  """Checks ``config.model.options`` / ``config.dataset.options`` against what the named
  model / dataset accepts, before anything runs.

  A config file sets options for its own model (the quickstart: ``mlp`` with
  ``hidden``); overriding only ``--config.model.name`` keeps them, and the new model
  rejects them. The error says how to reset them.

  Raises:
    ValueError: ``config.model.options=...: model 'small_cnn' has no option(s) ...``
      with the reset hint. Unknown names are left to the run's own validation.
  """
  from glojax import data, models
  for section, kind, registry in (("model", "model", models), ("dataset", "dataset", data)):
    part = config.get(section) if hasattr(config, "get") else None
    if part is None or not hasattr(part, "get"):
      continue
    name, given = part.get("name"), part.get("options")
    if name not in registry.names() or not hasattr(given, "keys"):
      continue
    accepted = registry.options(name)
    unknown = sorted(set(given.keys()) - set(accepted))
    if unknown:
      given_text = repr(dict(given.to_dict() if hasattr(given, "to_dict") else given))
      raise ValueError(
          f"config.{section}.options={given_text}: {kind} {name!r} has no option(s) "
          f"{unknown} (its options: {accepted}); they were set for another {kind}, by the "
          f"config file or the command line: reset them with "
          f"--config.{section}.options='{{}}' or give {name}'s own, e.g. "
          f"--config.{section}.options='{{\"{accepted[0] if accepted else 'name'}\": ...}}'")

