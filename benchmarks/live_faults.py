"""Run the live-caption fault-injection suite in Chromium and write its figures.

    ~/.cache/scribe/venv/bin/python benchmarks/live_faults.py [--out benchmarks/results/live-faults-<date>.json]
    ~/.cache/scribe/venv/bin/python benchmarks/live_faults.py --longhaul   # the 10-minute outage (~13 min)

It runs `tests/live/test_faults.py` (real Daphne, the tiny random-weight model on the CPU, espeak-ng
speech as the fake microphone; in its production phase two `run_caption_worker` processes), which
injects each fault and measures: the time from connectivity returning to the next caption at the
follower (`resume_s`), the audio captured by the recording window that is missing from the recording
(`audio_lost_ms`), and duplicated or missing final captions by sequence number. The file is a list
of objects, one per fault, each with the device and date of the run that measured it.

The default run replaces every row but the long outage's; `--longhaul` runs only the long outage
(marker `longhaul`, left out of the default test run) and replaces only its row, so the file holds
the figures of both runs. A file not written yet today starts from the latest earlier one, so the
long outage's row (with its own date) is carried over until it is measured again.
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


def is_long_outage(row: dict) -> bool:
    """A row of the long-haul test (or the model of it that older files held in its place)."""
    return row["fault"].startswith("network drop") and row["outage_s"] >= 600


def merged(old: list[dict], new: list[dict], *, longhaul: bool) -> list[dict]:
    kept = [r for r in old if is_long_outage(r) != longhaul]
    return kept + new if longhaul else new + kept


def previous_results(out: Path) -> Path | None:
    """The file whose rows a run merges with: `out` itself, or on a new day the latest earlier results,
    so that the row of a long-haul run (measured on another day, and dated so) is carried over."""
    if out.exists():
        return out
    earlier = sorted(p for p in out.parent.glob("live-faults-*.json") if ".raw" not in p.name and p.name < out.name)
    return earlier[-1] if earlier else None


def main() -> int:
    today = datetime.date.today().isoformat()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / f"benchmarks/results/live-faults-{today}.json")
    parser.add_argument("--longhaul", action="store_true", help="run only the real 10-minute outage and merge its row into --out")
    args = parser.parse_args()
    raw = args.out.with_suffix(".longhaul.raw.json" if args.longhaul else ".raw.json")
    raw.unlink(missing_ok=True)
    env = {**os.environ, "SCRIBE_FAULT_RESULTS": str(raw)}
    marker = ["-m", "longhaul"] if args.longhaul else []
    code = subprocess.call([sys.executable, "-m", "pytest", "tests/live/test_faults.py", "-q", "-s", "-p", "no:cacheprovider", *marker], cwd=REPO, env=env)
    if not raw.exists():
        print("the fault suite wrote no figures", file=sys.stderr)
        return code or 1
    device = f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), tiny random-weight model"
    rows = [{**row, "device": device, "date": today} for row in json.loads(raw.read_text())]
    raw.unlink()
    previous = previous_results(args.out)
    old = json.loads(previous.read_text()) if previous else []
    rows = merged(old, rows, longhaul=args.longhaul)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{'fault':48} {'side':9} {'outage_s':>8} {'resume_s':>8} {'lost_ms':>8} {'dup':>4} {'miss':>4}")
    for r in rows:
        print(f"{r['fault']:48} {r['side']:9} {r['outage_s']:>8} {str(r['resume_s']):>8} {r['audio_lost_ms']:>8} {r['duplicate_finals']:>4} {r['missing_finals']:>4}")
    return code


if __name__ == "__main__":
    sys.exit(main())
