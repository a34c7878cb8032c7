"""Throughput of the `openai:` backend against a server with fixed latency and a concurrency cap.

The stub server (tests/openai_stub_server.py, its own process) answers each request after
`--latency` seconds and serves at most `--concurrency` at once, so its capacity is concurrency /
latency requests per second. It measures itself: the seconds its slots were held, the most held at
once, and its own CPU time. The same requests go through the backend (concurrency = the cap) against
a server that rejects what is over the cap with 429, through the backend behind the request cache
(what pipeline stages use: one SQLite commit per answer), one at a time as the baseline, and with a
few more requests in flight than the cap (`--oversubscribe`) against the same server queueing them,
as vLLM, llama.cpp and TGI do.

    python bench/openai_throughput.py --requests 500 --latency 0.05 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

from rolecraft.llm import Message, SamplingParams
from rolecraft.llm.cache import CachedModel, RequestCache
from rolecraft.llm.openai_compat import OpenAIChatModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.openai_stub_server import free_port, spawn  # noqa: E402


async def timed(model, conversations, params, one_at_a_time: bool = False) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds)."""
    start, cpu = time.perf_counter(), time.process_time()
    if one_at_a_time:
        for conversation in conversations:
            await model.generate([conversation], params)
    else:
        done = await model.generate(conversations, params)
        assert len(done) == len(conversations) and all(c.text for c in done)
    return time.perf_counter() - start, time.process_time() - cpu


def stats(port: int, reset: bool = False) -> dict:
    url = f"http://127.0.0.1:{port}/stats"
    answer = httpx.get(url).json()
    if reset:
        httpx.delete(url)
    return answer


async def run(args: argparse.Namespace, ports: dict[str, int], cache_dir: Path) -> list[tuple]:
    """Rows of (label, server, client concurrency, wall seconds, client CPU seconds, server stats)."""
    conversations = [[Message(role="user", content=f"request {i}: tell me about tea")] for i in range(args.requests)]
    params = SamplingParams(max_tokens=16, temperature=0.7, seed=1)
    url = {mode: f"http://127.0.0.1:{port}/v1" for mode, port in ports.items()}
    cap = args.concurrency
    plans = [
        ("backend, concurrent", "reject", cap, False, False),
        ("backend + request cache, concurrent", "reject", cap, True, False),
        ("backend, one request at a time", "reject", 1, False, True),
    ]
    for extra in args.oversubscribe:
        plans.append((f"backend, {extra} more in flight than the cap (server queues them)", "queue", cap + extra, False, False))
    if args.oversubscribe:
        extra = max(args.oversubscribe)
        plans.append((f"backend + request cache, {extra} more in flight", "queue", cap + extra, True, False))

    # Load from other jobs comes and goes: the concurrent plans take turns, `--repeats` times in
    # alternating order, and each row is the run with the median time (the sequential one runs once).
    runs: dict[int, list[tuple]] = {index: [] for index in range(len(plans))}
    order = [i for i, plan in enumerate(plans) if not plan[4]]
    for repeat in range(args.repeats):
        serial_first = [i for i, plan in enumerate(plans) if plan[4]] if repeat == 0 else []
        for index in serial_first + (order if repeat % 2 == 0 else order[::-1]):
            label, mode, concurrency, cached, serial = plans[index]
            model = OpenAIChatModel("stub", base_url=url[mode], concurrency=concurrency)
            await model.generate(conversations[: 2 * concurrency], params)  # warm up connections
            if cached:
                model = CachedModel(model, RequestCache(cache_dir / f"c{index}-{repeat}.sqlite"))
            stats(ports[mode], reset=True)
            seconds, cpu = await timed(model, conversations, params, serial)
            runs[index].append((seconds, cpu, stats(ports[mode])))
    rows = []
    for index, (label, mode, concurrency, _, _) in enumerate(plans):
        median = sorted(runs[index], key=lambda run: run[0])[(len(runs[index]) - 1) // 2]
        rows.append((label, mode, concurrency, *median))
    return rows


def processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def cpu_pressure() -> str:
    """Linux PSI: how contended the CPUs are, which bounds any latency-sensitive measurement here."""
    psi = Path("/proc/pressure/cpu")
    return psi.read_text().split()[1].removeprefix("avg10=") + "%" if psi.exists() else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--oversubscribe", type=lambda v: [int(x) for x in v.split(",") if x], default=[2, 4],
                        help="Extra requests in flight beyond the cap, against a queueing server (comma list; '' for none).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each concurrent row, interleaved; the median is shown.")
    args = parser.parse_args()

    ports = {"reject": free_port(), "queue": free_port()}
    cap_options = ("--latency", str(args.latency), "--max-concurrency", str(args.concurrency))
    servers = [spawn(port, *cap_options, "--over-cap", mode) for mode, port in ports.items()]
    load, pressure = os.getloadavg()[0], cpu_pressure()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(run(args, ports, Path(tmp)))
    finally:
        for server in servers:
            server.terminate()
            server.wait()

    n, cap = args.requests, args.concurrency
    capacity = cap / args.latency
    sequential_s = next(row[3] for row in rows if row[2] == 1)
    print(f"machine: {processor()}, {os.cpu_count()} CPUs, 1-min load average {load:.2f} → {os.getloadavg()[0]:.2f}")
    print(f"CPU pressure at start (share of the last 10 s some task waited for a CPU): {pressure}")
    print(f"server: latency {args.latency * 1000:g} ms, cap {cap} → capacity {capacity:.0f} req/s")
    print(f"{n} requests per row; concurrent rows: median of {args.repeats} interleaved runs\n")
    print(
        "| path | server over the cap | seconds | req/s | of capacity | speedup vs sequential | client CPU/request "
        "| server CPU/request | server slots busy | 429s | peak in flight / serving |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, mode, concurrency, seconds, cpu, seen in rows:
        rate = n / seconds
        print(
            f"| {label} | {mode}s | {seconds:.2f} | {rate:.1f} | {rate / capacity:.3f} | {sequential_s / seconds:.1f}× "
            f"| {cpu / n * 1000:.2f} ms | {seen['cpu_seconds'] / seen['served'] * 1000:.2f} ms "
            f"| {seen['busy_seconds'] / (cap * seconds):.3f} | {seen['statuses'].get('429', 0)} "
            f"| {seen['peak_in_flight']} / {seen['peak_serving']} |"
        )
    # Where the rest goes, measured in this run: a slot held for `service` seconds (the server's own
    # count: latency plus its timer's lateness) is then idle for the round trip until the client's
    # next request arrives; and N requests in slots of C leave the last wave part empty.
    round_trip = sequential_s / n - args.latency
    service = rows[-1][-1]["busy_seconds"] / rows[-1][-1]["served"]
    waves = math.ceil(n / cap)
    print(
        f"\nserver's own service time {service * 1000:.2f} ms per request (latency {args.latency * 1000:g} ms); "
        f"round trip one at a time {round_trip * 1000:.2f} ms; last wave {n / cap - waves + 1:.2f} full."
    )
    print(
        f"ceiling at concurrency = cap: {n / (waves * (service + round_trip)) / capacity:.3f} of capacity; "
        f"with requests queued at the server: {n / (waves * service) / capacity:.3f}"
    )


if __name__ == "__main__":
    main()
