"""Start bubblewrap as a jail's own unprivileged host uid, with its resource limits set.

Run by path (``python launch.py PLAN.json``); imported only for :data:`RLIMITS` (the fallback sandbox
sets the same limits). It loads nothing but the standard library, in a process that has no threads, so the
steps below are safe between fork and exec. The plan is written by
:mod:`deepgrade.sandbox.jail`:

1. as root, in a private mount namespace of this process only, bind each source onto its staging path (a
   folder the jail's uid can reach: the Python installation may live under /root, which it cannot);
2. set the resource limits (they are inherited by bubblewrap and everything in the jail);
3. as root, drop to the jail's host uid, so RLIMIT_NPROC counts only the jail's processes (root is exempt);
4. exec bubblewrap.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
RLIMITS = {"as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "nproc": resource.RLIMIT_NPROC,
           "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}


def _fail(message: str) -> None:
    sys.stderr.write(f"deepgrade launch: {message}\n")
    sys.exit(125)


def _stage(pairs: list) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        _fail(f"unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        _fail(f"making / private failed: {os.strerror(ctypes.get_errno())}")
    for source, target in pairs:
        if libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None) != 0:
            _fail(f"binding {source} failed: {os.strerror(ctypes.get_errno())}")


def main() -> None:
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    if plan["stage"]:
        _stage(plan["stage"])
    for name, value in plan["rlimits"].items():
        resource.setrlimit(RLIMITS[name], (value, value))
    uid = plan["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    os.execv(plan["bwrap"], [plan["bwrap"], *plan["args"]])


if __name__ == "__main__":
    main()
