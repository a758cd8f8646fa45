#!/usr/bin/python3
"""Offline checks of deploy/fleet: the Kubernetes manifests, the seccomp profile and the fleet's
dotproxy configuration. No cluster is needed.

Usage: deploy/fleet/validate.py [--kubectl KUBECTL] [--dotproxy BIN]

  --kubectl KUBECTL  render the kustomization with `KUBECTL kustomize` (offline, client side) and
                     check its output too; default: kubectl from PATH; when there is none, that
                     check is skipped (the other checks render the kustomization themselves)
  --dotproxy BIN     also run BIN: --check-config on config.yaml, and a proxy under the seccomp
                     profile with the fake DoT upstream (tests/testing), answering over UDP and
                     TCP; without it those checks are skipped

deploy/fleet/check.sh installs what this needs and runs it.

The schema check is ours, not Kubernetes' OpenAPI document (kubectl's validation fetches that from
an API server, which is not reachable offline): it knows the fields of the kinds used here
(Namespace, ConfigMap, DaemonSet and its pod template), rejects unknown fields, checks types,
required fields and enumerations, and then cross-checks the objects against each other and against
config.yaml and seccomp-dotproxy.json. Prints one line per check, then "N passed, N failed, N
skipped". Needs python3-yaml; the seccomp checks need python3-seccomp, the run python3-dnspython.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

FLEET = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(FLEET))
PROFILE = os.path.join(FLEET, "seccomp-dotproxy.json")
CONFIG = os.path.join(FLEET, "config.yaml")
KUBELET_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")

# ---- A small schema language ------------------------------------------------------------------
# A schema is a Python type (str, int, bool), or one of the tuples made below.


def obj(fields, required=()):
    return ("obj", fields, frozenset(required))


def lst(item):
    return ("list", item)


def mapof(value):
    return ("map", value)


def enum(*values):
    return ("enum", values)


INT_OR_STR = ("int_or_str",)
QUANTITY = ("quantity",)
ANY_OBJ = ("any_obj",)  # accepted as a mapping, not looked into
QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")


def check(node, schema, path, errors):
    """Appends "path: problem" strings to `errors` for every way `node` breaks `schema`."""
    if schema in (str, int, bool):
        # bool is a subclass of int in Python: an int field must not take true/false.
        if not isinstance(node, schema) or (schema is int and isinstance(node, bool)):
            errors.append(f"{path}: expected {schema.__name__}, got {node!r}")
        return
    kind = schema[0]
    if kind == "obj":
        if not isinstance(node, dict):
            errors.append(f"{path}: expected a mapping, got {node!r}")
            return
        fields, required = schema[1], schema[2]
        for key, value in node.items():
            if key not in fields:
                errors.append(f"{path}.{key}: unknown field (known: {', '.join(sorted(fields))})")
            else:
                check(value, fields[key], f"{path}.{key}", errors)
        for key in sorted(required - node.keys()):
            errors.append(f"{path}.{key}: required field missing")
    elif kind == "list":
        if not isinstance(node, list):
            errors.append(f"{path}: expected a list, got {node!r}")
            return
        for i, item in enumerate(node):
            check(item, schema[1], f"{path}[{i}]", errors)
    elif kind == "map":
        if not isinstance(node, dict):
            errors.append(f"{path}: expected a mapping, got {node!r}")
            return
        for key, value in node.items():
            if not isinstance(key, str):
                errors.append(f"{path}: key {key!r} is not a string")
            check(value, schema[1], f"{path}[{key}]", errors)
    elif kind == "enum":
        if node not in schema[1]:
            errors.append(f"{path}: {node!r} is not one of {list(schema[1])}")
    elif kind == "int_or_str":
        if isinstance(node, bool) or not isinstance(node, (int, str)):
            errors.append(f"{path}: expected an integer or a string, got {node!r}")
    elif kind == "quantity":
        if isinstance(node, bool) or not QUANTITY_RE.match(str(node)):
            errors.append(f"{path}: {node!r} is not a quantity such as 500m, 1 or 128Mi")
    elif kind == "any_obj":
        if not isinstance(node, dict):
            errors.append(f"{path}: expected a mapping, got {node!r}")
    else:
        raise AssertionError(schema)


# ---- The Kubernetes fields used by deploy/fleet (core/v1 and apps/v1) ---------------------------

STRS = lst(str)
OBJECT_META = obj({
    "name": str, "namespace": str, "generateName": str, "labels": mapof(str),
    "annotations": mapof(str), "finalizers": STRS,
})
LABEL_SELECTOR = obj({
    "matchLabels": mapof(str),
    "matchExpressions": lst(obj({"key": str, "operator": enum("In", "NotIn", "Exists",
                                                              "DoesNotExist"),
                                 "values": STRS}, required=["key", "operator"])),
})
EXEC_ACTION = obj({"command": STRS})
HTTP_GET = obj({"path": str, "port": INT_OR_STR, "host": str, "scheme": enum("HTTP", "HTTPS"),
                "httpHeaders": lst(obj({"name": str, "value": str}, required=["name", "value"]))},
               required=["port"])
TCP_SOCKET = obj({"port": INT_OR_STR, "host": str}, required=["port"])
PROBE = obj({
    "exec": EXEC_ACTION, "httpGet": HTTP_GET, "tcpSocket": TCP_SOCKET,
    "grpc": obj({"port": int, "service": str}, required=["port"]),
    "initialDelaySeconds": int, "periodSeconds": int, "timeoutSeconds": int,
    "successThreshold": int, "failureThreshold": int, "terminationGracePeriodSeconds": int,
})
LIFECYCLE_HANDLER = obj({"exec": EXEC_ACTION, "httpGet": HTTP_GET, "tcpSocket": TCP_SOCKET,
                         "sleep": obj({"seconds": int}, required=["seconds"])})
SECCOMP_PROFILE = obj({"type": enum("RuntimeDefault", "Localhost", "Unconfined"),
                       "localhostProfile": str}, required=["type"])
SECURITY_CONTEXT = obj({
    "runAsUser": int, "runAsGroup": int, "runAsNonRoot": bool, "privileged": bool,
    "allowPrivilegeEscalation": bool, "readOnlyRootFilesystem": bool,
    "capabilities": obj({"add": STRS, "drop": STRS}), "seccompProfile": SECCOMP_PROFILE,
    "procMount": enum("Default", "Unmasked"), "seLinuxOptions": ANY_OBJ,
    "appArmorProfile": obj({"type": enum("RuntimeDefault", "Localhost", "Unconfined"),
                            "localhostProfile": str}, required=["type"]),
})
POD_SECURITY_CONTEXT = obj({
    "runAsUser": int, "runAsGroup": int, "runAsNonRoot": bool, "fsGroup": int,
    "supplementalGroups": lst(int), "seccompProfile": SECCOMP_PROFILE, "seLinuxOptions": ANY_OBJ,
    "sysctls": lst(obj({"name": str, "value": str}, required=["name", "value"])),
})
ENV_VAR = obj({"name": str, "value": str, "valueFrom": ANY_OBJ}, required=["name"])
CONTAINER = obj({
    "name": str, "image": str, "imagePullPolicy": enum("Always", "IfNotPresent", "Never"),
    "command": STRS, "args": STRS, "workingDir": str,
    "ports": lst(obj({"name": str, "containerPort": int, "hostPort": int, "hostIP": str,
                      "protocol": enum("TCP", "UDP", "SCTP")}, required=["containerPort"])),
    "env": lst(ENV_VAR), "envFrom": lst(ANY_OBJ),
    "resources": obj({"requests": mapof(QUANTITY), "limits": mapof(QUANTITY)}),
    "volumeMounts": lst(obj({"name": str, "mountPath": str, "readOnly": bool, "subPath": str,
                             "mountPropagation": enum("None", "HostToContainer", "Bidirectional")},
                            required=["name", "mountPath"])),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": obj({"postStart": LIFECYCLE_HANDLER, "preStop": LIFECYCLE_HANDLER}),
    "securityContext": SECURITY_CONTEXT,
    "terminationMessagePath": str, "terminationMessagePolicy": enum("File",
                                                                    "FallbackToLogsOnError"),
    "stdin": bool, "tty": bool,
}, required=["name", "image"])
KEY_TO_PATH = obj({"key": str, "path": str, "mode": int}, required=["key", "path"])
VOLUME_SOURCES = {
    "configMap": obj({"name": str, "items": lst(KEY_TO_PATH), "defaultMode": int,
                      "optional": bool}),
    "secret": obj({"secretName": str, "items": lst(KEY_TO_PATH), "defaultMode": int,
                   "optional": bool}),
    "hostPath": obj({"path": str, "type": enum("", "DirectoryOrCreate", "Directory",
                                               "FileOrCreate", "File", "Socket", "CharDevice",
                                               "BlockDevice")}, required=["path"]),
    "emptyDir": obj({"medium": enum("", "Memory"), "sizeLimit": QUANTITY}),
}
VOLUME = obj({"name": str, **VOLUME_SOURCES}, required=["name"])
POD_SPEC = obj({
    "containers": lst(CONTAINER), "initContainers": lst(CONTAINER), "volumes": lst(VOLUME),
    "hostNetwork": bool, "hostPID": bool, "hostIPC": bool,
    "dnsPolicy": enum("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
    "dnsConfig": ANY_OBJ, "terminationGracePeriodSeconds": int,
    "tolerations": lst(obj({"key": str, "operator": enum("Exists", "Equal"), "value": str,
                            "effect": enum("", "NoSchedule", "PreferNoSchedule", "NoExecute"),
                            "tolerationSeconds": int})),
    "nodeSelector": mapof(str), "affinity": ANY_OBJ, "priorityClassName": str,
    "serviceAccountName": str, "automountServiceAccountToken": bool,
    "securityContext": POD_SECURITY_CONTEXT,
    "restartPolicy": enum("Always", "OnFailure", "Never"), "schedulerName": str,
}, required=["containers"])
SCHEMAS = {
    ("v1", "Namespace"): obj({"apiVersion": str, "kind": str, "metadata": OBJECT_META,
                              "spec": obj({"finalizers": STRS})}, required=["metadata"]),
    ("v1", "ConfigMap"): obj({"apiVersion": str, "kind": str, "metadata": OBJECT_META,
                              "data": mapof(str), "binaryData": mapof(str), "immutable": bool},
                             required=["metadata"]),
    ("apps/v1", "DaemonSet"): obj({
        "apiVersion": str, "kind": str, "metadata": OBJECT_META,
        "spec": obj({
            "selector": LABEL_SELECTOR,
            "template": obj({"metadata": OBJECT_META, "spec": POD_SPEC}, required=["spec"]),
            "updateStrategy": obj({
                "type": enum("RollingUpdate", "OnDelete"),
                "rollingUpdate": obj({"maxUnavailable": INT_OR_STR, "maxSurge": INT_OR_STR})}),
            "minReadySeconds": int, "revisionHistoryLimit": int,
        }, required=["selector", "template"]),
    }, required=["metadata", "spec"]),
}
KUSTOMIZATION = obj({
    "apiVersion": str, "kind": enum("Kustomization"), "namespace": str, "resources": STRS,
    "configMapGenerator": lst(obj({"name": str, "files": STRS, "literals": STRS,
                                   "behavior": enum("create", "replace", "merge")},
                                  required=["name"])),
    "commonLabels": mapof(str),
})
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# ---- Checks -----------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def run(self, name, fn, *args):
        """Runs fn(*args): None or a list of problems; raising Skip skips the check."""
        try:
            problems = fn(*args) or []
        except Skip as skip:
            self.skipped += 1
            print(f"skip {name}: {skip}")
            return
        except Exception as e:  # a crash in a check is a failed check, not a crashed validator
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            self.failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"       {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")


class Skip(Exception):
    pass


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_kustomization():
    with open(os.path.join(FLEET, "kustomization.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def render_here(kust):
    """What `kubectl kustomize` makes, without the hash suffixes: the resources plus the generated
    ConfigMaps, all in kust["namespace"]."""
    docs = []
    for res in kust.get("resources", []):
        with open(os.path.join(FLEET, res), encoding="utf-8") as f:
            docs += [d for d in yaml.safe_load_all(f) if d is not None]
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for spec in gen.get("files", []):
            key, _, path = spec.partition("=") if "=" in spec else (os.path.basename(spec), "", spec)
            data[key] = read(os.path.join(FLEET, path))
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": gen["name"]}, "data": data})
    for d in docs:
        if d.get("kind") != "Namespace" and "namespace" in kust:
            d.setdefault("metadata", {})["namespace"] = kust["namespace"]
    return docs


def check_kustomization(kust):
    errors = []
    check(kust, KUSTOMIZATION, "kustomization", errors)
    for res in kust.get("resources", []):
        if not os.path.isfile(os.path.join(FLEET, res)):
            errors.append(f"resources: {res}: no such file")
    for gen in kust.get("configMapGenerator", []):
        for spec in gen.get("files", []):
            path = spec.split("=", 1)[-1]
            if not os.path.isfile(os.path.join(FLEET, path)):
                errors.append(f"configMapGenerator {gen['name']}: {path}: no such file")
    return errors


def check_schema(docs):
    errors = []
    seen = set()
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            errors.append(f"document {i}: not a mapping")
            continue
        key = (d.get("apiVersion"), d.get("kind"))
        schema = SCHEMAS.get(key)
        name = (d.get("metadata") or {}).get("name", f"document {i}")
        where = f"{key[1]}/{name}"
        if schema is None:
            errors.append(f"{where}: apiVersion/kind {key} is not one this check knows")
            continue
        check(d, schema, where, errors)
        if not DNS_LABEL_RE.match(str(name)) or len(str(name)) > 63:
            errors.append(f"{where}: metadata.name is not a DNS label")
        if (key, name) in seen:
            errors.append(f"{where}: defined twice")
        seen.add((key, name))
    return errors


def find(docs, kind, name_prefix):
    """The one object of `kind` whose name is name_prefix or name_prefix-<hash>."""
    hits = [d for d in docs if d.get("kind") == kind and
            re.fullmatch(re.escape(name_prefix) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])]
    if len(hits) != 1:
        raise AssertionError(f"expected one {kind} {name_prefix}, found {len(hits)}")
    return hits[0]


def listener_tcp_addr(config):
    host, _, port = config["listener"]["tcp"]["addr"].rpartition(":")
    return host.strip("[]"), int(port)


def check_daemonset(docs):
    errors = []
    ds = find(docs, "DaemonSet", "dotproxy")
    spec = ds["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"].get("metadata", {}).get("labels", {})
    for k, v in spec["selector"].get("matchLabels", {}).items():
        if labels.get(k) != v:
            errors.append(f"selector {k}={v} does not match the pod template's labels")
    if pod.get("hostNetwork") is not True:
        errors.append("hostNetwork must be true")
    if pod.get("dnsPolicy") not in ("Default", "ClusterFirstWithHostNet"):
        errors.append("with hostNetwork, dnsPolicy should be Default or ClusterFirstWithHostNet")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in pod.get("volumes", []):
        sources = [s for s in VOLUME_SOURCES if s in v]
        if len(sources) != 1:
            errors.append(f"volume {v['name']}: needs exactly one source, has {sources}")
        if "configMap" in v:
            cm = [d for d in docs if d["kind"] == "ConfigMap" and
                  d["metadata"]["name"] == v["configMap"].get("name")]
            if not cm:
                errors.append(f"volume {v['name']}: no ConfigMap {v['configMap'].get('name')}")
    containers = pod.get("initContainers", []) + pod["containers"]
    names = [c["name"] for c in containers]
    if len(names) != len(set(names)):
        errors.append(f"container names are not unique: {names}")
    for c in containers:
        where = f"container {c['name']}"
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                errors.append(f"{where}: volumeMount {m['name']} names no volume")
        requests = c.get("resources", {}).get("requests", {})
        for r in ("cpu", "memory"):
            if r not in requests:
                errors.append(f"{where}: resources.requests.{r} missing")
        port_names = [p.get("name") for p in c.get("ports", []) if p.get("name")]
        if len(port_names) != len(set(port_names)):
            errors.append(f"{where}: port names are not unique")
        for p in c.get("ports", []):
            if "name" in p and (len(p["name"]) > 15 or not PORT_NAME_RE.match(p["name"])):
                errors.append(f"{where}: port name {p['name']!r} is not an IANA service name")
            if not 1 <= p["containerPort"] <= 65535:
                errors.append(f"{where}: containerPort {p['containerPort']} out of range")
            if pod.get("hostNetwork") and "hostPort" in p and p["hostPort"] != p["containerPort"]:
                errors.append(f"{where}: with hostNetwork, hostPort must equal containerPort")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            errors.append(f"{where}: capabilities.drop must contain ALL")
    return errors


def check_wiring(docs):
    """The DaemonSet, the generated ConfigMaps and the files beside this script fit together."""
    errors = []
    ds = find(docs, "DaemonSet", "dotproxy")
    pod = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    proxy = [c for c in pod["containers"] if c["name"] == "dotproxy"]
    if len(proxy) != 1:
        return ["no container named dotproxy"]
    proxy = proxy[0]
    config_cm = find(docs, "ConfigMap", "dotproxy-config")
    seccomp_cm = find(docs, "ConfigMap", "dotproxy-seccomp")
    if config_cm.get("data", {}).get("config.yaml") != read(CONFIG):
        errors.append("ConfigMap dotproxy-config: config.yaml differs from deploy/fleet/config.yaml")
    if seccomp_cm.get("data", {}).get("dotproxy.json") != read(PROFILE):
        errors.append("ConfigMap dotproxy-seccomp: dotproxy.json differs from seccomp-dotproxy.json")

    # --config FILE lies in a mount of the config ConfigMap, under a key it has.
    args = proxy.get("command", []) + proxy.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args else None
    mounted = False
    for m in proxy.get("volumeMounts", []):
        vol = volumes.get(m["name"], {})
        if config_path and "configMap" in vol and \
                vol["configMap"]["name"] == config_cm["metadata"]["name"] and \
                os.path.dirname(config_path) == m["mountPath"].rstrip("/") and \
                os.path.basename(config_path) in config_cm.get("data", {}):
            mounted = True
    if not mounted:
        errors.append(f"--config {config_path} is not a key of the mounted dotproxy-config")

    # The Localhost profile the kubelet loads is the file the init container writes.
    profile = proxy.get("securityContext", {}).get("seccompProfile", {})
    if profile.get("type") != "Localhost" or not profile.get("localhostProfile"):
        errors.append("the dotproxy container needs seccompProfile type Localhost")
    else:
        want = os.path.join(KUBELET_SECCOMP_ROOT, profile["localhostProfile"])
        written = None
        for c in pod.get("initContainers", []):
            cmd = c.get("command", []) + c.get("args", [])
            if len(cmd) == 3 and os.path.basename(cmd[0]) == "cp":
                for m in c.get("volumeMounts", []):
                    vol = volumes.get(m["name"], {})
                    if "hostPath" in vol and cmd[2].startswith(m["mountPath"].rstrip("/") + "/"):
                        written = vol["hostPath"]["path"].rstrip("/") + cmd[2][len(m["mountPath"]
                                                                                     .rstrip("/")):]
                    if "configMap" in vol and vol["configMap"]["name"] == \
                            seccomp_cm["metadata"]["name"]:
                        key = os.path.relpath(cmd[1], m["mountPath"])
                        if key not in seccomp_cm.get("data", {}):
                            errors.append(f"init container copies {cmd[1]}, not a key of "
                                          "dotproxy-seccomp")
        if written != want:
            errors.append(f"the kubelet loads {want}, the init container writes {written}")

    # The probes connect to the TCP listener, and the metrics annotations name a declared port.
    config = yaml.safe_load(read(CONFIG))
    host, port = listener_tcp_addr(config)
    for probe in ("readinessProbe", "livenessProbe"):
        tcp = proxy.get(probe, {}).get("tcpSocket")
        if tcp is None:
            errors.append(f"{probe}: expected a tcpSocket probe")
        elif tcp.get("port") != port or (host not in ("0.0.0.0", "::") and tcp.get("host") != host):
            errors.append(f"{probe}: {tcp} does not reach listener.tcp.addr {host}:{port}")
    annotations = ds["spec"]["template"].get("metadata", {}).get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        errors.append('annotation prometheus.io/scrape must be "true"')
    metrics_ports = [p["containerPort"] for p in proxy.get("ports", [])
                     if p.get("name") == "metrics"]
    if [str(p) for p in metrics_ports] != [annotations.get("prometheus.io/port")]:
        errors.append(f"annotation prometheus.io/port {annotations.get('prometheus.io/port')!r} "
                      f"is not the container port named metrics {metrics_ports}")
    if not str(annotations.get("prometheus.io/path", "")).startswith("/"):
        errors.append("annotation prometheus.io/path must be a path")
    prometheus = (config.get("metrics") or {}).get("prometheus")
    if prometheus and not str(prometheus.get("addr", "")).endswith(
            f":{annotations.get('prometheus.io/port')}"):
        errors.append("metrics.prometheus.addr in config.yaml is not on the annotated port")
    return errors


def check_profile():
    try:
        import seccomp
    except ImportError:
        raise Skip("python3-seccomp is not installed") from None
    errors = []
    profile = json.loads(read(PROFILE))
    known = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls"}
    for key in profile:
        if key not in known:
            errors.append(f"unknown field {key}")
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS",
                                            "SCMP_ACT_KILL"):
        errors.append("defaultAction must deny (SCMP_ACT_ERRNO or a kill action)")
    names = []
    for i, entry in enumerate(profile.get("syscalls", [])):
        if set(entry) - {"names", "action", "args", "errnoRet"}:
            errors.append(f"syscalls[{i}]: unknown fields {set(entry) - {'names', 'action'}}")
        if entry.get("action") != "SCMP_ACT_ALLOW":
            errors.append(f"syscalls[{i}]: action {entry.get('action')} (only allow lists here)")
        names += entry.get("names", [])
    for name in names:
        if seccomp.resolve_syscall(seccomp.Arch.X86_64, name) < 0:
            errors.append(f"{name}: not an x86_64 system call")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        errors.append(f"listed twice: {dups}")
    for name in IO_URING:
        if name not in names:
            errors.append(f"{name} is not allowed: dotproxy cannot start")
    return errors


def check_rendered_by_kubectl(kubectl, here):
    if kubectl is None:
        raise Skip("no kubectl here (Debian: kubernetes-client)")
    with tempfile.TemporaryDirectory(prefix="fleet-kubectl.") as home:
        # A scratch HOME and no KUBECONFIG: nothing is read from or sent to a cluster.
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HOME"] = home
        run = subprocess.run([kubectl, "kustomize", FLEET], capture_output=True, text=True,
                             timeout=120, env=env)
    if run.returncode != 0:
        return [f"{kubectl} kustomize: exit {run.returncode}: {run.stderr.strip()}"]
    docs = [d for d in yaml.safe_load_all(run.stdout) if d is not None]
    errors = check_schema(docs)
    kinds = sorted((d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs)
    expected = sorted((d["kind"], d["metadata"]["name"]) for d in here)
    if kinds != expected:
        errors.append(f"kubectl rendered {kinds}, expected {expected}")
    return errors


def check_config(dotproxy):
    if dotproxy is None:
        raise Skip("no --dotproxy binary given")
    if not os.access(dotproxy, os.X_OK):
        return [f"{dotproxy}: not an executable file"]
    run = subprocess.run([dotproxy, "--check-config", "--config", CONFIG], capture_output=True,
                         text=True, timeout=60)
    if run.returncode != 0:
        return [f"exit {run.returncode}: {run.stderr.strip() or run.stdout.strip()}"]
    return []


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stop(proc, seconds=10):
    """SIGTERM, then SIGKILL after `seconds`; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def check_run_under_profile(dotproxy):
    """dotproxy under seccomp-dotproxy.json answers over UDP and TCP and stops on SIGTERM; without
    the io_uring calls it refuses to start (so the profile is what lets it run)."""
    if dotproxy is None:
        raise Skip("no --dotproxy binary given")
    if not os.access(dotproxy, os.X_OK):
        return [f"{dotproxy}: not an executable file"]
    try:
        import seccomp  # noqa: F401  (seccomp_exec.py needs it)
        import dns.message
        import dns.query
        import dns.rcode
    except ImportError as e:
        raise Skip(f"{e.name} is not installed (python3-seccomp, python3-dnspython)") from None
    python = sys.executable or "/usr/bin/python3"
    helper = os.path.join(FLEET, "seccomp_exec.py")
    errors = []
    with tempfile.TemporaryDirectory(prefix="fleet-validate.") as tmp:
        pki = os.path.join(tmp, "pki")
        subprocess.run([os.path.join(ROOT, "tests/testing/gen_certs.sh"), pki], check=True,
                       timeout=60)
        port_file = os.path.join(tmp, "upstream.port")
        upstream = subprocess.Popen(
            [python, os.path.join(ROOT, "tests/testing/fake_dot_upstream.py"),
             "--listen", "127.0.0.1:0", "--cert", os.path.join(pki, "server.pem"),
             "--key", os.path.join(pki, "server.key"), "--port-file", port_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = None
        try:
            if not wait_for(lambda: os.path.exists(port_file) and read(port_file).strip(), 20):
                return ["the fake DoT upstream did not start"]
            listen_port = free_port()
            config = os.path.join(tmp, "config.yaml")
            with open(config, "w", encoding="utf-8") as f:
                f.write(f"listener:\n  udp:\n    addr: 127.0.0.1:{listen_port}\n"
                        f"  tcp:\n    addr: 127.0.0.1:{listen_port}\n"
                        f"upstream:\n  servers:\n"
                        f"    - addr: 127.0.0.1:{read(port_file).strip()}\n"
                        f"      server_name: dot.test\n"
                        f"      ca_file: {os.path.join(pki, 'ca.pem')}\n"
                        f"server:\n  workers: 2\n")
            log_path = os.path.join(tmp, "proxy.log")
            with open(log_path, "w", encoding="utf-8") as log:
                proxy = subprocess.Popen([python, helper, PROFILE, "--", dotproxy, "--config",
                                          config, "--verbosity", "info"],
                                         stdout=log, stderr=subprocess.STDOUT)
            query = dns.message.make_query("example.com", "A")

            def answers(via):
                try:
                    reply = via(query, "127.0.0.1", port=listen_port, timeout=1)
                    return reply.rcode() == dns.rcode.NOERROR and len(reply.answer) > 0
                except Exception:  # not up yet
                    return False
            if not wait_for(lambda: proxy.poll() is None and answers(dns.query.udp), 20):
                errors.append("no UDP answer from dotproxy under the profile")
            elif not answers(dns.query.tcp):
                errors.append("no TCP answer from dotproxy under the profile")
            status = stop(proxy)
            if status != 0:
                errors.append(f"after SIGTERM dotproxy exited {status}")
            if errors:
                errors.append("log: " + read(log_path).strip().replace("\n", " | ")[-600:])

            # The same, without the io_uring calls: start-up must fail and say why.
            denied = subprocess.run([python, helper, "--without", ",".join(IO_URING), PROFILE,
                                     "--", dotproxy, "--config", config],
                                    capture_output=True, text=True, timeout=30)
            if denied.returncode != 1 or "io_uring" not in denied.stderr:
                errors.append(f"without io_uring: exit {denied.returncode}, "
                              f"stderr {denied.stderr.strip()!r}")
        finally:
            if proxy is not None:
                stop(proxy)
            stop(upstream)
    return errors


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", default=shutil.which("kubectl"))
    parser.add_argument("--dotproxy")
    args = parser.parse_args(argv)
    if args.dotproxy:
        args.dotproxy = os.path.abspath(args.dotproxy)

    results = Results()
    kust = load_kustomization()
    here = render_here(kust)
    results.run("kustomization.yaml: fields and files", check_kustomization, kust)
    results.run("manifests: schema (Namespace, ConfigMap, DaemonSet)", check_schema, here)
    results.run("kubectl kustomize output: schema and objects", check_rendered_by_kubectl,
                args.kubectl, here)
    results.run("DaemonSet: selector, host network, volumes, ports, resources, privileges",
                check_daemonset, here)
    results.run("DaemonSet: config, seccomp profile, probes and metrics annotations fit together",
                check_wiring, here)
    results.run("seccomp-dotproxy.json: syntax, known system calls, io_uring allowed",
                check_profile)
    results.run("config.yaml: dotproxy --check-config", check_config, args.dotproxy)
    results.run("seccomp-dotproxy.json: dotproxy runs under it, and not without io_uring",
                check_run_under_profile, args.dotproxy)
    print(f"{results.passed} passed, {results.failed} failed, {results.skipped} skipped")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
