"""Node samples: host figures, GPUs through a stand-in pynvml, preemption notices (file and SIGTERM),
the sampler thread, and scaling's checks that come before any Dagster call."""

from __future__ import annotations

import os
import signal
import sys
import time
import types

import pytest

from workbench.compute import scaling
from workbench.compute.nodes import NodeSampler, latest_samples, read_node, sample_node
from workbench.config import Settings
from workbench.errors import ValidationFailed
from workbench.services import Services


@pytest.fixture
def services(tmp_path):
    svc = Services(Settings(home=tmp_path / "home"))
    yield svc
    svc.close()


def _fake_nvml(utilizations: list[int]) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.nvmlInit = nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(utilizations)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda i: b"NVIDIA H200"
    nvml.nvmlDeviceGetUtilizationRates = lambda i: types.SimpleNamespace(gpu=utilizations[i], memory=0)
    nvml.nvmlDeviceGetMemoryInfo = lambda i: types.SimpleNamespace(used=(i + 1) * 1024**3, total=4 * 1024**3)
    return nvml


def test_a_sample_without_nvml_has_host_figures_and_null_gpu_fields(services, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    sample = read_node(services.settings)
    assert sample.cpu_count == os.cpu_count() and 0 <= sample.cpu_percent <= 100
    assert sample.memory_total_mb > 0 and 0 < sample.memory_percent <= 100
    assert sample.gpu_count is None and sample.gpus is None and sample.gpu_utilization is None
    assert not sample.preempted and sample.preemption is None


def test_gpus_are_read_through_nvml(services, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([30, 90]))
    sample = sample_node(services)
    assert sample.gpu_count == 2 and sample.gpu_utilization == 60.0
    assert sample.gpu_memory_percent == pytest.approx(100 * 3 / 8)
    assert sample.gpus[1] == {"index": 1, "name": "NVIDIA H200", "utilization": 90.0,
                              "memory_used_mb": 2048.0, "memory_total_mb": 4096.0}  # fmt: skip
    [stored] = latest_samples(services)
    assert stored.gpus == sample.gpus and stored.node == sample.node


def test_a_notice_file_marks_the_sample_preempted(services):
    notice = services.settings.resolved_preemption_notice_file
    notice.write_text("instance-action: stop at 12:00Z\n")
    sample = read_node(services.settings)
    assert sample.preempted and sample.preemption["source"] == "notice_file"
    assert sample.preemption["detail"] == "instance-action: stop at 12:00Z" and sample.preemption["path"] == str(notice)


def test_the_sampler_records_samples_and_a_sigterm_then_hands_the_signal_on(services):
    received: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    sampler = NodeSampler(services, interval_s=0.05)
    try:
        sampler.start()
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not (latest_samples(services) and latest_samples(services)[0].preempted) and time.monotonic() < deadline:
            time.sleep(0.05)
        sampler.stop()
        assert received == [signal.SIGTERM]  # the handler that was there still runs
        [last] = latest_samples(services)
        assert last.preempted and last.preemption["source"] == "signal" and last.preemption["detail"] == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is not sampler._on_signal  # put back on stop
    finally:
        signal.signal(signal.SIGTERM, original)


def test_scale_checks_its_input_and_the_k8s_hook_answers_501():
    settings = Settings(compute_scaler="k8s")
    with pytest.raises(ValidationFailed) as bad:
        scaling.scale(settings, "cpu", -1)
    assert bad.value.field == "size"
    with pytest.raises(ValidationFailed) as bad:
        scaling.scale(settings, "No Pool", 1)
    assert bad.value.field == "pool"
    with pytest.raises(scaling.ScalerUnavailable) as unavailable:
        scaling.scale(settings, "gpu-a100", 4)
    assert unavailable.value.status_code == 501 and "dagster-k8s" in str(unavailable.value)
