"""The embedded Argilla: argilla-server 2.8.0 in its own cached virtualenv, Redis from Debian, SQLite for the
database and (through our search-engine plugin) for search, all files under the project's state folder.

    .assay/argilla/credentials.json   owner name, password, API key and the auth secret (0600, made once)
    .assay/argilla/server.json        the running supervisor: pid, url, ports (removed on a clean stop)
    .assay/argilla/{argilla.db, search.db, redis/, logs/}

The folder is the user's alone (0700, its files 0600, the children run with umask 077): the database holds
every note pushed and every answer, and the credentials the owner's key.

`serve()` runs in the foreground and supervises three children (redis-server, the rq worker and the HTTP
server); Ctrl-C or `assay review serve --stop` (SIGTERM) stops them all. Anything that keeps it from
starting is one AssayError line: a taken port, no redis-server, a server that exits.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from assay.errors import AssayError
from assay.project import Project
from assay.redact import mask_url

ARGILLA_SERVER = "argilla-server==2.8.0"
# argilla-server's own pins conflict with ours (datasets, huggingface_hub); these resolve and run
SERVER_PINS = (ARGILLA_SERVER, "click<8.2", "huggingface_hub==1.13.0", "datasets==5.0.1")
ENGINE_NAME = "assay-sqlite"
LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
OWNER = "owner"
PRIVATE_UMASK = 0o077


class ReviewServerError(AssayError):
    """The embedded Argilla cannot start or be reached."""


def venv_dir() -> Path:
    base = os.environ.get("ASSAY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "assay"
    return Path(base).expanduser() / "argilla-server-2.8.0"


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """argilla-server's Python, creating its virtualenv on first use (a marker says it finished)."""
    root = venv_dir()
    python = root / "bin" / "python"
    if (root / ".assay-complete").exists():
        return python
    base = shutil.which("python3.11") or sys.executable
    log(f"creating argilla-server's virtualenv in {root} (once; a minute or two)")
    shutil.rmtree(root, ignore_errors=True)
    steps = [[base, "-m", "venv", str(root)],
             [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", "-q",
              *SERVER_PINS]]
    for cmd in steps:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReviewServerError(f"could not create argilla-server's virtualenv at {root}: {last}")
    (root / ".assay-complete").write_text(" ".join(SERVER_PINS) + "\n")
    return python


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, project: Project) -> "Paths":
        return cls(project.state / "argilla")

    credentials = property(lambda self: self.root / "credentials.json")
    runtime = property(lambda self: self.root / "server.json")
    database = property(lambda self: self.root / "argilla.db")
    search = property(lambda self: self.root / "search.db")
    redis = property(lambda self: self.root / "redis")
    logs = property(lambda self: self.root / "logs")


