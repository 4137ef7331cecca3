"""Live caption fan-out: one meeting, 200 followers over loopback, a real Daphne and Redis. A script, not a test.

    .venv/bin/python benchmarks/fanout_bench.py [--followers 200] [--captions 250] [--rate 12.5]

Creates a throw-away test database, starts Daphne on it, opens the followers' WebSockets (session
cookie and Origin, as a browser would), then publishes captions to the meeting's group exactly as the
host's consumer does (group_send of a CaptionEvent stamped with the server clock). Each follower
notes when each caption arrives; the added fan-out latency is arrival minus stamp. Speech recognition
time is not part of it: it is the same however many people follow.
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


async def follower(session, url, cookie, origin, arrivals: list, ready: asyncio.Event, count: list, total: int, done: asyncio.Event):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": origin}
    async with session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        await ws.receive()  # the status snapshot: this follower is in the group
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
    done.set() if count[0] == total else None


async def run(args, meeting_id: int, cookie: str, base: str):
    url = base.replace("http", "ws") + f"/ws/meetings/{meeting_id}/live/captions"
    arrivals: list[float] = []
    ready, done, count = asyncio.Event(), asyncio.Event(), [0]
    connector = aiohttp.TCPConnector(limit=0)
    layer = get_channel_layer()
    # Members left in the group by earlier runs against a database with the same meeting id.
    await layer.connection(0).delete(layer._group_key(group_name(meeting_id)))
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.monotonic()
        tasks = [asyncio.create_task(follower(session, url, cookie, base, arrivals, ready, count, args.followers, done)) for _ in range(args.followers)]
        await asyncio.wait_for(ready.wait(), 120)
        connect_s = time.monotonic() - t0
        layer = get_channel_layer()
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
    args = parser.parse_args()

    from tests.servers import daphne_server

    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        meeting_id, cookie = prepare()
        with tempfile.TemporaryDirectory() as logs, daphne_server(Path(logs), SCRIBE_LOG_LEVEL="WARNING") as base:
            latencies, connect_s = asyncio.run(run(args, meeting_id, cookie, base))
    finally:
        connection.close()
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    expected = args.followers * args.captions
    print(f"followers {args.followers}, captions {args.captions} at {args.rate}/s, cores {os.cpu_count()}")
    print(f"connected all followers in {connect_s:.1f} s; delivered {len(latencies)} of {expected}")
    print("| added fan-out latency | p50 | p95 | p99 | max |")
    print("|---|---|---|---|---|")
    p = np.percentile(latencies, [50, 95, 99, 100])
    print(f"| ms | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {p[3]:.1f} |")


if __name__ == "__main__":
    main()
