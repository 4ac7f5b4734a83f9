"""Static checks of the deployment files: Dockerfile, docker-compose.yml, deploy/, k8s/.

No Docker engine or cluster is needed (none is available in CI). The compose file is parsed
and interpolated the way `docker compose` does it, with .env.example as the .env file;
every k8s manifest, and the output of every overlay (rendered by the `kubectl kustomize`
that requirements-dev.txt installs), is validated offline against the Kubernetes JSON
schemas of `kubernetes-validate`. Environment variable names are checked against the names
postbox/config/settings.py actually reads, found by loading settings from an environment
that records every lookup, so the list can never drift from the code.

tests/integration/test_scale.py imports `compose_service` from here to start the compose
topology as local processes with the same commands and environments.
"""

from __future__ import annotations

import base64
import functools
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from postbox.cli import cli
from postbox.config import Settings, load_settings
from postbox.config.redis_cluster import hash_tagged

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod", "prod-managed-redis", "prod-sentinel", "prod-managed-cluster")
# The oldest Kubernetes the manifests claim (the preStop `sleep` action is on by default
# from 1.30) and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Custom resources: not in the Kubernetes schemas, so `check_keda_shape` checks them.
KEDA_KINDS = frozenset({"ScaledObject", "TriggerAuthentication"})
POSTBOX_IMAGE = "postbox"


# ---------------------------------------------------------------- what settings reads


class _RecordingEnviron(Mapping[str, str]):
    """An empty environment that notes every variable name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@functools.cache
def settings_variables() -> frozenset[str]:
    """Every environment variable `load_settings` reads (all defaults, so every branch)."""
    environ = _RecordingEnviron()
    load_settings(environ)
    return frozenset(environ.names)


# ---------------------------------------------------------------- compose


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """`value` with ${VAR}, ${VAR:-default}, ${VAR:?error}, ... replaced as compose does."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = variables.get(name)
        missing = current is None or (op is not None and op.startswith(":") and not current)
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?") and missing:
            raise ValueError(f"compose would stop: {name}: {arg}")
        if op in (":+", "+"):
            return "" if missing else arg
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


@functools.cache
def load_compose() -> dict[str, Any]:
    """docker-compose.yml as data (YAML merge keys resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def postbox_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the Postbox image."""
    return {
        name: service
        for name, service in load_compose()["services"].items()
        if "build" in service or str(service.get("image", "")).startswith(POSTBOX_IMAGE)
    }


