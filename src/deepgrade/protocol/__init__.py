"""What crosses the trust boundary, typed: file names, the sandbox's request and the child's result, the
rules a model file must meet, the training options, a built submission and the grader's report.

Both sides import it; it imports neither (and no Keras).
"""

from . import files
from .child import ChildRequest, ChildResult, Outcome
from .modelfile import inspect_archive, refuse_unsafe
from .options import EarlyStopping, FitOptions, options_json, parse_options
from .progress import Progress
from .report import CheckResult, Curves, LayerRow, Report
from .request import GradeRequest
from .submission import Submission

__all__ = [
    "CheckResult", "ChildRequest", "Curves", "LayerRow", "ChildResult", "EarlyStopping", "FitOptions", "GradeRequest", "Outcome", "Progress", "Report", "Submission",
    "files", "inspect_archive", "options_json", "parse_options", "refuse_unsafe",
]
