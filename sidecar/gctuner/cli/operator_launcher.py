"""``gctuner-operator``: the operator's command, installed by every wheel.

pip installs a wheel's scripts whatever extras were asked for, so this command
is in app environments too, where the operator's packages (the ``operator``
extra: kopf and friends, on Python 3.11+) are not. There it says what to
install instead of dying with ``ModuleNotFoundError: kopf``. The operator is
imported by name, at run time and only when it can run: nothing of the agent
imports it (the import contracts of ``.importlinter``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

REQUIRED = ("kopf", "kubernetes_asyncio", "aiohttp")
"""What the operator imports that the agent never installs."""


def missing() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def main() -> None:
    absent = missing()
    if sys.version_info < (3, 11) or absent:
        python = ".".join(map(str, sys.version_info[:2]))
        why = f"Python {python} is older than 3.11" if sys.version_info < (3, 11) else f"{', '.join(absent)} not installed"
        sys.exit(
            f"gctuner-operator: the operator is not installed here ({why}). This wheel installs the "
            "command with the agent; to run the operator, on Python 3.11+: pip install 'gctuner[operator]' "
            "(see docs/agent.md, Installing from the wheel)"
        )
    importlib.import_module("gctuner_operator.__main__").main()
