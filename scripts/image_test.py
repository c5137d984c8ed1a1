"""`make image-test`: build the CPU image and run docker-compose.yml the way a user does.

    python3 scripts/image_test.py [--python-image IMAGE] [--port 18000] [--fresh]

Under podman (runc) with Debian's docker-compose talking to podman's Docker-compatible socket;
/etc/containers/containers.conf must exist (scripts/container_host_setup.sh writes it). Without
--python-image the Debian base of scripts/build_base_image.sh is built first when missing (always
with --fresh, the default under CI=true, which also builds the image without the layer cache). Then:
the trainer fills an empty store volume, `api` turns healthy, every endpoint answers through the
published port, a new version copied into the volume is picked up, the open descriptors under many
connections stay far below the container's nofile limit, `docker compose stop` drains and exits 0,
and every process runs as the image's non-root user. Prints the image size and the seconds to
healthy. Any step that fails ends the run non-zero with what it saw; the project is always taken
down (`docker-compose down -v`) at the end.

Stdlib only: it runs with the host's python3 before any venv exists.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "kexue-serve:latest"
BASE_IMAGE = "localhost/python-base:3.11-bookworm"
PROJECT = "kexue-image-test"
SOCKET = Path("/run/kexue-image-test/podman.sock")
ADMIN_TOKEN = "image-test-token"
USER_UID = "10001"  # the Dockerfile's `useradd --uid`
DEMO_MODELS = {"demo-jose", "demo-cln", "demo-qa", "demo-digits"}
# 1 epoch each: the compose run checks the wiring, not the demo models' quality.
DEMO_ARGS = (
    "--jose-epochs 1 --generation-epochs 1 --density-epochs 1 --qa-epochs 1 --qa-questions 800"
)
# Open connections held at once while the descriptors are counted: 4x the 64 callers of
# bench/load.py's top level.
CONNECTIONS = 256


class Failed(Exception):
    """A step of the run did not do what a user expects."""


def say(text: str, stream: TextIO = sys.stdout) -> None:
    stream.write(text + "\n")
    stream.flush()


def step(message: str) -> None:
    say(f"[image-test {time.strftime('%H:%M:%S')}] {message}")


def run(
    *cmd: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False
    )
    if check and done.returncode != 0:
        raise Failed(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def preflight() -> None:
    missing = [tool for tool in ("podman", "runc", "docker-compose") if not shutil.which(tool)]
    if missing:
        raise Failed(f"not installed: {', '.join(missing)} (scripts/container_host_setup.sh)")
    if not Path("/etc/containers/containers.conf").exists():
        raise Failed("/etc/containers/containers.conf missing (scripts/container_host_setup.sh)")
    # A container here may lower its limits, never raise them: docker-compose.yml's 4096 must fit
    # under the hard limits this process passes down to podman and runc.
    for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY and hard < 4096:
            raise Failed(f"hard {name} limit {hard} < the 4096 docker-compose.yml gives the api")


def build_image(python_image: str | None, fresh: bool) -> tuple[float, int]:
    if fresh:  # nothing from an earlier run: the base, the image and its layer cache
        run("podman", "rmi", "--force", IMAGE, BASE_IMAGE, check=False, timeout=600)
    if python_image is None:
        python_image = BASE_IMAGE
        if run("podman", "image", "exists", BASE_IMAGE, check=False).returncode != 0:
            step(f"building the base image {BASE_IMAGE} (debootstrap)")
            started = time.monotonic()
            run("bash", "scripts/build_base_image.sh", timeout=1200)
            step(f"base image built in {time.monotonic() - started:.0f} s")
    step(f"podman build {IMAGE} from {python_image}")
    started = time.monotonic()
    build = subprocess.run(
        # docker format: OCI images drop the Dockerfile's HEALTHCHECK.
        ["podman", "build", "--format", "docker", "--build-arg", f"PYTHON_IMAGE={python_image}",
         *(["--no-cache"] if fresh else []), "-t", IMAGE, "."],
        cwd=ROOT, capture_output=True, text=True, timeout=2400, check=False,
    )  # fmt: skip
    if build.returncode != 0:
        raise Failed(f"podman build failed:\n{build.stdout[-6000:]}\n{build.stderr[-3000:]}")
    seconds = time.monotonic() - started
    size = int(run("podman", "image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    return seconds, size


class PodmanSocket:
    """`podman system service` on a socket of its own: the Docker API docker-compose talks to."""

    def __enter__(self) -> PodmanSocket:
        SOCKET.parent.mkdir(parents=True, exist_ok=True)
        SOCKET.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{SOCKET}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.get("/_ping") == "OK":
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.process.kill()
        raise Failed(f"podman's API socket {SOCKET} did not answer in 30 s")

    def get(self, path: str) -> str:
        connection = http.client.HTTPConnection("localhost", timeout=5)
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(str(SOCKET))
        connection.request("GET", path)
        return connection.getresponse().read().decode()

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Compose:
    def __init__(self, port: int, python_image: str) -> None:
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{SOCKET}",
            "COMPOSE_PROJECT_NAME": PROJECT,
            "PORT": str(port),
            "PYTHON_IMAGE": python_image,
            "DEMO_ARGS": DEMO_ARGS,
            "POLL_INTERVAL_S": "1.0",
            "ADMIN_TOKEN": ADMIN_TOKEN,
        }
        self.env.pop("MODEL_STORE_DIR", None)  # the named volume, empty at first

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run("docker-compose", *args, timeout=timeout, env=self.env)

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"


def inspect(container: str, template: str) -> str:
    return run("podman", "inspect", "--format", template, container).stdout.strip()


def wait_healthy(container: str, timeout: float) -> float:
    """Runs the compose healthcheck the way the engine's timer would (podman runs healthchecks
    from systemd timers, and this machine has no systemd) until it passes."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if inspect(container, "{{.State.Status}}") != "running":
            raise Failed(f"{container} stopped:\n{run('podman', 'logs', container).stderr[-4000:]}")
        run("podman", "healthcheck", "run", container, check=False, timeout=30)
        if inspect(container, "{{.State.Health.Status}}") == "healthy":
            return time.monotonic() - started
        time.sleep(1)
    raise Failed(f"{container} not healthy after {timeout:.0f} s")


