"""Run the live-caption fault-injection suite in Chromium and write its figures.

    ~/.cache/scribe/venv/bin/python benchmarks/live_faults.py [--out benchmarks/results/live-faults-<date>.json]

It runs `tests/live/test_faults.py` (real Daphne, the tiny random-weight model on the CPU, espeak-ng
speech as the fake microphone), which injects each fault and measures: the time from connectivity
returning to the next caption at the follower (`resume_s`), the audio captured by the host page that
is missing from the recording (`audio_lost_ms`), and duplicated or missing final captions by sequence
number. The file is a list of objects, one per fault, each with the device and date of the run.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    today = datetime.date.today().isoformat()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / f"benchmarks/results/live-faults-{today}.json")
    args = parser.parse_args()
    raw = args.out.with_suffix(".raw.json")
    env = {**os.environ, "SCRIBE_FAULT_RESULTS": str(raw)}
    code = subprocess.call([sys.executable, "-m", "pytest", "tests/live/test_faults.py", "-q", "-s"], cwd=REPO, env=env)
    if not raw.exists():
        print("the fault suite wrote no figures", file=sys.stderr)
        return code or 1
    device = f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), tiny random-weight model"
    rows = [{**row, "device": device, "date": today} for row in json.loads(raw.read_text())]
    raw.unlink()
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{'fault':48} {'side':9} {'outage_s':>8} {'resume_s':>8} {'lost_ms':>8} {'dup':>4} {'miss':>4}")
    for r in rows:
        print(f"{r['fault']:48} {r['side']:9} {r['outage_s']:>8} {str(r['resume_s']):>8} {r['audio_lost_ms']:>8} {r['duplicate_finals']:>4} {r['missing_finals']:>4}")
    return code


if __name__ == "__main__":
    sys.exit(main())
