"""packaging/kubernetes/: the sidecar example is valid Kubernetes (checked offline against the
API schema kubernetes-models ships, pinned in tests/package.json), and it agrees with the
outboxd config it mounts: what `outboxd check` makes of the ConfigMap's outboxd.yaml, with the
environment the Deployment gives, is where the probes look and what the grace period covers."""

import json
import re
import subprocess

import pytest
import yaml

from harness.child_server import NODE, NODE_MODULES
from harness.outboxd import run_outboxd_cmd
from harness.util import REPO_ROOT

K8S_DIR = REPO_ROOT / "packaging" / "kubernetes"
VALIDATOR = REPO_ROOT / "tests" / "tools" / "validate_k8s.mjs"
CONTAINERFILE = REPO_ROOT / "packaging" / "Containerfile"
CONFIG_PATH = "/etc/outboxd/outboxd.yaml"
# What a fieldRef in the Deployment's env stands for when `check` runs here.
FIELD_REF_SAMPLES = {"metadata.name": "orders-api-5f7c9d8b6-x2k4q", "metadata.namespace": "default",
                     "spec.nodeName": "ip-10-0-1-23.eu-west-1.compute.internal", "status.podIP": "10.0.1.57"}


def manifests():
    """[(file name, object)] of every resource kustomization.yaml lists, in its order."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [(name, obj) for name in kustomization["resources"]
            for obj in yaml.safe_load_all((K8S_DIR / name).read_text()) if obj is not None]


def the(kind):
    (obj,) = [o for _, o in manifests() if o["kind"] == kind]
    return obj


def pod_spec():
    return the("Deployment")["spec"]["template"]["spec"]


def outboxd_container():
    (c,) = [c for c in pod_spec().get("initContainers", []) + pod_spec()["containers"] if c["name"] == "outboxd"]
    return c


def config_text():
    return the("ConfigMap")["data"]["outboxd.yaml"]


def deployment_env():
    """The outboxd container's environment as the kubelet would give it."""
    env = {}
    for e in outboxd_container().get("env", []):
        env[e["name"]] = e["value"] if "value" in e else FIELD_REF_SAMPLES[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


@pytest.fixture(scope="module")
def checked(outboxd_bin, tmp_path_factory):
    """`outboxd check` of the ConfigMap's outboxd.yaml with the Deployment's env:
    (CompletedProcess, {"section.key": value} of the summary it prints)."""
    home = tmp_path_factory.mktemp("k8s")
    cfg = home / "outboxd.yaml"
    cfg.write_text(config_text())
    p = run_outboxd_cmd(outboxd_bin, "check", "-c", str(cfg), env={**deployment_env(), **irsa_env()}, home=home,
                        timeout=30)
    summary, section = {}, None
    for line in p.stdout.splitlines():
        if m := re.fullmatch(r"(\w+):", line):
            section = m.group(1)
        elif m := re.fullmatch(r"  ([\w.]+): (.*)", line):
            summary[f"{section}.{m.group(1)}"] = m.group(2)
        elif m := re.fullmatch(r"(\w+): (.*)", line):
            summary[m.group(1)] = m.group(2)
    return p, summary


def irsa_env():
    """What EKS's pod identity webhook adds for the ServiceAccount's IRSA annotation."""
    account = next(obj for _, obj in manifests() if obj["kind"] == "ServiceAccount")
    return {
        "AWS_ROLE_ARN": account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    }


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", duration)
    assert m, f"not a duration: {duration}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def test_kustomization_lists_every_manifest_in_the_directory():
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)
    assert {i["name"] for i in kustomization["images"]} >= {outboxd_container()["image"]}


