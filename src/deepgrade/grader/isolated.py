"""Whether grading may go on where no jail can be made.

The trusted grader runs in a jail of its own (:mod:`.worker`): loading a ``.keras`` file has had
``safe_mode`` bypasses (CVE-2025-1550, CVE-2025-8747, CVE-2025-9906). :func:`isolation_for` decides whether grading may go on where no jail can be made: a student checking their
own notebook always may (the grade says it was not isolated); grading other people's work may only when the
instructor opted out (course.yml ``allow_unisolated: true``, or a flag).
"""

from __future__ import annotations

from ..course import LoadedCourse
from ..errors import ConfigError

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
