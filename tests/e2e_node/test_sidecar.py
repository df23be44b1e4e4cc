"""The sidecar example as users run it: a plain app image that knows nothing of
gctuner (deploy/examples/sidecar/Dockerfile), ``gctuner sidecar`` in its own
container as another user, the state directory group-shared on an ``emptyDir``
through the pod's ``fsGroup``, read-only root file systems; the operator's
policy reaches every gunicorn worker of the app container through the sidecar.

What runs as whom is read twice: from the pod spec, and from the processes
themselves (``/proc`` inside each container, the owners of the files they
wrote), so a kubelet or image that ignored the spec would fail here.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from nodepods import EXAMPLES, agent, all_tuned, apply_example, pods, policy_status, ready

from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for

POLICY = yaml.safe_load((EXAMPLES / "sidecar" / "policy.yaml").read_text())
THRESHOLDS: list[int] = POLICY["spec"]["thresholds"]
STATE_DIR = "/gctuner/state"  # deployment.yaml's GCTUNER_STATE_DIR and --state-dir

# Run in a container with ``python3 -I``: isolated, so the app container's
# PYTHONPATH (the follower's sitecustomize) is ignored and the probe itself
# never joins the processes it looks at.
PROBE = r"""
import errno, json, os, stat, sys
processes = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = [part.decode() for part in f.read().split(b"\0") if part]
    except OSError:
        continue  # exited meanwhile
    processes.append({"pid": int(pid), "ppid": int(status["PPid"]), "uid": int(status["Uid"].split()[1]),
                      "groups": [int(g) for g in status["Groups"].split()], "command": command})
with open("/proc/self/mounts") as f:
    root = next(line.split()[3].split(",") for line in f if line.split()[1] == "/")
try:
    open("/gctuner-probe", "x").close()
    write = "written"
except OSError as error:
    write = errno.errorcode[error.errno]
files = {}
if len(sys.argv) > 1:
    for folder in (sys.argv[1], os.path.join(sys.argv[1], "procs")):
        for name in [".", *os.listdir(folder)]:
            try:
                info = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue  # a temporary file renamed meanwhile
            files[os.path.normpath(os.path.join(folder, name))] = [info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)]
print(json.dumps({"processes": processes, "root": root, "write": write, "files": files}))
"""


def probe(cluster: RealNodeCluster, namespace: str, pod: str, container: str, *args: str) -> dict[str, Any]:
    """What one container's processes and root file system are, seen from inside it."""
    out = cluster.kubectl("exec", "-n", namespace, pod, "-c", container, "--",
                          "python3", "-I", "-c", PROBE, *args).stdout  # fmt: skip
    found: dict[str, Any] = json.loads(out)
    return found


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (spec,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    return spec


def tuned(ip: str) -> dict[str, Any] | None:
    """The sidecar's answer once every process it counts runs the policy's thresholds."""
    state = agent(ip)
    return state if all_tuned(state, THRESHOLDS) else None


def test_sidecar_tunes_every_worker_of_a_plain_app_run_by_another_user(installed: RealNodeCluster,
                                                                       namespace: str) -> None:
    apply_example(installed, namespace, "flask", "secret.yaml")  # the token the sidecar example names
    apply_example(installed, namespace, "sidecar", "deployment.yaml", "policy.yaml")
    installed.kubectl("rollout", "status", "deployment/plain", "-n", namespace, "--timeout=110s")
    wait_for(lambda: policy_status(installed, namespace, "plain").get("appliedPods") == 2,
             timeout=90, what="the policy applied to both pods")
    found = pods(installed, namespace, "app=plain")
    assert len(found) == 2 and all(ready(p) for p in found)

    for each in found:
        name, ip = each["metadata"]["name"], each["status"]["podIP"]
        app_uid = container(each, "app")["securityContext"]["runAsUser"]
        gctuner_uid = container(each, "gctuner")["securityContext"]["runAsUser"]
        group = each["spec"]["securityContext"]["fsGroup"]
        assert len({app_uid, gctuner_uid, 0}) == 3, (app_uid, gctuner_uid)  # two users, neither root

        state = wait_for(lambda ip=ip: tuned(ip), timeout=30, what=f"every process of {name} to report {THRESHOLDS}")
        assert list(state["desired"]["thresholds"]) == THRESHOLDS, state

        app = probe(installed, namespace, name, "app")
        master = next(p for p in app["processes"] if p["pid"] == 1)
        assert "gunicorn" in " ".join(master["command"]), master
        workers = [p for p in app["processes"] if p["ppid"] == 1]
        assert len(workers) >= 2 and all("gunicorn" in " ".join(w["command"]) for w in workers), app["processes"]
        # Every worker of the app container, and nothing else, is a process the sidecar counts.
        assert sorted(p["pid"] for p in state["processes"]) == sorted(w["pid"] for w in workers), (state, workers)
        assert {p["uid"] for p in [master, *workers]} == {app_uid}, app["processes"]
        assert all(group in p["groups"] for p in [master, *workers]), app["processes"]

        sidecar = probe(installed, namespace, name, "gctuner", STATE_DIR)
        server = next(p for p in sidecar["processes"] if p["pid"] == 1)
        assert server["command"][-4:] == ["sidecar", "--host=0.0.0.0", "--port=5000", f"--state-dir={STATE_DIR}"], server
        assert server["uid"] == gctuner_uid and group in server["groups"], server

        # The state directory as the agent accepts it from two users: group-shared.
        files = sidecar["files"]
        assert files[STATE_DIR] == [gctuner_uid, group, 0o2770], files
        assert files[f"{STATE_DIR}/procs"][1:] == [group, 0o2770], files
        assert files[f"{STATE_DIR}/lock"] == [gctuner_uid, group, 0o660], files  # the POST's; the app's autopilot opens it too
        records = {path: owner for path, owner in files.items() if path.startswith(f"{STATE_DIR}/procs/")}
        assert records and {uid for uid, _, _ in records.values()} == {app_uid}, records  # written by the workers
        assert all(mode == 0o660 and gid == group for _, gid, mode in records.values()), records

        for seen, spec in ((app, container(each, "app")), (sidecar, container(each, "gctuner"))):
            assert spec["securityContext"]["readOnlyRootFilesystem"] is True
            assert "ro" in seen["root"] and seen["write"] == "EROFS", seen["root"]
