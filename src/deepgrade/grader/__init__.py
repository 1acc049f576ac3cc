"""The trusted grader: load a model file safely, train and evaluate it, run the checks, write the report.

- :func:`grade` (a built submission) and :func:`grade_notebook` (sandbox first): the library call that
  ``deepgrade check``, nbgrader and calibration share; :mod:`.run`, with the pytest plugin in :mod:`.plugin`;
- loading (:mod:`.loading`), the data (:mod:`.data`), training (:mod:`.training`), the checks autograders
  call (:mod:`.checks`), and the machine a grade records (:mod:`.environment`).

Never imported by the student's side (:mod:`deepgrade.sandbox`).
"""

from .checks import (
                     REGULARIZATION_LAYERS,
                     SHAPING_LAYERS,
                     CheckFailed,
                     Layer,
                     Observed,
                     check_accuracy,
                     check_architecture,
                     check_base_frozen,
                     check_base_used,
                     check_fine_tuning,
                     check_gain,
                     check_gap,
                     check_head_new,
                     check_keeps_layers,
                     check_output_shapes,
                     check_parameters,
                     check_recurrent,
                     expected_params,
                     expected_shapes,
                     find_base,
                     head_alone,
                     head_first,
                     head_layers,
                     observe,
                     require_threshold,
                     restore,
)
from .environment import default_profile, describe, has_gpu
from .loading import INPUT_SHAPE, NUM_CLASSES, check_io, load_model
from .run import GradingRun, grade, grade_notebook, grade_request
from .training import Task, Training, Warmup, accuracy, seed_everything, train_and_evaluate, training_data

__all__ = [
    "INPUT_SHAPE", "NUM_CLASSES", "REGULARIZATION_LAYERS", "SHAPING_LAYERS", "CheckFailed", "GradingRun", "Layer",
    "Observed", "Task", "Training", "Warmup", "accuracy", "check_accuracy", "check_architecture",
    "check_base_frozen", "check_base_used", "check_fine_tuning", "check_gain", "check_gap", "check_head_new",
    "check_io", "check_keeps_layers", "check_output_shapes", "check_parameters", "check_recurrent",
    "default_profile", "describe", "has_gpu", "expected_params", "expected_shapes", "find_base", "grade", "grade_notebook",
    "grade_request", "head_alone", "head_first", "head_layers", "load_model", "observe", "require_threshold",
    "restore", "seed_everything", "train_and_evaluate", "training_data",
]