def call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_endpoints(base: str) -> list[tuple[str, int]]:
    """Every path of openapi.json once, with a request the demo models answer with 200."""
    status, body = call(f"{base}/v1/models/demo-cln")
    labels = json.loads(body).get("labels") or ["hotel"]
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/demo-jose", None),
        ("POST", "/v1/models/demo-jose/reload", None),
        ("POST", "/v1/embeddings", {"model": "demo-jose",
                                    "input": ["我很喜欢这本书", "服务太差了"]}),
        ("POST", "/v1/qa", {"model": "demo-qa", "question": "张伟住在哪里？",
                            "passages": ["张伟住在北京。张伟的职业是医生。", "李娜住在上海。"]}),
        ("POST", "/v1/generate", {"model": "demo-cln", "condition": {"label": labels[0]},
                                  "num_samples": 2, "max_new_tokens": 8, "seed": 7}),
        ("POST", "/v1/density/score", {"model": "demo-digits", "inputs": [[0.0] * 64, [8.0] * 64]}),
        ("POST", "/v1/density/sample", {"model": "demo-digits", "num_samples": 2, "seed": 1}),
    ]  # fmt: skip
    spec = json.loads((ROOT / "openapi.json").read_text())["paths"]
    covered = {(m, p.replace("demo-jose", "{name}")) for m, p, _ in calls}
    untested = {(m.upper(), p) for p, ops in spec.items() for m in ops} - covered
    if untested:
        raise Failed(f"openapi.json has paths this test does not call: {sorted(untested)}")
    results = []
    for method, path, body in calls:
        token = ADMIN_TOKEN if path.endswith("/reload") else None
        status, answer = call(base + path, method, body, token)
        results.append((f"{method} {path}", status))
        if status != 200:
            raise Failed(f"{method} {path}: {status} {answer[:500]!r}")
    return results


def open_descriptors(container: str) -> int:
    listing = run("podman", "exec", container, "ls", "/proc/1/fd").stdout
    return len(listing.split())


def threads(container: str) -> int:
    status = run("podman", "exec", container, "cat", "/proc/1/status").stdout
    [line] = [x for x in status.splitlines() if x.startswith("Threads:")]
    return int(line.split()[1])


def nofile_limit(container: str) -> int:
    limits = run("podman", "exec", container, "cat", "/proc/1/limits").stdout
    [line] = [x for x in limits.splitlines() if x.startswith("Max open files")]
    return int(line.split()[3])


