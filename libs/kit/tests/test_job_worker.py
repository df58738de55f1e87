"""What a service's worker composition root takes from the kit: its settings, the parts
its jobs use while the broker runs, the port of each worker process's /metrics."""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from emporium_kit.jobs import WorkerParts, worker_metrics_port
from emporium_kit.settings import JobsSettings


class ShopSettings(JobsSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore")

    jobs_queue: str = Field(default="shop.jobs", min_length=1, max_length=200)
    worker_metrics_port: int = Field(default=9150, ge=0, le=65535)


def test_the_jobs_settings_are_read_with_the_services_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_WORKER_PROCESSES", "3")
    monkeypatch.setenv("SHOP_JOBS_RETRY_MAX_SECONDS", "5")
    monkeypatch.setenv("WORKER_PROCESSES", "9")  # another service's, unprefixed: not read

    settings = ShopSettings()

    assert settings.worker_processes == 3
    assert settings.jobs_retry_max_seconds == 5.0
    assert settings.jobs_queue == "shop.jobs"
    assert settings.worker_metrics_port == 9150
    assert settings.worker_concurrency == 10
    assert settings.prune_messages_after_days == 7


@pytest.mark.parametrize(
    ("variable", "value"), [("SHOP_WORKER_PROCESSES", "0"), ("SHOP_JOBS_QUEUE", "")]
)
def test_jobs_settings_out_of_bounds_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError):
        ShopSettings()


def test_a_service_must_name_its_job_queue() -> None:
    class Nameless(JobsSettings):
        model_config = SettingsConfigDict(env_prefix="NAMELESS_", extra="ignore")

    with pytest.raises(ValidationError, match="jobs_queue"):
        Nameless(worker_metrics_port=0)


def test_the_parts_are_there_only_while_the_worker_runs() -> None:
    parts: WorkerParts[str] = WorkerParts("shop")
    with pytest.raises(RuntimeError, match="the shop worker has not started"):
        parts.get()

    parts.start("engine")
    assert parts.get() == "engine"

    assert parts.stop() == "engine"
    assert parts.stop() is None
    with pytest.raises(RuntimeError, match="has not started"):
        parts.get()


@pytest.mark.parametrize(
    ("process_name", "port", "expected"),
    [
        ("MainProcess", 9150, 9150),  # outside taskiq's process manager
        ("worker-0", 9150, 9150),
        ("worker-3", 9150, 9153),  # process i of several serves on the port + i
        ("worker-3", 0, 0),  # no /metrics at all
        ("worker-x", 9150, 9150),
    ],
)
def test_each_worker_process_serves_metrics_on_a_port_of_its_own(
    monkeypatch: pytest.MonkeyPatch, process_name: str, port: int, expected: int
) -> None:
    monkeypatch.setattr(
        multiprocessing, "current_process", lambda: SimpleNamespace(name=process_name)
    )

    assert worker_metrics_port(ShopSettings(worker_metrics_port=port)) == expected
