"""The scaled-deployment files: the compose file passes `docker-compose config`, its services are
wired to each other and to infra/dagster/dagster.yaml, and the Helm values use the keys of
Dagster's chart (as its values schema, helm/dagster/schema in dagster-io/dagster, names them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "MINIO_ROOT_PASSWORD": "minio-secret",
    "ARGILLA_PASSWORD": "argilla-secret",
    "ARGILLA_API_KEY": "argilla.apikey",
    "ARGILLA_AUTH_SECRET_KEY": "0" * 64,
}


def _compose(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `make setup` installs Debian's docker-compose (infra/install.sh)"
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    # An empty env file: a developer's infra/.env must not decide what these tests see.
    env_file = tmp_path / "empty.env"
    env_file.touch()
    return subprocess.run([binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """The compose file as `docker-compose config` resolves it (secrets set)."""
    done = _compose("config", env=SECRETS, tmp_path=tmp_path_factory.mktemp("compose"))
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_passes(tmp_path):
    done = _compose("config", "-q", env=SECRETS, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_run_without_secrets(tmp_path):
    done = _compose("config", "-q", env={}, tmp_path=tmp_path)
    assert done.returncode != 0 and "set POSTGRES_PASSWORD" in done.stderr


def test_compose_services_and_wiring(compose):
    services = compose["services"]
    assert {"postgres", "minio", "workbench-api", "workbench-code", "dagster-webserver", "dagster-daemon", "vllm",
            "argilla", "argilla-worker", "elasticsearch", "redis"} <= set(services)

    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert services["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert services["argilla"]["environment"]["ARGILLA_ELASTICSEARCH"] == "http://elasticsearch:9200"
    assert services["argilla"]["environment"]["ARGILLA_REDIS_URL"].startswith("redis://redis:")

    api = services["workbench-api"]["environment"]
    assert api["WORKBENCH_DATABASE_URL"].startswith("postgresql+psycopg://workbench:pg-secret@postgres:5432/")
    assert api["WORKBENCH_LAKE_URI"].startswith("s3://") and api["WORKBENCH_ARTIFACTS_URI"].startswith("s3://")
    assert api["WORKBENCH_S3_ENDPOINT_URL"] == "http://minio:9000"

    # Every variable the instance reads or hands to run containers is set for the daemon.
    instance = yaml.safe_load((INFRA / "dagster" / "dagster.yaml").read_text())
    daemon = services["dagster-daemon"]
    wanted = set(instance["run_launcher"]["config"]["env_vars"]) | set(_env_refs(instance))
    assert wanted <= set(daemon["environment"]), wanted - set(daemon["environment"])
    assert instance["run_launcher"]["class"] == "DockerRunLauncher"
    assert instance["run_launcher"]["config"]["network"] == compose["networks"]["workbench"]["name"]
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["telemetry"]["enabled"] is False
    assert "/var/run/docker.sock:/var/run/docker.sock" in str(daemon["volumes"])

    # The webserver and the daemon load the workspace that points at the code location's gRPC port.
    workspace_arg = daemon["command"][daemon["command"].index("-w") + 1]
    workspace = yaml.safe_load((ROOT / workspace_arg.removeprefix("/opt/workbench/src/")).read_text())
    server = workspace["load_from"][0]["grpc_server"]
    code = services["workbench-code"]["command"]
    assert server["host"] == "workbench-code" and str(server["port"]) == code[code.index("-p") + 1]
    assert code[code.index("-m") + 1] == "assets.definitions"


def test_image_puts_the_instance_where_the_compute_factory_looks():
    dockerfile = (INFRA / "Dockerfile").read_text()
    env = dict(re.findall(r"^\s*(WORKBENCH_HOME|DAGSTER_HOME)=(\S+)", dockerfile, re.MULTILINE))
    assert env["DAGSTER_HOME"] == f"{env['WORKBENCH_HOME']}/dagster"
    assert "COPY infra/dagster/dagster.yaml $DAGSTER_HOME/dagster.yaml" in dockerfile
    assert 'pip install -q -e ".[k8s]"' in dockerfile
    values = yaml.safe_load((INFRA / "helm" / "dagster-values.yaml").read_text())
    assert values["global"]["dagsterHome"] == env["DAGSTER_HOME"]


# Keys of Dagster's chart values (helm/dagster/schema/schema/charts/...): the models forbid others.
USER_DEPLOYMENT_KEYS = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "env",
    "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName",
}
K8S_RUN_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
    "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
    "schedulerName", "securityContext", "runK8sConfig",
}
POSTGRESQL_KEYS = {
    "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase",
    "postgresqlParams", "postgresqlScheme", "service",
}
QUEUED_RUN_COORDINATOR_KEYS = {
    "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueNumWorkers", "dequeueUseThreads",
}


def test_helm_values_use_the_chart_keys():
    values = yaml.safe_load((INFRA / "helm" / "dagster-values.yaml").read_text())

    users = values["dagster-user-deployments"]
    assert users["enabled"] is True
    (deployment,) = users["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
    assert {"repository", "tag", "pullPolicy"} >= set(deployment["image"]) >= {"repository", "tag"}
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "assets.definitions", "-a", "defs"]
    assert isinstance(deployment["port"], int)
    assert {"name": "workbench-env"} in deployment["envSecrets"]

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert set(k8s) <= K8S_RUN_LAUNCHER_KEYS, set(k8s) - K8S_RUN_LAUNCHER_KEYS
    assert {"name": "workbench-env"} in k8s["envSecrets"]

    postgresql = values["postgresql"]
    assert set(postgresql) <= POSTGRESQL_KEYS, set(postgresql) - POSTGRESQL_KEYS
    assert postgresql["enabled"] is False and postgresql["postgresqlHost"] and postgresql["postgresqlDatabase"]
    assert isinstance(postgresql["service"]["port"], int)

    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert set(coordinator["config"]["queuedRunCoordinator"]) <= QUEUED_RUN_COORDINATOR_KEYS

    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert set(concurrency["pools"]) <= {"defaultLimit", "granularity", "opGranularityRunBuffer"}
    assert set(concurrency["runs"]) <= {"maxConcurrentRuns", "tagConcurrencyLimits"}
    # The chart refuses a run limit in both places.
    assert "maxConcurrentRuns" not in coordinator["config"]["queuedRunCoordinator"]

    assert values["telemetry"] == {"enabled": False}
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert "bucket" in values["computeLogManager"]["config"]["s3ComputeLogManager"]


def test_k8s_manifest_for_api_and_vllm():
    docs = list(yaml.safe_load_all((INFRA / "helm" / "workbench.yaml").read_text()))
    by_kind_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert {("Deployment", "workbench-api"), ("Service", "workbench-api"), ("Deployment", "vllm"),
            ("Service", "vllm")} <= set(by_kind_name)
    (api,) = by_kind_name["Deployment", "workbench-api"]["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "workbench-env"}} in api["envFrom"]
    assert api["volumeMounts"][0]["mountPath"] == "/opt/workbench/home/dagster/dagster.yaml"
    (vllm,) = by_kind_name["Deployment", "vllm"]["spec"]["template"]["spec"]["containers"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1


def _env_refs(node) -> list[str]:
    """Names of the variables an instance config reads ({env: NAME} values)."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return [node["env"]]
        return [name for value in node.values() for name in _env_refs(value)]
    if isinstance(node, list):
        return [name for value in node for name in _env_refs(value)]
    return []
