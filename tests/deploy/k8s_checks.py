"""Render deploy/k8s/ with kustomize and check every object, offline.

Two kinds of checks, each returning a list of human-readable problems (empty: all good):

- :func:`schema_problems`: every rendered object against a schema. Built-in Kubernetes kinds
  with ``kubernetes-validate`` (strict: unknown fields are errors) for :data:`KUBERNETES_VERSION`;
  the Strimzi, CloudNativePG, KEDA and cert-manager kinds with ``jsonschema`` against those
  projects' own CRD schemas in ``../shared/k8s-crd-schemas`` (``K8S_CRD_SCHEMAS_DIR``
  overrides); for the four custom kinds that catalog lacks (KafkaUser, ScheduledBackup,
  TriggerAuthentication, PodMonitor), hand-written schemas in ``crd-schemas/`` beside this file.
  An object that none covers is a problem too (``kubernetes-validate`` alone would only warn
  about it).
- :func:`reference_problems`: what a schema cannot see: Services that select no pods, probes on
  ports the container does not declare, KEDA triggers and KafkaTopics that do not match the
  topics and consumer groups of ``learnerledger.config``, autoscalers above the partition count,
  Secrets committed with values, and so on.

The tests in this package call both on the rendered overlays, and on broken copies to prove
that the checks fail when they should.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from pydantic import AliasChoices

from learnerledger.config import (
    LEDGER_CONSUMER_GROUP,
    PROJECTOR_CONSUMER_GROUP,
    CommonSettings,
)
from learnerledger.gateway.settings import GatewaySettings
from learnerledger.kafka.topics import topic_specs
from learnerledger.ledger.settings import LedgerSettings
from learnerledger.query.settings import ProjectorSettings, QuerySettings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
#: Hand-written schemas for the custom kinds that the shared catalog lacks (README.md there).
LOCAL_SCHEMAS_DIR = Path(__file__).resolve().parent / "crd-schemas"
OVERLAYS = ("dev", "prod")
#: The Kubernetes version the built-in kinds are validated against (README.md prerequisites).
KUBERNETES_VERSION = "1.34.0"
TOOLS_HINT = "run `bash scripts/k8s_tools.sh` (installs the pinned kustomize into .state/bin)"

Obj = dict[str, Any]

# What each consumer group consumes, and which `ledgerctl serve X` runs it: from the code.
SETTINGS = CommonSettings()
CONSUMERS = {
    LEDGER_CONSUMER_GROUP: (SETTINGS.topic_completions, "ledger"),
    PROJECTOR_CONSUMER_GROUP: (SETTINGS.topic_ledger_entries, "projector"),
}
#: Secrets the manifests reference but that are created outside them (README.md says how),
#: besides the ones cert-manager Certificates, CloudNativePG (``<cluster>-app``, ``<cluster>-ca``)
#: and Strimzi (``<kafka>-cluster-ca-cert``, one per KafkaUser) create.
EXTERNAL_SECRETS = frozenset(
    {
        "ledger-checkpoint-signing-key",
        "query-credential-signing-key",
        "ledger-pg-backup-s3",
        # One PostgreSQL login per workload (Cluster managed.roles passwordSecret).
        "ledger-pg-migrator",
        "ledger-pg-gateway",
        "ledger-pg-ledger",
        "ledger-pg-projector",
        "ledger-pg-query",
        # KEDA's Kafka user name (TriggerAuthentication kafka-keda).
        "kafka-keda-username",
    }
)
#: Services whose pods may be reached from outside the cluster (partners, universities).
PUBLIC_COMPONENTS = frozenset({"gateway", "query"})
#: The settings class each ``ledgerctl serve X`` reads; the migration Job (``db migrate``) and
#: anything else reads CommonSettings.
SERVED_SETTINGS: dict[str | None, type[CommonSettings]] = {
    "gateway": GatewaySettings,
    "ledger": LedgerSettings,
    "query": QuerySettings,
    "projector": ProjectorSettings,
    None: CommonSettings,
}
#: Environment names read by something other than a settings class, and by whom.
RUNTIME_ENV = {
    "METRICS_BIND_ADDRESS": "learnerledger.observability.serve_metrics",
    "PGPASSWORD": "asyncpg (libpq's name), the password of DATABASE_URL's user",
}


def settings_env_names(settings_class: type[CommonSettings]) -> frozenset[str]:
    """Every environment name a settings class reads (pydantic-settings: aliases as given, other
    fields as prefix + field name; case-insensitive, so compared upper-case)."""
    prefix = str(settings_class.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


# ---------------------------------------------------------------------------------------------
# Tools and rendering


class ToolMissing(RuntimeError):
    """kustomize is not installed."""


def schemas_dir() -> Path:
    override = os.environ.get("K8S_CRD_SCHEMAS_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "k8s-crd-schemas"


def kustomize_binary() -> str:
    """``$KUSTOMIZE``, else ``$K8S_TOOLS_BIN/kustomize``, ``.state/bin/kustomize``, PATH."""
    if os.environ.get("KUSTOMIZE"):
        chosen = shutil.which(os.environ["KUSTOMIZE"])
        if chosen is None:
            raise ToolMissing(
                f"KUSTOMIZE={os.environ['KUSTOMIZE']} is not executable; {TOOLS_HINT}"
            )
        return chosen
    candidates = []
    if os.environ.get("K8S_TOOLS_BIN"):
        candidates.append(Path(os.environ["K8S_TOOLS_BIN"]) / "kustomize")
    candidates.append(REPO_ROOT / ".state" / "bin" / "kustomize")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("kustomize")
    if found:
        return found
    raise ToolMissing(f"kustomize not found; {TOOLS_HINT}")


@functools.cache
def _render_text(overlay: str) -> str:
    return _build(K8S_DIR / "overlays" / overlay)


def render_dir(kustomization_dir: Path) -> list[Obj]:
    """The objects of any kustomization (e.g. an edited copy of an overlay)."""
    return [doc for doc in yaml.safe_load_all(_build(kustomization_dir)) if doc]


def _build(kustomization_dir: Path) -> str:
    overlay = kustomization_dir.name
    result = subprocess.run(
        [kustomize_binary(), "build", str(kustomization_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build overlays/{overlay} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[Obj]:
    """The objects of one overlay (a fresh copy each call: callers may mutate it)."""
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def name_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


# ---------------------------------------------------------------------------------------------
# Schemas


def crd_schema_path(obj: Obj) -> Path | None:
    """``<group>/<kind>_<version>.json`` for a custom kind: the operator's own schema from the
    shared catalog; for the few kinds the catalog lacks, the hand-written one of
    :data:`LOCAL_SCHEMAS_DIR` (see its README.md)."""
    api_version = str(obj.get("apiVersion", ""))
    if "/" not in api_version:
        return None
    group, version = api_version.split("/", 1)
    if "." not in group or group.endswith(".k8s.io"):
        return None
    relative = Path(group) / f"{str(obj.get('kind', '')).lower()}_{version}.json"
    shared = schemas_dir() / relative
    if shared.is_file() or not (LOCAL_SCHEMAS_DIR / relative).is_file():
        return shared
    return LOCAL_SCHEMAS_DIR / relative


@functools.cache
def _crd_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(root)"


def schema_problems(objects: Iterable[Obj]) -> list[str]:
    """Every object against the Kubernetes or the operator's schema; unknown kinds fail."""
    problems = []
    for obj in objects:
        label = name_of(obj)
        crd_path = crd_schema_path(obj)
        if crd_path is not None:
            if not crd_path.is_file():
                problems.append(
                    f"{label}: {obj.get('apiVersion')} is validated by neither kubernetes-validate "
                    f"nor a CRD schema (no {crd_path})"
                )
                continue
            for error in sorted(_crd_validator(crd_path).iter_errors(obj), key=str):
                problems.append(f"{label}: {_where(error)}: {error.message} ({crd_path.name})")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{label}: {_where(error)}: {error.message} (Kubernetes schema)")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{label}: {obj.get('apiVersion')} is validated by neither kubernetes-validate "
                f"(Kubernetes {KUBERNETES_VERSION}) nor a CRD schema"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# Cross-references


