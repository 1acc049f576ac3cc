"""The student's side of the trust boundary, and the jails both sides run in.

``run_notebook`` runs a notebook in the student's jail under the limits of course.yml and returns a
:class:`deepgrade.protocol.Submission`; :mod:`.jail` makes bubblewrap jails from :mod:`.policy` (every limit,
once). Nothing here imports the grader.
"""

from .jail import Isolation, isolation
from .policy import GRADER, LIMITS, STUDENT, Limits
from .runner import Values, network_isolation, run_for_values, run_notebook, scrubbed_env

__all__ = ["GRADER", "LIMITS", "STUDENT", "Isolation", "Limits", "isolation", "Values",
           "network_isolation", "run_for_values", "run_notebook", "scrubbed_env"]
