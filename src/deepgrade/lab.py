"""``deepgrade lab``: the course in JupyterLab 4, with nbgrader's extensions working.

:func:`plan` turns a course folder into a :class:`Lab` (the ``jupyter lab`` command line, its environment, the
course id and the exchange) and writes the little it needs under the course's ``.deepgrade/`` folder;
:func:`start` prints where to go and replaces this process with JupyterLab. Nothing is started by ``plan``,
so the tests check every setting without a server.

What each setting is for (all of them traps an instructor met):

- the environment's ``bin/`` first on ``PATH``: formgrader runs ``alembic`` (its gradebook migrations) from
  ``PATH``; without it the formgrader page stays on "Loading" (a 500 error);
- a local exchange, ``.deepgrade/exchange`` (mode 0o777, as nbgrader's release step wants it): nbgrader's
  default, ``/usr/local/share/nbgrader/exchange``, usually does not exist, and the Assignment List then says
  "Error fetching courses!". The Assignment List and formgrader read nbgrader's config *files* (the server's
  command line does not reach them), so the exchange is set in ``.deepgrade/jupyter/nbgrader_config.py``, a
  folder put on ``JUPYTER_CONFIG_PATH``. The course's own ``nbgrader_config.py`` (loaded from the working
  directory) still wins over it: an exchange or course id set there is kept;
- a course id (nbgrader_config.py's ``CourseDirectory.course_id``, else course.yml's name as a slug): releasing
  an assignment needs one;
- the server runs in the course folder (formgrader's ``CourseDirectory.root``: ``solutions/``, ``exercises/``,
  the gradebook), ``--allow-root`` only when running as root, ``TF_CPP_MIN_LOG_LEVEL=3`` so kernels do not
  print TensorFlow's C++ log lines, and a token of our own so the URL can be printed before the server starts.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

STATE = ".deepgrade"  # the course's own folder for what `deepgrade lab` makes (ignored by git)
CONFIG_FILE = "nbgrader_config.py"
COURSE_FILE = "course.yml"
DEFAULT_PORT = 8888
EXCHANGE_MODE = 0o777  # nbgrader's release step insists on it (and changes it to this when it can)


@dataclass(frozen=True)
class Lab:
    """Everything ``jupyter lab`` is started with; made by :func:`plan`."""

    root: Path
    course_id: str
    exchange: Path
    port: int
    token: str
    argv: list[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/lab?token={self.token}"

    def banner(self) -> str:
        base = f"http://localhost:{self.port}"
        return "\n".join([
            f"deepgrade lab: course {self.course_id!r} in {self.root}",
            f"  JupyterLab   {self.url}",
            f"  formgrader   {base}/formgrader (menu Nbgrader > Formgrader: release, collect, autograde)",
            f"  exchange     {self.exchange} (menu Nbgrader > Assignment List shows what was released)",
            "  stop         Ctrl-C twice",
            "",
        ])


def course_root(course_dir: Path | None = None) -> Path:
    """The course folder: ``course_dir`` (it must hold course.yml or nbgrader_config.py), else found upwards."""
    if course_dir is None:
        from .course import find_course_root

        return find_course_root()
    root = Path(course_dir).resolve()
    if root.is_file():
        root = root.parent
    if not ((root / COURSE_FILE).is_file() or (root / CONFIG_FILE).is_file()):
        raise ConfigError(
            f"Not a course folder: expected {COURSE_FILE} or {CONFIG_FILE} in it. Received: --course-dir={course_dir}.",
            tip="Pass the folder holding course.yml and nbgrader_config.py (the repository's top folder).")
    return root


def slug(text: str) -> str:
    """A course id nbgrader accepts in exchange paths: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def nbgrader_settings(root: Path):
    """The course's nbgrader_config.py, read as nbgrader reads it (an empty config when there is none)."""
    from traitlets.config import Config
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    try:
        return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    except ConfigFileNotFound:
        return Config()
    except Exception as exc:  # any error in the instructor's file is a config mistake
        raise ConfigError(f"{root / CONFIG_FILE} could not be read: {type(exc).__name__}: {exc}",
                          tip="Fix the file (it is Python, run by nbgrader) and try again.") from exc


def course_id(root: Path, settings=None) -> str:
    """nbgrader_config.py's ``CourseDirectory.course_id`` when set, else course.yml's name as a slug."""
    settings = nbgrader_settings(root) if settings is None else settings
    if settings.CourseDirectory.get("course_id"):
        return str(settings.CourseDirectory.course_id)
    import yaml

    path = root / COURSE_FILE
    name = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("name", "") if path.is_file() else ""
    return slug(str(name)) or slug(root.name) or "course"


