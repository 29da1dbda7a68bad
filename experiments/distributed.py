"""Multi-process runs for the binaries: ``--distributed`` (``jax.distributed``).

Every binary defines these flags (through :mod:`experiments.cli`). Launch the same
command once per process (per host, or per GPU); the processes then form one JAX job,
``strategy="sharded"`` spreads each generation's candidates over the devices of all of
them, and only process 0 writes the workdir and prints progress (BUILD.md, "Several
processes"):

* ``--distributed``: join a job whose layout JAX detects — SLURM (``srun``), Open MPI
  (``mpirun``) and Cloud TPU pod slices (the same command on every TPU VM);
* ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I``: an explicit
  layout (any machine; e.g. two processes on 127.0.0.1 in the tests). Giving these
  implies ``--distributed``.

``jax.distributed.initialize`` must run before JAX touches a device, and loading a
``--config`` file already builds arrays (its losses), so :func:`initialize_from_argv`
reads these four flags from the command line *before* the other flags are parsed (the
binaries' ``flags_parser``, :func:`experiments.cli.parse_flags`).
"""

from absl import flags

from glojax.train import parallel

# Defined twice: in absl's global FLAGS (help, and so that the full parse accepts them)
# and in _EARLY, which is parsed alone before --config is loaded.
_EARLY = flags.FlagValues()


def _define(define, name, default, help_text, **kwargs):
  define(name, default, help_text, flag_values=_EARLY, **kwargs)
  return define(name, default, help_text, **kwargs)


_define(flags.DEFINE_bool, "distributed", False,
        "Join a multi-process JAX job (jax.distributed.initialize); the layout is detected "
        "on SLURM, Open MPI and Cloud TPU, or given by the three flags below.")
_define(flags.DEFINE_string, "coordinator_address", None,
        "HOST:PORT of process 0's coordinator (with --num_processes and --process_id).")
_define(flags.DEFINE_integer, "num_processes", None, "Number of processes in the job.",
        lower_bound=1)
_define(flags.DEFINE_integer, "process_id", None,
        "This process's index, 0 .. num_processes-1.", lower_bound=0)


def initialize_from_argv(argv) -> None:
  """Joins the job if the command line asks for it (before any other flag is parsed).

  Args:
    argv: the command line, program name first.

  Raises:
    ValueError: for a bad value of these flags, only some of --coordinator_address/
      --num_processes/--process_id, or --process_id not below --num_processes.
  """
  _EARLY.unparse_flags()  # back to the defaults: a flag absent from argv is unset
  try:
    _EARLY(list(argv), known_only=True)
  except flags.Error as e:
    raise ValueError(" ".join(str(e).split())) from None
  explicit = (_EARLY.coordinator_address, _EARLY.num_processes, _EARLY.process_id)
  if not _EARLY.distributed and all(v is None for v in explicit):
    return
  if None in explicit and any(v is not None for v in explicit):
    raise ValueError(f"give all of --coordinator_address, --num_processes and "
                     f"--process_id (got {explicit[0]!r}, {explicit[1]!r}, "
                     f"{explicit[2]!r}), or only --distributed for auto-detection")
  if None not in explicit and explicit[2] >= explicit[1]:
    raise ValueError(f"--process_id={explicit[2]} must be below "
                     f"--num_processes={explicit[1]}")
  parallel.initialize_distributed(*explicit)


def is_process_zero() -> bool:
  """True in process 0 (it prints and writes the workdir) and when no job was joined."""
  import jax
  return not jax.distributed.is_initialized() or jax.process_index() == 0
