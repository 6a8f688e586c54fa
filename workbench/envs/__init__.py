"""Environment Factory: scenarios, sandboxed runs with step and trace, checkers, replay.

Quick start::

    import workbench.envs as envs

    scenario = envs.load_scenario("scenarios/hello.yaml")
    env = envs.make(scenario, seed=0, sink=print)
    obs, info = env.reset()
    obs, reward, terminated, truncated, info = env.step({"tool": "echo", "arguments": {"text": "hello"}})
    obs, reward, terminated, truncated, info = env.step({"answer": "hello"})
    env.result.status      # "success"
    envs.replay(env.trace())["identical"]   # True

Scenario families generate many tasks: ``envs.load_family("scenarios/calculator.yaml").generate("test")``.
Importing this package loads neither Playwright nor Gymnasium; browser and gym environments
import them when first made.
"""

from workbench.envs._browser import BrowserEnv, BrowserHost, default_browser_host
from workbench.envs._checkers import Verdict
from workbench.envs._env import (
    Env,
    RunFinished,
    RunNotStarted,
    RunResult,
    RunStatus,
    ToolEnv,
    make,
)
from workbench.envs._events import EVENT_KINDS, Sink
from workbench.envs._gym import GymEnv, parse_gym_action
from workbench.envs._library import (
    FamilySpec,
    LibraryEntry,
    default_scenarios_dir,
    find_scenario,
    load_family,
    load_file,
    load_library,
    load_scenario,
    reference_errors,
    show,
    validate_file,
)
from workbench.envs._policies import OraclePolicy, RandomPolicy, run_episode
from workbench.envs._quota import QuotaExceeded, RunQuota
from workbench.envs._registry import (
    Family,
    checker,
    list_families,
    family,
    get_family,
    registered_checkers,
    registered_tools,
    split_of,
    tool,
)
from workbench.envs._replay import replay
from workbench.envs._sandbox import Sandbox, SandboxError
from workbench.envs._spec import (
    Action,
    BrowserConfig,
    GymConfig,
    Limits,
    McpServer,
    McpToolRef,
    Oracle,
    PythonChecker,
    RouteSpec,
    Scenario,
    ScenarioInvalid,
    ToolSpec,
    canonical_json,
    parse_scenario,
    validation_errors,
)
from workbench.envs._worker import Context

__all__ = [
    "EVENT_KINDS",
    "Action",
    "BrowserConfig",
    "BrowserEnv",
    "BrowserHost",
    "Context",
    "Env",
    "Family",
    "FamilySpec",
    "GymConfig",
    "GymEnv",
    "LibraryEntry",
    "Limits",
    "McpServer",
    "McpToolRef",
    "Oracle",
    "OraclePolicy",
    "PythonChecker",
    "QuotaExceeded",
    "RandomPolicy",
    "RouteSpec",
    "RunFinished",
    "RunNotStarted",
    "RunQuota",
    "RunResult",
    "RunStatus",
    "Sandbox",
    "SandboxError",
    "Scenario",
    "ScenarioInvalid",
    "Sink",
    "ToolEnv",
    "ToolSpec",
    "Verdict",
    "canonical_json",
    "checker",
    "default_browser_host",
    "default_scenarios_dir",
    "family",
    "find_scenario",
    "get_family",
    "list_families",
    "load_family",
    "load_file",
    "load_library",
    "load_scenario",
    "make",
    "parse_gym_action",
    "parse_scenario",
    "reference_errors",
    "registered_checkers",
    "registered_tools",
    "replay",
    "run_episode",
    "show",
    "split_of",
    "tool",
    "validate_file",
    "validation_errors",
]
