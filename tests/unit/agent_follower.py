"""A process that follows a gctuner state directory, for the shared-state tests.

Usage: python agent_follower.py STATE_DIR [--fork [--step-aside]]

Prints {"pid": ..., "defaults": [...]} once it follows (with --fork, once more
from a forked child, which must re-join through the at-fork hook; with
--step-aside the parent stops counting before it forks, as a server's master
does), then waits until stdin is closed.
"""

from __future__ import annotations

import gc
import json
import os
import sys

import gctuner

defaults = list(gc.get_threshold())
gctuner.follow(sys.argv[1])
if "--step-aside" in sys.argv:
    gctuner.step_aside()
child = os.fork() if "--fork" in sys.argv else -1
if child == 0:
    # the hook ran before this line: the child follows with its own slot
    print(json.dumps({"pid": os.getpid(), "defaults": defaults}), flush=True)
    sys.stdin.read()
    os._exit(0)
print(json.dumps({"pid": os.getpid(), "defaults": defaults}), flush=True)
sys.stdin.read()
if child > 0:
    os.waitpid(child, 0)
