"""Messages of the live caption protocol: over the WebSocket (JSON) and across the channel layer.

Every caption carries `seq`. A final's seq is its position among the meeting's live segments
(1 for the first), so the database alone can say what a follower missed. A delta (the words not yet
final) carries the seq of the last final before it and is never stored or replayed, only replaced.
"""
from typing import Literal, NotRequired, TypedDict

# Close codes the pages understand (4000-4999 are the application's own).
CLOSE_SIGNED_OUT = 4401  # no session, or the session ended (signed out, expired)
CLOSE_FORBIDDEN = 4403  # no such meeting, or no longer shared with this user
CLOSE_HOST_ELSEWHERE = 4409  # the owner is already streaming this meeting from another window
CLOSE_IDLE = 4408  # nothing heard from the page for too long (a half-open socket)
CLOSE_ENGINE = 4503  # no speech model, or the engine failed

MAX_FRAME_BYTES = 32_000  # one second of 16 kHz PCM16; pages send 2,560 bytes (80 ms) at a time
MAX_TEXT_BYTES = 4_096


def group_name(meeting_id: int) -> str:
    return f"live.meeting.{meeting_id}"


class CaptionEvent(TypedDict):
    type: Literal["caption"]
    final: bool
    seq: int
    text: str
    start_ms: int
    end_ms: int
    sent_at: float  # server wall clock (s) when the host's server sent it to the followers, to show caption lag
    made_at: NotRequired[float]  # wall clock (s) when the engine made its newest words (same host as sent_at)
    late: NotRequired[bool]  # made from audio the host page resent after a connection drop


class EngineHealth(TypedDict):
    ready: bool
    last_step_age_ms: int | None  # how long since the engine last stepped this stream
    lag_ms: int  # audio received but not yet transcribed
    stalled: bool
    message: NotRequired[str]


class StatusEvent(TypedDict):
    type: Literal["status"]
    host: Literal["live", "paused", "reconnecting", "ended", "offline"]  # reconnecting: the host's page is gone, within the grace
    seq: int  # the last final's seq, so a follower can see it missed something
    engine: EngineHealth
    sent_at: float
    audio: NotRequired[bool]  # the host's audio is arriving now; a status goes out within a second of it changing
    audio_at: NotRequired[float | None]  # server wall clock (s) of the last audio frame


class ErrorEvent(TypedDict):
    type: Literal["error"]
    code: str
    message: str


# Channel-layer messages between a host's consumer and a caption worker in another process.
class WorkerOpen(TypedDict):
    type: Literal["caption.open"]
    stream_id: str
    reply_channel: str
    delay_ms: int


class WorkerAudio(TypedDict):
    type: Literal["caption.audio"]
    stream_id: str
    pcm: bytes
    at: NotRequired[float]  # wall clock (s) when the host's server received the frame: the worker times its way there


class WorkerClose(TypedDict):
    """`caption.close`: finish the stream (its last words become finals); `caption.release`: drop it at
    once (its host's server let go of it, or took the worker for dead); `caption.keepalive`: the host
    is still there, though it sends no audio (paused)."""

    type: Literal["caption.close", "caption.release", "caption.keepalive"]
    stream_id: str


class WorkerEvent(TypedDict):
    """From a worker to the host's stream: `kind` is opened, delta, final, health, refused, failed or closed."""

    type: Literal["engine.event"]
    stream_id: str
    kind: str
    text: NotRequired[str]
    start_ms: NotRequired[int]
    end_ms: NotRequired[int]
    worker_channel: NotRequired[str]
    health: NotRequired[EngineHealth]
    message: NotRequired[str]


class WorkerBatch(TypedDict):
    """A server process's messages to one caption worker, in order (audio, close, keepalive, release)."""

    type: Literal["caption.batch"]
    items: list[WorkerAudio | WorkerClose]


class WorkerEvents(TypedDict):
    """A caption worker's replies to the streams of one server process, in order."""

    type: Literal["engine.batch"]
    items: list[WorkerEvent]


def error(code: str, message: str) -> ErrorEvent:
    return {"type": "error", "code": code, "message": message}
