"""What an operator would trip over in production and the Kubernetes side of Kafka
and PostgreSQL access by component: checked on the rendered overlays.

Needs kustomize (``bash scripts/k8s_tools.sh``), like test_manifests.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy import k8s_checks as checks

Obj = dict[str, Any]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
#: What each workload runs as, in Kafka and in PostgreSQL.
KAFKA_USERS = {"gateway": "gateway", "ledger": "ledger", "projector": "projector"}
DB_LOGINS = {
    "gateway": ("ll_gateway_login", {"ll_gateway"}),
    "ledger": ("ll_ledger_login", {"ll_ledger", "ll_admin"}),
    "projector": ("ll_projector_login", {"ll_projector"}),
    "query": ("ll_query_login", {"ll_query"}),
    "ledger-migrate": ("ll_migrator", {"ll_owner"}),
}
ACLS = {
    "gateway": {("topic", "completions.v1", "Write"), ("topic", "completions.v1", "Describe")},
    "ledger": {
        ("topic", "completions.v1", "Read"),
        ("topic", "completions.v1", "Write"),  # consent and re-decision requests
        ("topic", "completions.v1", "Describe"),
        ("group", "ledger", "Read"),
        ("group", "ledger", "Describe"),
        ("topic", "ledger.entries.v1", "Read"),  # StartReplay --source kafka
        ("topic", "ledger.entries.v1", "Write"),
        ("topic", "ledger.entries.v1", "Describe"),
        ("topic", "completions.dlq.v1", "Write"),
        ("topic", "completions.dlq.v1", "Describe"),
        ("topic", "ledger.checkpoints.v1", "Write"),  # signed tree heads
        ("topic", "ledger.checkpoints.v1", "Describe"),
    },
    "projector": {
        ("topic", "ledger.entries.v1", "Read"),
        ("topic", "ledger.entries.v1", "Describe"),
        ("group", "projector", "Read"),
        ("group", "projector", "Describe"),
    },
    # an outside witness follows the signed tree heads, and reads nothing else
    "witness": {
        ("topic", "ledger.checkpoints.v1", "Read"),
        ("topic", "ledger.checkpoints.v1", "Describe"),
    },
}


@pytest.fixture(scope="module", autouse=True)
def _prerequisites() -> None:
    try:
        checks.kustomize_binary()
    except checks.ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module", params=checks.OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def workloads(objects: list[Obj]) -> list[Obj]:
    return of_kind(objects, "Deployment") + of_kind(objects, "Job")


def container(workload: Obj) -> Obj:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(workload: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container(workload).get("env") or []}


def mounted_secret_file(workload: Obj, path: str) -> tuple[str, str] | None:
    """(Secret name, key) of the file at ``path`` in the workload's container, if any."""
    pod = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container(workload).get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})
        if not path.startswith(prefix) or "secret" not in volume:
            continue
        file_name = path[len(prefix) :]
        items = volume["secret"].get("items")
        if items is None:
            return volume["secret"]["secretName"], file_name
        for item in items:
            if item["path"] == file_name:
                return volume["secret"]["secretName"], item["key"]
    return None


def images(objects: list[Obj]) -> set[str]:
    found = {
        c["image"]
        for w in workloads(objects)
        for c in w["spec"]["template"]["spec"].get("initContainers", [])
        + w["spec"]["template"]["spec"]["containers"]
    }
    found |= {
        c["spec"]["imageName"] for c in of_kind(objects, "Cluster") if "imageName" in c["spec"]
    }
    return found


# ---------------------------------------------------------------------------------------------
# Images


def test_each_overlay_renders_the_image_its_kustomization_names(overlay: str) -> None:
    kustomization = yaml.safe_load(
        (checks.K8S_DIR / "overlays" / overlay / "kustomization.yaml").read_text()
    )
    (entry,) = [i for i in kustomization["images"] if i["name"] == "learner-ledger"]
    expected = f"{entry['newName']}:{entry['newTag']}"
    app_images = {container(w)["image"] for w in workloads(checks.render(overlay))}
    assert app_images == {expected}


def test_a_new_tag_in_the_prod_overlay_is_deployed(tmp_path: Path) -> None:
    """As `kustomize edit set image` in overlays/prod would do it."""
    shutil.copytree(checks.K8S_DIR, tmp_path / "k8s")
    kustomization_file = tmp_path / "k8s" / "overlays" / "prod" / "kustomization.yaml"
    kustomization = yaml.safe_load(kustomization_file.read_text())
    new_tag = "0.2.0@sha256:" + "ab" * 32
    for entry in kustomization["images"]:
        entry["newTag"] = new_tag
    kustomization_file.write_text(yaml.safe_dump(kustomization))
    objects = checks.render_dir(kustomization_file.parent)
    assert {container(w)["image"].split(":", 1)[1] for w in workloads(objects)} == {new_tag}


