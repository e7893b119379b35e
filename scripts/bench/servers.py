"""A server under test as a process of its own: started, waited for until it listens,
and stopped (terminated, then killed if it lingers) whatever happens meanwhile."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def server(
    argv: list[str], env: dict[str, str], port: int, log: Path | None = None
) -> Iterator[None]:
    """Run ``argv`` until the block ends; its output goes to ``log`` (appended), or
    nowhere. Raises SystemExit if it exits or does not listen on ``port`` within 90 s."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(log.open("ab")) if log else subprocess.DEVNULL
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir()
        )
    seen = f": see {log}" if log else ""
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{argv[:3]} exited with {process.returncode}{seen}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[:3]} did not listen on {port}{seen}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
