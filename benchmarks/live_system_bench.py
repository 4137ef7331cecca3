"""Live captions through the whole system: N hosts stream audio over WebSockets into Daphne with the engine
in the server process or in caption workers, one follower each; caption lag measured at the followers.
A script, not a test.

    # CPU, tiny random-weight model (a smoke test of the script and the path):
    ~/.cache/scribe/venv/bin/python benchmarks/live_system_bench.py --tiny --streams 2,4 --seconds 20
    # GPU, full-size random-weight model: build its folder once (bf16, ~9 GB), then ramp
    python benchmarks/live_system_bench.py --build-full-model /data/voxtral-random
    python benchmarks/live_system_bench.py --model-dir /data/voxtral-random --streams 64,128,150,176,200 \
        --seconds 60 --kv-cache float8 --out benchmarks/results/capacity-<date>-h200.json
    # the deployed layout: the engine in caption workers (here two, one per GPU) behind eight Daphne processes
    python benchmarks/live_system_bench.py --model-dir /data/voxtral-random --workers 2 --servers 8 --streams 150,200,300,400 \
        --seconds 60 --kv-cache float8 --out benchmarks/results/capacity-<date>-h200.json

Each run prints one JSON line; `--out` gets every run so far after each one (an existing file, such as the
capacity benchmark's, is merged into: its other runs stay, a run of the same path, N, cache type, delay
and numbers of caption workers and servers is replaced). The ramp stops after the first run over `--target-ms` (lag
p95, default 150 ms) unless `--no-stop-past-target`; the last line names the largest N within it with no
host refused.

What runs: a throw-away test database, one Daphne serving `config.asgi` with `SCRIBE_ASR_LIVE_ENGINE=local`
(the engine in the server process, loaded at start from `--model-dir`), the real channel layers and Redis.
With `--workers K` (K >= 1), the deployed layout instead: Daphne with `SCRIBE_ASR_LIVE_ENGINE=worker` and K
`manage.py run_caption_worker` processes with the same model and engine settings, worker i on GPU i
(CUDA_VISIBLE_DEVICES=i; more workers than GPUs go round the cards again; on a CPU all on the CPU); the
ramp starts once every worker has published its health. Each run records `layout` ("in-process" or
"caption workers"), `workers` and `gpus` (the cards the engines use: 1 in-process on a GPU, K with K workers
on K or more cards; 0 on a CPU).
With `--servers M` (caption workers only), M Daphne processes, as behind nginx with several upstreams:
meeting i's host connects to server i mod M and its follower to the next one, so every caption crosses
from one server process to another through the live channel layer.
For each N in `--streams`, N fresh meetings, each with its own owner and one viewer it is shared with. Each
owner opens the host socket as the host page does (session cookie, Origin; `start` with a capture id and
the delay, waits for `started`), then sends binary 80 ms PCM16 frames (2,560 bytes) paced in real time for
`--seconds`; the hosts' schedules are staggered uniformly over one 80 ms frame. Each viewer follows on the
caption socket. Hosts and followers both ping every 2 s, as the pages do. Then every host sends `stop`.
Before the ramp, an unrecorded run of the first N (`--warmup-run-s`) takes the first streams' one-time costs.
A host the engine refuses (at capacity) goes on streaming, as the page does (recorded, no captions), and
counts in `refused`. After each run (the warm-up run too) the next waits until the engines report no active
stream, so that a backlog (hosts whose `stop` timed out, streams still flushing) cannot spill into it; after
`--idle-timeout` seconds it goes on, and the run's `errors` say how many streams were still active.

Lag, per caption token, is comparable to the engine's own figure (`Delta.lag_ms`, measured from the
arrival of the audio a token needed to the step that made it), but measured end to end: from the time
the client sent the frame that completed the audio the token needed to the time the caption carrying the
token arrived at the follower. A token's caption has `end_ms` = e (the token covers audio [e - 80, e)).
With a delay of d ms the model emits it at the step whose window reaches e + d + 2.5 ms (the mel look-ahead),
so the frame it needed is frame (e + d) // 80 (frame k holds audio [80k, 80k + 80)). The delay is thus not
subtracted: it is the model's lookahead, already accounted for by taking that later frame. A token counts
once, at the first caption whose `end_ms` passes every earlier one (partials carry each new token; finals
and quiet flushes repeat older audio and are not counted). Tokens of each stream's first `--warmup-s`
seconds of audio are left out (the stream's prompt is a deliberate burst). Captions that arrive before
their frame was sent would mean the mapping is wrong: they are counted as `early` (expected 0).

Engine figures come from the health the server process publishes to Redis every 2 s (what /healthz and
the status page read): `step_ms_p95` over the engine's last 500 steps, sampled at the end of each run,
and `admitted_max` (the streams it admits: memory and step-time budget). With caption workers, each
worker publishes its own: `admitted_max` (and `capacity_memory`, `capacity_time`) is their sum,
`step_ms_p95` the slowest worker's, and `worker_streams` / `worker_capacity` each worker's active
streams and capacity at the end of the streaming (how the meetings spread over the engines).
Where the time goes, per counted token: `made_ms_p50/p95`, from the client sending the frame to the engine's
step that made the token ending (the caption's `made_at`): the way in, the wait for a step and the step;
`back_ms_p50/p95`, from there to the host's server sending the caption to the followers (its `sent_at`):
the way back through the caption worker's loop, Redis and the host's server; `fanout_ms_p50/p95`, from
`sent_at` to the caption's arrival at the follower; `engine_wait_ms_p50/p95`, each stream's audio waiting in
its engine for a step (`lag_ms` of the engines' health, sampled every second); `server_cores`, the CPU
each Daphne process and caption worker used over the streaming, in cores (a server near 1.0 is what
runs out, not the engine).
`bandwidth_tb_s` is not measured on this path (null); `benchmarks/capacity_bench.py` measures it on the
engine path.

The clients run in `--client-procs` processes (default: one per 25 meetings, at most half the cores), each
with its own event loop (uvloop where installed), so that the clients are not what limits the figures:
every process measures its loop's lateness (a 20 ms timer's overshoot) and each frame's send lateness
against its schedule, reported as `client_loop_late_ms_p95/max` and `client_send_late_ms_p95/max`.

Database and Redis: the usual settings variables (SCRIBE_DB_HOST, SCRIBE_DB_PORT, SCRIBE_DB_USER,
SCRIBE_DB_PASSWORD, SCRIBE_REDIS_URL), or the options --db-host, --db-port, --db-user, --db-password,
--redis-url, which set them. The test database's name is SCRIBE_TEST_DB_NAME (default
scribe_system_bench_<pid>); the role needs CREATEDB. `--layer` picks the live channel layer
(`live`: Redis pub/sub, the default; `default`: the core layer).
"""
import argparse
import asyncio
import contextlib
import datetime
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_audio import chirp  # noqa: E402

