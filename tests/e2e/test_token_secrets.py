"""The operator as a confused deputy (issue 14), against the real RBAC authorizer.

A tenant who may create GCPolicies and pods in a namespace, but not read its
Secrets, names the admin's ``db-password`` in a policy and opts in a pod of
its own that records the Authorization header it receives: the pod never
receives the password, and the policy's status says the Secret is not meant
for gctuner. Once the admin labels a Secret ``gctuner.dev/token=true`` it is
sent as before.
"""

from __future__ import annotations

import json
import urllib.request

from podstate import faulty_pod, get, policy, policy_status

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

PASSWORD = "db-pa55word-n0t-for-gctuner"


def received(ip: str) -> list[str]:
    with urllib.request.urlopen(f"http://{ip}:5000/received", timeout=10) as response:
        return list(json.load(response)["received"])


def tenant(cluster: LocalCluster, namespace: str) -> str:
    """A ServiceAccount that may create policies and pods in ``namespace``, and nothing on Secrets."""
    cluster.kubectl("create", "serviceaccount", "tenant", "-n", namespace)
    cluster.kubectl("create", "role", "tenant", "-n", namespace, "--verb=create,get,list,watch",
                    "--resource=gcpolicies.gctuner.dev,pods")
    cluster.kubectl("create", "rolebinding", "tenant", "-n", namespace, "--role=tenant",
                    f"--serviceaccount={namespace}:tenant")
    user = f"system:serviceaccount:{namespace}:tenant"
    wait_for(lambda: cluster.kubectl("auth", "can-i", "create", "gcpolicies.gctuner.dev", "-n", namespace,
                                     f"--as={user}", check=False).returncode == 0,
             timeout=10, what="the tenant's RoleBinding to take effect")
    return user


def test_a_tenant_cannot_make_the_operator_send_a_secret(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("create", "secret", "generic", "db-password", "-n", namespace, f"--from-literal=token={PASSWORD}")
    user = tenant(cluster, namespace)
    as_tenant = ("-n", namespace, f"--as={user}")
    denied = cluster.kubectl("get", "secret", "db-password", *as_tenant, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), "the tenant must not read Secrets itself"

    cluster.kubectl("apply", *as_tenant, "-f", "-", input=faulty_pod("listener", "record"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/listener", "--timeout=60s")
    ip = get(cluster, namespace, "pod", "listener")["status"]["podIP"]
    cluster.kubectl("apply", *as_tenant, "-f", "-", input=policy("web", [50000, 20, 100], token_secret="db-password"))

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 1 and s,
                      timeout=30, what="the refused Secret in the status")
    failure = status["failures"][0]
    assert (failure["pod"], failure["reason"]) == ("listener", "SecretNotForGctuner")
    assert f"Secret {namespace}/db-password is not meant for gctuner" in failure["message"]
    assert "gctuner.dev/token=true" in failure["message"]
    assert "refused" in failure["message"], "permanent: retried only at the longest delay"
    assert PASSWORD not in json.dumps(status) + operator.log()
    assert not any(PASSWORD in header for header in received(ip)), "the pod received the Secret"

    # The positive control: the admin marks a Secret for gctuner, and it is sent as before.
    cluster.kubectl("label", "secret", "db-password", "-n", namespace, "gctuner.dev/token=true")
    wait_for(lambda: f"Bearer {PASSWORD}" in received(ip), timeout=30, what="the labelled Secret sent")
    assert PASSWORD not in operator.log(), "a token is never logged"
