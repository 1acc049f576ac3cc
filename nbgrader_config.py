# nbgrader settings for this course: solutions/ is the source, exercises/ the release,
# and `nbgrader autograde` grades with deepgrade's trusted grader (see deepgrade/nbgrader_ext.py).
from deepgrade.nbgrader_ext import configure

c = get_config()  # noqa: F821 - provided by nbgrader
c.CourseDirectory.course_id = "deepgrade"
configure(c)
