"""Offline checks of deploy/: every Kubernetes object against the API's own schemas (strict:
unknown fields fail), the references between objects, and what the compose files promise.
No cluster and no engine are involved; tests/integration/deploy runs the compose stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="needs kubernetes-validate (the dev extra)"
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# 1.27 is the oldest release whose kubelet has gRPC probes on by default (they went GA then).
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
CLUSTER_SCOPED = {"Namespace"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects(kind: str | None = None) -> list[dict[str, Any]]:
    found = [doc for path in MANIFESTS for doc in documents(path)]
    return [doc for doc in found if kind is None or doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (match,) = [doc for doc in objects(kind) if doc["metadata"]["name"] == name]
    return match


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_the_api_schema(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_check_rejects_a_misspelt_field() -> None:
    grader = named("Deployment", "grader")
    pod_spec(grader)["containers"][0]["livenesProbe"] = {"grpc": {"port": 50052}}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(grader, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    # A kustomization-wide namespace would move the sandbox Pods' objects into mleb.
    assert "namespace" not in kustomization


def test_only_the_sandbox_pods_objects_are_outside_the_mleb_namespace() -> None:
    outside = set()
    for doc in objects():
        if doc["kind"] in CLUSTER_SCOPED:
            continue
        namespace = doc["metadata"].get("namespace")
        assert namespace in ("mleb", "mleb-sandboxes"), doc["metadata"]
        if namespace == "mleb-sandboxes":
            outside.add((doc["kind"], doc["metadata"]["name"]))
    assert outside == {
        ("Role", "sandbox-pods"),
        ("RoleBinding", "sandbox-pods"),
        ("NetworkPolicy", "sandbox-default-deny"),
        ("NetworkPolicy", "sandbox-internet"),
    }
    sandboxes = named("Namespace", "mleb-sandboxes")["metadata"]["labels"]
    assert sandboxes["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("service", objects("Service"), ids=lambda s: s["metadata"]["name"])
def test_service_selects_a_workload_and_its_named_port(service: dict[str, Any]) -> None:
    selector = service["spec"]["selector"].items()
    workloads = [
        w
        for kind in WORKLOADS
        for w in objects(kind)
        if selector <= w["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(workloads) == 1, service["metadata"]["name"]
    container_ports = {
        port["name"] for c in pod_spec(workloads[0])["containers"] for port in c["ports"]
    }
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports


def test_referenced_config_exists_and_secrets_are_documented() -> None:
    """ConfigMaps ship with the manifests; Secrets are made by the operator, as
    docs/deploy.md says, with the keys the pods read."""
    config_maps = {doc["metadata"]["name"] for doc in objects("ConfigMap")}
    guide = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    for kind in WORKLOADS:
        for workload in objects(kind):
            for container in pod_spec(workload)["containers"]:
                for source in container.get("envFrom", []):
                    assert source["configMapRef"]["name"] in config_maps
                for value in env_of(container).values():
                    if isinstance(value, dict) and "secretKeyRef" in value:
                        name, key = value["secretKeyRef"]["name"], value["secretKeyRef"]["key"]
                        made = rf"create secret generic {name} [^\n]*--from-literal={key}="
                        assert re.search(made, guide), (name, key)


def test_grader_is_stateless_and_autoscaled() -> None:
    spec = pod_spec(named("Deployment", "grader"))
    # Scratch, and the shared signing key read from a Secret: no state of its own.
    assert [next(iter(set(v) - {"name"})) for v in spec["volumes"]] == ["emptyDir", "secret"]
    container = spec["containers"][0]
    assert "MLEB_DATABASE_URL" not in env_of(container)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = named("HorizontalPodAutoscaler", "grader")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "grader",
    }


def test_sandbox_runs_agents_as_pods_without_node_access() -> None:
    spec = pod_spec(named("Deployment", "sandbox"))
    assert spec["serviceAccountName"] == "sandbox"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert "runtimeClassName" not in spec
    assert not [v for v in spec["volumes"] if "hostPath" in v]
    container = spec["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = env_of(container)
    assert env["MLEB_SANDBOX_BACKEND"] == "kubernetes"
    # The backend names its Pods' labels and containers: the policy and the Role must match.
    assert env["MLEB_K8S_NAMESPACE"] == "mleb-sandboxes"
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert named("PersistentVolumeClaim", claim)


def test_the_sandbox_role_grants_only_what_the_backend_calls() -> None:
    rules = {
        resource: sorted(rule["verbs"])
        for rule in named("Role", "sandbox-pods")["rules"]
        for resource in rule["resources"]
    }
    assert rules == {
        "pods": ["create", "delete", "get", "list"],
        "pods/log": ["get"],
        "pods/exec": ["create", "get"],
        "secrets": ["create", "delete", "list", "patch"],
    }
    binding = named("RoleBinding", "sandbox-pods")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sandbox", "namespace": "mleb"}
    ]
    assert not objects("ClusterRole") and not objects("ClusterRoleBinding")


def test_sandbox_pods_are_denied_every_network_but_the_grader_registry_and_dns() -> None:
    from services.sandbox.backends.kubernetes import pod as pods

    deny = named("NetworkPolicy", "sandbox-default-deny")["spec"]
    assert deny["podSelector"]["matchLabels"] == dict([pods.MANAGED_BY])
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"] and "ingress" not in deny
    reached = sorted(
        (
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            peer["podSelector"]["matchLabels"].get("app.kubernetes.io/name", "dns"),
            port["port"],
        )
        for rule in deny["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    )
    assert reached == [
        ("kube-system", "dns", 53),
        ("kube-system", "dns", 53),
        ("mleb", "grader", 50052),
        ("mleb", "registry", 50051),
    ]
    internet = named("NetworkPolicy", "sandbox-internet")["spec"]
    assert internet["podSelector"]["matchLabels"] == {
        **dict([pods.MANAGED_BY]),
        pods.NETWORK_LABEL: "internet",
    }
    (rule,) = internet["egress"]
    assert "169.254.0.0/16" in rule["to"][0]["ipBlock"]["except"]


# docker-compose: ${VAR:-default} and ${VAR:?error} resolved as with nothing set.
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def compose(*names: str) -> dict[str, Any]:
    """The files merged the way compose merges overrides (mappings deep, values replaced)."""

    def resolve(match: re.Match[str]) -> str:
        return match.group(3) if match.group(2) == "-" else f"<{match.group(1)}>"

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, dict) and isinstance(override, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
        return override

    merged: dict[str, Any] = {}
    for name in names:
        text = _VARIABLE.sub(resolve, (DEPLOY / name).read_text())
        merged = merge(merged, yaml.safe_load(text))
    return merged["services"]


SERVICES = compose("docker-compose.yml")
MLEB_SERVICES = ("registry", "grader", "sandbox")


# The one-shot job that makes the signing keys, then exits.
ONE_SHOT = ("keys",)


@pytest.mark.parametrize("name", sorted(set(SERVICES) - set(ONE_SHOT)))
def test_compose_service_has_a_health_check_and_restart_policy(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"][0] == "CMD"
    if name in MLEB_SERVICES:
        assert service["healthcheck"]["test"][1] == "mleb-healthcheck"
        assert service["command"] == ["serve", name]


def test_compose_grader_scales_and_holds_no_data() -> None:
    grader = SERVICES["grader"]
    # Container port only: each replica gets its own ephemeral host port.
    assert [p.rsplit(":", 2)[1:] for p in grader["ports"]] == [["", "50052"]]
    assert grader["volumes"] == ["/tmp", "signing-keys:/keys:ro"] and grader["read_only"] is True
    assert "MLEB_DATABASE_URL" not in grader["environment"]
    registry = SERVICES["registry"]
    assert registry["volumes"] == ["registry-data:/var/lib/mleb"]


def test_compose_keys_are_made_once_and_reach_only_the_signing_services() -> None:
    keys = SERVICES["keys"]
    assert keys["restart"] == "no" and "mleb keys generate" in keys["command"][0]
    for name in ("grader", "sandbox"):
        service = SERVICES[name]
        assert "signing-keys:/keys:ro" in service["volumes"]
        assert service["environment"]["MLEB_SIGNING_KEY_DIR"] == f"/keys/{name}"
        assert service["depends_on"]["keys"] == {"condition": "service_completed_successfully"}
    assert not any("signing-keys" in v for v in SERVICES["registry"].get("volumes", []))


def test_compose_sandbox_mounts_the_socket_and_its_work_dir_at_the_same_path() -> None:
    sandbox = SERVICES["sandbox"]
    work = sandbox["environment"]["MLEB_SANDBOX_WORK_DIR"]
    assert f"{work}:{work}" in sandbox["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in sandbox["volumes"]


def test_gpu_override_gives_the_sandbox_the_nvidia_runtime_and_every_gpu() -> None:
    sandbox = compose("docker-compose.yml", "docker-compose.gpu.yml")["sandbox"]
    assert sandbox["runtime"] == "nvidia"
    (device,) = sandbox["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == "all"
    assert "gpu" in device["capabilities"]
    # The override keeps the base service's settings.
    assert sandbox["command"] == ["serve", "sandbox"]
    assert "MLEB_AUTH_SECRET" in sandbox["environment"]
