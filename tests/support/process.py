"""``funnelbot run`` as a real process for end-to-end tests: started against the local
Bot API server, waited for, stopped with SIGTERM or killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.botapi import LocalBotAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(message() if callable(message) else message)  # type: ignore[misc]


class BotProcess:
    """One ``funnelbot run``; its output goes to ``log`` (appended over restarts)."""

    def __init__(
        self, workdir: Path, api: LocalBotAPI, token: str, port: int | None = None, **env: str
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log = workdir / "run.log"
        self.env = {
            **os.environ,
            "FUNNELBOT_BOT_TOKEN": token,
            "FUNNELBOT_TELEGRAM_API_URL": api.base_url,
            "FUNNELBOT_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/run.db",
            "FUNNELBOT_HTTP_HOST": "127.0.0.1",
            "FUNNELBOT_HTTP_PORT": str(self.port),
            "FUNNELBOT_TICK_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    def start(self) -> BotProcess:
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from bot.cli import main; main()", "run"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        # A minute: a start imports aiogram and migrates, which on a busy 2-core machine
        # has taken over 30 s.
        wait_for(
            self.healthy, lambda: f"funnelbot run never answered:\n{self.output()}", timeout=60
        )
        return self

    def output(self) -> str:
        """What this run (since the last start) wrote."""
        with self.log.open("rb") as f:
            f.seek(self._log_from)
            return f.read().decode(errors="replace")

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"funnelbot run exited:\n{self.output()}")
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or the OOM killer."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; the exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)
