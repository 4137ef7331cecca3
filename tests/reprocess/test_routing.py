"""GPU work goes to the `gpu` queue, file work to `cpu`, so GPU hosts consume only model stages."""
import pytest

from config.celery import app
from transcription import tasks
from transcription.reprocess import pipeline


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


def test_transcription_and_speaker_separation_run_side_by_side_and_store_waits_for_both():
    decode, side_by_side = pipeline.reprocess_chain(7).tasks
    assert decode.task == tasks.reprocess_decode.name
    assert sorted(sig.task for sig in side_by_side.tasks) == sorted([tasks.reprocess_transcribe.name, tasks.reprocess_diarize.name])
    assert side_by_side.body.task == tasks.reprocess_store.name  # the chord's body: runs once both are done
    assert all(sig.args == (7,) and sig.immutable for sig in (decode, *side_by_side.tasks, side_by_side.body))
    # The chord counts its header's results; no other task keeps one.
    assert not tasks.reprocess_transcribe.ignore_result and not tasks.reprocess_diarize.ignore_result
    assert tasks.reprocess_decode.ignore_result and tasks.reprocess_store.ignore_result


def test_separating_speakers_again_decodes_separates_and_stores_without_transcribing():
    names = [sig.task for sig in pipeline.speakers_chain(7).tasks]
    assert names == [t.name for t in (tasks.reprocess_decode, tasks.reprocess_diarize, tasks.speakers_store)]