def compose_service(name: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment of compose service `name`, interpolated with
    .env.example standing in for .env."""
    service = load_compose()["services"][name]
    variables = dotenv(ENV_EXAMPLE)
    environment = {
        key: interpolate(str(value), variables)
        for key, value in (service.get("environment") or {}).items()
    }
    return list(service["command"]), environment


def _duration_seconds(text: str) -> float:
    """A compose duration such as `75s`, `1m30s` or `500ms`, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_the_settings_recorder_sees_the_settings_module_reads() -> None:
    names = settings_variables()
    assert {"REDIS_URL", "API_KEYS", "SMTP_HOST", "START_EMAIL_WORKER", "INSTANCE_ID"} <= names
    assert "WORKER_SHUTDOWN_GRACE_SECONDS" in names


def test_compose_file_has_the_scale_out_services() -> None:
    services = load_compose()["services"]
    assert set(services) == {
        "redis",
        "postgres",
        "api",
        "lb",
        "worker",
        "mailpit",
        "redis-replica",
        "sentinel",
    }
    assert set(postbox_services()) == {"api", "worker"}


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_commands_are_real_postbox_commands(service: str) -> None:
    command, _ = compose_service(service)
    assert isinstance(command, list), "exec form, so SIGTERM reaches postbox, not a shell"
    program, name, *args = command
    assert program == "postbox"
    assert name in cli.commands, f"{name!r} is not one of {sorted(cli.commands)}"
    cli.commands[name].make_context(name, list(args))  # its options parse


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_environment_sets_only_variables_postbox_reads(service: str) -> None:
    environment = load_compose()["services"][service]["environment"]
    unknown = set(environment) - settings_variables()
    assert not unknown, f"{service} sets variables Postbox never reads: {sorted(unknown)}"
    not_strings = {k: v for k, v in environment.items() if not isinstance(v, str)}
    assert not not_strings, f"quote these, YAML made them non-strings: {not_strings}"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_compose_environment_loads_as_valid_settings(service: str) -> None:
    _, environment = compose_service(service)
    # .env.example's placeholder key is refused on purpose (tests/unit/test_container_files.py).
    settings = load_settings(
        {**environment, "API_KEYS": "k" * 32} if service == "api" else environment
    )
    assert settings.redis.url == "redis://redis:6379/0"
    if service == "api":
        assert settings.worker.start_with_api is False
        assert settings.api.api_key_digests
    else:
        assert settings.worker.processes == 1
        assert settings.smtp.host == "mailpit"


def test_compose_variables_are_documented_in_env_example() -> None:
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    example = ENV_EXAMPLE.read_text()
    undocumented = {name for name in referenced if not re.search(rf"(?m)^#? ?{name}=", example)}
    assert not undocumented, f"add to .env.example: {sorted(undocumented)}"


def test_scalable_services_have_no_fixed_names_or_host_ports() -> None:
    services = load_compose()["services"]
    for name in ("api", "worker"):
        assert "container_name" not in services[name]
        assert "ports" not in services[name], f"{name}: a host port collides when scaled"
    published = {
        name: service["ports"]
        for name, service in services.items()
        if service.get("ports") and not service.get("profiles")
    }
    assert list(published) == ["lb"] and len(published["lb"]) == 1


def test_load_balancer_round_robins_to_the_api_service() -> None:
    lb = load_compose()["services"]["lb"]
    [mount] = lb["volumes"]
    source, target, _ = mount.split(":")
    assert target == "/etc/nginx/nginx.conf"
    config = (ROOT / source).read_text()
    api_port = load_settings({}).api.port
    assert re.search(rf"\bset \$postbox_api api:{api_port};", config)
    assert "resolver 127.0.0.11" in config  # Docker's embedded DNS
    assert "proxy_pass http://$postbox_api;" in config
    assert lb["ports"][0].endswith(":8080") and re.search(r"\blisten 8080;", config)
    max_body = re.search(r"client_max_body_size (\d+)m;", config)
    assert max_body and int(max_body.group(1)) * 2**20 > load_settings({}).api.max_request_bytes


def test_worker_stop_grace_period_outlasts_its_shutdown_grace() -> None:
    worker = load_compose()["services"]["worker"]
    _, environment = compose_service("worker")
    grace = load_settings(environment).worker.shutdown_grace_seconds
    assert _duration_seconds(worker["stop_grace_period"]) >= grace + 10
    # Not the image's API check: the worker's metrics port.
    assert ":9100/metrics" in " ".join(worker["healthcheck"]["test"])


def test_redis_service_persists_with_aof() -> None:
    redis = load_compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert redis["image"] == "redis:7.2"
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["volumes"][0].split(":")[0] in load_compose()["volumes"]


def test_dev_inbox_is_behind_the_dev_profile() -> None:
    mailpit = load_compose()["services"]["mailpit"]
    assert mailpit["profiles"] == ["dev"]
    assert mailpit["image"].startswith("axllent/mailpit:")
    example = dotenv(ENV_EXAMPLE)
    assert (example["SMTP_HOST"], example["SMTP_PORT"]) == ("mailpit", "1025")


def test_dockerfile_layers_user_command_and_healthcheck() -> None:
    lines = _dockerfile_instructions()
    assert lines[0].startswith("FROM python:3.11-slim")
    # Dependencies in their own layer, before the code that changes more often.
    assert (
        lines.index("COPY requirements.txt ./")
        < lines.index("RUN pip install -r requirements.txt")
        < lines.index("COPY postbox /src/postbox")
    )
    [user] = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in {"root", "0"}
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    command = yaml.safe_load(cmd.removeprefix("CMD "))
    assert command[0] == "postbox" and command[1] in cli.commands
    [check] = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in check and "curl" not in check
    probe = yaml.safe_load(check.split(" CMD ", 1)[1])
    assert probe[:2] == ["python", "-c"] and "urllib" in probe[2]
    compile(probe[2], "HEALTHCHECK", "exec")


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "**", "an allow-list: everything is out unless re-included"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {"requirements.txt", "pyproject.toml", "README.md", "postbox"}


def _dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        " ".join(line.split())
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


# ---------------------------------------------------------------- k8s files


def _kustomizations() -> dict[Path, dict[str, Any]]:
    return {
        path: yaml.safe_load(path.read_text()) for path in sorted(K8S.rglob("kustomization.yaml"))
    }


def _referenced_files(key: str) -> set[Path]:
    """Files named by `key` (resources, patches) in any kustomization under k8s/."""
    found = set()
    for path, kustomization in _kustomizations().items():
        for entry in kustomization.get(key) or []:
            name = entry.get("path") if isinstance(entry, dict) else entry
            if name and (path.parent / name).is_file():
                found.add((path.parent / name).resolve())
    return found


def _manifest_files() -> list[Path]:
    """Every YAML file in k8s/ that holds whole objects: not kustomizations, not patches."""
    patches = _referenced_files("patches")
    return [
        path
        for path in sorted(K8S.rglob("*.yaml"))
        if path.name != "kustomization.yaml" and path.resolve() not in patches
    ]


def test_every_k8s_file_is_used_or_an_example() -> None:
    used = _referenced_files("resources") | _referenced_files("patches")
    examples = {path.resolve() for path in K8S.rglob("*.example.yaml")}
    stray = [
        str(path.relative_to(ROOT))
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.resolve() not in used | examples
    ]
    assert not stray, f"not referenced by any kustomization: {stray}"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any network connection: schema validation must work without one."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use during validation: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def validate_objects(objects: list[dict[str, Any]], origin: str) -> None:
    """Schema-check each object for every version in K8S_VERSIONS (CRDs by their shape)."""
    assert objects, f"{origin}: no objects"
    for obj in objects:
        label = f"{origin}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") in KEDA_KINDS:
            check_keda_shape(obj, label)
            continue
        for version in K8S_VERSIONS:
            problem = _schema_problem(obj, version)
            if problem:
                pytest.fail(f"{label} invalid for Kubernetes {version}: {problem}")