def _of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") == kind]


def _ns(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _pod_template(workload: Obj) -> Obj:
    return ((workload.get("spec") or {}).get("template")) or {}


def _pod_labels(workload: Obj) -> dict[str, str]:
    return (_pod_template(workload).get("metadata") or {}).get("labels") or {}


def _containers(workload: Obj) -> list[Obj]:
    spec = _pod_template(workload).get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _container_ports(container: Obj) -> tuple[set[int], set[str]]:
    ports = container.get("ports") or []
    return (
        {p["containerPort"] for p in ports if "containerPort" in p},
        {p["name"] for p in ports if "name" in p},
    )


def _port_declared(port: Any, numbers: set[int], names: set[str]) -> bool:
    return port in numbers if isinstance(port, int) else port in names


def _served(workload: Obj) -> str | None:
    """``X`` of ``ledgerctl serve X`` (the image's entrypoint is ledgerctl)."""
    for container in (_pod_template(workload).get("spec") or {}).get("containers") or []:
        args = list(container.get("command") or [])[1:] + list(container.get("args") or [])
        if len(args) >= 2 and args[0] == "serve":
            return str(args[1])
    return None


def _secret_refs(workload: Obj) -> Iterator[str]:
    spec = _pod_template(workload).get("spec") or {}
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            yield volume["secret"]["secretName"]
    for container in _containers(workload):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                yield ref["name"]
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                yield source["secretRef"]["name"]


def _selects(selector: dict[str, str], workloads: list[Obj], namespace: str | None) -> list[Obj]:
    return [w for w in workloads if _ns(w) == namespace and _labels_match(selector, _pod_labels(w))]


def reference_problems(objects: list[Obj]) -> list[str]:
    """Everything that must agree between the objects, and with the code's own settings."""
    problems: list[str] = []
    deployments = _of_kind(objects, "Deployment")
    workloads = deployments + _of_kind(objects, "Job")
    deployment_names = {(_ns(d), d["metadata"]["name"]): d for d in deployments}
    topics = _of_kind(objects, "KafkaTopic")
    topic_by_name = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in topics}
    kafkas = {(_ns(k), k["metadata"]["name"]): k for k in _of_kind(objects, "Kafka")}

    # No Secret is committed; every referenced one has a known creator.
    for secret in _of_kind(objects, "Secret"):
        problems.append(f"{name_of(secret)}: Secrets must not be committed (reference them)")
    known_secrets = set(EXTERNAL_SECRETS)
    known_secrets |= {c["spec"]["secretName"] for c in _of_kind(objects, "Certificate")}
    for cluster in _of_kind(objects, "Cluster"):
        known_secrets |= {f"{cluster['metadata']['name']}-{suffix}" for suffix in ("app", "ca")}
    known_secrets |= {
        f"{k['metadata']['name']}-cluster-ca-cert" for k in _of_kind(objects, "Kafka")
    }
    known_secrets |= {u["metadata"]["name"] for u in _of_kind(objects, "KafkaUser")}
    for auth in _of_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef") or []:
            if ref["name"] not in known_secrets:
                problems.append(
                    f"{name_of(auth)}: Secret {ref['name']!r} is created by nothing known"
                )
    for workload in workloads:
        for secret_name in _secret_refs(workload):
            if secret_name not in known_secrets:
                problems.append(
                    f"{name_of(workload)}: Secret {secret_name!r} is created by nothing known "
                    "(cert-manager, CloudNativePG, or EXTERNAL_SECRETS documented in README.md)"
                )

    # Services select pods, and their target ports exist in those pods.
    for service in _of_kind(objects, "Service"):
        selector = (service.get("spec") or {}).get("selector") or {}
        matched = _selects(selector, workloads, _ns(service))
        if not matched:
            problems.append(f"{name_of(service)}: selector {selector} matches no Deployment's pods")
            continue
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for workload in matched:
                numbers: set[int] = set()
                names: set[str] = set()
                for container in _containers(workload):
                    n, m = _container_ports(container)
                    numbers |= n
                    names |= m
                if not _port_declared(target, numbers, names):
                    problems.append(
                        f"{name_of(service)}: targetPort {target!r} is not a port of "
                        f"{name_of(workload)}"
                    )

    problems += env_name_problems(objects)

    # Probes on declared ports; every Deployment has what production needs.
    for deployment in deployments:
        label = name_of(deployment)
        pod_spec = _pod_template(deployment).get("spec") or {}
        for container in pod_spec.get("containers") or []:
            numbers, names = _container_ports(container)
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe is None:
                    if kind != "startupProbe":
                        problems.append(f"{label}: container {container['name']} has no {kind}")
                    continue
                if kind != "startupProbe" and "grpc" not in probe:
                    problems.append(f"{label}: {kind} is not a native gRPC probe")
                for action in ("grpc", "httpGet", "tcpSocket"):
                    if action in probe and not _port_declared(
                        probe[action].get("port"), numbers, names
                    ):
                        problems.append(
                            f"{label}: {kind} port {probe[action].get('port')!r} is not a "
                            f"port of container {container['name']}"
                        )
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                    problems.append(
                        f"{label}: container {container['name']} lacks cpu/memory {part}"
                    )
        if not pod_spec.get("topologySpreadConstraints"):
            problems.append(f"{label}: no topologySpreadConstraints")
        if int(pod_spec.get("terminationGracePeriodSeconds", 30)) < 30:
            problems.append(f"{label}: terminationGracePeriodSeconds below 30 s")
        if not any(
            _ns(p) == _ns(deployment)
            and _labels_match(
                p["spec"]["selector"].get("matchLabels") or {}, _pod_labels(deployment)
            )
            for p in _of_kind(objects, "PodDisruptionBudget")
        ):
            problems.append(f"{label}: no PodDisruptionBudget covers its pods")

    for pdb in _of_kind(objects, "PodDisruptionBudget"):
        if not _selects(pdb["spec"]["selector"].get("matchLabels") or {}, deployments, _ns(pdb)):
            problems.append(f"{name_of(pdb)}: selector matches no Deployment's pods")

    # Autoscalers: HPAs (CPU) for the APIs, KEDA on lag for the consumers, never both.
    scaled: dict[tuple[str | None, str], str] = {}
    for scaler in _of_kind(objects, "HorizontalPodAutoscaler") + _of_kind(objects, "ScaledObject"):
        ref = scaler["spec"]["scaleTargetRef"]
        key = (_ns(scaler), ref["name"])
        if ref.get("kind", "Deployment") != "Deployment" or key not in deployment_names:
            problems.append(f"{name_of(scaler)}: scaleTargetRef {ref} names no Deployment")
        if key in scaled:
            problems.append(
                f"{name_of(scaler)}: Deployment {ref['name']} is also scaled by {scaled[key]}"
            )
        scaled[key] = name_of(scaler)

    for scaled_object in _of_kind(objects, "ScaledObject"):
        label = name_of(scaled_object)
        spec = scaled_object["spec"]
        target = deployment_names.get((_ns(scaled_object), spec["scaleTargetRef"]["name"]))
        max_replicas = int(spec.get("maxReplicaCount", 100))  # KEDA's default is 100
        for trigger in spec["triggers"]:
            if trigger["type"] != "kafka":
                continue
            meta = trigger["metadata"]
            group, topic = meta.get("consumerGroup"), meta.get("topic")
            if group not in CONSUMERS:
                problems.append(
                    f"{label}: consumerGroup {group!r} is not a group of the code "
                    f"({sorted(CONSUMERS)})"
                )
            else:
                want_topic, want_service = CONSUMERS[group]
                if topic != want_topic:
                    problems.append(
                        f"{label}: group {group!r} consumes {want_topic!r} in the code, "
                        f"the trigger says {topic!r}"
                    )
                if target is not None and _served(target) != want_service:
                    problems.append(
                        f"{label}: scales {name_of(target)} (serve {_served(target)}) but group "
                        f"{group!r} is consumed by `ledgerctl serve {want_service}`"
                    )
            partitions = SETTINGS.topic_partitions
            if topic in topic_by_name:
                partitions = min(partitions, int(topic_by_name[topic]["spec"].get("partitions", 0)))
            if max_replicas > partitions:
                problems.append(
                    f"{label}: maxReplicaCount {max_replicas} exceeds the {partitions} partitions "
                    f"of {topic!r} (idle consumers)"
                )
            if meta.get("allowIdleConsumers", "false") != "false":
                problems.append(f"{label}: allowIdleConsumers must be false")
            if "lagThreshold" not in meta:
                problems.append(f"{label}: kafka trigger without lagThreshold")
            problems += _bootstrap_problems(
                label, meta.get("bootstrapServers", ""), kafkas, _ns(scaled_object)
            )

    # KafkaTopics are exactly the topics of the code, with its partitions and retention.
    specs = {spec.name: spec for spec in topic_specs(SETTINGS)}
    if set(topic_by_name) != set(specs):
        problems.append(
            f"KafkaTopics {sorted(topic_by_name)} != topics the code uses {sorted(specs)}"
        )
    brokers = _broker_count(objects)
    for name, topic in topic_by_name.items():
        label = name_of(topic)
        spec = topic["spec"]
        if name not in specs:
            continue
        if spec.get("partitions") != specs[name].partitions:
            problems.append(
                f"{label}: partitions {spec.get('partitions')} != TOPIC_PARTITIONS "
                f"{specs[name].partitions} of the code"
            )
        config = spec.get("config") or {}
        if int(config.get("retention.ms", 0)) != specs[name].retention_ms:
            problems.append(
                f"{label}: retention.ms {config.get('retention.ms')} != "
                f"{specs[name].retention_ms} (learnerledger.kafka.topics)"
            )
        replicas = int(spec.get("replicas", 0))
        min_isr = int(config.get("min.insync.replicas", 1))
        if replicas > brokers:
            problems.append(f"{label}: replicas {replicas} > {brokers} brokers")
        if replicas > 1 and min_isr >= replicas:
            problems.append(f"{label}: min.insync.replicas {min_isr} leaves no replica to lose")
        cluster = (topic["metadata"].get("labels") or {}).get("strimzi.io/cluster")
        if (_ns(topic), cluster) not in kafkas:
            problems.append(f"{label}: strimzi.io/cluster={cluster!r} names no Kafka")
    for pool in _of_kind(objects, "KafkaNodePool"):
        cluster = (pool["metadata"].get("labels") or {}).get("strimzi.io/cluster")
        if (_ns(pool), cluster) not in kafkas:
            problems.append(f"{name_of(pool)}: strimzi.io/cluster={cluster!r} names no Kafka")

    # The services' settings name the same topics as the code's defaults and the KafkaTopics.
    for config_map in _of_kind(objects, "ConfigMap"):
        data = config_map.get("data") or {}
        expected = {
            "TOPIC_COMPLETIONS": SETTINGS.topic_completions,
            "TOPIC_LEDGER_ENTRIES": SETTINGS.topic_ledger_entries,
            "TOPIC_COMPLETIONS_DLQ": SETTINGS.topic_completions_dlq,
            "TOPIC_LEDGER_CHECKPOINTS": SETTINGS.topic_ledger_checkpoints,
            "TOPIC_PARTITIONS": str(SETTINGS.topic_partitions),
        }
        for setting, value in expected.items():
            if setting in data and data[setting] != value:
                problems.append(
                    f"{name_of(config_map)}: {setting}={data[setting]!r}, the code says {value!r}"
                )
        if "KAFKA_BOOTSTRAP_SERVERS" in data:
            host, _, port = data["KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")
            if not any(
                host in (f"{name}-kafka-bootstrap", f"{name}-kafka-bootstrap.{ns}.svc")
                and int(port) in _listener_ports(kafka)
                for (ns, name), kafka in kafkas.items()
            ):
                problems.append(
                    f"{name_of(config_map)}: KAFKA_BOOTSTRAP_SERVERS "
                    f"{data['KAFKA_BOOTSTRAP_SERVERS']!r} is no SCRAM-SHA-512 TLS listener of a "
                    "Kafka"
                )

    # Certificates cover the names clients use for the Services in front of them.
    problems += _certificate_problems(objects, workloads)
    problems += _network_problems(objects)
    return problems


