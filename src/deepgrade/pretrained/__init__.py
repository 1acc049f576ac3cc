"""The course's pretrained feature extractor: its files (build), and loading it as native Keras 3 layers (load).

Used by the student's notebook, the sandbox child and the grader; imports nothing of the grader.
"""

from .build import base_architecture, export_base, weights_digest
from .load import BASE_NAME, KERAS_CONFIG, LOCAL_COPY, MANIFEST, is_course_base, load_base, resolve, takes_base

__all__ = [
    "BASE_NAME", "KERAS_CONFIG", "LOCAL_COPY", "MANIFEST", "base_architecture", "export_base", "is_course_base",
    "load_base", "resolve", "takes_base", "weights_digest",
]
