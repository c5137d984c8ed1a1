"""Clients that send requests and read none of the answers, against two checkouts side by side.

    mkdir /tmp/before && git archive <commit before> | tar -x -C /tmp/before
    .venv/bin/python bench/send_timeout.py --before /tmp/before --store model_store

Starts `python -m service` from each source tree (its cwd, so each serves its own code) on
127.0.0.1 from the same store, in turn, before first in even rounds and after first in odd ones.
Against each: `--connections` raw sockets with a 4 KiB receive buffer each send `--pipelined`
`GET /openapi.json` (about 44 KB an answer) and read nothing. For `--watch` seconds it polls each
connection's TCP state from the client's side (tcp_info, without reading): how many are still
established, and when the last was reset (a reset reaches the client; a connection the kernel
drops on its own, TCP_USER_TIMEOUT, does not); the server's resident set and the kernel's TCP
memory (/proc/net/sockstat, pages of every TCP socket on the machine: the server's send queues)
while they are held; and how long GET /healthz takes meanwhile. At the end of the watch, the
server's sockets to them in /proc/net/tcp (established, or FIN-WAIT-1: closed by the process,
kept by the kernel with their queue). Then SIGTERM with them still open: the seconds to exit, the
exit status, and the ERROR and WARNING lines of the server's log.

With `--protocol-cost`, first the cost of the change to every request: the CPU time of this
thread per GET through one keep-alive connection of each tree's protocol class (its
service/http_protocol.py, loaded from the tree) into an app that answers at once, as
bench/http_edge.py's in-process figure, in alternating rounds.

Every run is bounded: the connections' requests by `--pipelined`, the watch by `--watch`, the
shutdown by 90 s, the in-process rounds by their count.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.http_edge import _ok, _protocol_round  # noqa: E402
from tests.live_server import ROOT, live_server_process  # noqa: E402

OPENAPI_GET = b"GET /openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
ESTABLISHED = 1
PAGE = 4096


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def kernel_tcp_mb() -> float:
    """Memory of every TCP socket on the machine, from /proc/net/sockstat ("TCP: ... mem N")."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * PAGE / 1e6
    raise RuntimeError("no TCP line")


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def server_sockets(server_port: int) -> dict[str, int]:
    """The server's connected sockets by TCP state (/proc/net/tcp), the listening one left out."""
    names = {"01": "established", "04": "FIN-WAIT-1", "05": "FIN-WAIT-2", "0A": None}
    counts: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _, state = line.split()[1:4]
        name = names.get(state, state)
        if int(local.split(":")[1], 16) == server_port and name is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts


def non_readers(url: str, count: int, pipelined: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect((host, int(port)))
        sock.sendall(OPENAPI_GET * pipelined)
        socks.append(sock)
    return socks


def one_run(tree: Path, store: Path, args: argparse.Namespace) -> dict[str, float]:
    log_path = Path(tempfile.mkdtemp(prefix="send-timeout-")) / "server.log"
    env = {"SEND_TIMEOUT_S": str(args.send_timeout), "LOG_LEVEL": "warning", "DRAIN_S": "0"}
    result: dict[str, float] = {}
    with live_server_process(store, log_path=log_path, cwd=tree, **env) as (url, proc):
        base_rss, base_kernel = resident_mb(proc.pid), kernel_tcp_mb()
        socks = non_readers(url, args.connections, args.pipelined)
        started = time.monotonic()
        time.sleep(0.5)  # written until each socket is full
        result["kernel MB held"] = kernel_tcp_mb() - base_kernel
        result["RSS MB held"] = resident_mb(proc.pid) - base_rss
        healthz = []
        last_reset = float("nan")
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - started < args.watch:
                t = time.monotonic()
                assert client.get(f"{url}/healthz").status_code == 200
                healthz.append(time.monotonic() - t)
                open_now = sum(tcp_state(sock) == ESTABLISHED for sock in socks)
                if open_now == 0 and last_reset != last_reset:  # the first look with none open
                    last_reset = time.monotonic() - started
                time.sleep(0.1)
        result["open at end (client's view)"] = sum(
            tcp_state(sock) == ESTABLISHED for sock in socks
        )
        for state, count in server_sockets(int(url.rsplit(":", 1)[1])).items():
            result[f"server {state} at end"] = count
        result["all reset by s"] = last_reset
        result["healthz ms median"] = 1000 * statistics.median(healthz)
        result["kernel MB at end"] = kernel_tcp_mb() - base_kernel
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            result["exit status"] = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            result["exit status"] = float("nan")
        result["SIGTERM to exit s"] = time.monotonic() - stopped
        for sock in socks:
            sock.close()
    log = log_path.read_text(errors="replace")
    result["ERROR lines"] = sum("ERROR" in line for line in log.splitlines())
    result["edge WARNING lines"] = sum(
        "WARNING service.http_protocol" in line for line in log.splitlines()
    )
    return result


def protocol_cost(trees: dict[str, Path], rounds: int, requests: int) -> None:
    """CPU microseconds per GET through each tree's bounded protocol, alternating round by round."""
    import uvloop

    protocols = {}
    for side, tree in trees.items():
        spec = importlib.util.spec_from_file_location(
            f"{side}_http_protocol", tree / "service" / "http_protocol.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # 60 s for each timeout this tree's HeadLimits takes after the two sizes (the tree before
        # SEND_TIMEOUT_S takes two: the head's and the body's).
        timeouts = [60.0] * (module.HeadLimits.__init__.__code__.co_argcount - 3)
        protocols[side] = module.bounded_http_protocol(module.HeadLimits(32768, 100, *timeouts))
    times: dict[str, list[float]] = {side: [] for side in protocols}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for round_ in range(rounds):
            for side in list(protocols)[:: 1 if round_ % 2 == 0 else -1]:
                times[side].append(runner.run(_protocol_round(protocols[side], _ok, requests)))
    for side, runs in times.items():
        print(f"{side}: {statistics.median(runs):.2f} us CPU a GET (median of {rounds} rounds)")
    ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
    low, _, high = statistics.quantiles(ratios, n=4)
    print(f"after / before: {statistics.median(ratios):.3f} [{low:.3f}-{high:.3f}]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree to compare")
    parser.add_argument("--after", type=Path, default=ROOT, help="source tree (default: this)")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pipelined", type=int, default=200)
    parser.add_argument("--send-timeout", type=float, default=2.0)
    parser.add_argument("--watch", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--protocol-cost", action="store_true", help="first, 22 x 2000 GETs")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.protocol_cost:
        protocol_cost(trees, rounds=22, requests=2000)
    runs: list[tuple[str, dict[str, float]]] = []
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for side in order:
            result = one_run(trees[side], args.store, args)
            runs.append((side, result))
            shown = ", ".join(f"{key} {value:.4g}" for key, value in result.items())
            print(f"round {round_} {side}: {shown}", flush=True)


if __name__ == "__main__":
    main()