def make_private(root: Path) -> None:
    """`root` and everything in it readable by the user only; files an older assay made with the default
    umask (a world-readable argilla.db) are closed too."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o700)


def credentials(paths: Paths) -> tuple[dict, bool]:
    """The owner's credentials and the auth secret, made once and kept (0600); True when just made."""
    if paths.credentials.exists():
        return json.loads(paths.credentials.read_text()), False
    paths.root.mkdir(parents=True, exist_ok=True)
    creds = {"username": OWNER, "password": secrets.token_urlsafe(12), "api_key": "assay." + secrets.token_urlsafe(32),
             # kept, so a restart does not sign everyone out of the UI
             "auth_secret_key": secrets.token_hex(32)}
    fd = os.open(paths.credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=2)
    return creds, True


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as uvicorn binds: connections of a server that just stopped (TIME_WAIT) do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _log_tail(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    return lines[-1].strip() if lines else "no output"


def running(project: Project | None = None) -> dict | None:
    """The running embedded server's record (url, pid, ports), or None."""
    paths = Paths.of(project or Project.current())
    if not paths.runtime.exists():
        return None
    info = json.loads(paths.runtime.read_text())
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None
    return info


class Supervisor:
    """redis-server, the rq worker and argilla-server, started in that order and stopped together."""

    def __init__(self, project: Project, host: str, port: int, log: Callable[[str], None]):
        self.project, self.host, self.port, self.log = project, host, port, log
        self.paths = Paths.of(project)
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self) -> str:
        if running(self.project):
            raise ReviewServerError(f"an embedded Argilla already runs for {self.project.root} "
                                    f"({running(self.project)['url']}); stop it with `assay review serve --stop`")
        if not _free(self.host, self.port):
            raise ReviewServerError(f"port {self.port} on {self.host} is taken; choose another with --port")
        python = ensure_venv(self.log)
        make_private(self.paths.root)
        creds, new = credentials(self.paths)
        for folder in (self.paths.redis, self.paths.logs):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        redis_port = self._start_redis()
        env = self._env(creds, redis_port)
        migrate = subprocess.run([str(python), str(LAUNCHER), "migrate"], env=env, capture_output=True, text=True,
                                 umask=PRIVATE_UMASK)
        if migrate.returncode != 0:
            last = (migrate.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReviewServerError(f"argilla-server's database migration failed: {last}")
        self._spawn("worker", [str(python), str(LAUNCHER), "worker"], env)
        self._spawn("server", [str(python), str(LAUNCHER), "serve", self.host, str(self.port)], env)
        url = f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"
        self._wait(lambda: _http_ok(url + "/api/v1/status"), "server", 120)
        tmp = self.paths.runtime.with_suffix(".tmp")  # renamed into place: a reader never sees half of it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "url": url, "host": self.host, "port": self.port,
                       "redis_port": redis_port}, fh)
        os.replace(tmp, self.paths.runtime)
        if new:
            self.log(f"owner {creds['username']!r} password {creds['password']!r} api key {creds['api_key']!r} "
                     f"(shown once; kept in {self.paths.credentials}, readable only by you)")
        return url

    def _start_redis(self) -> int:
        if not shutil.which("redis-server"):
            raise ReviewServerError("redis-server is not installed; install it with `apt-get install -y redis-server`")
        port = _any_port()
        self._spawn("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", str(self.paths.redis),
                              "--save", "", "--appendonly", "no", "--protected-mode", "yes"], None)
        self._wait(lambda: _redis_ping(port), "redis", 15)
        return port

    def _env(self, creds: dict, redis_port: int) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env.update({
            "ARGILLA_HOME_PATH": str(self.paths.root),
            "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{self.paths.database}",
            "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "ARGILLA_SEARCH_ENGINE": ENGINE_NAME,
            "ASSAY_ARGILLA_SEARCH_DB": str(self.paths.search),
            "ARGILLA_AUTH_SECRET_KEY": creds["auth_secret_key"],
            # telemetry off (argilla-server reads HF_HUB_DISABLE_TELEMETRY; its own flag is deprecated)
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1",
            "ASSAY_ARGILLA_OWNER_USERNAME": creds["username"], "ASSAY_ARGILLA_OWNER_PASSWORD": creds["password"],
            "ASSAY_ARGILLA_OWNER_API_KEY": creds["api_key"],
        })
        return env

    def _spawn(self, name: str, cmd: list[str], env: dict | None) -> None:
        fd = os.open(self.paths.logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")
        # own process group: a Ctrl-C in the terminal reaches us, and we stop the children in order; umask 077:
        # the database, search index and Redis files they write are the user's only
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, umask=PRIVATE_UMASK)
        self.children.append((name, proc))

    def _wait(self, ready: Callable[[], bool], name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [(n, p) for n, p in self.children if p.poll() is not None]
            if dead:
                n, p = dead[0]
                raise ReviewServerError(f"{n} exited with code {p.returncode} while starting: "
                                        f"{_log_tail(self.paths.logs / f'{n}.log')} (log: {self.paths.logs / n}.log)")
            time.sleep(0.3)
        raise ReviewServerError(f"{name} did not answer within {timeout:.0f}s (log: {self.paths.logs / name}.log)")

    def watch(self) -> None:
        """Block until a child dies (an error) or a signal stops us (Ctrl-C, SIGTERM from --stop)."""
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop["now"]:
            for name, proc in self.children:
                if proc.poll() is not None:
                    raise ReviewServerError(f"{name} exited with code {proc.returncode}: "
                                            f"{_log_tail(self.paths.logs / f'{name}.log')}")
            time.sleep(0.5)

    def stop(self) -> None:
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.children.clear()
        info = json.loads(self.paths.runtime.read_text()) if self.paths.runtime.exists() else {}
        if info.get("pid") == os.getpid():
            self.paths.runtime.unlink()


def serve(project: Project, *, host: str = "127.0.0.1", port: int = 6900, log: Callable[[str], None] = print) -> None:
    """Start the embedded Argilla and keep it up until Ctrl-C or `--stop`."""
    supervisor = Supervisor(project, host, port, log)
    try:
        url = supervisor.start()
        log(f"Argilla is up at {url} (sign in as {OWNER!r}; Ctrl-C or `assay review serve --stop` stops it)")
        supervisor.watch()
    finally:
        supervisor.stop()
    log("Argilla stopped")


def stop(project: Project, timeout: float = 30) -> bool:
    """Stop the running embedded server; False when none was running."""
    info = running(project)
    if info is None:
        return False
    os.kill(info["pid"], signal.SIGTERM)
    runtime = Paths.of(project).runtime  # removed by the supervisor once its children have stopped
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runtime.exists():
            return True
        try:
            os.kill(info["pid"], 0)  # a supervisor that died without cleaning up (an exited, unreaped child
        except ProcessLookupError:  # of whoever started it still answers here, so the file is what counts)
            return True
        time.sleep(0.2)
    raise ReviewServerError(f"the embedded Argilla (pid {info['pid']}) did not stop within {timeout:.0f}s")


def connection(project: Project | None = None) -> tuple[str, str]:
    """(url, api key) of the Argilla to use: ARGILLA_API_URL/ARGILLA_API_KEY, else the running embedded one."""
    url, key = os.environ.get("ARGILLA_API_URL"), os.environ.get("ARGILLA_API_KEY")
    if url:
        if not key:
            raise ReviewServerError(f"ARGILLA_API_URL is {mask_url(url)} but ARGILLA_API_KEY is not set")
        return url.rstrip("/"), key
    project = project or Project.current()
    info = running(project)
    if info is None:
        raise ReviewServerError("no Argilla server: start one with `assay review serve`, "
                                "or set ARGILLA_API_URL and ARGILLA_API_KEY")
    return info["url"], credentials(Paths.of(project))[0]["api_key"]
