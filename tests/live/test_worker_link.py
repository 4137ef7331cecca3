"""A server process's link to its caption workers: batched, in order, and a worker that takes nothing
costs the streams its audio (said in their health), not the server's sockets."""
import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from transcription.live import engine_bridge
from transcription.live.engine_bridge import RemoteStream, worker_link


async def linked_stream(layer, worker: str, events: list) -> RemoteStream:
    """A stream as open() leaves it, on `worker`, without a worker process to answer the open."""
    stream = RemoteStream(delay_ms=480, on_event=lambda kind, data: events.append((kind, data)), layer=layer)
    stream._link = await worker_link(layer)
    stream._link.streams[stream.stream_id] = stream
    stream._worker = worker
    loop = asyncio.get_running_loop()
    stream._opened, stream._closed = loop.create_future(), loop.create_future()
    return stream


async def test_a_streams_audio_and_close_reach_its_worker_in_order_in_few_messages():
    layer = InMemoryChannelLayer()
    first, second = await linked_stream(layer, "worker-a", []), await linked_stream(layer, "worker-a", [])
    for k in range(100):
        await first.feed(bytes([k]) * 2560)
        await second.feed(bytes([k]) * 2560)
    await first.close(timeout=0.01)  # no worker answers `closed` here; the request must still come last
    messages = []
    while len(items := [i for m in messages for i in m["items"]]) < 201:
        messages.append(await asyncio.wait_for(layer.receive("worker-a"), 5))
    assert all(m["type"] == "caption.batch" for m in messages)
    assert len(messages) <= 201 // engine_bridge.WorkerLink.MAX_BATCH + 1  # 201 messages, a handful of sends
    mine = [i for i in items if i["stream_id"] == first.stream_id]
    assert [i["pcm"][0] for i in mine[:-1]] == list(range(100))
    assert mine[-1]["type"] == "caption.close"
    assert [i["pcm"][0] for i in items if i["stream_id"] == second.stream_id] == list(range(100))


async def test_frames_of_many_streams_arriving_one_by_one_share_a_message():
    # A worker's channel is read one message at a time: a message per frame would fill it at 150 meetings.
    layer = InMemoryChannelLayer()
    streams = [await linked_stream(layer, "worker-a", []) for _ in range(8)]
    for stream in streams:
        await stream.feed(b"\0" * 2560)
        await asyncio.sleep(0.001)  # each frame comes on its own, after the send before it has finished
    first = await asyncio.wait_for(layer.receive("worker-a"), 5)
    assert len(first["items"]) >= 4, len(first["items"])


async def test_replies_in_one_batch_go_to_each_of_their_streams():
    layer = InMemoryChannelLayer()
    got_a, got_b = [], []
    a, b = await linked_stream(layer, "worker-a", got_a), await linked_stream(layer, "worker-a", got_b)
    events = [{"type": "engine.event", "stream_id": a.stream_id, "kind": "delta", "text": "one", "start_ms": 0, "end_ms": 80},
              {"type": "engine.event", "stream_id": "someone-else", "kind": "delta", "text": "?", "start_ms": 0, "end_ms": 80},
              {"type": "engine.event", "stream_id": b.stream_id, "kind": "final", "text": "two", "start_ms": 0, "end_ms": 80},
              {"type": "engine.event", "stream_id": a.stream_id, "kind": "delta", "text": "three", "start_ms": 80, "end_ms": 160}]
    await layer.send(a._link.channel, {"type": "engine.batch", "items": events})
    for _ in range(50):
        if len(got_a) == 2 and got_b:
            break
        await asyncio.sleep(0.02)
    assert [data["text"] for _, data in got_a] == ["one", "three"]
    assert got_b == [("final", {"text": "two", "start_ms": 0, "end_ms": 80})]


async def test_a_worker_that_takes_nothing_costs_its_streams_their_audio_and_says_so(monkeypatch):
    monkeypatch.setattr(engine_bridge, "FULL_RETRIES", 3)  # 150 ms of waiting for room, not 10 s
    layer = InMemoryChannelLayer(capacity=1)
    stream = await linked_stream(layer, "stuck-worker", [])
    stream._health_at = asyncio.get_running_loop().time()
    for k in range(10):
        await stream.feed(bytes([k]) * 2560)
        await asyncio.sleep(0.05)  # one batch per send: the first fills the channel, the rest wait and are dropped
    for _ in range(50):
        if stream._dropped and not stream._link.senders:
            break
        await asyncio.sleep(0.05)
    assert stream._dropped > 0
    assert "falling behind" in stream.health()["message"]
    assert not stream._link.queues["stuck-worker"]  # nothing left waiting behind a worker that takes nothing
    assert stream.gone()  # the host reopens it, on another worker where one exists, with what it missed