def _listener_ports(kafka: Obj) -> set[int]:
    """The ports of the listeners clients use: TLS with SCRAM-SHA-512 (KafkaUsers)."""
    return {
        int(listener["port"])
        for listener in kafka["spec"]["kafka"].get("listeners") or []
        if listener.get("tls")
        and (listener.get("authentication") or {}).get("type") == "scram-sha-512"
    }


def env_name_problems(objects: list[Obj]) -> list[str]:
    """Every environment name a workload sets is read by the settings class of what it runs
    (``serve X``), or by a known runtime reader (:data:`RUNTIME_ENV`); ConfigMaps loaded with
    envFrom hold only names that every service reads (CommonSettings)."""
    problems = []
    workloads = _of_kind(objects, "Deployment") + _of_kind(objects, "Job")
    shared = settings_env_names(CommonSettings) | set(RUNTIME_ENV)
    config_maps = {(_ns(c), c["metadata"]["name"]): c for c in _of_kind(objects, "ConfigMap")}
    for workload in workloads:
        served = _served(workload)
        settings_class = SERVED_SETTINGS.get(served)
        if settings_class is None:
            problems.append(
                f"{name_of(workload)}: runs `serve {served}`, a service with no settings"
            )
            continue
        accepted = settings_env_names(settings_class) | set(RUNTIME_ENV)
        for container in _containers(workload):
            for env in container.get("env") or []:
                if env["name"].upper() not in accepted:
                    problems.append(
                        f"{name_of(workload)}: env {env['name']} is read by no field of "
                        f"{settings_class.__name__}"
                    )
            for source in container.get("envFrom") or []:
                ref = source.get("configMapRef")
                config_map = config_maps.get((_ns(workload), ref["name"])) if ref else None
                for key in (config_map or {}).get("data") or {}:
                    if key.upper() not in shared:
                        problems.append(
                            f"{name_of(config_map or {})}: {key} (envFrom of "
                            f"{name_of(workload)}) is read by no field of CommonSettings"
                        )
    return sorted(set(problems))