def exchange_config(exchange: Path, cache: Path, course: str) -> str:
    """The nbgrader config the Assignment List and formgrader read from ``JUPYTER_CONFIG_PATH``."""
    return (
        "# Written by `deepgrade lab` on every start; edit the course's nbgrader_config.py instead (it wins).\n"
        "c = get_config()  # noqa: F821 - provided by nbgrader\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        f"c.Exchange.cache = {str(cache)!r}\n"
        f"c.CourseDirectory.course_id = {course!r}\n"
    )


def prepare(root: Path, course: str, exchange: Path | None) -> tuple[Path, Path]:
    """Make the local exchange (unless the course sets its own) and the config folder; return both."""
    state = root / STATE
    config_dir = state / "jupyter"
    config_dir.mkdir(parents=True, exist_ok=True)
    if exchange is None:
        exchange = state / "exchange"
        exchange.mkdir(parents=True, exist_ok=True)
        exchange.chmod(EXCHANGE_MODE)  # mkdir's mode is cut by the umask
    cache = state / "nbgrader_cache"
    cache.mkdir(parents=True, exist_ok=True)
    (config_dir / CONFIG_FILE).write_text(exchange_config(exchange, cache, course), encoding="utf-8")
    return exchange, config_dir


def free_port(preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` when nothing listens on it, else a port the system has free."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ConfigError("No free TCP port on this machine.", tip="Pass --port N.")


def lab_command(root: Path, port: int, *, bindir: Path, open_browser: bool = True, extra: list[str] = (),
                euid: int | None = None, workspaces: Path | None = None) -> list[str]:
    """``jupyter lab`` with the course's settings; ``--allow-root`` only when ``euid`` is 0."""
    euid = os.geteuid() if euid is None else euid
    argv = [str(bindir / "jupyter"), "lab",
            f"--ServerApp.root_dir={root}",
            f"--CourseDirectory.root={root}",  # formgrader's course (the server also runs in it)
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",  # the URL printed before the start must be the one that works
            f"--ServerApp.open_browser={open_browser}"]
    if workspaces is not None:
        argv.append(f"--LabApp.workspaces_dir={workspaces}")
    if euid == 0:
        argv.append("--allow-root")
    return [*argv, *extra]


def lab_environment(base: dict[str, str], *, bindir: Path, config_dir: Path, token: str) -> dict[str, str]:
    """``base`` with the environment's scripts first on PATH, nbgrader's config folder, the token, quiet TF."""
    env = dict(base)
    env["PATH"] = os.pathsep.join([str(bindir), *[p for p in env.get("PATH", "").split(os.pathsep) if p]])
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(config_dir), *[p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]])
    env["JUPYTER_TOKEN"] = token  # in the environment, not on the command line that `ps` shows
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def plan(course_dir: Path | None = None, *, port: int | None = None, open_browser: bool = True,
         extra: list[str] = (), base_env: dict[str, str] | None = None, bindir: Path | None = None,
         euid: int | None = None) -> Lab:
    """The JupyterLab start for the course in ``course_dir`` (default: found upwards); makes ``.deepgrade/``."""
    root = course_root(course_dir)
    bindir = Path(sys.executable).parent if bindir is None else Path(bindir)  # the venv's bin, links kept
    if not (bindir / "jupyter").exists():
        raise ConfigError(f"JupyterLab is not installed in this environment: expected {bindir / 'jupyter'}.",
                          tip="Run `make setup` (it installs jupyterlab and nbgrader from requirements.lock).")
    settings = nbgrader_settings(root)
    course = course_id(root, settings)
    own = settings.Exchange.get("root")  # the course's own exchange, if nbgrader_config.py sets one
    exchange, config_dir = prepare(root, course, root / own if own else None)
    token = secrets.token_hex(24)
    port = free_port() if port is None else port
    argv = lab_command(root, port, bindir=bindir, open_browser=open_browser, extra=list(extra), euid=euid,
                       workspaces=root / STATE / "lab" / "workspaces")
    env = lab_environment(dict(os.environ if base_env is None else base_env), bindir=bindir, config_dir=config_dir,
                          token=token)
    return Lab(root=root, course_id=course, exchange=exchange, port=port, token=token, argv=argv, env=env)


def start(lab: Lab, *, execute=os.execve) -> None:
    """Print where to go, then become ``jupyter lab`` (Ctrl-C and signals reach it directly)."""
    print(lab.banner(), flush=True)
    os.chdir(lab.root)
    sys.stderr.flush()
    execute(lab.argv[0], lab.argv, lab.env)
