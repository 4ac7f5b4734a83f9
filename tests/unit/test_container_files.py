"""The container files as issue 19 found them on a real Docker engine: what static checks
can hold. scripts/compose-test.sh runs the same files under load."""

from __future__ import annotations

import re

import pytest
import yaml

from postbox.config import load_settings
from postbox.errors import ConfigError
from tests.unit.test_deploy_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    dotenv,
    load_compose,
    settings_variables,
)

README = ROOT / "README.md"
RUN_MARKER = "<!-- scripts/compose-test.sh runs: {} -->"
BLOCKS = (
    "keys",
    "single",
    "restart",
    "migrate",
    "cluster",
    "scale",
    "stop-api",
    "kill-worker",
    "restart-redis",
)

# Set by the compose file itself, not from .env, and why.
FIXED = {
    "LOG_FORMAT": "json, for the log collector",
    "DATABASE_URL": "the compose network's postgres (its password from .env)",
    "HOST": "the image listens on 0.0.0.0",
    "PORT": "8080, what the load balancer and the health check use",
    "INSTANCE_ID": "the container's host name",
    "METRICS_PORT": "9100 in each worker container",
    "START_EMAIL_WORKER": "false: delivery is the worker service's",
    "EMAIL_WORKER_PROCESSES": "1 per container: scale containers",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "below stop_grace_period",
    "POSTBOX_DEV_INBOX_DIR": "postbox dev only",
}
# Read only by one role.
API_ONLY = frozenset(
    {
        "API_KEYS",
        "API_RATE_LIMIT",
        "API_MAX_QUEUE_WAIT_MS",
        "MAX_REQUEST_BYTES",
        "REDIS_INTAKE_MEMORY_PERCENT",
        "EMAIL_MAX_RECIPIENTS",
        "EMAIL_MAX_SUBJECT_CHARS",
        "EMAIL_MAX_BODY_BYTES",
        "EMAIL_MAX_ATTACHMENT_BYTES",
        "EMAIL_BLOCKED_ATTACHMENT_TYPES",
        "SECRET_KEY",
        "WEB_CONCURRENCY",
    }
)
WORKER_ONLY = frozenset(
    {
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_SECURITY",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SMTP_POOL_SIZE",
        "SMTP_RELAYS",
        "SMTP_ROUTES",
        "SMTP_TIMEOUT_SECONDS",
        "SMTP_CA_FILE",
        "EMAIL_WORKER_CONCURRENCY",
        "EMAIL_RATE_LIMIT",
        "EMAIL_DOMAIN_RATE_LIMITS",
        "EMAIL_SEND_MARK_SECONDS",
        "WEBHOOK_DISPATCHER",
        "WEBHOOK_DISPATCHER_NICE",
        "WEBHOOK_CONCURRENCY",
    }
)


def readme_block(name: str) -> str:
    """The ```sh block the README marks for scripts/compose-test.sh as `name`."""
    marker = RUN_MARKER.format(name)
    text = README.read_text()
    assert marker in text, f"README lost its marker {marker!r}"
    match = re.match(r"\n?```sh\n(.*?)```", text[text.index(marker) + len(marker) :], re.S)
    assert match
    return match.group(1)


def test_compose_file_has_only_keys_compose_1_29_accepts() -> None:
    # Debian bookworm's docker-compose 1.29 refuses a top-level `name:`.
    extra = {key for key in load_compose() if not key.startswith("x-")}
    assert extra <= {"services", "volumes", "networks", "configs", "secrets"}


def test_the_image_is_built_once_and_the_others_run_it() -> None:
    services = load_compose()["services"]
    builders = [name for name, service in services.items() if "build" in service]
    assert builders == ["api"]
    assert services["worker"]["image"] == services["api"]["image"]
    assert services["worker"]["pull_policy"] == "never"


def test_dockerfile_needs_no_frontend_from_docker_hub() -> None:
    first = (ROOT / "Dockerfile").read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first), "BuildKit would pull it: fails offline"


@pytest.mark.parametrize(("service", "other_role"), [("api", WORKER_ONLY), ("worker", API_ONLY)])
def test_every_tuning_variable_reaches_the_containers(
    service: str, other_role: frozenset[str]
) -> None:
    environment = load_compose()["services"][service]["environment"]
    wanted = settings_variables() - set(FIXED) - other_role
    missing = wanted - set(environment)
    assert not missing, f"pass from .env to {service} in docker-compose.yml: {sorted(missing)}"
    for name in wanted - {"API_KEYS", "SMTP_HOST"}:
        assert re.fullmatch(rf"\$\{{{name}(:?-[^}}]*)?\}}", environment[name]), name


def test_fixed_variables_are_really_fixed() -> None:
    for name in ("api", "worker"):
        for variable, value in load_compose()["services"][name]["environment"].items():
            if variable in FIXED:
                assert not value.startswith("${"), f"{variable} is fixed: {FIXED[variable]}"


def test_nginx_config_runs_on_bookworms_nginx_and_retries_sends() -> None:
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    config = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert not re.search(r"\bserver\s+\S+\s+resolve;", config), "needs nginx 1.27.3"
    sends = re.search(r"location /v1/emails \{(.*?)\}", config, re.S)
    assert sends and "non_idempotent" in sends.group(1)
    rest = re.search(r"location / \{(.*?)\}", config, re.S)
    assert rest and "non_idempotent" not in rest.group(1), "a webhook POST is not idempotent"


def test_the_example_api_key_is_refused_with_how_to_make_one() -> None:
    placeholder = dotenv(ENV_EXAMPLE)["API_KEYS"]
    with pytest.raises(ConfigError) as raised:
        load_settings({"API_KEYS": placeholder})
    assert "postbox keys create" in str(raised.value)
    assert placeholder not in str(raised.value)
    k8s_example = yaml.safe_load((ROOT / "k8s" / "base" / "secret.example.yaml").read_text())
    with pytest.raises(ConfigError):
        load_settings({"API_KEYS": k8s_example["stringData"]["API_KEYS"]})


def test_readme_compose_commands_keep_every_scale() -> None:
    block = "".join(readme_block(name) for name in BLOCKS)
    ups = [line for line in block.splitlines() if re.search(r"compose\b.* up\b", line)]
    assert ups
    for line in ups:
        # An `up` without `--scale api=N` sets api back to one replica, mid-load.
        assert "--scale api=" in line and "--scale worker=" in line, line


def test_readme_load_test_needs_only_python_and_defines_its_variables() -> None:
    block = "".join(readme_block(name) for name in BLOCKS)
    assert ".venv/" not in block, "a compose-only set-up has no venv"
    assert "python3 scripts/loadgen.py" in readme_block("cluster")
    assigned = set(re.findall(r"(?m)^(?:export )?([A-Z_]+)=", block))
    assigned |= set(re.findall(r"\$\{([A-Z_]+):-", block))  # with a default
    used = set(re.findall(r"\$\{?([A-Z_]+)", block))
    assert used <= assigned, f"undefined in the README's commands: {sorted(used - assigned)}"


def test_compose_file_mentions_the_test_that_runs_it() -> None:
    assert "scripts/compose-test.sh" in COMPOSE_FILE.read_text()


def test_the_compose_test_runs_every_marked_block() -> None:
    script = (ROOT / "scripts" / "compose-test.sh").read_text()
    for name in BLOCKS:
        readme_block(name)
        assert re.search(rf"(?m)^run_block {name}( \w+)?$", script), name