FRAME_MS = 80
FRAME_SAMPLES = 1280
SR = 16_000
PING_S = 2.0  # what the pages do (live-common.js PING_MS)
JOINING_AT_ONCE = 10  # handshakes in flight per client process: a burst of hundreds overflows the listen backlog
PROBE_S = 0.02


# --- Audio ------------------------------------------------------------------------------------------------

def speech(seconds: float) -> np.ndarray:
    """espeak-ng speech, repeated to length (needs espeak-ng and sox)."""
    from tests.speech import make_speech_wav, read_wav

    text = ("Good morning. The patient in bed four slept well, and her blood pressure is better today. "
            "We will review the medication after lunch and call the family this afternoon.")
    with tempfile.TemporaryDirectory() as tmp:
        pcm, rate = read_wav(make_speech_wav(Path(tmp) / "speech.wav", text))
    assert rate == SR
    return np.tile(pcm, int(seconds * SR) // len(pcm) + 1)[:int(seconds * SR)]


def audio_tracks(kind: str, seconds: float, count: int = 7) -> list[bytes]:
    """A few distinct tracks, shared by the hosts (hundreds of hour-long copies would not fit in memory)."""
    if kind == "speech":
        base = speech(seconds + 1)
        return [np.roll(base, i * 7 * FRAME_SAMPLES).astype("<i2").tobytes() for i in range(count)]
    return [chirp(seconds + 1, seed).astype("<i2").tobytes() for seed in range(count)]


# --- Clients (no Django here: they run in their own processes) ------------------------------------------------

class Meeting:
    """One host socket and one follower socket of one meeting, on the client's event loop."""

    def __init__(self, session, pair: dict, cfg: dict, audio: bytes, phase_s: float, stats: dict):
        self.session, self.pair, self.cfg, self.audio, self.phase_s, self.stats = session, pair, cfg, audio, phase_s, stats
        self.bases = {"/host": pair["host_base"], "/captions": pair["follower_base"]}
        self.sent: list[float] = []  # wall time each frame was handed to the socket
        self.offset_ms = 0
        self.max_end = -1
        self.host = self.follower = None
        self.started: asyncio.Future = asyncio.get_running_loop().create_future()
        self.ended = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.live = False  # started on the server (with or without captions)

    def headers(self, base: str, cookie: str) -> dict:
        return {"Cookie": f"{self.cfg['cookie_name']}={cookie}", "Origin": base}

    async def connect(self, path: str, cookie: str):
        """A socket, its status snapshot read. A reset handshake is tried again, as a page reconnects."""
        base = self.bases[path]
        url = base.replace("http", "ws", 1) + f"/ws/meetings/{self.pair['meeting_id']}/live{path}"
        for attempt in range(5):
            try:
                ws = await self.session.ws_connect(url, headers=self.headers(base, cookie), max_msg_size=0, autoping=True)
                await ws.receive()  # the status snapshot: a follower is in the meeting's group from here
                return ws
            except (OSError, aiohttp.ClientError):
                self.count_error("connect retried")
                await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"could not open {path} of meeting {self.pair['meeting_id']}")

    async def open(self, joining: asyncio.Semaphore) -> None:
        async with joining:
            self.follower = await self.connect("/captions", self.pair["follower_cookie"])
            self.host = await self.connect("/host", self.pair["host_cookie"])
        self.tasks += [asyncio.create_task(self.read_host()), asyncio.create_task(self.read_follower()), asyncio.create_task(self.ping())]
        began = time.monotonic()
        await self.host.send_json({"type": "start", "delay_ms": self.cfg["delay_ms"], "capture": f"bench{self.pair['meeting_id']:08d}"})
        try:
            started = await asyncio.wait_for(self.started, self.cfg["start_timeout_s"])
        except TimeoutError:
            started = None
        if started is None:  # the server could not start the session at all: counted, and this meeting sits out
            self.count_error("start failed")
            return
        self.stats["start_ms"].append((time.monotonic() - began) * 1000)
        self.offset_ms = started.get("offset_ms", 0)
        if not started.get("captions"):
            self.stats["refused"] += 1  # at capacity: the host page goes on recording without captions, and so does this host
        await self.host.send_json({"type": "frames", "seq": started.get("acked", 0) + 1, "late": 0})
        self.live = True

    def count_error(self, code: str) -> None:
        self.stats["errors"][code] = self.stats["errors"].get(code, 0) + 1

    async def read_host(self) -> None:
        async for msg in self.host:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind == "started" and not self.started.done():
                self.started.set_result(event)
            elif kind == "error":
                self.count_error(event.get("code"))
                if event.get("code") in ("start_failed", "bad_delay") and not self.started.done():
                    self.started.set_result(None)
            elif kind == "ended":
                self.ended.set()

    async def read_follower(self) -> None:
        delay, warmup_ms = self.cfg["delay_ms"], self.cfg["warmup_s"] * 1000
        async for msg in self.follower:
            arrived = time.time()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event.get("type") != "caption":
                continue
            self.stats["captions"] += 1
            self.stats["finals"] += bool(event.get("final"))
            end = event["end_ms"] - self.offset_ms
            if end <= self.max_end:
                continue  # no new token: a final or a flush of audio already captioned
            self.max_end = end
            frame = (end + delay) // FRAME_MS
            if end < warmup_ms or frame >= self.n_frames:
                continue  # the prompt's burst, or the right pad after the last frame
            if frame >= len(self.sent):
                self.stats["early"] += 1
                continue
            self.stats["lags"].append((arrived - self.sent[frame]) * 1000)
            if "sent_at" in event:  # stamped by the host's server as it sent the caption to the followers
                self.stats["fanout"].append((arrived - event["sent_at"]) * 1000)
            if "made_at" in event and "sent_at" in event:  # stamped by the engine's step that made the words
                self.stats["made"].append((event["made_at"] - self.sent[frame]) * 1000)
                self.stats["back"].append((event["sent_at"] - event["made_at"]) * 1000)

    async def ping(self) -> None:
        while True:
            await asyncio.sleep(PING_S)
            for ws in (self.host, self.follower):
                if not ws.closed:
                    await ws.send_json({"type": "ping", "t": time.time() * 1000})

    async def stream(self, t0: float) -> None:
        if not self.live:
            return
        late = self.stats["send_late"]
        frame_bytes = FRAME_SAMPLES * 2
        for k in range(self.n_frames):
            due = t0 + self.phase_s + k * FRAME_MS / 1000
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = time.time()
            self.sent.append(now)
            late.append((now - due) * 1000)
            await self.host.send_bytes(self.audio[k * frame_bytes:(k + 1) * frame_bytes])

    @property
    def n_frames(self) -> int:
        return int(self.cfg["seconds"] * 1000 // FRAME_MS)

    async def stop(self) -> None:
        await asyncio.sleep(self.cfg["tail_s"])  # the last words still on their way to the follower
        try:
            if self.live:
                await self.host.send_json({"type": "stop"})
                await asyncio.wait_for(self.ended.wait(), self.cfg["stop_timeout_s"])
        except Exception as exc:  # a slow flush must not stop the others' figures
            self.count_error(f"stop: {type(exc).__name__}")
        for task in self.tasks:
            task.cancel()
        for ws in (self.host, self.follower):
            await ws.close()


async def loop_probe(overshoot: list, stop: asyncio.Event) -> None:
    """How late this loop wakes a 20 ms timer: the client's own contribution to the lag it measures."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(PROBE_S)
        overshoot.append((time.monotonic() - t - PROBE_S) * 1000)


async def client_main(pairs: list[dict], cfg: dict, ready, wait_for_go) -> dict:
    """Open every meeting of this share, tell `ready()`, wait for the common start time, stream, stop."""
    stats = {"lags": [], "fanout": [], "made": [], "back": [], "captions": 0, "finals": 0, "refused": 0, "early": 0, "errors": {}, "send_late": [],
             "loop_late": [], "start_ms": [], "meetings": len(pairs)}
    tracks = audio_tracks(cfg["audio"], cfg["seconds"])
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        meetings = [Meeting(session, p, cfg, tracks[p["index"] % len(tracks)], p["index"] * FRAME_MS / 1000 / cfg["n"], stats) for p in pairs]
        joining = asyncio.Semaphore(JOINING_AT_ONCE)
        await asyncio.gather(*(m.open(joining) for m in meetings))
        ready()
        t0 = await loop.run_in_executor(None, wait_for_go)
        stop = asyncio.Event()
        probe = asyncio.create_task(loop_probe(stats["loop_late"], stop))
        await asyncio.gather(*(m.stream(t0) for m in meetings))
        stop.set()
        await probe
        await asyncio.gather(*(m.stop() for m in meetings))
    return stats


def run_event_loop(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def client_process(index: int, pairs: list[dict], cfg: dict, ready_q, go, t0, results_q) -> None:
    def ready():
        ready_q.put(index)

    def wait_for_go() -> float:
        go.wait()
        return t0.value

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a terminated client just ends
    try:
        results_q.put((index, run_event_loop(client_main(pairs, cfg, ready, wait_for_go))))
    except BaseException as exc:  # the parent must hear of it, or it waits for the full timeout
        ready_q.put(index)
        results_q.put((index, {"failed": f"{type(exc).__name__}: {exc}"}))


def run_clients(pairs: list[dict], cfg: dict, procs: int, on_go=None, timeout_s: float = 600) -> list[dict]:
    """Split the meetings over `procs` processes, start them together, return each process's figures.
    Each pair names the servers its host and follower connect to (`host_base`, `follower_base`)."""
    # spawn, not fork: a fork of a process whose threads hold locks (torch's, a test runner's) can hang
    # in the child before it runs a line; this module imports nothing heavy at its top.
    ctx = mp.get_context("spawn")
    ready_q, results_q, go, t0 = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    shares = [pairs[i::procs] for i in range(procs)]
    children = [ctx.Process(target=client_process, args=(i, share, cfg, ready_q, go, t0, results_q), daemon=True)
                for i, share in enumerate(shares) if share]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready_q.get(timeout=cfg["start_timeout_s"] + 60)
        t0.value = time.time() + 0.5
        go.set()
        if on_go:
            on_go(t0.value)
        results = []
        deadline = time.monotonic() + cfg["seconds"] + timeout_s
        while len(results) < len(children):
            results.append(results_q.get(timeout=max(1.0, deadline - time.monotonic()))[1])
        return results
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()


def pct(values, q):
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def summarise(results: list[dict]) -> dict:
    failed = [r["failed"] for r in results if "failed" in r]
    if failed:
        raise RuntimeError("client process failed: " + "; ".join(failed))
    lags = np.concatenate([np.asarray(r["lags"], float) for r in results])
    fanout = np.concatenate([np.asarray(r["fanout"], float) for r in results])
    made = np.concatenate([np.asarray(r["made"], float) for r in results])
    back = np.concatenate([np.asarray(r["back"], float) for r in results])
    send_late = np.concatenate([np.asarray(r["send_late"], float) for r in results])
    loop_late = np.concatenate([np.asarray(r["loop_late"], float) for r in results])
    starts = np.concatenate([np.asarray(r["start_ms"], float) for r in results])
    errors: dict = {}
    for r in results:
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return {
        "lag_ms_p50": pct(lags, 50), "lag_ms_p95": pct(lags, 95), "lag_ms_p99": pct(lags, 99),
        "lag_ms_max": round(float(lags.max()), 1) if len(lags) else None, "lag_ms_min": round(float(lags.min()), 1) if len(lags) else None,
        "tokens": int(len(lags)), "captions": sum(r["captions"] for r in results), "finals": sum(r["finals"] for r in results),
        "refused": sum(r["refused"] for r in results), "early": sum(r["early"] for r in results), "errors": errors,
        "start_ms_p95": pct(starts, 95), "fanout_ms_p50": pct(fanout, 50), "fanout_ms_p95": pct(fanout, 95),
        "made_ms_p50": pct(made, 50), "made_ms_p95": pct(made, 95), "back_ms_p50": pct(back, 50), "back_ms_p95": pct(back, 95),
        "client_send_late_ms_p95": pct(send_late, 95), "client_send_late_ms_max": round(float(send_late.max()), 1) if len(send_late) else None,
        "client_loop_late_ms_p95": pct(loop_late, 95), "client_loop_late_ms_max": round(float(loop_late.max()), 1) if len(loop_late) else None,
    }


# --- The full-size random model folder ------------------------------------------------------------------------

def build_full_model(folder: Path, *, tiny: bool = False) -> Path:
    """Engine_bench's full-size random-weight model (bf16 on a GPU), saved with a Tekken tokenizer and the
    processor files in the transformers layout the app loads (transcription/engine/loading.py)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import engine_bench as EB
    from transformers import MistralCommonBackend, VoxtralRealtimeFeatureExtractor, VoxtralRealtimeProcessor

    from tests.engine.tiny_model import write_tekken

    folder.mkdir(parents=True, exist_ok=True)
    write_tekken(folder)
    import torch

    model = EB.build_model(tiny).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer = MistralCommonBackend.from_pretrained(folder)
    extractor = VoxtralRealtimeFeatureExtractor(feature_size=128, hop_length=160, win_length=400, sampling_rate=16000)
    VoxtralRealtimeProcessor(extractor, tokenizer).save_pretrained(folder)
    return folder


# --- Server side (Django) -------------------------------------------------------------------------------------

def configure(args) -> None:
    """Database, Redis and engine settings into the environment, before Django reads them (Daphne inherits them)."""
    for option, name in (("db_host", "SCRIBE_DB_HOST"), ("db_port", "SCRIBE_DB_PORT"), ("db_user", "SCRIBE_DB_USER"),
                         ("db_password", "SCRIBE_DB_PASSWORD"), ("redis_url", "SCRIBE_REDIS_URL")):
        if getattr(args, option):
            os.environ[name] = str(getattr(args, option))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    os.environ.setdefault("SCRIBE_LOG_LEVEL", "WARNING")  # sign-ins of hundreds of bench users are not news
    os.environ.setdefault("SCRIBE_TEST_DB_NAME", f"scribe_system_bench_{os.getpid()}")
    import django

    django.setup()


def make_users(count: int) -> list[tuple[str, str]]:
    """(host cookie, follower cookie) for `count` owners and as many viewers, signed in as a browser is."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    def cookie(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    out = []
    start = User.objects.filter(username__startswith="bench-host-").count()
    for i in range(start, start + count):
        host = User.objects.create_user(f"bench-host-{i}", password="bench-password-1")
        viewer = User.objects.create_user(f"bench-viewer-{i}", password="bench-password-1")
        out.append((host, viewer, cookie(host), cookie(viewer)))
    return out


def make_pairs(users, n: int, run: int) -> list[dict]:
    """N fresh meetings, meeting i owned by host user i and shared with viewer i."""
    from meetings import services
    from meetings.models import Sharing

    pairs = []
    for i in range(n):
        host, viewer, host_cookie, follower_cookie = users[i]
        meeting = services.meeting_create(owner=host, title=f"Bench run {run} meeting {i}", language="en")
        services.meeting_share(meeting=meeting, by=host, user=viewer, role=Sharing.Role.VIEW)
        pairs.append({"index": i, "meeting_id": meeting.pk, "host_cookie": host_cookie, "follower_cookie": follower_cookie})
    return pairs


def engine_report() -> dict | None:
    """The engine health the server process publishes (the same the status page and /healthz read)."""
    from config.status_store import engine_hosts

    hosts = [h for h in engine_hosts() if "capacity" in h or h.get("failure")]
    return hosts[0] if hosts else None


class CaptionWorkers:
    """K `manage.py run_caption_worker` processes, worker i on GPU i (CUDA_VISIBLE_DEVICES) where there are GPUs.

    Each publishes its engine's health to Redis under its host id (host name and pid), so its reports are
    told apart from those of any other process on the same Redis (an earlier run's linger for 15 s).
    """

    def __init__(self, scratch: Path, count: int, env: dict, gpus: int):
        import socket

        self.scratch, self.count, self.env, self.gpus = scratch, count, env, gpus
        self.procs: list = []
        self.logs: list[Path] = []
        self.cards: list[str | None] = []  # each worker's CUDA_VISIBLE_DEVICES (None on a CPU)
        self.hostname = socket.gethostname()

    def __enter__(self):
        import subprocess

        from tests.servers import child_env

        # Card i of those this process sees: with CUDA_VISIBLE_DEVICES=2,3 set, worker 0 gets card 2.
        cards = [c.strip() for c in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if c.strip()] or [str(i) for i in range(self.gpus)]
        try:
            for i in range(self.count):
                env = {**self.env, "SCRIBE_LOG_LEVEL": "INFO"}  # the worker's account of where a frame's time goes
                if self.gpus:  # the engine takes the first device it sees: its own card
                    env.update(CUDA_VISIBLE_DEVICES=cards[i % self.gpus], SCRIBE_ASR_DEVICE="cuda")
                self.cards.append(cards[i % self.gpus] if self.gpus else None)
                log = self.scratch / f"caption-worker-{i}.log"
                with open(log, "w") as out:
                    self.procs.append(subprocess.Popen([sys.executable, "manage.py", "run_caption_worker"], cwd=REPO,
                                                       env=child_env(**env), stdout=out, stderr=subprocess.STDOUT))
                self.logs.append(log)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        from tests.servers import stop_process

        for proc in self.procs:
            proc.terminate()  # all at once: each takes its engine down in parallel
        for proc in self.procs:
            if proc.poll() is None:
                stop_process(proc)

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise RuntimeError(f"caption worker {i} exited with {proc.returncode}:\n{self.logs[i].read_text()[-4000:]}")

    def reports(self) -> list[dict | None]:
        """Each worker's latest health, in worker order (None: nothing published yet, or it stopped)."""
        from config.status_store import engine_hosts

        by_host = {h.get("host"): h for h in engine_hosts()}
        return [by_host.get(f"{self.hostname}:{proc.pid}") for proc in self.procs]

    def report(self) -> dict | None:
        """The workers' health summed up as one engine's: capacity and active streams added, step times the
        slowest worker's; `worker_streams` the active streams of each (None for a worker not reporting)."""
        reports = self.reports()
        ready = [r for r in reports if r and "capacity" in r]
        if not ready:
            return None
        total = lambda key: sum(r.get(key) or 0 for r in ready)  # noqa: E731
        slowest = lambda key: max((r[key] for r in ready if r.get(key) is not None), default=None)  # noqa: E731
        return {"capacity": total("capacity"), "capacity_memory": total("capacity_memory"), "capacity_time": total("capacity_time"),
                "active_streams": total("active_streams"), "step_ms_p95": slowest("step_ms_p95"), "step_ms_p50": slowest("step_ms_p50"),
                "worker_streams": [r.get("active_streams") if r and "capacity" in r else None for r in reports],
                "worker_capacity": [r.get("capacity") if r and "capacity" in r else None for r in reports],
                "worker_devices": [r.get("device") if r and "capacity" in r else None for r in reports],
                "workers_reporting": len(ready), "streams": [s for r in ready for s in r.get("streams") or ()]}

    def wait_ready(self, timeout_s: float) -> dict:
        """Until every worker has loaded its engine and published its health."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            reports = self.reports()
            for i, r in enumerate(reports):
                if r and r.get("failure"):
                    raise RuntimeError(f"caption worker {i}'s engine did not load: {r['failure']}")
            if all(r and "capacity" in r for r in reports):
                return self.report()
            time.sleep(1.0)
        waiting = [i for i, r in enumerate(self.reports()) if not (r and "capacity" in r)]
        raise RuntimeError(f"caption workers {waiting} did not report ready within {timeout_s:.0f} s (logs in {self.scratch})")


def wait_for_engine(timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = engine_report()
        if report and report.get("failure"):
            raise RuntimeError(f"the server's engine did not load: {report['failure']}")
        if report and "capacity" in report:
            return report
        time.sleep(1.0)
    raise RuntimeError(f"the server's engine did not report ready within {timeout_s:.0f} s")


def wait_for_idle_engine(read=engine_report, timeout_s: float = 120) -> int | None:
    """After a run: until the engines report no active stream, so that a run's backlog (hosts whose stop
    timed out, streams still flushing) never spills into the next. Returns the streams still active at the
    timeout: 0 when idle, None when no engine reported at all."""
    deadline = time.monotonic() + timeout_s
    active = None
    while True:
        report = read()
        if report is not None:
            active = report.get("active_streams", 0)
        if active == 0 or time.monotonic() >= deadline:
            return active
        time.sleep(1.0)


def server_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of this script's Daphne servers and caption workers (its child processes), by pid."""
    tick, me, out = os.sysconf("SC_CLK_TCK"), os.getpid(), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        kind = "daphne" if b"daphne" in cmdline else "caption_worker" if b"run_caption_worker" in cmdline else None
        if kind and int(fields[1]) == me:
            out[int(pid)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cores_used(before: dict, after: dict, seconds: float) -> dict[str, list[float]]:
    """Each server process's CPU over the streaming, in cores (1.0: one core busy all the time), by kind."""
    used: dict[str, list[float]] = {}
    for pid, (kind, cpu) in sorted(after.items()):
        if pid in before:
            used.setdefault(kind, []).append(round((cpu - before[pid][1]) / seconds, 2))
    return used


class EngineSampler:
    """Reads the published engine health every second while a run streams; keeps the last sample in it.
    `read`: the server's engine (in-process) or the caption workers' summed up. Also the server processes'
    CPU over the streaming (`cores`), which says whether a server, not the engine, is what runs out."""

    def __init__(self, read=engine_report):
        self.read = read
        self.last: dict | None = None
        self.peak_active = 0
        self.t_end = math.inf
        self.cores: dict[str, list[float]] = {}
        self.engine_lags: list[float] = []  # each stream's audio waiting in its engine, sampled every second
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, t_start: float, t_end: float) -> None:
        self.t_end = t_end
        self.cpu_before, self.t_start = server_cpu(), time.time()
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(1.0):
            if not self.cores and time.time() > self.t_end:
                self.cores = cores_used(self.cpu_before, server_cpu(), time.time() - self.t_start)
            try:
                report = self.read()
            except Exception:
                continue
            if report and time.time() <= self.t_end:
                self.last = report
                self.peak_active = max(self.peak_active, report.get("active_streams", 0))
                self.engine_lags += [s["lag_ms"] for s in report.get("streams") or () if s.get("lag_ms") is not None]

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def gpu_names() -> list[str]:
    """The GPUs' names, asked in a child process: CUDA set up here would hold memory the server's engine
    sizes its caches from."""
    import subprocess

    code = "import torch; print('\\n'.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return [line for line in done.stdout.splitlines() if line.strip()]


def device_name(gpus: list[str]) -> str:
    if gpus:
        return gpus[0]
    return f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def spread(pairs: list[dict], bases: list[str]) -> list[dict]:
    """Meeting i's host on server i mod M and its follower on the next one, as a balancer in front of M
    servers would spread them: with several servers, every caption crosses from one process to another."""
    m = len(bases)
    return [{**p, "host_base": bases[i % m], "follower_base": bases[(i + 1) % m]} for i, p in enumerate(pairs)]


def measure(base: str | list[str], pairs: list[dict], cfg: dict, procs: int, read=engine_report, idle_timeout_s: float = 0) -> dict:
    """One run: N meetings streaming for cfg['seconds'] through the server at `base` (or the servers of a
    list, spread as `spread` says); `read`: the engines' health. With `idle_timeout_s`, the run ends only once
    the engines report no active stream (or that timeout, then said in `errors`)."""
    sampler = EngineSampler(read)
    results = run_clients(spread(pairs, [base] if isinstance(base, str) else base), cfg, procs, on_go=lambda t0: sampler.start(t0, t0 + cfg["seconds"]))
    sampler.stop()
    row = summarise(results)
    engine = sampler.last or {}
    rounded = lambda v: None if v is None else round(v, 2)  # noqa: E731
    row.update(step_ms_p95=rounded(engine.get("step_ms_p95")), step_ms_p50=rounded(engine.get("step_ms_p50")), admitted_max=engine.get("capacity"),
               capacity_memory=engine.get("capacity_memory"), capacity_time=engine.get("capacity_time"),
               engine_active_streams_max=sampler.peak_active, client_procs=min(procs, len(pairs)), server_cores=sampler.cores,
               engine_wait_ms_p50=pct(sampler.engine_lags, 50), engine_wait_ms_p95=pct(sampler.engine_lags, 95))
    if "worker_streams" in engine:  # how the streams spread over the caption workers, at the end of the streaming
        row.update(worker_streams=engine["worker_streams"], worker_capacity=engine["worker_capacity"],
                   workers_reporting=engine["workers_reporting"])
    if idle_timeout_s:
        started = time.monotonic()
        left = wait_for_idle_engine(read, idle_timeout_s)
        row["idle_after_s"] = round(time.monotonic() - started, 1)
        if left is None:
            row["errors"][f"no engine reported its health in the {idle_timeout_s:.0f} s after the run"] = 1
        elif left:
            row["errors"][f"streams still active {idle_timeout_s:.0f} s after the run"] = left
    return row


def server_env(model_dir, *, device: str, max_streams: int = 512, kv_cache: str | None = None, step_budget_ms: int = 0,
               delay_ms: int = 480, layer: str = "live", threads: int = 0) -> dict:
    """The server's settings: the engine in its own process, loaded from `model_dir`.

    `threads`: the server's intra-op threads (OMP_NUM_THREADS); 0: one on a CPU, torch's default with a GPU.
    On a CPU the engine's parallel sections wait on each other while the server's loop and the clients
    hold the cores: with two threads on two busy cores, one step in twenty took 200-500 ms instead of 7.
    """
    env = {"SCRIBE_LOG_LEVEL": "WARNING", "SCRIBE_ASR_LIVE_ENGINE": "local", "SCRIBE_ASR_MODEL_DIR": str(model_dir),
           "SCRIBE_ASR_DEVICE": device, "SCRIBE_ASR_MAX_STREAMS": max_streams, "SCRIBE_ASR_KV_CACHE": kv_cache or "",
           "SCRIBE_ASR_STEP_BUDGET_MS": step_budget_ms, "SCRIBE_ASR_DEFAULT_DELAY_MS": delay_ms, "SCRIBE_LIVE_CHANNEL_LAYER": layer}
    threads = threads or (1 if device == "cpu" else 0)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    return env


def client_config(n: int, *, seconds: float, delay_ms: int = 480, warmup_s: float = 3.0, audio: str = "chirp") -> dict:
    from django.conf import settings

    return {"n": n, "seconds": seconds, "delay_ms": delay_ms, "warmup_s": warmup_s, "audio": audio,
            "cookie_name": settings.SESSION_COOKIE_NAME, "start_timeout_s": 120, "stop_timeout_s": 60, "tail_s": 2.0}


def merged(old: dict | None, result: dict) -> dict:
    """`result` into an earlier results file (the capacity benchmark's, say): its other runs and keys stay,
    a run of the same path, streams, cache type, delay and numbers of caption workers and servers is replaced."""
    if not old:
        return result
    same = lambda r: (r.get("path"), r.get("streams"), r.get("kv_dtype"), r.get("delay_ms"), r.get("workers") or 0, r.get("servers") or 1)  # noqa: E731
    new = {same(r) for r in result["runs"]}
    runs = [r for r in old.get("runs", []) if same(r) not in new] + result["runs"]
    return {**old, "system_bench": {k: v for k, v in result.items() if k != "runs"}, "runs": runs}


def client_procs(args, n: int) -> int:
    return args.client_procs or max(1, min(math.ceil(n / 25), (os.cpu_count() or 2) // 2))


def largest_within(runs: list[dict], target_ms: float) -> int | None:
    """The most hosts of a run whose lag p95 met the target with none refused."""
    good = [r["streams"] for r in runs if r["lag_ms_p95"] is not None and r["lag_ms_p95"] <= target_ms and not r["refused"]]
    return max(good, default=None)


def main() -> int:
    today = datetime.date.today().isoformat()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="2,4", help="comma-separated numbers of hosts, one run each, in this order")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio each host streams per run")
    ap.add_argument("--delay-ms", type=int, default=480)
    ap.add_argument("--kv-cache", choices=("bfloat16", "float8", "float8-all"), help="ring cache dtype (SCRIBE_ASR_KV_CACHE); default the model's")
    ap.add_argument("--model-dir", type=Path, help="a model folder in the transformers layout")
    ap.add_argument("--tiny", action="store_true", help="build and use the tiny random-weight test model (CPU)")
    ap.add_argument("--build-full-model", type=Path, metavar="DIR", help="save the full-size random bf16 model into DIR and exit")
    ap.add_argument("--device", default="", help="SCRIBE_ASR_DEVICE: cuda, cuda:1 or cpu; default the first GPU if any")
    ap.add_argument("--workers", type=int, default=0,
                    help="caption worker processes (SCRIBE_ASR_LIVE_ENGINE=worker), worker i on GPU i; 0: the engine in the server process")
    ap.add_argument("--servers", type=int, default=1,
                    help="Daphne processes behind the clients (more than one needs --workers): meeting i's host on server i mod M, its follower on the next")
    ap.add_argument("--max-streams", type=int, default=512, help="SCRIBE_ASR_MAX_STREAMS (the engine also limits by memory and time)")
    ap.add_argument("--step-budget-ms", type=int, default=0, help="SCRIBE_ASR_STEP_BUDGET_MS; 0: the engine's default")
    ap.add_argument("--audio", choices=("chirp", "speech"), default="chirp", help="speech needs espeak-ng and sox")
    ap.add_argument("--warmup-s", type=float, default=3.0, help="tokens of each stream's first seconds are not counted")
    ap.add_argument("--warmup-run-s", type=float, default=10.0,
                    help="a run of the first N this long before the ramp, not recorded (the first streams' one-time costs); 0: none")
    ap.add_argument("--client-procs", type=int, default=0, help="client processes; 0: one per 25 meetings, at most half the cores")
    ap.add_argument("--server-threads", type=int, default=0, help="the server's OMP_NUM_THREADS; 0: one on a CPU, torch's default with a GPU")
    ap.add_argument("--layer", default="live", help="SCRIBE_LIVE_CHANNEL_LAYER for the sockets: live (pub/sub) or default")
    ap.add_argument("--load-timeout", type=float, default=1200, help="seconds for the server to load and warm up the engine")
    ap.add_argument("--idle-timeout", type=float, default=300,
                    help="after each run, seconds to wait for the engines to report no active stream before the next run")
    ap.add_argument("--db-host")
    ap.add_argument("--db-port", type=int)
    ap.add_argument("--db-user")
    ap.add_argument("--db-password")
    ap.add_argument("--redis-url", help="e.g. redis://127.0.0.1:6379/13")
    ap.add_argument("--target-ms", type=float, default=150.0, help="lag p95 target: the largest N within it is reported")
    ap.add_argument("--stop-past-target", action=argparse.BooleanOptionalAction, default=True,
                    help="end the ramp after the first run over the target (the larger N left would only be slower)")
    ap.add_argument("--out", type=Path, help="results file (JSON), merged into when it exists (e.g. the capacity benchmark's); "
                                             "default benchmarks/results/system-<date>-<gpu|cpu>.json")
    ap.add_argument("--merge", type=Path, metavar="RESULT",
                    help="merge RESULT (this script's output from another machine) into --out and exit, running nothing")
    args = ap.parse_args()

    if args.merge:
        old = json.loads(args.out.read_text()) if args.out and args.out.exists() else None
        args.out.write_text(json.dumps(merged(old, json.loads(args.merge.read_text())), indent=1) + "\n")
        return 0
    if args.build_full_model:
        build_full_model(args.build_full_model)
        print(json.dumps({"built": str(args.build_full_model)}))
        return 0
    if args.servers < 1 or (args.servers > 1 and not args.workers):
        ap.error("--servers M: M >= 1, and more than one server needs --workers (the engine in the server serves that server only)")
    if args.workers < 0 or (args.workers and args.device not in ("", "cuda", "cpu")):
        ap.error("--workers K: K >= 0; the workers take GPUs 0..K-1 (CUDA_VISIBLE_DEVICES), so --device may only be cuda or cpu")
    gpus = [] if args.device == "cpu" else gpu_names()
    cuda = bool(gpus)
    configure(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill ends the server, workers and clients too, and drops the database
    from django.db import connection

    from tests.servers import daphne_server

    scratch = Path(tempfile.mkdtemp(prefix="system-bench-"))  # kept: the server log explains a failed run
    model_dir = args.model_dir
    if args.tiny:
        from tests.engine.tiny_model import build_tiny_model_dir

        model_dir = build_tiny_model_dir(scratch / "tiny-model", seed=0)
    if model_dir is None or not Path(model_dir).is_dir():
        ap.error("--model-dir (an existing model folder) or --tiny is needed")
    counts = [int(n) for n in args.streams.split(",")]
    kv = args.kv_cache or ("bfloat16" if cuda else "float32")
    env = server_env(model_dir, device=args.device or ("cuda" if cuda else "cpu"), max_streams=args.max_streams, kv_cache=args.kv_cache,
                     step_budget_ms=args.step_budget_ms, delay_ms=args.delay_ms, layer=args.layer, threads=args.server_threads)
    k = args.workers
    layout = "caption workers" if k else "in-process"
    # In-process, the engine in the server uses one device; caption workers one GPU each (more workers than
    # GPUs share them round the cards).
    used_gpus = (min(k, len(gpus)) if k else 1) if cuda else 0
    device = device_name(gpus)
    out = args.out or REPO / "benchmarks" / "results" / f"system-{today}-{'gpu' if cuda else 'cpu'}.json"
    result = {"device": device, "date": today, "path": "system", "model_dir": str(model_dir), "tiny": args.tiny,
              "audio": args.audio, "cores": os.cpu_count(), "channel_layer": args.layer, "target_ms": args.target_ms,
              "workers": k, "servers": args.servers, "layout": layout, "gpus": used_gpus, "runs": []}
    old = json.loads(out.read_text()) if out.exists() else None
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        users = make_users(max(counts))
        with contextlib.ExitStack() as stack:
            started = time.monotonic()
            if k:
                workers = stack.enter_context(CaptionWorkers(scratch, k, env, len(gpus)))
                # The servers load no engine; no card either, so that nothing in them can take memory on the workers' GPUs.
                base = [stack.enter_context(daphne_server(scratch, **{**env, "SCRIBE_ASR_LIVE_ENGINE": "worker", "CUDA_VISIBLE_DEVICES": ""}))
                        for _ in range(args.servers)]
                read = workers.report
                report = workers.wait_ready(args.load_timeout)
            else:
                base = stack.enter_context(daphne_server(scratch, **env))
                read = engine_report
                report = wait_for_engine(args.load_timeout)
            print(json.dumps({"engine_ready_s": round(time.monotonic() - started, 1), "admitted_max": report.get("capacity"),
                              "capacity_memory": report.get("capacity_memory"), "capacity_time": report.get("capacity_time"),
                              "layout": layout, "workers": k, **({"worker_capacity": report["worker_capacity"], "worker_cards": workers.cards,
                                                                  "worker_devices": report["worker_devices"]} if k else {}),
                              "server_log": str(scratch)}), flush=True)

            def run_once(n: int, run, seconds: float, warmup_s: float) -> dict:
                if k:
                    workers.check_alive()
                cfg = client_config(n, seconds=seconds, delay_ms=args.delay_ms, warmup_s=warmup_s, audio=args.audio)
                return measure(base, make_pairs(users, n, run), cfg, client_procs(args, n), read=read, idle_timeout_s=args.idle_timeout)

            if args.warmup_run_s > 0:
                n = counts[0]
                row = run_once(n, "warm-up", args.warmup_run_s, min(args.warmup_s, args.warmup_run_s / 2))
                print(json.dumps({"warmup_run": {key: row[key] for key in ("lag_ms_p50", "lag_ms_p95", "tokens", "refused", "errors", "idle_after_s")},
                                  "streams": n}), flush=True)
            for run, n in enumerate(counts):
                row = {"streams": n, "kv_dtype": kv, "delay_ms": args.delay_ms, **run_once(n, run, args.seconds, args.warmup_s),
                       "bandwidth_tb_s": None, "path": "system", "gpus": used_gpus, "gpus_visible": len(gpus),
                       "workers": k, "servers": args.servers, "layout": layout, "seconds": args.seconds, "device": device, "date": today}
                result["runs"].append(row)
                result["largest_within_target"] = largest_within(result["runs"], args.target_ms)
                print(json.dumps(row), flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(merged(old, result), indent=1) + "\n")  # after every run: a later failure keeps the earlier figures
                if args.stop_past_target and (row["lag_ms_p95"] is None or row["lag_ms_p95"] > args.target_ms):
                    break
    finally:
        connection.close()
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    print(json.dumps({"largest_within_target": result.get("largest_within_target"), "target_ms": args.target_ms, "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