def _schema_problem(obj: dict[str, Any], version: str) -> str | None:
    """Why `obj` fails the strict schema of `version` (one line), or None if it passes."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return ".".join(str(part) for part in exc.path) + ": " + str(exc.message)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return str(exc.message)
    return None


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize(
    "path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)) if isinstance(p, Path) else p
)
def test_k8s_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    validate_objects(objects, str(path.relative_to(ROOT)))


@functools.cache
def kustomize(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl kustomize k8s/overlays/<overlay>` renders (offline: local files)."""
    kubectl = Path(sys.executable).parent / "kubectl"
    assert kubectl.exists(), "kubectl is missing: pip install -r requirements-dev.txt"
    result = subprocess.run(
        [str(kubectl), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    objects = kustomize(overlay)
    validate_objects(list(objects), f"overlays/{overlay}")
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, f"mixed namespaces: {namespaces}"


def _containers(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """The Postbox containers of the rendered Deployments, by Deployment name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("postbox-")
    }


def _secret_values(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The rendered Secret's keys, or the example Secret's where the overlay makes none."""
    for obj in objects:
        if obj["kind"] == "Secret" and obj["metadata"]["name"].startswith("postbox-secrets"):
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            return {**data, **(obj.get("stringData") or {})}
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    # Its placeholder API key is refused on purpose: stand in a key somebody made.
    return {**example["stringData"], "API_KEYS": "k" * 32}


def container_environment(objects: tuple[dict[str, Any], ...], name: str) -> dict[str, str]:
    """The environment a container of Deployment `name` starts with."""
    container = _containers(objects)[name]
    config = _find(objects, "ConfigMap", "postbox-config")["data"]
    secrets = _secret_values(objects)
    environment = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "postbox-config"
        environment.update(config)
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif variable["valueFrom"]["secretKeyRef"]["key"] in secrets:
            environment[variable["name"]] = secrets[variable["valueFrom"]["secretKeyRef"]["key"]]
    return environment


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_sets_only_variables_postbox_reads(overlay: str) -> None:
    objects = kustomize(overlay)
    names = set(_find(objects, "ConfigMap", "postbox-config")["data"])
    for container in _containers(objects).values():
        names |= {variable["name"] for variable in container.get("env", [])}
    names |= set(_secret_values(objects))
    unknown = names - settings_variables()
    assert not unknown, f"overlays/{overlay} sets variables Postbox never reads: {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_containers_get_valid_settings(overlay: str) -> None:
    objects = kustomize(overlay)
    api = load_settings(container_environment(objects, "postbox-api"))
    worker = load_settings(container_environment(objects, "postbox-worker"))
    assert api.worker.start_with_api is False and api.api.api_key_digests
    assert worker.worker.processes == 1
    containers = _containers(objects)
    for name, settings in (("postbox-api", api), ("postbox-worker", worker)):
        program, command, *args = containers[name]["command"]
        assert program == "postbox" and command in cli.commands
        cli.commands[command].make_context(command, list(args))
        assert isinstance(settings, Settings)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_api_probes_budget_and_autoscaler(overlay: str) -> None:
    objects = kustomize(overlay)
    deployment = _find(objects, "Deployment", "postbox-api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = _containers(objects)["postbox-api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("Service", "PodDisruptionBudget"):
        spec = _find(objects, kind, "postbox-api")["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), f"{kind} selects no API pod"
    hpa = _find(objects, "HorizontalPodAutoscaler", "postbox-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "postbox-api"
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_worker_grace_period_outlasts_its_drain(overlay: str) -> None:
    objects = kustomize(overlay)
    pod = _find(objects, "Deployment", "postbox-worker")["spec"]["template"]["spec"]
    worker = load_settings(container_environment(objects, "postbox-worker")).worker
    pre_stop = pod["containers"][0].get("lifecycle", {}).get("preStop", {})
    pre_stop_seconds = pre_stop.get("sleep", {}).get("seconds", 0)
    assert "exec" not in pre_stop, "a preStop that signals postbox makes SIGTERM a second signal"
    assert pod["terminationGracePeriodSeconds"] >= (
        pre_stop_seconds + worker.shutdown_grace_seconds + 15
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_queue_autoscaling_watches_the_wait_list(overlay: str) -> None:
    objects = kustomize(overlay)
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    if overlay == "dev":
        assert not scaled, "dev runs without KEDA"
        return
    [scaled_object] = scaled
    spec = scaled_object["spec"]
    assert spec["scaleTargetRef"]["name"] == "postbox-worker"
    assert spec["minReplicaCount"] >= 1, "workers promote delayed jobs: never scale to zero"
    [trigger] = spec["triggers"]
    queue = load_settings(container_environment(objects, "postbox-worker")).redis.queue_name
    if trigger["type"] == "redis-cluster":
        # Its Secret's REDIS_URL is a redis+cluster:// one, which hash-tags the queue's name.
        queue = hash_tagged(queue)
    else:
        assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == f"bull:{queue}:wait"
    redis_services = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "redis"
    ]
    if redis_services:
        namespace = redis_services[0]["metadata"]["namespace"]
        assert trigger["metadata"]["address"] == f"redis.{namespace}.svc.cluster.local:6379"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_redis_is_a_statefulset_with_a_volume_and_aof(overlay: str) -> None:
    objects = kustomize(overlay)
    redis = _find(objects, "StatefulSet", "redis")["spec"]
    args = shlex.join(redis["template"]["spec"]["containers"][0]["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    assert "--maxmemory-policy noeviction" in args
    [claim] = redis["volumeClaimTemplates"]
    mounts = redis["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in mounts
    secret_url = _secret_values(objects)["REDIS_URL"]
    assert secret_url.startswith("redis://redis:6379/")


def test_managed_redis_overlay_drops_the_in_cluster_redis() -> None:
    objects = kustomize("prod-managed-redis")
    assert not [o for o in objects if o["metadata"]["name"] == "redis"]
    [trigger] = _find(objects, "ScaledObject", "postbox-worker")["spec"]["triggers"]
    auth = _find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"][0]["parameter"] == "password"
    assert trigger["metadata"]["enableTLS"] == "true"


# ---------------------------------------------------------------- KEDA (a CRD)


_SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}


def check_keda_shape(obj: dict[str, Any], label: str) -> None:
    """A minimal shape check for KEDA objects, which the Kubernetes schemas do not cover.

    The HPA `behavior` inside a ScaledObject is the Kubernetes type, so it is validated by
    wrapping it in an HPA; trigger metadata values must be strings (KEDA rejects numbers).
    """
    assert obj["apiVersion"] == "keda.sh/v1alpha1", label
    assert isinstance(obj["metadata"]["name"], str), label
    spec = obj["spec"]
    if obj["kind"] == "TriggerAuthentication":
        for ref in spec["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}, label
        return
    assert set(spec) <= _SCALED_OBJECT_SPEC, f"{label}: unknown {set(spec) - _SCALED_OBJECT_SPEC}"
    assert isinstance(spec["scaleTargetRef"]["name"], str), label
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], label
    for trigger in spec["triggers"]:
        metadata = trigger["metadata"]
        assert all(isinstance(v, str) for v in metadata.values()), f"{label}: quote values"
        if trigger["type"] == "redis":
            assert metadata["listLength"].isdigit() and metadata["listName"], label
            assert "address" in metadata or {"host", "port"} <= set(metadata), label
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior:
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "behavior-check"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                "maxReplicas": 1,
                "behavior": behavior,
            },
        }
        validate_objects([hpa], f"{label} (advanced.horizontalPodAutoscalerConfig)")
