"""How long importing and verifying a model folder takes: SHA-256 of every file. A script, not a test.

    .venv/bin/python benchmarks/import_bench.py [--gib 4] [--shards 2] [--folder /tmp/scribe-import-bench]

Writes a folder shaped like a sharded Voxtral checkpoint (config.json, tekken.json, N shards of random
bytes), then times administration.weights.fingerprint over it twice: the first read may come from the
disk, the second comes from the page cache (the CPU's hashing speed). Prints a table. For a real
disk's speed, drop the page cache between runs (`echo 3 > /proc/sys/vm/drop_caches` as root) or
point --folder at the disk in question.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHUNK = 64 * 1024 * 1024


def make_folder(folder: Path, gib: float, shards: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "voxtral_realtime"}))
    (folder / "tekken.json").write_text("{}")
    per_shard = int(gib * 1024**3 / shards)
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {f"w{i}": n for i, n in enumerate(names)}}))
    for name in names:
        with open(folder / name, "wb") as fh:
            left = per_shard
            while left > 0:
                fh.write(os.urandom(min(CHUNK, left)))
                left -= CHUNK
    return per_shard * shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scribe-import-bench"))
    args = parser.parse_args()

    from administration.weights import fingerprint

    size = make_folder(args.folder, args.gib, args.shards)
    print("| read | bytes | seconds | MiB/s |\n|---|---|---|---|")
    try:
        for label in ("first", "second (page cache)"):
            started = time.perf_counter()
            fingerprint(args.folder)
            seconds = time.perf_counter() - started
            print(f"| {label} | {size / 1024**3:.1f} GiB | {seconds:.2f} | {size / 1024**2 / seconds:.0f} |")
    finally:
        shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