def test_manifests_are_valid_against_the_kubernetes_api_schema():
    if not (NODE_MODULES / "kubernetes-models").is_dir():
        pytest.fail("tests/node_modules/kubernetes-models is missing: run make deps", pytrace=False)
    documents = [{"file": name, "object": obj} for name, obj in manifests()]
    p = subprocess.run([NODE, str(VALIDATOR)], input=json.dumps(documents), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == f"{len(documents)} objects valid"


def test_the_validator_refuses_what_the_api_server_would():
    deployment = the("Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][0]["livenessProbe"]["periodSeconds"] = "10s"
    del deployment["spec"]["selector"]
    documents = [{"file": "deployment.yaml", "object": deployment},
                 {"file": "x.yaml", "object": {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}}]
    p = subprocess.run([NODE, str(VALIDATOR)], input=json.dumps(documents), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        'deployment.yaml: Deployment/orders-api: /spec: must have required property selector {"missingProperty":"selector"}',
        "deployment.yaml: Deployment/orders-api: /spec/template/spec/initContainers/0/livenessProbe/periodSeconds: "
        'must be integer {"type":"integer"}',
        "x.yaml: Deploymnet/x: apps/v1 Deploymnet is not a Kubernetes API kind",
    ]


def test_outboxd_is_a_native_sidecar_of_the_application():
    spec = pod_spec()
    assert [c["name"] for c in spec["containers"]] == ["app"]
    (sidecar,) = [c for c in spec["initContainers"] if c["name"] == "outboxd"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"] == ["run", "-c", CONFIG_PATH]
    (mount,) = sidecar["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/outboxd", True)
    assert volume["configMap"]["name"] == the("ConfigMap")["metadata"]["name"]


def test_the_configmap_passes_outboxd_check_with_the_deployments_environment(checked):
    p, summary = checked
    assert p.returncode == 0, p.stderr
    assert summary["leases.instance_id"] == FIELD_REF_SAMPLES["metadata.name"]


def test_probes_ask_healthz_and_readyz_on_the_port_metrics_listen_binds_on_all_interfaces(checked):
    _, summary = checked
    host, port = summary["metrics.listen"].rsplit(":", 1)
    assert host == "0.0.0.0"  # the kubelet probes the pod's address, not its loopback
    c = outboxd_container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    probes = {}
    for kind in ("livenessProbe", "readinessProbe"):
        get = c[kind]["httpGet"]
        probes[kind] = (get["path"], ports.get(get["port"], get["port"]))
    assert probes == {"livenessProbe": ("/healthz", int(port)), "readinessProbe": ("/readyz", int(port))}


def test_grace_period_outlasts_outboxds_shutdown_timeout(checked):
    _, summary = checked
    assert pod_spec()["terminationGracePeriodSeconds"] > seconds(summary["relay.shutdown_timeout"])


def test_outboxd_runs_hardened_as_the_images_user():
    ctx = outboxd_container()["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    if not CONTAINERFILE.exists():
        pytest.skip("no packaging/Containerfile to compare the user with")
    text = CONTAINERFILE.read_text()
    user = re.findall(r"^USER\s+(\S+)", text, re.M)[-1].split(":")[0]
    assert user == "10001" or re.search(rf"(-u|--uid)\s+10001\b.*\b{re.escape(user)}\b", text), \
        f"the image's USER {user} is not uid 10001"


def test_resources_cover_the_benchmarks_peak(checked):
    resources = outboxd_container()["resources"]
    mib = {"Mi": 1, "Gi": 1024}
    memory = {k: int(v["memory"][:-2]) * mib[v["memory"][-2:]] for k, v in resources.items()}
    assert 16 <= memory["requests"] <= memory["limits"]  # BENCHMARKS.md: peak RSS target 16 MiB
    assert set(resources["requests"]) == {"cpu", "memory"}


def scalars(node, path="", key=None):
    """(path, the key it is under, value) for every scalar under node."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from scalars(v, f"{path}/{k}", str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from scalars(v, f"{path}/{i}", key)
    else:
        yield path, key, node


SECRET_KEY = re.compile(r"access_key|secret|session_token|password|^token$", re.I)
SECRET_VALUE = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b|BEGIN [A-Z ]*PRIVATE KEY")


def test_no_manifest_holds_a_secret(checked):
    documents = [("", obj) for _, obj in manifests()] + [("outboxd.yaml", yaml.safe_load(config_text()))]
    assert "Secret" not in {obj["kind"] for _, obj in manifests()}
    found = []
    for where, obj in documents:
        for path, key, value in scalars(obj):
            if (key and SECRET_KEY.search(key)) or SECRET_VALUE.search(str(value)):
                found.append(f"{where}{path}")
    names = {e["name"] for c in pod_spec()["initContainers"] + pod_spec()["containers"] for e in c.get("env", [])}
    assert found == [] and not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    _, summary = checked
    # With IRSA, the credentials come from web identity, the role of the annotation.
    assert summary["credentials"].startswith(f"web identity (role {irsa_env()['AWS_ROLE_ARN']},")
