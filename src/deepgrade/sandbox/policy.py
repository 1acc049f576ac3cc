"""What a jail may do, as data: every limit once, with its default for each jail and how it is enforced.

Two jails run on bubblewrap (:mod:`.jail`): ``student`` (the notebook and its entry functions) and
``grader`` (the trusted grader: load, train, evaluate). Everything the README's limits table says is read
from :data:`LIMITS` (``deepgrade sandbox --table`` prints it; a test fails when the README drifts), and
:func:`deepgrade.sandbox.jail.command` builds the bubblewrap command from the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limit:
    key: str           # the field of :class:`Limits` (and of course.yml's ``sandbox:`` for the student jail)
    what: str          # what it limits, in a student's words
    unit: str
    student: int | float
    grader: int | float
    enforced: str      # the mechanism


LIMITS: tuple[Limit, ...] = (
    Limit("time_limit_s", "wall-clock time", "s", 120, 1800,
          "the parent kills the jail's whole process tree (pid namespace) when it runs over"),
    Limit("memory_limit_mb", "address space per process", "MB", 4096, 16384, "RLIMIT_AS (none in the grader jail on a GPU: CUDA reserves more)"),
    Limit("cpu_time_s", "CPU time per process", "s", 600, 7200, "RLIMIT_CPU (SIGXCPU, then SIGKILL)"),
    Limit("processes", "processes and threads of the jail's own uid", "", 512, 1024,
          "RLIMIT_NPROC on an unprivileged host uid of the jail's own"),
    Limit("scratch_mb", "working directory (tmpfs)", "MB", 512, 64, "bubblewrap --size on the tmpfs"),
    Limit("tmp_mb", "/tmp (tmpfs)", "MB", 256, 1024, "bubblewrap --size on the tmpfs"),
    Limit("file_mb", "size of one file written", "MB", 512, 1024, "RLIMIT_FSIZE (SIGXFSZ)"),
    Limit("open_files", "open files per process", "", 1024, 4096, "RLIMIT_NOFILE"),
    Limit("output_kb", "captured output kept (stdout and stderr)", "KB", 256, 256,
          "the parent keeps this much, reads and drops the rest"),
    Limit("return_mb", "files returned to the grader (models, result)", "MB", 64, 1,
          "the parent reads at most this much from the result pipe, then kills the jail"),
)


@dataclass(frozen=True)
class Limits:
    """The limits of one jail; ``Limits.of("student")`` or ``Limits.of("grader")`` for the defaults of :data:`LIMITS`."""

    time_limit_s: float
    memory_limit_mb: int
    cpu_time_s: int
    processes: int
    scratch_mb: int
    tmp_mb: int
    file_mb: int
    open_files: int
    output_kb: int
    return_mb: int

    @classmethod
    def of(cls, jail: str, **overrides) -> "Limits":
        """The defaults of jail ``student`` or ``grader``, with ``overrides`` (None values ignored)."""
        base = cls(**{limit.key: getattr(limit, jail) for limit in LIMITS})
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


assert [f.name for f in fields(Limits)] == [limit.key for limit in LIMITS], "Limits and LIMITS must list the same keys"
STUDENT, GRADER = Limits.of("student"), Limits.of("grader")


@dataclass(frozen=True)
class Visible:
    """One thing a jail sees, read-only unless said otherwise."""

    what: str
    student: bool
    grader: bool


VISIBLE: tuple[Visible, ...] = (
    Visible("/usr/bin, /usr/lib, /usr/lib64 (system libraries), /etc/ld.so.cache, /etc/localtime", True, True),
    Visible("the Python installation (sys.base_prefix), the virtual environment, an editable install's src/", True, True),
    Visible("/proc of its own pid namespace, a minimal /dev", True, True),
    Visible("the notebook copy and the request (read-only), the course's pretrained base for transfer", True, False),
    Visible("a private working directory and /tmp (tmpfs, size-capped, gone with the jail; the student's fresh for each notebook)", True, True),
    Visible("the course folder (course.yml, autograders, the base) and the student's model file", False, True),
    Visible("Fashion-MNIST (the Keras cache's four files, verified; read-only)", True, True),
    Visible("GPU device nodes (/dev/nvidia*) where present", False, True),
    Visible("network: none (own network namespace with only loopback)", True, True),
)


def table() -> str:
    """The README's limits table (markdown), made from :data:`LIMITS` and :data:`VISIBLE`."""
    rows = ["| limit | student jail | grader jail | enforced by |", "|---|---|---|---|"]
    for limit in LIMITS:
        unit = f" {limit.unit}" if limit.unit else ""
        rows.append(f"| {limit.what} (`{limit.key}`) | {limit.student:g}{unit} | {limit.grader:g}{unit} | "
                    f"{limit.enforced} |")
    rows += ["", "| the jail sees | student | grader |", "|---|---|---|"]
    rows += [f"| {v.what} | {'yes' if v.student else 'no'} | {'yes' if v.grader else 'no'} |" for v in VISIBLE]
    return "\n".join(rows) + "\n"