def test_prod_pins_every_image_by_digest() -> None:
    found = images(checks.render("prod"))
    assert len(found) >= 2  # the services' image and PostgreSQL's
    assert [image for image in found if not DIGEST.search(image)] == []


# ---------------------------------------------------------------------------------------------
# Certificates


def test_prod_certificates_name_the_public_hosts_and_keep_the_internal_ones() -> None:
    objects = checks.render("prod")
    public = one(objects, "ConfigMap", "public-endpoints")["data"]
    for component in ("gateway", "query"):
        spec = one(objects, "Certificate", f"{component}-tls")["spec"]
        host = public[component]
        assert "." in host
        assert not host.endswith(".svc")
        assert spec["commonName"] == host
        assert spec["dnsNames"][0] == host
        assert f"{component}.learnerledger.svc" in spec["dnsNames"]
        service = one(objects, "Service", component)
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"] == (
            host
        )
    # Nothing else carries the public names: the one place to change them is that ConfigMap.
    overlay_dir = checks.K8S_DIR / "overlays" / "prod"
    other_files = [p for p in overlay_dir.iterdir() if p.name != "public-endpoints.yaml"]
    for host in public.values():
        assert not [p.name for p in other_files if host in p.read_text()], host


# ---------------------------------------------------------------------------------------------
# PostgreSQL: backups, connections, logins, TLS


def test_prod_takes_scheduled_base_backups_of_the_cluster() -> None:
    objects = checks.render("prod")
    cluster = one(objects, "Cluster", "ledger-pg")
    assert cluster["spec"]["backup"]["barmanObjectStore"]
    (scheduled,) = of_kind(objects, "ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == "ledger-pg"
    assert scheduled["spec"]["method"] == "barmanObjectStore"
    assert len(scheduled["spec"]["schedule"].split()) == 6  # CloudNativePG's cron has seconds
    assert checks.schema_problems([scheduled]) == []


def test_pools_at_maximum_replicas_fit_in_max_connections(overlay: str) -> None:
    demand, usable = checks.connection_budget(checks.render(overlay))
    assert sum(demand.values()) <= usable, (demand, usable)


def test_the_budget_counts_what_the_pools_and_autoscalers_allow() -> None:
    objects = copy.deepcopy(checks.render("prod"))
    one(objects, "HorizontalPodAutoscaler", "query")["spec"]["maxReplicas"] = 40
    demand, usable = checks.connection_budget(objects)
    assert demand["query"] == 40 * 4  # QUERY_POOL_MAX_SIZE 4 in the Deployment
    assert sum(demand.values()) > usable


def test_each_workload_logs_in_to_postgres_as_its_own_role(overlay: str) -> None:
    objects = checks.render(overlay)
    cluster = one(objects, "Cluster", "ledger-pg")["spec"]
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    assert roles["ll_owner"]["login"] is False
    assert cluster["enableSuperuserAccess"] is False
    forbidden = {"ledger-pg-app", "ledger-pg-superuser"}
    logins = []
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        login, groups = DB_LOGINS[name]
        env = env_of(workload)
        assert not forbidden & set(checks._secret_refs(workload)), name
        url = urlsplit(env["DATABASE_URL"]["value"])
        assert url.username == login, name
        assert url.password is None, name  # from PGPASSWORD, never in the URL
        password = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert roles[login]["login"] is True
        assert roles[login]["passwordSecret"]["name"] == password["name"], name
        assert password["key"] == "password"
        assert set(roles[login]["inRoles"]) == groups, name
        assert not roles[login].get("superuser"), name
        logins.append(login)
    assert len(logins) == len(set(logins)) == len(DB_LOGINS)


def test_database_connections_verify_the_server_certificate(overlay: str) -> None:
    objects = checks.render(overlay)
    for workload in workloads(objects):
        url = urlsplit(env_of(workload)["DATABASE_URL"]["value"])
        query = parse_qs(url.query)
        assert url.hostname == "ledger-pg-rw"  # in the CloudNativePG server certificate
        assert query["sslmode"] == ["verify-full"]
        (root_cert,) = query["sslrootcert"]
        assert mounted_secret_file(workload, root_cert) == ("ledger-pg-ca", "ca.crt")


# ---------------------------------------------------------------------------------------------
# Kafka: who may do what


def test_kafka_admits_only_authenticated_users_with_acls(overlay: str) -> None:
    objects = checks.render(overlay)
    kafka = one(objects, "Kafka", "ledger-kafka")["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    for listener in kafka["listeners"]:
        assert listener["tls"] is True, listener["name"]
        assert listener["authentication"]["type"] in ("scram-sha-512", "tls"), listener["name"]
    users = {u["metadata"]["name"]: u["spec"] for u in of_kind(objects, "KafkaUser")}
    for name, expected in ACLS.items():
        spec = users[name]
        assert spec["authentication"]["type"] == "scram-sha-512"
        assert spec["authorization"]["type"] == "simple"
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"], operation)
            for acl in spec["authorization"]["acls"]
            for operation in acl["operations"]
            if acl.get("type", "allow") == "allow"
            and acl["resource"].get("patternType", "literal") == "literal"
        }
        assert granted == expected, name
    keda = {op for acl in users["keda"]["authorization"]["acls"] for op in acl["operations"]}
    assert keda == {"Describe"}


def test_each_kafka_client_uses_its_own_user_and_query_and_migrations_none(
    overlay: str,
) -> None:
    objects = checks.render(overlay)
    user_secrets = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        env = env_of(workload)
        if name not in KAFKA_USERS:
            assert not [n for n in env if n.startswith(("KAFKA_SASL", "KAFKA_SSL"))], name
            assert not user_secrets & set(checks._secret_refs(workload)), name
            continue
        user = KAFKA_USERS[name]
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"]["value"] == user
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user,
            "key": "password",
        }
        ca = env["KAFKA_SSL_CAFILE"]["value"]
        assert mounted_secret_file(workload, ca) == ("ledger-kafka-cluster-ca-cert", "ca.crt")
        assert user_secrets & set(checks._secret_refs(workload)) == {user}, name


