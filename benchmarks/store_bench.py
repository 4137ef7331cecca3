"""The store stage's database write for a transcript of a given size, on this machine's PostgreSQL.

    .venv/bin/python benchmarks/store_bench.py [--segments 854] [--words 53132] [--repeat 3] [--db scribe_bench_store]

The GPU host of benchmarks/reprocess_bench.py has no database, so its `store` figure is the
serialisation alone. This times what the stage does after that: transcription.reprocess.store.
transcript_replace (old transcript deleted, speakers and segments inserted with their timed words,
the search trigger indexing each segment, the job marked done) in one transaction. The defaults are
the 3-hour run's sizes. Prints the best and median of --repeat runs.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.search_bench import setup_django  # noqa: E402


def aligned_segments(n_segments: int, n_words: int, speakers: int = 6) -> list:
    from meetings.segments import TimedWord
    from transcription.reprocess.align import AlignedSegment

    vocabulary = "the budget for next quarter is agreed and the ward round starts at nine with the new team".split()
    per_segment, segments, at = max(1, n_words // n_segments), [], 0
    for i in range(n_segments):
        words = tuple(TimedWord(vocabulary[(i + k) % len(vocabulary)], at + k * 200, at + k * 200 + 180) for k in range(per_segment))
        segments.append(AlignedSegment(start_ms=at, end_ms=words[-1].end_ms, speaker=f"SPEAKER_{i % speakers:02d}",
                                       text=" ".join(w.text for w in words), words=words))
        at = words[-1].end_ms + 400
    return segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=854)
    parser.add_argument("--words", type=int, default=53132)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default="scribe_bench_store")
    args = parser.parse_args()
    setup_django(args.db, keep=False)
    from django.contrib.auth.models import User

    from meetings.models import Meeting, Recording, ReprocessJob
    from transcription.reprocess.store import transcript_replace

    owner = User.objects.create_user("bench")
    meeting = Meeting.objects.create(owner=owner, title="Store benchmark", language="en")
    recording = Recording.objects.create(meeting=meeting, file="bench.wav", source=Recording.Source.UPLOAD)
    segments = aligned_segments(args.segments, args.words)
    seconds = []
    for _ in range(args.repeat):
        job = ReprocessJob.objects.create(meeting=meeting, recording=recording, stage=ReprocessJob.Stage.STORING)
        started = time.perf_counter()
        stored = transcript_replace(job=job, segments=segments)
        seconds.append(time.perf_counter() - started)
    print(f"{stored} segments, {sum(len(s.words) for s in segments)} words on {os.cpu_count()} CPU cores: "
          f"best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s over {args.repeat} runs")


if __name__ == "__main__":
    main()
