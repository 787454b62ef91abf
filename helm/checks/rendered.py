"""Checks over a rendered chart that an API server or admission would make and the schemas miss.

Usage: rendered.py RENDERED.yaml VIGIL_BINARY. Exits 1 naming every broken rule:
- every Service selects the pods of exactly one workload, on ports those pods have; no workload's
  selector matches another's pods; the PodDisruptionBudget selects the members;
- names and label values fit Kubernetes' limits (63 characters; pod names leave room for the ordinal
  and the controller-revision-hash label);
- the pods meet the "restricted" Pod Security Standard;
- the Role grants pods get/list/watch/patch, statefulsets get, and nothing else;
- liveness never checks the database's role (/liveness only), readiness /readiness;
- the agent's configuration, with the environment a pod gets, passes `vigil agent --validate-config`;
  the proxy's, `haproxy -c`.
"""

import base64
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

errors = []


def check(ok, message):
    if not ok:
        errors.append(message)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_security_restricted(name, spec):
    pod = spec.get("securityContext", {})
    check(pod.get("runAsNonRoot") is True, f"{name}: runAsNonRoot must be true")
    check(pod.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost"),
          f"{name}: seccompProfile RuntimeDefault is required")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        where = f"{name}/{c['name']}"
        check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities must drop ALL")
        check(not sc.get("privileged"), f"{where}: privileged")
        check(sc.get("runAsUser", pod.get("runAsUser", 1)) != 0, f"{where}: runs as root")
    for v in spec.get("volumes", []):
        check("hostPath" not in v, f"{name}: hostPath volume {v['name']}")
    check(not spec.get("hostNetwork") and not spec.get("hostPID"), f"{name}: host namespaces")


def main(rendered, vigil):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        name = d["metadata"]["name"]
        check(len(name) <= 63, f"{d['kind']} {name}: name longer than 63")
        for k, v in d["metadata"].get("labels", {}).items():
            check(len(str(v)) <= 63, f"{d['kind']} {name}: label {k}={v} longer than 63")
    [sts] = by_kind["StatefulSet"]
    sts_name = sts["metadata"]["name"]
    check(len(sts_name) <= 52, f"StatefulSet {sts_name}: over 52 characters (controller-revision-hash)")
    check(sts["spec"]["podManagementPolicy"] == "Parallel", "StatefulSet: podManagementPolicy must be Parallel")
    template = sts["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    check(selects(sts["spec"]["selector"]["matchLabels"], pod_labels), "StatefulSet selector misses its pods")
    check(sts["spec"]["serviceName"] in [s["metadata"]["name"] for s in by_kind["Service"]],
          "StatefulSet serviceName names no Service")
    workloads = [(w["metadata"]["name"], w["spec"]["template"]) for w in by_kind["StatefulSet"] + by_kind.get("Deployment", [])]
    for name, pods in workloads:
        for other, other_pods in workloads:
            if other != name:
                selector = next(w for w in by_kind["StatefulSet"] + by_kind.get("Deployment", [])
                                if w["metadata"]["name"] == name)["spec"]["selector"]["matchLabels"]
                check(not selects(selector, other_pods["metadata"]["labels"]),
                      f"{name}'s selector also matches {other}'s pods")
    for svc in by_kind["Service"]:
        name = svc["metadata"]["name"]
        selector = dict(svc["spec"]["selector"])
        role = selector.pop("vigil.io/role", None)
        check(role in (None, "primary", "replica"), f"Service {name}: role {role}")
        chosen = [(w, pods) for w, pods in workloads if selects(selector, pods["metadata"]["labels"])]
        check(len(chosen) == 1, f"Service {name}: selector {selector} matches {len(chosen)} workloads' pods")
        ports = {p["name"] for _, pods in chosen for c in pods["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            check(len(p["name"]) <= 15, f"Service {name}: port name {p['name']} over 15")
            check(p["targetPort"] in ports, f"Service {name}: targetPort {p['targetPort']} is no container port")
        if svc["spec"].get("clusterIP") == "None":
            check(svc["spec"].get("publishNotReadyAddresses") is True,
                  f"Service {name}: the peers' Service must publish not-ready pods")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        check(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget misses the pods")
    for name, pods in workloads:
        pod_security_restricted(name, pods["spec"])
    for pod in by_kind.get("Pod", []):
        pod_security_restricted(f"Pod {pod['metadata']['name']}", pod["spec"])
    [agent] = [c for c in template["spec"]["containers"] if c["name"] == "vigil"]
    check(agent["livenessProbe"]["httpGet"]["path"] == "/liveness", "liveness must be /liveness")
    check(agent["readinessProbe"]["httpGet"]["path"] == "/readiness", "readiness must be /readiness")
    for role in by_kind.get("Role", []):
        rules = role["rules"]
        wanted = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
                  {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]}]
        check(rules == wanted,
              f"Role {role['metadata']['name']}: grants more than pods get/list/watch/patch and statefulsets get: {rules}")
    check("ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind, "nothing cluster-scoped")

    for proxy in [c for c in by_kind["ConfigMap"] if "haproxy.cfg" in c["data"]]:
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
            f.write(proxy["data"]["haproxy.cfg"])
            f.flush()
            haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
            run = subprocess.run([haproxy, "-c", "-f", f.name], capture_output=True, text=True)
            check(run.returncode == 0, f"haproxy -c refuses the proxy's configuration: {run.stdout}{run.stderr}")

    [config_map] = [c for c in by_kind["ConfigMap"] if "vigil.yml" in c["data"]]
    pod = f"{sts_name}-1"
    env = dict(os.environ, POD_NAME=pod)
    for e in agent["env"]:
        env[e["name"]] = e.get("value", "from-a-secret").replace("$(POD_NAME)", pod)
    with tempfile.TemporaryDirectory() as tls, tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        # The Raft certificate the chart generates, where the pod mounts it: it must name the pod's address.
        for secret in [s for s in by_kind.get("Secret", []) if s["metadata"]["name"].endswith("-raft-tls")]:
            for key, value in secret["data"].items():
                with open(os.path.join(tls, key), "wb") as out:
                    out.write(base64.b64decode(value))
            for name in ("VIGIL_RAFT_CERTFILE", "VIGIL_RAFT_KEYFILE", "VIGIL_RAFT_CAFILE"):
                if name in env:
                    env[name] = env[name].replace("/etc/vigil-raft-tls", tls)
        f.write(config_map["data"]["vigil.yml"])
        f.flush()
        run = subprocess.run([vigil, "agent", "--validate-config", "-c", f.name], env=env,
                             capture_output=True, text=True)
        check(run.returncode == 0, f"the agent refuses its configuration: {run.stderr.strip()}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    for e in errors:
        print(f"{sys.argv[1]}: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)
