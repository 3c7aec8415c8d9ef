"""deploy/k8s renders, validates against the Kubernetes and operator schemas, and agrees with
the code (topics, consumer groups, partitions). See k8s_checks for what is checked and how.

Needs kustomize (``bash scripts/k8s_tools.sh``; missing is a failure, not a skip) and the CRD
schemas in ``../shared/k8s-crd-schemas`` (missing is the only reason to skip).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from learnerledger.config import LEDGER_CONSUMER_GROUP, PROJECTOR_CONSUMER_GROUP, CommonSettings
from tests.deploy import k8s_checks as checks

Obj = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def _prerequisites() -> None:
    if not checks.schemas_dir().is_dir():
        pytest.skip(
            f"CRD schemas not found at {checks.schemas_dir()} "
            "(set K8S_CRD_SCHEMAS_DIR to the k8s-crd-schemas directory)"
        )
    try:
        checks.kustomize_binary()
    except checks.ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module", params=checks.OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def rendered(overlay: str) -> list[Obj]:
    return checks.render(overlay)


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def kinds(objects: list[Obj]) -> set[str]:
    return {o["kind"] for o in objects}


# ---------------------------------------------------------------------------------------------
# The real manifests


def test_overlay_renders_everything_the_issue_asks_for(overlay: str) -> None:
    objects = rendered(overlay)
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "Cluster",
        "Job",
        "NetworkPolicy",
        "ConfigMap",
        "Certificate",
    } <= kinds(objects)
    assert {d["metadata"]["name"] for d in objects if d["kind"] == "Deployment"} == {
        "gateway",
        "ledger",
        "projector",
        "query",
    }
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert len(namespaces) == 1, namespaces
    assert None not in namespaces


def test_every_object_validates_against_its_schema(overlay: str) -> None:
    problems = checks.schema_problems(rendered(overlay))
    assert not problems, "\n".join(problems)


def test_every_object_is_checked_by_some_schema(overlay: str) -> None:
    """No object slips through as 'unknown kind' (kubernetes-validate would only warn)."""
    for obj in rendered(overlay):
        path = checks.crd_schema_path(obj)
        assert path is None or path.is_file(), f"{checks.name_of(obj)}: no schema {path}"


def test_cross_references_agree_with_each_other_and_with_the_code(overlay: str) -> None:
    problems = checks.reference_problems(rendered(overlay))
    assert not problems, "\n".join(problems)


def test_keda_scales_the_consumers_and_hpas_the_apis(overlay: str) -> None:
    objects = rendered(overlay)
    settings = CommonSettings()
    hpa_targets = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in objects
        if h["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpa_targets == {"gateway", "query"}
    triggers = {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"]["triggers"][0]["metadata"]
        for s in objects
        if s["kind"] == "ScaledObject"
    }
    assert triggers["ledger"]["consumerGroup"] == LEDGER_CONSUMER_GROUP
    assert triggers["ledger"]["topic"] == settings.topic_completions
    assert triggers["projector"]["consumerGroup"] == PROJECTOR_CONSUMER_GROUP
    assert triggers["projector"]["topic"] == settings.topic_ledger_entries
    for scaled_object in (o for o in objects if o["kind"] == "ScaledObject"):
        assert scaled_object["spec"]["maxReplicaCount"] <= settings.topic_partitions


def test_prod_is_replicated_and_backed_up() -> None:
    objects = rendered("prod")
    pools = {p["metadata"]["name"]: p["spec"] for p in objects if p["kind"] == "KafkaNodePool"}
    controllers = sum(s["replicas"] for s in pools.values() if "controller" in s["roles"])
    brokers = sum(s["replicas"] for s in pools.values() if "broker" in s["roles"])
    assert controllers >= 3, "a KRaft quorum needs at least 3 controllers"
    assert controllers % 2 == 1, "a KRaft quorum needs an odd number of controllers"
    assert brokers >= 3
    assert all(set(s["roles"]) != {"controller", "broker"} for s in pools.values())
    for topic in (o for o in objects if o["kind"] == "KafkaTopic"):
        assert topic["spec"]["replicas"] == 3, checks.name_of(topic)
        assert int(topic["spec"]["config"]["min.insync.replicas"]) == 2, checks.name_of(topic)
    kafka_config = one(objects, "Kafka", "ledger-kafka")["spec"]["kafka"]["config"]
    assert kafka_config["auto.create.topics.enable"] is False
    assert int(kafka_config["min.insync.replicas"]) == 2
    postgres = one(objects, "Cluster", "ledger-pg")["spec"]
    assert postgres["instances"] >= 3
    assert postgres["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert postgres["backup"]["retentionPolicy"]


def test_dev_runs_kafka_on_one_dual_role_node() -> None:
    objects = rendered("dev")
    pools = [p for p in objects if p["kind"] == "KafkaNodePool"]
    assert len(pools) == 1
    assert set(pools[0]["spec"]["roles"]) == {"controller", "broker"}
    assert all(t["spec"]["replicas"] == 1 for t in objects if t["kind"] == "KafkaTopic")


def test_migration_job_uses_the_services_image_and_runs_migrate(overlay: str) -> None:
    objects = rendered(overlay)
    job = one(objects, "Job", "ledger-migrate")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["db", "migrate"]
    images = {
        c["image"]
        for d in objects
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {container["image"]}
    assert not container["image"].endswith(":latest")


def test_pods_run_unprivileged(overlay: str) -> None:
    for workload in (o for o in rendered(overlay) if o["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, checks.name_of(workload)
        assert pod.get("automountServiceAccountToken") is False, checks.name_of(workload)
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


# ---------------------------------------------------------------------------------------------
# The checks fail on broken manifests


def test_schema_check_fails_on_a_wrong_type_in_a_strimzi_kafka() -> None:
    objects = copy.deepcopy(rendered("prod"))
    kafka = one(objects, "Kafka", "ledger-kafka")
    kafka["spec"]["kafka"]["listeners"][0]["port"] = "9092"  # a string, the schema says integer
    kafka["spec"]["kafka"]["replicas"] = 3  # removed in kafka.strimzi.io/v1 (node pools)
    problems = checks.schema_problems(objects)
    assert any("Kafka/ledger-kafka" in p and "listeners.0.port" in p for p in problems), problems
    assert any("Kafka/ledger-kafka" in p and "replicas" in p for p in problems), problems


def test_schema_check_fails_on_bad_core_and_operator_objects() -> None:
    objects = copy.deepcopy(rendered("prod"))
    one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0][
        "livenessProb"
    ] = {"grpc": {"port": 50061}}  # typo: strict mode rejects unknown fields
    one(objects, "ScaledObject", "ledger")["spec"]["maxReplicaCount"] = "12"
    one(objects, "Cluster", "ledger-pg")["spec"]["backup"]["barmanObjectStore"].pop(
        "destinationPath"
    )
    one(objects, "Certificate", "gateway-tls")["spec"]["issuerRef"] = {"kind": "ClusterIssuer"}
    problems = checks.schema_problems(objects)
    for expected in (
        "Deployment/gateway",
        "ScaledObject/ledger",
        "Cluster/ledger-pg",
        "Certificate/gateway-tls",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_schema_check_fails_on_a_kind_nothing_validates() -> None:
    objects = copy.deepcopy(rendered("dev"))
    objects.append(
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler", "metadata": {"name": "x"}}
    )
    objects.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "y"}})
    objects.append({"apiVersion": "v1", "kind": "Gadget", "metadata": {"name": "z"}})
    problems = checks.schema_problems(objects)
    for expected in ("Pooler/x", "Widget/y", "Gadget/z"):
        assert any(expected in p and "neither" in p for p in problems), (expected, problems)


def test_reference_check_fails_on_broken_cross_references() -> None:
    objects = copy.deepcopy(rendered("prod"))
    one(objects, "Service", "query")["spec"]["selector"]["app.kubernetes.io/component"] = "api"
    gateway = one(objects, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    gateway["readinessProbe"]["grpc"]["port"] = 50099
    ledger = one(objects, "ScaledObject", "ledger")["spec"]
    ledger["maxReplicaCount"] = 24
    ledger["triggers"][0]["metadata"]["consumerGroup"] = "ledger-v2"
    projector = one(objects, "ScaledObject", "projector")["spec"]["triggers"][0]["metadata"]
    projector["topic"] = "ledger.entries.v2"
    one(objects, "KafkaTopic", "completions.dlq.v1")["spec"]["topicName"] = "completions.dead.v1"
    one(objects, "KafkaTopic", "ledger.entries.v1")["spec"]["config"]["retention.ms"] = 604800000
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops"}})
    problems = checks.reference_problems(objects)
    for expected in (
        "Service/query: selector",
        "Deployment/gateway: readinessProbe port 50099",
        "ScaledObject/ledger: maxReplicaCount 24",
        "ScaledObject/ledger: consumerGroup 'ledger-v2'",
        "ScaledObject/projector: group 'projector' consumes 'ledger.entries.v1'",
        "KafkaTopics ['completions.dead.v1'",
        "KafkaTopic/ledger.entries.v1: retention.ms",
        "Secret/oops",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_reference_check_fails_when_internal_pods_face_the_outside() -> None:
    objects = copy.deepcopy(rendered("prod"))
    ledger = one(objects, "NetworkPolicy", "ledger-ingress")["spec"]["ingress"][0]
    ledger["from"] = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    postgres = one(objects, "NetworkPolicy", "postgres-ingress")["spec"]["ingress"]
    postgres.append({"from": [{"namespaceSelector": {}}]})
    problems = checks.reference_problems(objects)
    assert any(p.startswith("NetworkPolicy/ledger-ingress: opens") for p in problems), problems
    assert any(p.startswith("NetworkPolicy/postgres-ingress") for p in problems), problems