def descriptors_under_connections(base: str, container: str) -> tuple[int, int]:
    """Descriptors of the server idle, and with CONNECTIONS client connections open at once.
    Then one request on each of them, all in flight together, must be answered 200."""
    idle = open_descriptors(container)
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"model": "demo-jose", "input": ["我很喜欢这本书"]}).encode()
    request = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    failures: list[str] = []

    def exchange(client: socket.socket) -> None:
        try:
            client.sendall(request)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                failures.append(repr(answer[:100]))
        except OSError as error:
            failures.append(repr(error))

    clients = [socket.create_connection((host, int(port)), timeout=120) for _ in range(CONNECTIONS)]
    try:
        # Accepted connections show up as the server's descriptors (uvicorn keeps a connection
        # that has sent nothing yet open).
        deadline = time.monotonic() + 30
        loaded = open_descriptors(container)
        while loaded < idle + CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.5)
            loaded = open_descriptors(container)
        threads = [threading.Thread(target=exchange, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
    finally:
        for client in clients:
            client.close()
    if failures:
        raise Failed(f"{len(failures)} of {CONNECTIONS} requests failed: {failures[:5]}")
    return idle, loaded


def wait_for_version(base: str, model: str, version: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status, body = call(f"{base}/v1/models/{model}")
        if status == 200 and json.loads(body).get("serving_version") == version:
            return time.monotonic() - started
        time.sleep(0.5)
    raise Failed(f"{model} version {version} not served after {timeout:.0f} s: {body[:500]!r}")


def free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python-image", default=None, help=f"default: {BASE_IMAGE}, built here")
    parser.add_argument("--port", type=int, default=18000, help="the published port")
    parser.add_argument(
        "--fresh",
        action="store_true",
        default=os.environ.get("CI") == "true",
        help="rebuild the base and the image from nothing (the default under CI=true)",
    )
    args = parser.parse_args()
    began = time.monotonic()
    report: list[str] = []
    preflight()
    build_seconds, size = build_image(args.python_image, args.fresh)
    report.append(f"image {IMAGE}: {size / 1e6:.0f} MB, built in {build_seconds:.0f} s")
    step(report[-1])
    port = free_port(args.port)
    base = f"http://127.0.0.1:{port}"
    with PodmanSocket():
        compose = Compose(port, args.python_image or BASE_IMAGE)
        compose("down", "-v", "--remove-orphans", timeout=120)  # a run killed half-way
        try:
            report += run_compose(compose, base)
        except Exception:
            for service in ("trainer", "api"):
                logs = run("podman", "logs", compose.container(service), check=False)
                say(f"--- {service} logs ---\n{(logs.stdout + logs.stderr)[-4000:]}")
            raise
        finally:
            compose("down", "-v", "--remove-orphans", timeout=180)
    step("passed")
    for line in report:
        say(f"  {line}")
    say(f"  whole image test: {time.monotonic() - began:.0f} s")
    return 0


def run_compose(compose: Compose, base: str) -> list[str]:
    report = []
    trainer, api = compose.container("trainer"), compose.container("api")
    step("docker-compose up -d (the trainer fills the empty store volume, then api starts)")
    started = time.monotonic()
    compose("up", "-d", timeout=1800)
    up_seconds = time.monotonic() - started
    if (code := inspect(trainer, "{{.State.ExitCode}}")) != "0":
        raise Failed(f"trainer exited {code}")
    trained = run("podman", "exec", api, "ls", "/models").stdout.split()
    if set(trained) != DEMO_MODELS:
        raise Failed(f"store volume holds {trained}, not {sorted(DEMO_MODELS)}")
    report.append(f"trainer: filled the empty store volume with {len(trained)} models")
    healthy = wait_healthy(api, timeout=300)
    report.append(
        f"api healthy {healthy:.1f} s after its start; {up_seconds + healthy:.0f} s after"
        f" `up` (demo training {up_seconds:.0f} s)"
    )
    step(report[-1])

    for endpoint, status in check_endpoints(base):
        report.append(f"{endpoint}: {status}")
    step(f"every endpoint answered 200 through {base}")

    limit = nofile_limit(api)
    idle, loaded = descriptors_under_connections(base, api)
    report.append(
        f"descriptors: {idle} idle, {loaded} with {CONNECTIONS} connections open;"
        f" nofile limit {limit}; {threads(api)} threads (nproc 4096)"
    )
    step(report[-1])
    if loaded < idle + CONNECTIONS or loaded > limit // 2:
        raise Failed(report[-1])

    # An operator's copy of a new version: built under .tmp-, then renamed (models/store.py).
    copy = (
        "cp -r /models/demo-jose/1 /models/demo-jose/.tmp-2"
        " && mv /models/demo-jose/.tmp-2 /models/demo-jose/2"
    )
    compose("exec", "-T", "api", "sh", "-c", copy)
    picked = wait_for_version(base, "demo-jose", 2, timeout=120)
    report.append(f"demo-jose/2 copied into the volume: served {picked:.1f} s later")
    step(report[-1])

    users = run("podman", "top", api, "user", "huser").stdout.split()[2:]
    owners = run("podman", "exec", api, "stat", "-c", "%u", "/models/demo-jose/1").stdout
    trainer_user = inspect(trainer, "{{.Config.User}}")
    if set(users) != {"kexue", USER_UID} or owners.strip() != USER_UID or trainer_user != "kexue":
        raise Failed(f"api users {users}, store owner {owners!r}, trainer user {trainer_user!r}")
    report.append(f"non-root: api runs as kexue (uid {USER_UID}), so did the trainer")

    step("docker-compose stop")
    started = time.monotonic()
    compose("stop", timeout=120)
    code = inspect(api, "{{.State.ExitCode}}")
    logs = run("podman", "logs", api).stderr
    if code != "0" or "SIGTERM: readiness 503" not in logs:
        raise Failed(f"api exit code {code} after stop; log tail:\n{logs[-3000:]}")
    stopped = time.monotonic() - started
    report.append(f"docker-compose stop: drained and exited 0 in {stopped:.1f} s")
    step(report[-1])
    return report


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Failed, subprocess.TimeoutExpired) as error:
        say(f"[image-test] FAILED: {error}", sys.stderr)
        sys.exit(1)
