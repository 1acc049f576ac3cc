"""The course: course.yml (its schema and loader) and the course's notebooks (stubs, answers, test cells).

Neither side of the trust boundary owns it: the sandbox, the grader and the front doors all read it.
"""

from .bundle import BUNDLE_DIR, bundle_drift, bundle_files, write_bundle
from .loader import COURSE_ENV, LoadedCourse, find_course_root, load_course
from .notebooks import SKIP_TAG, fill, is_test_cell, runs_in_sandbox, solution_ids, split_answers, write_submission
from .schema import (
                     COURSE_FILE,
                     PROFILES,
                     Baseline,
                     Check,
                     Compile,
                     Course,
                     Exercise,
                     Pretrain,
                     Profile,
                     Sandbox,
                     Thresholds,
                     Transfer,
)

__all__ = [
    "BUNDLE_DIR", "bundle_drift", "bundle_files", "write_bundle",
    "COURSE_ENV", "COURSE_FILE", "PROFILES", "SKIP_TAG", "Baseline", "Check", "Compile", "Course", "Exercise",
    "LoadedCourse", "Pretrain", "Profile", "Sandbox", "Thresholds", "Transfer", "fill", "find_course_root",
    "is_test_cell", "load_course", "runs_in_sandbox", "solution_ids", "split_answers", "write_submission",
]
