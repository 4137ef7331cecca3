"""GPU work goes to the `gpu` queue, file work to `cpu`, so GPU hosts consume only model stages."""
import pytest

from config.celery import app
from transcription import tasks


@pytest.mark.parametrize("task,queue", [
    (tasks.reprocess_decode, "cpu"),
    (tasks.reprocess_transcribe, "gpu"),
    (tasks.reprocess_diarize, "gpu"),
    (tasks.reprocess_store, "cpu"),
    (tasks.speakers_store, "cpu"),
])
def test_each_stage_is_routed_to_its_queue(task, queue):
    route = app.amqp.router.route({}, task.name, args=(1,), kwargs={})
    assert route["queue"].name == queue
    assert task.acks_late


def test_the_chain_runs_the_stages_in_order():
    names = [sig.task for sig in tasks.reprocess_chain(7).tasks]
    assert names == [t.name for t in (tasks.reprocess_decode, tasks.reprocess_transcribe, tasks.reprocess_diarize, tasks.reprocess_store)]
    assert all(sig.args == (7,) and sig.immutable for sig in tasks.reprocess_chain(7).tasks)


def test_separating_speakers_again_decodes_separates_and_stores_without_transcribing():
    names = [sig.task for sig in tasks.speakers_chain(7).tasks]
    assert names == [t.name for t in (tasks.reprocess_decode, tasks.reprocess_diarize, tasks.speakers_store)]
