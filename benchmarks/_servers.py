"""The loopback servers the benchmark runs against, each in its own process, bounded in time.

- `Nginx`: the system's nginx (when installed) on 127.0.0.1 at a free port, configured in a
  temporary directory: ``/ok`` answers 200 ``ok`` (the happy path), ``/limited/`` is behind
  ``limit_req`` (429 with ``Retry-After: 1`` when the bucket is empty), ``/free/`` serves the
  same file without a limit, and every answer under ``/limited/`` is written to an access log,
  which `Nginx.statuses` counts.
- `FaultProcess`: a `forbear.testing.FaultServer` in a child process (`benchmarks._fault_child`),
  for the scripted faults (an always-503 origin, expiring tokens) and as the rate limiter when
  nginx is absent. Its arrivals log gives the counts.
- `Limiter`: the crawl's rate-limited origin, whichever of the two serves it.

Nothing here listens on any address but 127.0.0.1. Every start and stop has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
#: Longest wait for a server process to start or stop.
START_TIMEOUT = 15.0

_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    log_format bench '$status';
    limit_req_zone $server_name zone=crawl:1m rate={rate}r/s;  # whole requests only
    # Retry-After on the 429s only (an empty value is not sent).
    map $status $retry_after {{ 429 1; default ""; }}
    server {{
        listen {host}:{port};
        server_name bench;
        root {tmp}/www;
        default_type text/plain;
        location = /ok {{ return 200 "ok"; }}
        # The crawl's unlimited twin, for the clients' own ceiling.
        location /free/ {{ try_files /ok.txt =404; }}
        location /limited/ {{
            access_log {tmp}/limited.log bench;
            limit_req zone=crawl burst={burst} nodelay;
            limit_req_status 429;
            add_header Retry-After $retry_after always;
            # try_files runs after limit_req (a `return` would run before it and bypass it).
            try_files /ok.txt =404;
        }}
    }}
}}
"""


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited at start (code {process.returncode})") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen within {START_TIMEOUT:g} s") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=START_TIMEOUT)


def nginx_binary() -> str | None:
    """The nginx executable, when the system has one."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )


def nginx_version(binary: str) -> str:
    """``nginx/1.22.1`` or the like."""
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: nginx/")


class Nginx:
    """nginx on 127.0.0.1: ``/ok`` (200) and ``/limited/`` (``limit_req``, 429 + Retry-After)."""

    def __init__(self, binary: str, *, rate: float, burst: int) -> None:
        self.binary = binary
        self.rate = rate
        self.burst = burst
        self.version = nginx_version(binary)
        self._tmp = Path(tempfile.mkdtemp(prefix="forbear-bench-nginx-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Nginx:
        # Workers may run as another user (nobody): they must read the served file.
        self._tmp.chmod(0o755)
        (self._tmp / "www").mkdir(mode=0o755)
        (self._tmp / "www" / "ok.txt").write_bytes(b"ok")
        (self._tmp / "www" / "ok.txt").chmod(0o644)
        for attempt in range(3):
            port = free_port()
            conf = self._tmp / "nginx.conf"
            conf.write_text(
                _NGINX_CONF.format(
                    tmp=self._tmp, host=HOST, port=port, rate=round(self.rate), burst=self.burst
                )
            )
            command = [self.binary, "-p", str(self._tmp), "-c", str(conf)]
            command += ["-e", str(self._tmp / "error.log")]
            with open(self._tmp / "stderr.log", "ab") as stderr:
                self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                _wait_listening(port, self._process, "nginx")
            except RuntimeError as exc:
                _stop(self._process)
                if attempt == 2:
                    said = (self._tmp / "stderr.log").read_text(errors="replace").strip()
                    self._cleanup()
                    raise RuntimeError(f"{exc}: {said[-500:]}") from None
                continue
            self.url = f"http://{HOST}:{port}"
            return self
        raise AssertionError("unreachable")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            _stop(self._process)
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def statuses(self) -> Counter[int]:
        """Every status answered under ``/limited/`` so far (nginx writes each line at once)."""
        log = self._tmp / "limited.log"
        if not log.exists():
            return Counter()
        return Counter(int(line) for line in log.read_text().split())


class FaultProcess:
    """A `forbear.testing.FaultServer` in a child process, driven by JSON commands."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.url = ""

    def __enter__(self) -> FaultProcess:
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._fault_child"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.url = self._read()["url"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(process)
        if process.stdout is not None:
            process.stdout.close()

    def _read(self) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        line: list[str] = []
        stdout = process.stdout
        # A thread, so a child that never answers costs START_TIMEOUT, not a hang.
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0]:
            raise RuntimeError("the fault server process did not answer in time")
        reply: dict[str, Any] = json.loads(line[0])
        if "error" in reply:
            raise RuntimeError(f"fault server: {reply['error']}")
        return reply

    def command(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and return its reply."""
        with self._lock:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self._process.stdin.flush()
            return self._read()

    def statuses(self, prefix: str) -> Counter[int]:
        """Every status answered under ``prefix`` since the last reset."""
        counts = self.command("counts", prefix=prefix)["statuses"]
        return Counter({int(status): n for status, n in counts.items()})

    def tokens_issued(self) -> int:
        """Tokens issued since the last reset."""
        return int(self.command("counts", prefix="/")["tokens_issued"])


class Limiter:
    """The crawl's origin: ``url + "/limited/..."`` rate-limited at ``rate`` r/s, ``burst``.

    ``url + "/free/..."`` is the same server without the limit (the clients' own ceiling).

    nginx's ``limit_req`` when nginx is given, else the fault server's token bucket (the same
    algorithm, written here). `fresh` starts each run with a full bucket and returns a function
    counting the statuses answered since.
    """

    def __init__(
        self, *, rate: float, burst: int, nginx: Nginx | None, faults: FaultProcess
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._nginx = nginx
        self._faults = faults
        self.server = f"nginx {nginx.version} limit_req" if nginx else "forbear.testing limiter"
        self.url = nginx.url if nginx else faults.url

    def fresh(self) -> Counter[int]:
        """Wait for a full bucket; the statuses counted so far (to subtract later)."""
        if self._nginx is not None:
            # Retry-After is 1 s: a second with no traffic refills the bucket and lets any
            # straggler of the previous run finish.
            time.sleep(1.0)
            return self._nginx.statuses()
        self._faults.command("reset")
        self._faults.command("limit", path="/limited/", rate=self.rate, burst=self.burst)
        return Counter()

    def statuses_since(self, before: Counter[int]) -> Counter[int]:
        """Statuses answered under ``/limited/`` since `fresh` returned ``before``."""
        now = self._nginx.statuses() if self._nginx else self._faults.statuses("/limited/")
        now.subtract(before)
        return +now


@contextlib.contextmanager
def happy_origin(nginx: Nginx | None) -> Iterator[tuple[str, str]]:
    """``(url, server description)`` of a minimal 200 ``ok`` origin in another process."""
    if nginx is not None:
        yield nginx.url + "/ok", f"nginx {nginx.version}"
        return
    from benchmarks import bench_httpx

    with bench_httpx._server() as base:
        yield base + "/ok", "uvicorn (minimal ASGI app)"
