"""``gctuner install-follower DIR``: make an app container follow without code.

Copies this package (standard library only, so it runs on the app's own
interpreter, 3.9 or later) and a ``sitecustomize.py`` into ``DIR``. An app
container started with ``PYTHONPATH=DIR`` and ``GCTUNER_STATE_DIR`` set
imports ``sitecustomize`` at interpreter start-up, as Python does with any
module of that name on its path, and so every Python process in it follows
the state that ``gctuner sidecar`` publishes. Run it in an init container
that shares a volume with the app container, so it is done before the app
starts.

Python imports only the first ``sitecustomize`` on the path: ours hides one
the image may have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gctuner.core.config import NAMES

SITECUSTOMIZE = f'''"""Written by `gctuner install-follower`: every Python process started with
this directory on PYTHONPATH follows the gctuner state in ${NAMES["state_dir"]}."""

import os
import sys

if os.environ.get("{NAMES["state_dir"]}"):
    try:
        import gctuner

        gctuner.follow_config()
    except (OSError, ValueError) as error:  # never stop the app from starting
        sys.stderr.write(f"gctuner: not following: {{error}}\\n")
else:
    sys.stderr.write("gctuner: not following: {NAMES["state_dir"]} is not set\\n")
'''


def install_follower(directory: str | Path) -> Path:
    """Write ``gctuner/`` and ``sitecustomize.py`` into ``directory``; return it.

    Re-running (a restarted init container) replaces the files in place; run
    from the very copy it installed (``PYTHONPATH`` already names
    ``directory``, as in a restarted app container), it has nothing to copy."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).parent.parent  # the gctuner package
    if (target / "gctuner").resolve() != source.resolve():
        shutil.copytree(
            source,
            target / "gctuner",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    (target / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return target
