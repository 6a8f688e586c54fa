"""Agents: the base model, model engines, the tool-call protocol and the agent loop.

* :func:`pull_base` converts the packaged SmolLM2-135M-Instruct GGUF into a safetensors
  checkpoint once, with provenance (:class:`BaseModelInfo`).
* Engines share one interface (:class:`Engine`) and are built from typed configs by
  :func:`make_engine` according to ``kind``: ``transformers`` (in-process, the CPU default),
  ``openai`` (any OpenAI-compatible server), ``vllm`` (a vLLM server, LoRA adapters at runtime)
  and ``scripted`` (deterministic replies, for tests).
* The tool-call protocol renders tools into the prompt (:func:`to_prompt_messages`) and reads
  calls and answers back from replies (:func:`parse_tool_output`, which never raises).
* :func:`run_agent_loop` / :func:`run_agent_loops` run episodes to an answer, ``max_steps`` or a
  timeout, keeping token ids and logprobs of every assistant turn.
* :class:`VLLMServer` starts a vLLM OpenAI server from its own venv; :func:`vllm_available`
  says whether one is installed.

Importing this package does not import torch or transformers; engines import them when built.
"""

from workbench.agents._base_model import (
    BASE_MODEL_NAME,
    BaseModelError,
    BaseModelInfo,
    ProgressCallback,
    base_model_dir,
    locate_base_gguf,
    pull_base,
    read_base_model,
)
from workbench.agents._engine import (
    Engine,
    EngineConfig,
    EngineError,
    EngineTimeout,
    engine_kinds,
    make_engine,
    parse_engine_config,
    register_engine,
)
from workbench.agents._loop import (
    AgentEpisode,
    AgentTranscript,
    AgentTurn,
    EndReason,
    ToolFn,
    run_agent_loop,
    run_agent_loops,
)
from workbench.agents._openai_engine import OpenAIEngine, OpenAIEngineConfig, VLLMEngine, VLLMEngineConfig
from workbench.agents._protocol import (
    ParsedOutput,
    ToolProtocol,
    example_messages,
    format_tool_call,
    parse_tool_output,
    render_tools_prompt,
    to_prompt_messages,
)
from workbench.agents._scripted_engine import ScriptedEngine, ScriptedEngineConfig
from workbench.agents._transformers_engine import TransformersEngine, TransformersEngineConfig
from workbench.agents._types import (
    ChatRequest,
    Completion,
    FinishReason,
    Message,
    SamplingParams,
    Timing,
    ToolCall,
    ToolExample,
    ToolResult,
    ToolSpec,
)
from workbench.agents.rollouts import RolloutEpisode, RolloutReport, load_tasks, run_rollouts
from workbench.agents._vllm_server import (
    VLLMServer,
    VLLMServerConfig,
    VLLMServerError,
    default_vllm_venv,
    vllm_available,
)

__all__ = [
    "BASE_MODEL_NAME",
    "AgentEpisode",
    "AgentTranscript",
    "AgentTurn",
    "BaseModelError",
    "BaseModelInfo",
    "ChatRequest",
    "Completion",
    "EndReason",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineTimeout",
    "FinishReason",
    "Message",
    "OpenAIEngine",
    "OpenAIEngineConfig",
    "ParsedOutput",
    "ProgressCallback",
    "SamplingParams",
    "ScriptedEngine",
    "ScriptedEngineConfig",
    "Timing",
    "ToolCall",
    "ToolExample",
    "ToolFn",
    "ToolProtocol",
    "ToolResult",
    "ToolSpec",
    "TransformersEngine",
    "TransformersEngineConfig",
    "VLLMEngine",
    "VLLMEngineConfig",
    "VLLMServer",
    "VLLMServerConfig",
    "VLLMServerError",
    "base_model_dir",
    "default_vllm_venv",
    "engine_kinds",
    "example_messages",
    "format_tool_call",
    "locate_base_gguf",
    "make_engine",
    "parse_engine_config",
    "parse_tool_output",
    "pull_base",
    "read_base_model",
    "register_engine",
    "render_tools_prompt",
    "RolloutEpisode",
    "RolloutReport",
    "load_tasks",
    "run_rollouts",
    "run_agent_loop",
    "run_agent_loops",
    "to_prompt_messages",
    "vllm_available",
]
