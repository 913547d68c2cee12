#!/usr/bin/env python3
"""Targets whose series churn like pods that restart: each of `--targets` targets serves
`--series` counters labelled `pod="pod-<i>-<generation>"`, and every `--every` seconds a tenth
of them get a new generation (a new series; the old one disappears from the exposition and is
marked stale by the scraper). Over ten periods every series is replaced once.

    python3 benches/scripts/churn_target.py --base-port 19100 --targets 50 --series 2000

Target i listens on 127.0.0.1:(base_port + i) and answers GET /metrics in the Prometheus text
format. Python standard library only.
"""

import argparse
import asyncio
import time


def body(idx, n_series, every, now):
    slot = int(now // every)
    value = int(now)
    out = []
    for i in range(n_series):
        gen = (slot + i % 10) // 10
        out.append(f'churn_requests_total{{pod="pod-{i}-{gen}",shard="{i % 16}"}} {value + i}\n')
    return ("# TYPE churn_requests_total counter\n" + "".join(out)).encode()


async def serve(idx, port, args):
    async def handle(reader, writer):
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if not line.startswith(b"GET /metrics"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                b = body(idx, args.series, args.every, time.time())
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(b) + b)
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-port", type=int, default=19100)
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--every", type=float, default=120.0, help="seconds between replacements of a tenth")
    ap.add_argument("--max-runtime", type=float, default=7200.0)
    args = ap.parse_args()
    servers = [await serve(i, args.base_port + i, args) for i in range(args.targets)]
    try:
        await asyncio.sleep(args.max_runtime)
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    asyncio.run(main())
