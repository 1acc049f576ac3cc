"""``python -m deepgrade.grader REQUEST.json REPORT.json``: the trusted grader in a process of its own."""

import sys

from .run import main

sys.exit(main(sys.argv[1:]))
