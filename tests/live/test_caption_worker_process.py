"""A `manage.py run_caption_worker` process as `deploy/up.sh` and production start it."""
import asyncio
import subprocess
import sys
import time
import uuid

import pytest
from channels.layers import get_channel_layer

from tests.servers import REPO, child_env, stop_process
from transcription.live.engine_bridge import EngineUnavailable, RemoteStream


@pytest.mark.django_db(transaction=True)
def test_a_caption_worker_without_a_model_keeps_serving_and_tells_the_host_why_in_words(tmp_path, settings):
    # Before, it exited: a fresh site (no model imported yet) then told hosts only that no worker answered,
    # after a 20 s wait, and a supervisor restarted it every second.
    settings.ASR_WORKER_CHANNEL = f"caption-workers-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "caption-worker.log"
    env = child_env(SCRIBE_ASR_MODEL_DIR="", SCRIBE_ASR_WORKER_CHANNEL=settings.ASR_WORKER_CHANNEL, SCRIBE_LOG_LEVEL="INFO")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "run_caption_worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "caption worker listening" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

        async def open_stream() -> str:
            stream = RemoteStream(delay_ms=480, on_event=lambda kind, data: None, layer=get_channel_layer())
            started = time.monotonic()
            with pytest.raises(EngineUnavailable) as refused:
                await stream.open()
            assert time.monotonic() - started < 10  # an answer, not the wait for one that never comes
            return str(refused.value)

        message = asyncio.run(open_stream())
        assert "No speech model is configured" in message and "still recorded" in message, message
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop_process(proc)