def _bootstrap_problems(
    label: str, bootstrap: str, kafkas: dict[tuple[str | None, str], Obj], namespace: str | None
) -> list[str]:
    host, _, port = bootstrap.rpartition(":")
    for (ns, name), kafka in kafkas.items():
        if ns == namespace and host in (
            f"{name}-kafka-bootstrap.{ns}.svc",
            f"{name}-kafka-bootstrap.{ns}.svc.cluster.local",
        ):
            if port.isdigit() and int(port) in _listener_ports(kafka):
                return []
            return [
                f"{label}: bootstrapServers port {port!r} is no SCRAM-SHA-512 TLS listener of "
                f"{name}"
            ]
    return [
        f"{label}: bootstrapServers {bootstrap!r} is not <kafka>-kafka-bootstrap.<namespace>.svc "
        "of a Kafka in this namespace (KEDA resolves it from its own namespace)"
    ]


def _broker_count(objects: list[Obj]) -> int:
    return sum(
        int(pool["spec"]["replicas"])
        for pool in _of_kind(objects, "KafkaNodePool")
        if "broker" in pool["spec"].get("roles", [])
    )


def _certificate_problems(objects: list[Obj], workloads: list[Obj]) -> list[str]:
    problems = []
    services = _of_kind(objects, "Service")
    for certificate in _of_kind(objects, "Certificate"):
        secret_name = certificate["spec"]["secretName"]
        users = [w for w in workloads if secret_name in set(_secret_refs(w))]
        if not users:
            problems.append(f"{name_of(certificate)}: Secret {secret_name} is mounted by nothing")
        dns_names = set(certificate["spec"].get("dnsNames") or [])
        for service in services:
            if all(p.get("targetPort") == "metrics" for p in service["spec"].get("ports") or []):
                continue  # plain-HTTP metrics, no TLS
            selector = service["spec"].get("selector") or {}
            if any(w in users for w in _selects(selector, workloads, _ns(service))):
                fqdn = f"{service['metadata']['name']}.{_ns(service)}.svc"
                if fqdn not in dns_names:
                    problems.append(
                        f"{name_of(certificate)}: dnsNames lack {fqdn} (Service in front of it)"
                    )
    return problems


