"""The persistent grader's process per grade (grader/serve.py), without Keras: what a grade leaves behind dies
before the next one, and a grade that closes its report pipe early neither hangs the server nor escapes.

Safe if the defence fails: the only process a test starts outside the server is a tagged ``sleep``-like
Python that ends by itself within 60 s and is killed by the test by its tag.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from conftest import REPO, tagged

SCRIPT = textwrap.dedent('''
    import json, os, subprocess, sys, time
    from pathlib import Path
    import deepgrade.grader.run as run
    from deepgrade.grader import serve

    TAG, MODE = sys.argv[1], sys.argv[2]

    def hostile(request):
        # a grandchild that would outlive the grade, and (early) the report pipe closed before this process ends
        # (its own output goes nowhere: holding the test's pipes, it would make the test wait for it to end)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", TAG], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if MODE == "early":
            os.closerange(3, 1024)
            time.sleep(1)
        return "report.json", json.dumps({"exercise": "x"}), 0

    run.outcome = hostile
    folder = Path(sys.argv[3])
    start = time.monotonic()
    name, text = serve._grade(None, os.open(os.devnull, os.O_WRONLY), False, folder)
    print(json.dumps({"name": name, "text": text.decode(), "seconds": time.monotonic() - start}))
''')


def _serve(mode: str, tmp_path) -> tuple[dict, list[int]]:
    import json

    tag = f"deepgrade-survivor-{uuid.uuid4().hex}"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, tag, mode, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert time.monotonic() - start < 30, "the server (or this test) waited for the survivor to end by itself"
    time.sleep(0.2)
    left = tagged(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), left


def test_what_a_grade_started_dies_with_it(tmp_path):
    answer, left = _serve("normal", tmp_path)
    assert answer["name"] == "report.json"
    assert not left, "a process the grade started outlived it"


def test_a_grade_that_closes_its_pipe_early_is_swept_and_says_so(tmp_path):
    answer, left = _serve("early", tmp_path)
    assert answer["name"] == "error.json" and "before it sent a grade" in answer["text"]
    assert answer["seconds"] < 20  # the server waited for the process to end, not for the pipe's other holders
    assert not left, "a process the grade started outlived it"
