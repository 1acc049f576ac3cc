"""The trusted grader: load a model file safely, train and evaluate it, run the checks, write the report.

- :func:`grade` (a built submission) and :func:`grade_notebook` (sandbox first): the library call that
  ``deepgrade check``, nbgrader and calibration share; :mod:`.run`, with the pytest plugin in :mod:`.plugin`;
- loading (:mod:`.loading`), the data (:mod:`.data`), training (:mod:`.training`), the checks autograders
  call (:mod:`.checks`), and the machine a grade records (:mod:`.environment`).

Never imported by the student's side (:mod:`deepgrade.sandbox`).
"""

from . import checks
from .checks import *  # noqa: F403 - the checks autograders call, re-exported at the grader's door
from .environment import default_profile, describe, has_gpu
from .loading import INPUT_SHAPE, NUM_CLASSES, check_io, load_model
from .run import GradingRun, grade, grade_notebook, grade_request
from .training import Task, Training, Warmup, accuracy, seed_everything, train_and_evaluate, training_data

__all__ = [
    *checks.__all__, "INPUT_SHAPE", "NUM_CLASSES", "GradingRun", "Task", "Training", "Warmup", "accuracy", "check_io",
    "default_profile", "describe", "grade", "grade_notebook", "grade_request", "has_gpu", "load_model",
    "seed_everything", "train_and_evaluate", "training_data",
]
