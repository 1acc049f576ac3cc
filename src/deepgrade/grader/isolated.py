"""The trusted grader in a jail of its own: defence in depth for loading, training and evaluating a model.

Loading a ``.keras`` file has had ``safe_mode`` bypasses (CVE-2025-1550, CVE-2025-8747, CVE-2025-9906), so
the process that loads, trains and evaluates runs in the grader jail (:mod:`deepgrade.sandbox.policy`):
it sees the course, Fashion-MNIST and the submission's model files read-only, has no network, and sends
back only its report, as JSON, down the result pipe. That report is all that reaches the process writing
the table, the gradebook or the feedback.

:func:`isolation_for` decides whether grading may go on where no jail can be made: a student checking their
own notebook always may (the grade says it was not isolated); grading other people's work may only when the
instructor opted out (course.yml ``allow_unisolated: true``, or a flag).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ..course import LoadedCourse
from ..errors import ConfigError, DeepgradeError, GraderError
from ..protocol import GradeRequest, Report, Submission, files

INSIDE = "/grade"          # where the request and the models are, in the grader jail
KERAS_HOME = "/tmp/keras"  # the grader jail's Keras cache (tmpfs), with Fashion-MNIST bound read-only in it

REFUSAL = ("Grading other people's work needs the sandbox, and it cannot be made here: {reason}. "
           "Install bubblewrap (apt-get install bubblewrap; `make setup` does) and run as root or as a user "
           "allowed unprivileged user namespaces. To grade without isolation anyway (student code then runs "
           "with your rights and can read and change your files), opt out explicitly: `allow_unisolated: true` "
           "in course.yml, or --TrustedGrade.allow_unisolated=True for nbgrader. Every grade then says "
           "it was not isolated.")


def isolation_for(course: LoadedCourse, *, others: bool, allow_unisolated: bool | None = None):
    """The :class:`~deepgrade.sandbox.jail.Isolation` to grade with; ConfigError when grading ``others``' work
    cannot be isolated and nobody opted out."""
    from ..sandbox import jail

    isolation = jail.isolation()
    opted_out = course.course.allow_unisolated if allow_unisolated is None else allow_unisolated
    if others and not isolation.ok and not opted_out:
        raise ConfigError(REFUSAL.format(reason=isolation.reason))
    return isolation


def grade_in_jail(course: LoadedCourse, exercise: str, submission: Submission, *, profile: str | None = None,
                  seed: int | None = None, only: list[str] | None = None) -> Report:
    """:func:`deepgrade.grader.grade` in the grader jail: the same report, computed where a hostile model file
    can reach nothing but its own copy of the course and the data, read-only."""
    from ..pretrained import resolve
    from ..sandbox import GRADER, Limits, jail
    from . import data

    mounts = [jail.Mount(course.root, str(course.root))]
    models = {}
    for entry, path in submission.models.items():
        inside = f"{INSIDE}/{files.MODELS}/{files.model_file(entry)}"
        mounts.append(jail.Mount(Path(path), inside))
        models[entry] = Path(inside)
    ex = course.exercise(exercise)
    if ex.transfer is not None and "://" not in ex.transfer.handle:
        base = resolve(course.base_handle(exercise))
        if not base.is_relative_to(course.root):
            mounts.append(jail.Mount(base, str(base)))
    mounts.append(jail.Mount(data.install(), f"{KERAS_HOME}/{data.SUBDIR}"))
    gpu = any(Path(device).exists() for device in jail.GPU_DEVICES)
    limits = GRADER if not gpu else Limits.of("grader", memory_limit_mb=0)  # CUDA reserves huge address space
    request = GradeRequest(course=course.root, exercise=exercise, profile=profile, seed=seed, only=only,
                           submission=submission.model_copy(update={"models": models}))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
           "KERAS_HOME": KERAS_HOME, "MPLCONFIGDIR": "/tmp/matplotlib", "MPLBACKEND": "Agg",
           "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    with tempfile.TemporaryDirectory(prefix="deepgrade-grade-") as tmp:
        request_file = Path(tmp) / files.GRADE_REQUEST
        request_file.write_text(request.model_dump_json())
        mounts.append(jail.Mount(request_file, f"{INSIDE}/{files.GRADE_REQUEST}"))
        spec = jail.Jail(argv=[sys.executable, "-m", "deepgrade.grader", f"{INSIDE}/{files.GRADE_REQUEST}", "-"],
                         cwd=f"{INSIDE}/work", env=env, limits=limits, mounts=mounts, gpu=gpu)
        try:
            ran = jail.run(spec)
        except OSError as exc:
            raise GraderError(f"Could not start the grader's sandbox (bubblewrap): {exc}.") from exc
    return read_returned(ran, exercise, limits)


def read_returned(ran, exercise: str, limits) -> Report:
    """The report a grader jail sent back, or the error it sent, raised as what it was."""
    back = files.unframe(ran.returned, {files.REPORT, files.ERROR}.__contains__)
    if files.ERROR in back:
        error = json.loads(back[files.ERROR])
        kind = {"ConfigError": ConfigError, "GraderError": GraderError}.get(error.get("kind"), DeepgradeError)
        raise kind(error.get("message", "the grader failed"), tip=error.get("tip"))
    if files.REPORT in back:
        return Report.from_dict(json.loads(back[files.REPORT]))
    tail = "\n".join(ran.output.strip().splitlines()[-15:])
    why = (f"ran over its time limit of {limits.time_limit_s:g} s" if ran.stopped == "time"
           else f"ended (exit code {ran.code})")
    raise GraderError(f"The grader's sandbox for {exercise!r} {why} without sending a grade. Its last output:\n{tail}")
