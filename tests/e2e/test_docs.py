"""Every command docs/*.md shows is run on the process cluster, and shows what they say.

Each document runs top to bottom in a namespace of its own while the
session's operator runs (the rules and the runner: tests/docblocks.py).
The README's commands run on the real node instead, as a reader's do:
tests/e2e_node/test_readme.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docblocks import commands, run
from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess

DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
RUNNABLE = [doc for doc in DOCS if commands(doc)]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_doc_is_true(cluster: LocalCluster, operator: OperatorProcess, namespace: str, doc: Path, tmp_path: Path) -> None:
    run(doc, cluster, namespace, tmp_path)


def test_some_docs_run() -> None:
    assert REPO_ROOT / "docs" / "status.md" in RUNNABLE