def _is_anywhere(peer: Obj) -> bool:
    """A peer that admits any source: the whole internet, or every namespace."""
    cidr = (peer.get("ipBlock") or {}).get("cidr")
    every_namespace = "namespaceSelector" in peer and not (peer["namespaceSelector"] or {})
    return cidr in ("0.0.0.0/0", "::/0") or every_namespace


def _network_problems(objects: list[Obj]) -> list[str]:
    problems = []
    policies = _of_kind(objects, "NetworkPolicy")
    if not any(
        p["spec"].get("podSelector") in ({}, None)
        and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
        for p in policies
    ):
        problems.append("NetworkPolicy: no default-deny ingress policy for the namespace")
    clusters = {c["metadata"]["name"] for c in _of_kind(objects, "Cluster")}
    for policy in policies:
        label = name_of(policy)
        selector = (policy["spec"].get("podSelector") or {}).get("matchLabels") or {}
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            open_to_all = not peers or any(_is_anywhere(peer) for peer in peers)
            if open_to_all and selector.get("app.kubernetes.io/component") not in PUBLIC_COMPONENTS:
                problems.append(
                    f"{label}: opens {selector or 'every pod'} to any source; only "
                    f"{sorted(PUBLIC_COMPONENTS)} may face the outside"
                )
            if selector.get("cnpg.io/cluster") in clusters:
                for peer in peers or [{}]:
                    pod_labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
                    ns_labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
                    allowed = (
                        (
                            pod_labels.get("app.kubernetes.io/name") == "learner-ledger"
                            and not ns_labels
                        )
                        or (
                            pod_labels.get("cnpg.io/cluster") == selector["cnpg.io/cluster"]
                            and not ns_labels
                        )
                        or ns_labels.get("kubernetes.io/metadata.name")
                        in ("cnpg-system", "monitoring")
                    )
                    if not allowed:
                        problems.append(f"{label}: PostgreSQL reachable from {peer or 'anywhere'}")
    return problems