def test_keda_logs_in_to_kafka(overlay: str) -> None:
    objects = checks.render(overlay)
    auth = one(objects, "TriggerAuthentication", "kafka-keda")
    parameters = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert parameters["password"]["name"] == "keda"
    assert parameters["ca"]["name"] == "ledger-kafka-cluster-ca-cert"
    for scaled_object in of_kind(objects, "ScaledObject"):
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["authenticationRef"]["name"] == "kafka-keda"
        assert trigger["metadata"]["sasl"] == "scram_sha512"
        assert trigger["metadata"]["tls"] == "enable"


# ---------------------------------------------------------------------------------------------
# Metrics


def test_metrics_stay_off_the_api_services_and_are_scraped_by_podmonitors(overlay: str) -> None:
    objects = checks.render(overlay)
    services = of_kind(objects, "Service")
    monitors = of_kind(objects, "PodMonitor")
    for service in services:
        targets = {p.get("targetPort") for p in service["spec"]["ports"]}
        if "metrics" in targets:
            assert targets == {"metrics"}, checks.name_of(service)
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if "metrics" not in {p.get("name") for p in container(deployment).get("ports", [])}:
            continue
        assert any(
            checks._labels_match(s["spec"]["selector"], labels)
            and {p.get("targetPort") for p in s["spec"]["ports"]} == {"metrics"}
            for s in services
        ), checks.name_of(deployment)
        assert any(
            _podmonitor_selects(m, labels)
            and "metrics" in {e.get("port") for e in m["spec"]["podMetricsEndpoints"]}
            for m in monitors
        ), checks.name_of(deployment)
    kafka = one(objects, "Kafka", "ledger-kafka")["spec"]["kafka"]
    assert kafka["metricsConfig"]["type"] == "strimziMetricsReporter"
    broker_labels = {"strimzi.io/cluster": "ledger-kafka", "strimzi.io/kind": "Kafka"}
    assert any(
        _podmonitor_selects(m, broker_labels)
        and "tcp-prometheus" in {e.get("port") for e in m["spec"]["podMetricsEndpoints"]}
        for m in monitors
    )


def _podmonitor_selects(monitor: Obj, labels: dict[str, str]) -> bool:
    selector = monitor["spec"]["selector"]
    if not checks._labels_match(selector.get("matchLabels") or {}, labels):
        return False
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Namespaces, disruptions, network, gRPC connections


