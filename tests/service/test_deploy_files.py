"""The Dockerfile, docker-compose.yml and .env.example, read as files (no Docker engine
runs in CI): the containers start the way CI's smoke run starts funnelbot, with settings
that exist, health checks on what tells readiness, and pinned images."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.http.health import routes
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def services() -> dict[str, Any]:
    return cast(dict[str, Any], compose()["services"])


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, each on one line (continuations joined, comments
    dropped)."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines() if i]


def instructions(name: str) -> list[str]:
    return [i.split(None, 1)[1] for i in dockerfile() if i.split(None, 1)[0] == name]


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def setting_names() -> set[str]:
    return {f"FUNNELBOT_{name.upper()}" for name in Settings.model_fields}


def required_by_compose() -> set[str]:
    """The variables that docker compose refuses to go on without (``${NAME:?…}``)."""
    return set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))


def test_the_containers_start_as_ci_smoke_runs_funnelbot() -> None:
    """migrate, then run: the commands .ci/run's smoke run gives, in that order."""
    assert services()["migrate"]["command"] == ["funnelbot", "migrate"]
    assert services()["app"]["command"] == ["funnelbot", "run"]
    assert instructions("CMD") == [json.dumps(["funnelbot", "run"])]
    ci = (ROOT / ".ci" / "run").read_text()
    smoke = ci[ci.index("smoke_run() {") :]
    assert smoke.index("funnelbot migrate") < smoke.index("funnelbot run")


def test_the_app_waits_for_a_migrated_database_and_redis() -> None:
    everything = services()
    assert set(everything) == {"postgres", "redis", "migrate", "app"}
    assert everything["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert everything["app"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert everything["migrate"]["healthcheck"] == {"disable": True}
    assert everything["migrate"]["restart"] == "no"


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_the_stores_have_health_checks_and_pinned_images(service: str) -> None:
    spec = services()[service]
    assert spec["healthcheck"]["test"][0] == "CMD"
    # A release to the patch (17.6, 7.4.7), never a moving tag such as latest or 17.
    assert re.fullmatch(rf"{service}:\d+\.\d+(\.\d+)?-\w+(@sha256:[0-9a-f]{{64}})?", spec["image"])


def test_both_commands_use_postgresql_and_the_app_redis() -> None:
    for name in ("migrate", "app"):
        env = services()[name]["environment"]
        assert env["FUNNELBOT_DATABASE_URL"].startswith("postgresql+asyncpg://funnelbot:")
        assert env["FUNNELBOT_DATABASE_URL"].endswith("@postgres:5432/funnelbot")
        assert env["FUNNELBOT_REDIS_URL"] == "redis://redis:6379/0"
    app = services()["app"]["environment"]
    assert app["FUNNELBOT_WEBHOOK_URL"].startswith("${")  # webhook mode, from .env
    assert all(spec["env_file"] == ".env" for spec in (services()["app"], services()["migrate"]))


def test_every_variable_named_is_a_setting_and_the_operator_is_told_of_the_required() -> None:
    named = set(env_example()) | {
        name for spec in services().values() for name in spec.get("environment", {})
    }
    named |= set(re.findall(r"FUNNELBOT_\w+", (ROOT / ".env.example").read_text()))
    assert {name for name in named if name.startswith("FUNNELBOT_")} <= setting_names()
    assert required_by_compose() <= set(env_example())


def test_what_env_example_leaves_empty_is_required_or_may_be_empty() -> None:
    """An empty value that compose lets through reaches the settings: it must be valid."""
    for name, value in env_example().items():
        if value or name in required_by_compose():
            continue
        field = name.removeprefix("FUNNELBOT_").lower()
        Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]


def test_the_image_is_pinned_runs_unprivileged_and_installs_from_the_lock() -> None:
    [base] = instructions("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base)
    [user] = instructions("USER")
    assert user.split(":")[0] not in {"0", "root"}
    run = " ; ".join(instructions("RUN"))
    assert "pip install --require-hashes -r requirements.lock" in run
    assert "pip install --no-deps" in run
    assert "requirements.lock" in (ROOT / ".dockerignore").read_text()


def test_the_image_health_check_asks_if_the_service_is_ready() -> None:
    [check] = instructions("HEALTHCHECK")
    assert "/readyz" in check and "/healthz" not in check
    paths = {getattr(route, "path", None) for route in routes(cast(AsyncEngine, None)).routes}
    assert "/readyz" in paths


def _packaged(relative: str, globs: list[str]) -> bool:
    """Whether setuptools' ``package-data`` globs take the file (``*`` within one folder)."""
    parts = relative.split("/")
    return any(
        len(g.split("/")) == len(parts)
        and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, g.split("/"), strict=True))
        for g in globs
    )


def test_every_file_the_code_reads_beside_it_is_installed_with_it() -> None:
    """The image installs the packages (``pip install .``), not the tree: a template,
    locale, script or static file that no ``package-data`` glob names would be missing
    there (a favicon 404, a page that cannot render) and nowhere else."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs: dict[str, list[str]] = data["package-data"]
    missing = [
        f"{package}/{path.relative_to(ROOT / package).as_posix()}"
        for package in ("bot", "funnels", "storage", "migrations")
        for path in sorted((ROOT / package).rglob("*"))
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not _packaged(path.relative_to(ROOT / package).as_posix(), globs.get(package, []))
    ]
    assert not missing, f"add to [tool.setuptools.package-data]: {missing}"
