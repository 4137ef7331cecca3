"""Live captions from the real engine (a tiny random-weight Voxtral Realtime model on the CPU).

The host streams espeak-ng speech in 80 ms frames; the captions followers receive, the segments
stored and the words found by search must all be the engine's own transcription of that audio.
"""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from meetings.models import Segment
from meetings.search import search_segments
from meetings.segments import SegmentRules
from tests.servers import caption_worker
from tests.speech import make_speech_wav, read_wav
from transcription import engine_host
from transcription.live.lines import Caption, LineBreaker

from .conftest import Socket, follow_path, host_path

FRAME = 2560  # bytes: 80 ms of 16 kHz PCM16, what the host page sends
SPEECH = "Good morning. The patient in bed four slept well, and her blood pressure is better today."


# --- Caption lines ---------------------------------------------------------------------------------

def feed(breaker: LineBreaker, pieces: list[tuple[str, int]]) -> list[Caption]:
    out = []
    for text, start in pieces:
        out += breaker.add(text, start, start + 80)
    return out


def test_a_line_ends_at_a_sentence_end_only_once_the_next_word_starts():
    captions = feed(LineBreaker(), [("Dose", 0), (" is", 80), (" 3", 160), (".", 240), ("5", 320), (" mg", 400), (".", 480), (" Next", 560)])
    finals = [c.text for c in captions if c.final]
    assert finals == ["Dose is 3.5 mg."]
    assert captions[-1] == Caption(False, "Next", 560, 640)
    assert [(w.text, w.start_ms, w.end_ms) for w in [c for c in captions if c.final][0].words] == [("Dose", 0, 80), ("is", 80, 160), ("3.5", 160, 400), ("mg.", 400, 560)]


def test_a_pause_or_a_long_line_starts_a_new_line_and_partials_grow():
    breaker = LineBreaker(SegmentRules(max_chars=30, pause_ms=960))
    captions = feed(breaker, [("one", 0), (" two", 80), (" three", 2000), (" four five six seven", 2080), (" eight", 2160)])
    assert [c.text for c in captions if c.final] == ["one two", "three four five six seven"]
    assert [c.text for c in captions if not c.final] == ["one", "one two", "three", "three four five six seven", "eight"]
    assert [(c.final, c.text, c.start_ms, c.end_ms) for c in breaker.flush()] == [(True, "eight", 2160, 2240)]
    assert breaker.flush() == []


# --- Through the sockets, with the engine --------------------------------------------------------