def test_namespaces_enforce_the_restricted_pod_security_standard(overlay: str) -> None:
    (namespace,) = of_kind(checks.render(overlay), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _disruptions_allowed(pdb: Obj, running: int) -> int:
    spec = pdb["spec"]
    if "minAvailable" in spec:
        return max(0, running - int(spec["minAvailable"]))
    return min(running, int(spec["maxUnavailable"]))


def test_a_drain_never_evicts_the_last_running_ledger_pod(overlay: str) -> None:
    objects = checks.render(overlay)
    pdb = one(objects, "PodDisruptionBudget", "ledger")
    minimum = int(one(objects, "ScaledObject", "ledger")["spec"]["minReplicaCount"])
    assert _disruptions_allowed(pdb, 1) == 0
    # ... and at the autoscaler's minimum a drain can still move one pod.
    assert minimum >= 2
    assert minimum - _disruptions_allowed(pdb, minimum) >= 1
    assert _disruptions_allowed(pdb, minimum) >= 1


def test_dns_egress_reaches_the_cluster_dns_and_nodelocal_dnscache(overlay: str) -> None:
    policy = one(checks.render(overlay), "NetworkPolicy", "learner-ledger-egress")
    nodelocal = ipaddress.ip_address("169.254.20.10")
    dns_rules = [
        rule
        for rule in policy["spec"]["egress"]
        if {(p["port"], p["protocol"]) for p in rule["ports"]} >= {(53, "UDP"), (53, "TCP")}
    ]
    blocks = [
        ipaddress.ip_network(peer["ipBlock"]["cidr"])
        for rule in dns_rules
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    assert any(nodelocal in block for block in blocks), blocks
    assert any(
        peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}
        for rule in dns_rules
        for peer in rule["to"]
    )


def test_grpc_servers_get_a_maximum_connection_age(overlay: str) -> None:
    objects = checks.render(overlay)
    data = one(objects, "ConfigMap", "learnerledger-config")["data"]
    age = float(data["GRPC_MAX_CONNECTION_AGE_S"])
    assert 0 < age <= 3600
    assert float(data["GRPC_MAX_CONNECTION_AGE_GRACE_S"]) > 0
    assert "GRPC_MAX_CONNECTION_AGE_S" in checks.settings_env_names(checks.CommonSettings)


# ---------------------------------------------------------------------------------------------
# Environment names against the settings classes


def test_env_check_rejects_names_that_no_settings_class_reads() -> None:
    objects = copy.deepcopy(checks.render("prod"))
    gateway = container(one(objects, "Deployment", "gateway"))
    gateway["env"].append({"name": "GATEWAY_GRPC_PROT", "value": "1"})  # typo
    query = one(objects, "Deployment", "query")["spec"]["template"]["spec"]["containers"][0]
    # A real field of the gateway, but the query API has no mutual TLS: nothing reads it.
    query["env"].append({"name": "QUERY_TLS_CLIENT_CA_FILE", "value": "/ca.crt"})
    one(objects, "ConfigMap", "learnerledger-config")["data"]["TOPIC_COMPLETION"] = "x"
    problems = checks.reference_problems(objects)
    for expected in (
        "Deployment/gateway: env GATEWAY_GRPC_PROT",
        "Deployment/query: env QUERY_TLS_CLIENT_CA_FILE",
        "ConfigMap/learnerledger-config: TOPIC_COMPLETION",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_env_check_knows_every_name_a_settings_class_reads() -> None:
    names = checks.settings_env_names(checks.SERVED_SETTINGS["gateway"])
    assert {"GATEWAY_GRPC_PORT", "GATEWAY_TLS_CLIENT_CA_FILE", "DATABASE_URL"} <= names
    assert {"KAFKA_SASL_USERNAME", "KAFKA_SSL_CAFILE", "KAFKA_SECURITY_PROTOCOL"} <= names
    assert "QUERY_GRPC_PORT" not in names


# ---------------------------------------------------------------------------------------------
# The operator's README


def test_readme_secret_commands_name_the_overlays_namespace() -> None:
    text = (checks.K8S_DIR / "README.md").read_text()
    commands = re.findall(r"kubectl[^`\n]*create secret[^`\n]*", text)
    assert len(commands) >= 4, commands
    for command in commands:
        assert " -n $NS " in command, command
    namespaces = {
        o["metadata"]["name"]
        for overlay in checks.OVERLAYS
        for o in checks.render(overlay)
        if o["kind"] == "Namespace"
    }
    for namespace in namespaces:
        assert f"NS={namespace}" in text, namespace


def test_the_hand_written_schemas_reject_what_the_operators_would() -> None:
    """KafkaUser, ScheduledBackup, TriggerAuthentication and PodMonitor have no schema in the
    shared catalog; tests/deploy/crd-schemas stands in for them (see its README.md)."""
    objects = copy.deepcopy(checks.render("prod"))
    acl = one(objects, "KafkaUser", "gateway")["spec"]["authorization"]["acls"][0]
    acl["operations"] = ["Writ"]
    one(objects, "ScheduledBackup", "ledger-pg-daily")["spec"]["schedul"] = "daily"
    one(objects, "TriggerAuthentication", "kafka-keda")["spec"]["secretTargetRef"][0].pop("key")
    one(objects, "PodMonitor", "learner-ledger")["spec"]["podMetricsEndpoints"][0]["interval"] = 30
    problems = checks.schema_problems(objects)
    for expected in (
        "KafkaUser/gateway: spec.authorization.acls.0.operations.0",
        "ScheduledBackup/ledger-pg-daily: spec",
        "TriggerAuthentication/kafka-keda: spec.secretTargetRef.0",
        "PodMonitor/learner-ledger: spec.podMetricsEndpoints.0.interval",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