class RestartingRedisLayer(InMemoryChannelLayer):
    """A channel layer whose Redis has just restarted: the first `stale` sends fail, as each connection
    the pool kept does once; then sends go through."""

    def __init__(self, stale: int):
        super().__init__()
        self.stale = stale

    async def send(self, channel, message):
        if self.stale:
            self.stale -= 1
            raise ConnectionError("Connection closed by server.")
        await super().send(channel, message)


async def test_audio_that_cannot_reach_its_worker_has_its_stream_taken_for_gone():
    layer = RestartingRedisLayer(stale=10**6)  # Redis down
    stream = await linked_stream(layer, "worker-a", [])
    stream._health_at = asyncio.get_running_loop().time()
    await stream.feed(b"\0" * 2560)
    for _ in range(50):
        if stream._dropped and not stream._link.senders:
            break
        await asyncio.sleep(0.05)
    assert stream.gone()  # its captions would skip that audio: the host reopens it and replays it


async def test_a_message_sent_just_after_redis_restarted_is_not_lost_to_a_stale_connection():
    layer = RestartingRedisLayer(stale=engine_bridge.STALE_CONNECTION_TRIES - 1)
    await engine_bridge.layer_send(layer, "server-replies", {"type": "engine.batch", "items": [{"kind": "opened"}]})
    assert (await asyncio.wait_for(layer.receive("server-replies"), 5))["items"] == [{"kind": "opened"}]


@pytest.mark.parametrize("servers", [1, 3])
def test_the_system_benchmark_puts_each_follower_on_the_server_after_its_hosts(servers):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import live_system_bench as bench

    bases = [f"http://127.0.0.1:{8000 + i}" for i in range(servers)]
    pairs = bench.spread([{"index": i, "meeting_id": i} for i in range(6)], bases)
    assert [p["host_base"] for p in pairs] == [bases[i % servers] for i in range(6)]
    assert [p["follower_base"] for p in pairs] == [bases[(i + 1) % servers] for i in range(6)]
    assert bench.cores_used({1: ("daphne", 10.0), 2: ("caption_worker", 5.0)},
                            {1: ("daphne", 16.0), 2: ("caption_worker", 17.0), 3: ("daphne", 1.0)}, 12.0) == \
        {"daphne": [0.5], "caption_worker": [1.0]}


async def test_replies_are_read_again_after_the_channel_layer_fails_for_a_while():
    class Flaky(InMemoryChannelLayer):
        failures = 3

        async def receive(self, channel):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("Redis is restarting")
            return await super().receive(channel)

    layer = Flaky()
    got = []
    stream = await linked_stream(layer, "worker-a", got)
    await layer.send(stream._link.channel, {"type": "engine.batch", "items": [
        {"type": "engine.event", "stream_id": stream.stream_id, "kind": "delta", "text": "back", "start_ms": 0, "end_ms": 80}]})
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.05)
    assert got == [("delta", {"text": "back", "start_ms": 0, "end_ms": 80})]


async def test_a_malformed_batch_is_skipped_and_the_replies_after_it_still_arrive():
    layer = InMemoryChannelLayer()
    got = []
    stream = await linked_stream(layer, "worker-a", got)
    await layer.send(stream._link.channel, {"type": "engine.batch"})  # no items
    await layer.send(stream._link.channel, {"type": "engine.batch", "items": [
        {"type": "engine.event", "stream_id": stream.stream_id, "kind": "delta", "text": "after", "start_ms": 0, "end_ms": 80}]})
    for _ in range(50):
        if got:
            break
        await asyncio.sleep(0.02)
    assert got == [("delta", {"text": "after", "start_ms": 0, "end_ms": 80})]
    assert not stream._link.reader.done()


async def test_a_worker_reads_its_engines_health_once_a_round_for_all_its_streams():
    # One reading per stream was quadratic in streams, under the engine's lock: at 75 streams it held up
    # the worker's loop (and every frame and caption on it) for ~25 ms twice a second.
    from transcription.live.engine_bridge import EngineStream
    from transcription.live.worker import CaptionWorker, Served

    class Engine:
        readings = 0

        def health(self):
            self.readings += 1
            return {"alive": True, "last_step_at": None, "streams": {i: {"lag_ms": 10 * i} for i in range(20)}}

    class Handle:
        def __init__(self, i):
            self.id = i

    engine, worker = Engine(), CaptionWorker(InMemoryChannelLayer())
    for i in range(20):
        stream = EngineStream(delay_ms=480, on_event=lambda kind, data: None)
        stream._engine, stream._stream = engine, Handle(i)
        worker.streams[f"s{i}"] = Served(stream, "server-a")
    task = asyncio.create_task(worker.report())
    await asyncio.sleep(0.7)  # one round (HEALTH_EVERY_S)
    task.cancel()
    sent = [worker.outbox.get_nowait() for _ in range(worker.outbox.qsize())]
    assert engine.readings == 1
    assert [event["health"]["lag_ms"] for _, event in sent] == [10 * i for i in range(20)]
