"""deploy/kubernetes validates against the Kubernetes schemas (offline), and its settings and policy load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from ruamel.yaml import YAML

from sqlgate.config import Settings
from sqlgate.policy.holder import load_policy

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.32"  # the oldest release whose schema has every field used (preStop sleep)


def _documents() -> list[tuple[str, dict[str, Any]]]:
    yaml = YAML(typ="safe")
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found.extend(
            (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc) for doc in yaml.load_all(path) if doc
        )
    return found


DOCUMENTS = _documents()


@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[where for where, _ in DOCUMENTS])
def test_each_manifest_validates_against_the_kubernetes_schema(where: str, document: dict[str, Any]) -> None:
    """Strict validation: an unknown or misplaced field fails, not only a missing one."""
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_refused() -> None:
    """The validator catches a mistake of the kind a manifest edit makes (the check can fail)."""
    deployment = _kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_three_hardened_replicas_with_probes() -> None:
    """Three replicas, non-root, read-only root filesystem, probes on /readyz and /healthz, room to drain."""
    deployment = _kind("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    settings = _settings()
    assert spec["terminationGracePeriodSeconds"] > settings.server.drain_timeout.total_seconds()
    secret_refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "secretKeyRef" in e["valueFrom"]}
    assert secret_refs == {"state-url"}
    assert _kind("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    services = {doc["metadata"]["name"] for _, doc in DOCUMENTS if doc["kind"] == "Service"}
    assert services == {"sqlgate-pg", "sqlgate-http"}


def test_the_client_example_uses_a_projected_service_account_token() -> None:
    """The workload identity example mounts a projected token with the gateway's audience."""
    job = _kind("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    sources = [s for v in job["volumes"] for s in v.get("projected", {}).get("sources", [])]
    assert sources == [{"serviceAccountToken": {"audience": "sqlgate", "expirationSeconds": 600, "path": "token"}}]


def test_the_configmap_settings_and_policy_load(tmp_path: Path) -> None:
    """sqlgate.yaml is valid settings; policy.yaml compiles; every secret file the settings read is projected."""
    settings = _settings()
    assert settings.log.format == "json"
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(_kind("ConfigMap")["data"]["policy.yaml"])
    assert len(load_policy(policy_file).rules) == 2
    items = {
        item["path"]
        for v in _kind("Deployment")["spec"]["template"]["spec"]["volumes"]
        for item in v.get("secret", {}).get("items", [])
    }
    wanted = {Path(str(settings.server.lease_key_file)).name} | {
        Path(str(db.admin_password_file)).name for db in settings.databases.values()
    }
    assert wanted <= items
    secret_keys = set(_kind("Secret")["stringData"])
    assert items | {"state-url"} <= secret_keys


def test_the_dockerfile_is_multi_stage_non_root_and_serves() -> None:
    """Two stages, a numeric non-root user, `sqlgate serve` as the entrypoint, data_dir as a volume."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    assert any(line.startswith("COPY --from=build") for line in lines)
    user = next(line for line in lines if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["sqlgate", "serve"]' in lines
    assert 'VOLUME ["/var/lib/sqlgate"]' in lines


def _kind(kind: str) -> dict[str, Any]:
    return next(doc for _, doc in DOCUMENTS if doc["kind"] == kind)


def _settings() -> Settings:
    yaml = YAML(typ="safe")
    return Settings(**yaml.load(_kind("ConfigMap")["data"]["sqlgate.yaml"]))
