"""The trusted grader: load a model file safely, train and evaluate it, run the checks, write the report.

- :func:`grade` (a built submission) and :func:`grade_notebook` (the student's jail, then the grader's):
  the library call that ``deepgrade check``, nbgrader and calibration share; :mod:`.run`, with the pytest
  plugin in :mod:`.plugin`; :mod:`.worker` and :mod:`.serve` (the persistent grader in its own jail) and
  :mod:`.isolated` (whether grading may go on without one);
- loading (:mod:`.loading`), the data (:mod:`.data`), training (:mod:`.training`), the checks autograders
  call (:mod:`.checks`), and the machine a grade records (:mod:`.environment`).

Names are loaded on first use (PEP 562): a front door that only starts jails (``deepgrade check``,
nbgrader) never imports Keras itself. Never imported by the student's side (:mod:`deepgrade.sandbox`).
"""

import importlib

_EXPORTS = {
    "default_profile": "environment", "describe": "environment", "has_gpu": "environment",
    "INPUT_SHAPE": "loading", "NUM_CLASSES": "loading", "check_io": "loading", "load_model": "loading",
    "GradingRun": "run", "grade": "run", "grade_notebook": "run", "grade_request": "run",
    "Task": "training", "Training": "training", "Warmup": "training", "accuracy": "training",
    "seed_everything": "training", "train_and_evaluate": "training", "training_data": "training",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    checks = importlib.import_module(".checks", __name__)
    if name == "__all__":
        return [*checks.__all__, *_EXPORTS]
    if name in checks.__all__:  # the checks autograders call, re-exported at the grader's door
        return getattr(checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
