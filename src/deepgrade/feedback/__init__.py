"""Feedback a student learns from: a grade (:class:`deepgrade.protocol.Report`) drawn as HTML and plots.

One renderer for every place a student reads a grade: ``deepgrade check --html FILE``, the verdict of a
check cell in the notebook, and ``nbgrader generate_feedback`` (through :mod:`deepgrade.nbgrader_ext`). It
reads only the report (plain JSON from the trusted grader): no test code, no solution, no answer key.
"""

from .html import check_html, check_text, page, report_html
from .plots import figures

__all__ = ["check_html", "check_text", "figures", "page", "report_html"]