@pytest.fixture(scope="module")
def speech_pcm(tmp_path_factory):
    pcm, rate = read_wav(make_speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav", SPEECH))
    assert rate == 16_000
    return pcm


@pytest.fixture(scope="module")
def expected_words(tiny_model_dir, speech_pcm):
    """What the engine makes of the speech as one stream at 480 ms: the captions must say exactly this."""
    from transcription.engine import Engine, EngineOptions

    engine = Engine.load(tiny_model_dir, EngineOptions(device="cpu", max_streams=2))
    try:
        stream = engine.open_stream(480, on_event=lambda event: None)
        stream.push(speech_pcm)
        words = stream.close(timeout=120).split()
    finally:
        engine.shutdown()
    assert words, "the tiny model produced no text for the speech; the test would prove nothing"
    return words


@pytest.fixture
def with_engine(settings, tiny_model_dir, fast_checks):
    settings.ASR_MODEL_DIR = str(tiny_model_dir)
    settings.ASR_MAX_STREAMS = 3
    settings.ASR_DEVICE = "cpu"
    yield settings
    engine_host.reset()


async def stream_speech(host: Socket, pcm, *, frames: slice = slice(None)):
    data = pcm.astype("<i2").tobytes()
    chunks = [data[i:i + FRAME] for i in range(0, len(data), FRAME)][frames]
    for chunk in chunks:
        await host.send_bytes(chunk)
        await asyncio.sleep(0.005)  # faster than real time, but let the engine and the sockets breathe


async def captions_until_ended(follower: Socket, timeout: float = 90) -> list[dict]:
    got = []
    while True:
        message = await follower.receive(timeout=timeout)
        if message["type"] == "caption":
            got.append(message)
        if message["type"] == "status" and message["host"] == "ended":
            return got


@pytest.mark.django_db(transaction=True)
async def test_followers_get_the_engines_captions_and_they_are_stored_and_searchable(
        shared_meeting, owner, member, with_engine, speech_pcm, expected_words):
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start", "delay_ms": 480})
    started = await host.receive_until(lambda m: m["type"] == "started", timeout=120)
    assert started["captions"] is True, started
    await stream_speech(host, speech_pcm)
    await host.send({"type": "stop"})
    captions = await captions_until_ended(follower)
    await host.receive_until(lambda m: m["type"] == "ended")

    finals = [c for c in captions if c["final"]]
    assert [c["seq"] for c in finals] == list(range(1, len(finals) + 1))
    assert " ".join(c["text"] for c in finals).split() == expected_words
    assert any(not c["final"] for c in captions), "partial lines should be shown before they are final"
    assert all(a["start_ms"] <= b["start_ms"] for a, b in zip(finals, finals[1:]))

    stored = [s async for s in Segment.objects.filter(meeting=shared_meeting, origin=Segment.Origin.LIVE).order_by("id")]
    assert [(s.text, s.start_ms, s.end_ms) for s in stored] == [(c["text"], c["start_ms"], c["end_ms"]) for c in finals]
    # Each live segment keeps its words with their own times, inside the segment and in order.
    assert [t for s in stored for t, _, _ in s.words] == expected_words
    for s in stored:
        assert s.words[0][1] == s.start_ms and s.words[-1][2] == s.end_ms
        assert all(a[2] <= b[1] and a[1] < a[2] for a, b in zip(s.words, s.words[1:]))
    word = max((w.strip(".,!?") for w in expected_words if w.strip(".,!?").isalpha()), key=len, default=None)
    if word:  # random weights may say nothing searchable; when they do, search must find it
        page = await sync_to_async(search_segments)(user=member, query=word)
        assert any(hit.meeting_id == shared_meeting.pk for hit in page.hits), word


@pytest.mark.django_db(transaction=True)
async def test_a_follower_who_reconnects_gets_every_caption_once(shared_meeting, owner, member, with_engine, speech_pcm, expected_words):
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start", "delay_ms": 480})
    await host.receive_until(lambda m: m["type"] == "started", timeout=120)
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    half = len(speech_pcm) // 2 // 1280 * 1280
    await stream_speech(host, speech_pcm[:half])
    first = await follower.receive_until(lambda m: m["type"] == "caption" and m["final"], timeout=60)
    await follower.close()  # the follower's network drops ...

    await stream_speech(host, speech_pcm[half:])  # ... while the meeting goes on
    await asyncio.sleep(1)
    again = Socket(follow_path(shared_meeting), user=member)
    await again.connect()
    await again.send({"type": "hello", "last_seq": first["seq"]})
    await host.send({"type": "stop"})
    seen = {first["seq"]: first["text"]}
    while True:
        message = await again.receive(timeout=90)
        captions = message["captions"] if message["type"] == "replay" else [message] if message["type"] == "caption" else []
        for c in (c for c in captions if c["final"]):
            # A replay may overlap live captions; the page drops a seq it has, so a seq must always mean the same line.
            assert seen.setdefault(c["seq"], c["text"]) == c["text"]
        if message["type"] == "status" and message["host"] == "ended":
            break
    assert sorted(seen) == list(range(1, len(seen) + 1)), "a caption was lost"
    assert " ".join(seen[k] for k in sorted(seen)).split() == expected_words


@pytest.mark.django_db(transaction=True)
async def test_captions_come_from_a_separate_caption_worker_process(shared_meeting, owner, member, with_engine, speech_pcm, expected_words, tmp_path):
    with_engine.ASR_LIVE_ENGINE = "worker"
    with caption_worker(tmp_path, SCRIBE_ASR_MODEL_DIR=with_engine.ASR_MODEL_DIR, SCRIBE_ASR_MAX_STREAMS=2, SCRIBE_ASR_DEVICE="cpu"):
        follower = Socket(follow_path(shared_meeting), user=member)
        await follower.connect()
        host = Socket(host_path(shared_meeting), user=owner)
        await host.connect()
        await host.send({"type": "start", "delay_ms": 480})
        started = await host.receive_until(lambda m: m["type"] == "started", timeout=60)
        assert started["captions"] is True, started["message"]
        status = await follower.receive_until(lambda m: m["type"] == "status" and m["engine"]["ready"])
        assert not status["engine"]["stalled"]
        await stream_speech(host, speech_pcm)
        await host.send({"type": "stop"})
        captions = await captions_until_ended(follower)
    finals = [c for c in captions if c["final"]]
    assert " ".join(c["text"] for c in finals).split() == expected_words
    assert await Segment.objects.filter(meeting=shared_meeting, origin=Segment.Origin.LIVE).acount() == len(finals)


@pytest.mark.django_db(transaction=True)
async def test_without_a_caption_worker_the_host_is_told_in_words(shared_meeting, owner, with_engine):
    with_engine.ASR_LIVE_ENGINE = "worker"
    with_engine.LIVE_WORKER_OPEN_SECONDS = 2
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start"})
    message = await host.receive_until(lambda m: m["type"] == "error", timeout=30)
    assert message["code"] == "engine_unavailable" and "no caption worker answered" in message["message"]
    started = await host.receive_until(lambda m: m["type"] == "started")
    assert started["captions"] is False


@pytest.mark.django_db(transaction=True)
async def test_a_killed_caption_worker_is_replaced_and_captions_resume(shared_meeting, owner, member, with_engine, speech_pcm, tmp_path):
    import signal

    from meetings.models import Recording

    with_engine.ASR_LIVE_ENGINE = "worker"
    # This follower sends no pings (a page does, every 2 s): two worker loads on a busy box outlast the idle close.
    with_engine.LIVE_IDLE_CLOSE_SECONDS = 600
    env = dict(SCRIBE_ASR_MODEL_DIR=with_engine.ASR_MODEL_DIR, SCRIBE_ASR_MAX_STREAMS=2, SCRIBE_ASR_DEVICE="cpu")
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    half = len(speech_pcm) // 2 // 1280 * 1280
    with caption_worker(tmp_path, name="first", **env) as first:
        await host.send({"type": "start", "delay_ms": 480, "capture": "worker-test-capture"})
        assert (await host.receive_until(lambda m: m["type"] == "started", timeout=60))["captions"] is True
        await stream_speech(host, speech_pcm[:half])
        await follower.receive_until(lambda m: m["type"] == "caption", timeout=60)
        first.send_signal(signal.SIGKILL)  # the worker dies with the stream open
        first.wait()
    with caption_worker(tmp_path, name="second", **env):
        status = await follower.receive_until(lambda m: m["type"] == "status" and "caption worker stopped" in m["engine"].get("message", ""), timeout=60)
        assert status["host"] == "live"
        await follower.receive_until(lambda m: m["type"] == "status" and m["engine"]["ready"] and not m["engine"].get("message"), timeout=90)
        await stream_speech(host, speech_pcm[half:])
        await host.send({"type": "stop"})
        captions = await captions_until_ended(follower)
    finals = [c for c in captions if c["final"]]
    assert finals, "no captions after the worker was replaced"
    stored = await Segment.objects.filter(meeting=shared_meeting, origin=Segment.Origin.LIVE).acount()
    assert [c["seq"] for c in finals] == list(range(stored - len(finals) + 1, stored + 1))  # none lost, none twice
    recording = await Recording.objects.aget(meeting=shared_meeting, source="live")
    assert recording.duration_ms == len(speech_pcm) // 16  # the recording never stopped


@pytest.mark.django_db(transaction=True)
async def test_a_caption_worker_keeps_serving_after_its_channel_layer_fails_for_a_while(with_engine):
    """Redis restarting must not end the worker (and with it every stream and a model load's worth of time)."""
    from channels.layers import InMemoryChannelLayer

    from transcription.live import conf, worker as worker_module

    class Restarting(InMemoryChannelLayer):
        failing: set = set()
        failures = 6

        async def receive(self, channel):
            if channel in self.failing and self.failures:
                self.failures -= 1
                raise ConnectionError("Redis is restarting")
            return await super().receive(channel)

    layer = Restarting()
    worker = worker_module.CaptionWorker(layer)
    ready = asyncio.Event()
    serving = asyncio.create_task(worker.serve(ready=ready))
    await ready.wait()
    layer.failing = {conf.worker_channel(), worker.channel}
    try:
        reply = await layer.new_channel()
        await layer.send(conf.worker_channel(), {"type": "caption.open", "stream_id": "after", "reply_channel": reply, "delay_ms": 480})
        while not any(e["kind"] == "opened" for e in (await asyncio.wait_for(layer.receive(reply), 60))["items"]):
            pass
        assert layer.failures == 0 and not serving.done() and "after" in worker.streams
    finally:
        serving.cancel()


@pytest.mark.django_db(transaction=True)
async def test_a_caption_worker_frees_the_slot_of_a_released_stream_and_of_one_nobody_keeps(with_engine, monkeypatch):
    """A host's server that took the worker for dead, or a restarted server finding a stream its dead
    predecessor left, releases it; a stream nothing is heard for is dropped by the worker itself."""
    from channels.layers import InMemoryChannelLayer

    from transcription.live import conf, worker as worker_module

    monkeypatch.setattr(worker_module, "ORPHAN_AFTER_S", 600)
    layer = InMemoryChannelLayer()
    worker = worker_module.CaptionWorker(layer)
    ready = asyncio.Event()
    serving = asyncio.create_task(worker.serve(ready=ready))
    await ready.wait()

    async def opened(stream_id: str) -> None:
        reply = await layer.new_channel()
        await layer.send(conf.worker_channel(), {"type": "caption.open", "stream_id": stream_id, "reply_channel": reply, "delay_ms": 480})
        while not any(e["kind"] == "opened" for e in (await asyncio.wait_for(layer.receive(reply), 120))["items"]):
            pass
        assert stream_id in worker.streams

    async def gone(stream_id: str, within_s: float) -> None:
        for _ in range(int(within_s * 10)):
            if stream_id not in worker.streams:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"stream {stream_id} still holds its slot")

    try:
        await opened("released")
        await layer.send(worker.channel, {"type": "caption.release", "stream_id": "released"})
        await gone("released", within_s=10)  # long before the worker would notice by itself
        monkeypatch.setattr(worker_module, "ORPHAN_AFTER_S", 1)
        await opened("orphaned")  # nothing more is sent for it
        await gone("orphaned", within_s=30)
    finally:
        serving.cancel()
