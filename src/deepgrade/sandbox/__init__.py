"""The student's side of the trust boundary: run a notebook in a sandbox, bring back model files.

``run_notebook`` starts the child (:mod:`.child`) under the limits of course.yml and returns a
:class:`deepgrade.protocol.Submission`. Nothing here imports the grader.
"""

from .runner import Limits, network_isolation, run_notebook, scrubbed_env

__all__ = ["Limits", "network_isolation", "run_notebook", "scrubbed_env"]