# ---------------------------------------------------------------------------------------------
# Connection budget

#: Where each `ledgerctl serve X` opens its PostgreSQL pools (``create_pool(..., max_size=N)``).
POOL_SOURCES = {
    "gateway": REPO_ROOT / "services/issuer-gateway/learnerledger/gateway/service.py",
    "ledger": REPO_ROOT / "services/ledger/learnerledger/ledger/service.py",
    "query": REPO_ROOT / "services/query/learnerledger/query/service.py",
    "projector": REPO_ROOT / "services/query/learnerledger/query/projector.py",
}
#: `ledgerctl db migrate` holds one connection; operators' ledgerctl sessions get headroom.
MIGRATION_CONNECTIONS = 1
OPERATOR_HEADROOM = 5
#: PostgreSQL's default superuser_reserved_connections (not for the services' logins).
SUPERUSER_RESERVED = 3
_MAX_SIZE = re.compile(r"create_pool\([^)]*?max_size=([\w.]+)", re.S)


def pool_connections(served: str, env: dict[str, str]) -> int:
    """The connections one process of ``serve X`` may open: the sum of its pools' max_size
    (literals in the code, or the settings field it names, from ``env`` or its default)."""
    total = 0
    settings_class = SERVED_SETTINGS[served]
    prefix = str(settings_class.model_config.get("env_prefix") or "")
    for size in _MAX_SIZE.findall(POOL_SOURCES[served].read_text()):
        if size.isdigit():
            total += int(size)
            continue
        field = size.removeprefix("settings.")
        default = settings_class.model_fields[field].default
        total += int(env.get(f"{prefix}{field}".upper(), default))
    if total == 0:
        raise AssertionError(f"no create_pool(max_size=...) found in {POOL_SOURCES[served]}")
    return total


