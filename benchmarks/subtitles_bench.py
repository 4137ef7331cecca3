"""Subtitle exports of a 1-hour transcript checked cue by cue against the timed-text rules.

    python benchmarks/subtitles_bench.py --hours 1 --out benchmarks/results/subtitles-2026-11-30.json

The transcript is the synthetic one the tests use (tests/transcripts.py: four speakers at about 150
words a minute, short answers, pauses, a long name, Japanese passages, web addresses), cut into
segments by the product's rule. The SRT and WebVTT exports (meetings/exports.py) are read back and
checked by the tests' validator (tests/subtitle_rules.py); the JSON holds the figures of each format
and, at its top level, the worse of the two.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from meetings import exports  # noqa: E402
from meetings.models import Meeting  # noqa: E402
from meetings.segments import segment_text  # noqa: E402
from tests.subtitle_rules import parse, summary, violations  # noqa: E402
from tests.test_subtitles import unsaved_segments  # noqa: E402
from tests.transcripts import synthetic_segments  # noqa: E402


def measure(segments, fmt: str) -> dict:
    rows = unsaved_segments(segments)
    render = exports.to_srt if fmt == "srt" else exports.to_vtt
    started = time.perf_counter()
    text = render(Meeting(title="Benchmark"), rows).decode()
    seconds = time.perf_counter() - started
    cues = parse(text, fmt, {name for name, _ in segments})
    found = violations(cues, turns=[(name, segment_text(words)) for name, words in segments], fmt=fmt)
    cps = [len(c.text) * 1000 / (c.end_ms - c.start_ms) for c in cues]
    return {**summary(cues, found), "export_s": round(seconds, 3), "median_chars_per_s": round(statistics.median(cps), 1),
            "cues_over_20_chars_per_s": sum(x > 20 for x in cps), "examples": found[:10]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    segments = synthetic_segments(hours=args.hours, seed=args.seed)
    words = sum(len(w) for _, w in segments)
    per_format = {fmt: measure(segments, fmt) for fmt in ("srt", "vtt")}
    worst = {
        "cues": max(f["cues"] for f in per_format.values()),
        "violations": sum(f["violations"] for f in per_format.values()),
        "max_line_chars": max(f["max_line_chars"] for f in per_format.values()),
        "max_lines": max(f["max_lines"] for f in per_format.values()),
        "min_duration_s": min(f["min_duration_s"] for f in per_format.values()),
        "max_duration_s": max(f["max_duration_s"] for f in per_format.values()),
    }
    result = {**worst, "date": date.today().isoformat(), "device": f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores (no GPU used)",
              "transcript": {"hours": args.hours, "seed": args.seed, "segments": len(segments), "words": words},
              "rules": {"max_line_chars": 42, "cjk_max_line_chars": 16, "max_lines": 2, "min_duration_s": 0.834, "max_duration_s": 7.0, "max_chars_per_s": 20},
              "formats": per_format}
    print(f"{'format':<7}{'cues':>6}{'violations':>12}{'max chars':>11}{'max lines':>11}{'min s':>8}{'max s':>8}{'median cps':>12}{'export s':>10}")
    for fmt, f in per_format.items():
        print(f"{fmt:<7}{f['cues']:>6}{f['violations']:>12}{f['max_line_chars']:>11}{f['max_lines']:>11}{f['min_duration_s']:>8}"
              f"{f['max_duration_s']:>8}{f['median_chars_per_s']:>12}{f['export_s']:>10}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
