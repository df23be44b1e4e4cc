"""The doc test's reading of the docs (tests/docblocks.py), on small samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from docblocks import commands, matches, normalise

pytestmark = pytest.mark.timeout(10)

SAMPLE = """\
Some prose.

```console
$ kubectl get gcpol
NAME   THRESHOLDS       MATCHED   APPLIED   READY   AGE
web    [50000,20,100]   2         2         True    3s
$ kubectl apply \\
    -f policy.yaml
```

<!-- doctest: skip -->
```console
$ make cluster
```

```python
$ not a command
```
"""


def test_commands_and_their_output(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(SAMPLE)
    found = commands(doc)
    assert [(c.where, c.line) for c in found] == [("doc.md:4", "kubectl get gcpol"), ("doc.md:7", "kubectl apply  -f policy.yaml")]
    assert found[0].expected[1].startswith("web ") and found[1].expected == ()


def test_what_varies_between_runs_is_ignored() -> None:
    shown = ("web    [50000,20,100]   2         2         True    3s",)
    assert matches(shown, "web  [50000,20,100]  3  3  True  2m10s\n")
    assert not matches(shown, "web  [700,10,10]  3  3  True  2m10s\n")  # thresholds are exact
    assert not matches(shown, "web  [50000,20,100]  2  2  False  1s\n")  # so are words
    assert matches(("web   Static   0.01   True",), "web  Static  1.9  True\n")  # GC% figures vary
    assert normalise("pod/web-1 created at 127.0.1.2, 1.42ms, 2026-11-24T21:56:28Z, 2/2") == [
        "pod/web-1 <applied> at <ip>, <duration>, <time>, 2/2"]


def test_dots_stand_for_any_lines_and_the_namespace_for_default() -> None:
    shown = ("Name: web", "Namespace: default", "...", "Events:")
    assert matches(shown, "Name: web\nNamespace: t-1234\nA: 1\nB: 2\nEvents:\n", namespace="t-1234")
    assert not matches(shown, "Name: web\nNamespace: t-1234\nA: 1\n", namespace="t-1234")


def test_a_deployments_pod_names_match_whatever_their_random_suffixes() -> None:
    shown = ("web-7c6d9f8b5d-x2k4q web [50000,20,100] Applied", "pod/web-7c6d9f8b5d-x2k4q condition met")
    assert matches(shown, "web-5f4b8d9c7-9wzlp web [50000,20,100] Applied\npod/web-5f4b8d9c7-9wzlp condition met\n")
    assert not matches(shown, "plain-5f4b8d9c7-9wzlp web [50000,20,100] Applied\npod/web-5f4b8d9c7-9wzlp condition met\n")
    assert normalise("web-1 web-web-crd gctuner-operator-6b8f5c7d9-q2wxz") == ["web-1 web-web-crd gctuner-operator-<replicaset>-<pod>"]
    assert normalise("a-scheduler-lock web-abcdefgh-abcde") == ["a-scheduler-lock web-abcdefgh-abcde"]  # vowels: not a pod suffix


def test_a_second_apply_matches_the_first() -> None:
    assert matches(("deployment.apps/web created",), "deployment.apps/web unchanged\n")
    assert not matches(("deployment.apps/web created",), "deployment.apps/web patched\n")