def _max_replicas(objects: list[Obj], deployment: Obj) -> int:
    name, namespace = deployment["metadata"]["name"], _ns(deployment)
    for scaler in _of_kind(objects, "HorizontalPodAutoscaler"):
        if _ns(scaler) == namespace and scaler["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaler["spec"]["maxReplicas"])
    for scaler in _of_kind(objects, "ScaledObject"):
        if _ns(scaler) == namespace and scaler["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaler["spec"].get("maxReplicaCount", 100))
    return int(deployment["spec"].get("replicas", 1))


def connection_budget(objects: list[Obj]) -> tuple[dict[str, int], int]:
    """(connections per Deployment at its maximum replicas, usable max_connections)."""
    demand: dict[str, int] = {}
    for deployment in _of_kind(objects, "Deployment"):
        served = _served(deployment)
        if served is None:
            continue
        env = {
            e["name"]: e["value"]
            for c in _containers(deployment)
            for e in c.get("env") or []
            if "value" in e
        }
        demand[deployment["metadata"]["name"]] = _max_replicas(
            objects, deployment
        ) * pool_connections(served, env)
    demand["migration Job"] = MIGRATION_CONNECTIONS * len(_of_kind(objects, "Job"))
    demand["operators (ledgerctl)"] = OPERATOR_HEADROOM
    (cluster,) = _of_kind(objects, "Cluster")
    parameters = cluster["spec"].get("postgresql", {}).get("parameters", {})
    usable = int(parameters.get("max_connections", 100)) - int(
        parameters.get("superuser_reserved_connections", SUPERUSER_RESERVED)
    )
    return demand, usable
