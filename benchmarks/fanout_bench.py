"""Live caption fan-out: one meeting, 200 followers over loopback, a real Daphne and Redis. A script, not a test.

    .venv/bin/python benchmarks/fanout_bench.py [--followers 200] [--captions 250] [--rate 12.5] [--layers live,default]

Creates a throw-away test database, starts Daphne on it, opens the followers' WebSockets (session
cookie and Origin, as a browser would), then publishes captions to the meeting's group exactly as the
host's consumer does (group_send of a CaptionEvent stamped with the server clock). Each follower
notes when each caption arrives; the added fan-out latency is arrival minus stamp. Speech recognition
time is not part of it: it is the same however many people follow.

Each channel layer named in --layers gets its own Daphne (SCRIBE_LIVE_CHANNEL_LAYER) in the same run,
so the figures compare on the same machine at the same moment: `live` is the pub/sub layer the sockets
use, `default` the core layer (one Redis list per follower).
"""
import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("SCRIBE_TEST_DB_NAME", f"scribe_fanout_bench_{os.getpid()}")

import django  # noqa: E402

django.setup()

import aiohttp  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from transcription.live.events import group_name  # noqa: E402


def prepare() -> tuple[int, str]:
    from django.contrib.auth.models import User

    from meetings import services
    from meetings.models import Sharing

    owner = User.objects.create_user("host", password="host-password-1")
    viewer = User.objects.create_user("viewer", password="viewer-password-1")
    meeting = services.meeting_create(owner=owner, title="Fan-out")
    services.meeting_share(meeting=meeting, by=owner, user=viewer, role=Sharing.Role.VIEW)
    client = Client()
    client.force_login(viewer)
    return meeting.pk, client.cookies[settings.SESSION_COOKIE_NAME].value


# People join over seconds, not in one millisecond; 200 simultaneous handshakes overflow the listen
# backlog of a loaded two-core box (connection reset), which is not what this measures.
JOINING_AT_ONCE = 20


async def follower(session, url, cookie, origin, arrivals: list, ready: asyncio.Event, count: list, total: int, joining: asyncio.Semaphore):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": origin}
    async with joining:
        ws = await session.ws_connect(url, headers=headers, max_msg_size=0)
        await ws.receive()  # the status snapshot: this follower is in the group
    async with ws:
        count[0] += 1
        if count[0] == total:
            ready.set()
        async for msg in ws:
            now = time.time()
            event = msg.json()
            if event.get("type") == "caption":
                arrivals.append((now - event["sent_at"]) * 1000)
                if event["text"] == "last":
                    break


async def run(args, meeting_id: int, cookie: str, base: str, layer_alias: str):
    url = base.replace("http", "ws") + f"/ws/meetings/{meeting_id}/live/captions"
    arrivals: list[float] = []
    ready, joining, count = asyncio.Event(), asyncio.Semaphore(JOINING_AT_ONCE), [0]
    connector = aiohttp.TCPConnector(limit=0)
    layer = get_channel_layer(layer_alias)
    if hasattr(layer, "_group_key"):  # core layer: members left in the group by an earlier run
        await layer.connection(0).delete(layer._group_key(group_name(meeting_id)))
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        tasks = [asyncio.create_task(follower(session, url, cookie, base, arrivals, ready, count, args.followers, joining)) for _ in range(args.followers)]
        await asyncio.wait_for(ready.wait(), 120)
        connect_s = time.monotonic() - t0
        group = group_name(meeting_id)
        for i in range(args.captions):
            final = i % 10 == 9
            text = "last" if i == args.captions - 1 else f"caption {i}"
            await layer.group_send(group, {"type": "caption", "final": final, "seq": i // 10, "text": text,
                                           "start_ms": i * 80, "end_ms": i * 80 + 80, "sent_at": time.time()})
            await asyncio.sleep(1 / args.rate)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return np.array(arrivals), connect_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--captions", type=int, default=250, help="captions published (deltas and finals)")
    parser.add_argument("--rate", type=float, default=12.5, help="captions per second (one per 80 ms engine step)")
    parser.add_argument("--layers", default="live,default", help="channel layers to compare, in this order")
    args = parser.parse_args()

    from tests.servers import daphne_server

    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    results = []
    try:
        meeting_id, cookie = prepare()
        for alias in args.layers.split(","):
            logs = tempfile.mkdtemp(prefix="fanout-bench-")  # kept: the server log explains a failed run
            with daphne_server(Path(logs), SCRIBE_LOG_LEVEL="WARNING", SCRIBE_LIVE_CHANNEL_LAYER=alias) as base:
                latencies, connect_s = asyncio.run(run(args, meeting_id, cookie, base, alias))
            results.append((alias, settings.CHANNEL_LAYERS[alias]["BACKEND"].rsplit(".", 1)[-1], latencies, connect_s))
    finally:
        connection.close()
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    expected = args.followers * args.captions
    print(f"followers {args.followers}, captions {args.captions} at {args.rate}/s, cores {os.cpu_count()}")
    print("| layer | backend | connect all | delivered | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for alias, backend, latencies, connect_s in results:
        p = np.percentile(latencies, [50, 95, 99, 100])
        print(f"| {alias} | {backend} | {connect_s:.1f} s | {len(latencies):,} / {expected:,} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {p[3]:.1f} |")


if __name__ == "__main__":
    main()
