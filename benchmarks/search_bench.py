"""Search latency on synthetic transcripts (benchmarks/search_data.py). A script, not a test.

    .venv/bin/python benchmarks/search_bench.py [--hours 10000] [--db scribe_bench_10k] [--keep] [--json PATH]

Creates the database named by --db (never the site's own), migrates it, fills it, runs a mixed set of
searches through meetings.search.search_segments and prints p50/p95 per kind of query; --json also
writes them (with the device and date) to a results file. With --keep an existing filled database is
reused (migrations are applied to it first), so a 10,000-hour database is built once.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.search_data import BOARD, END, PHRASES, TAIL, VOCAB, YEARS, fill  # noqa: E402

QUERIES_PER_KIND = 25
REPEATS = 3
TODAY = date.today().isoformat()


def setup_django(db_name: str, keep: bool) -> None:
    if db_name in ("scribe", "postgres"):
        sys.exit("Refusing to drop the site's own database; pass --db with a scratch name.")
    os.environ["SCRIBE_DB_NAME"] = db_name
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    import psycopg
    from django.conf import settings

    django.setup()
    db = settings.DATABASES["default"]
    with psycopg.connect(dbname="postgres", user=db["USER"], host=db["HOST"], port=db["PORT"], password=db["PASSWORD"] or None, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not (keep and exists):
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
            conn.execute(f'CREATE DATABASE "{db_name}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def database_size() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT (SELECT count(*) FROM meetings_meeting), (SELECT count(*) FROM meetings_segment),
                      (SELECT sum(end_ms - start_ms) / 3600000.0 FROM meetings_segment),
                      pg_size_pretty(pg_total_relation_size('meetings_segment')),
                      pg_size_pretty(pg_relation_size('segment_search_audience_gin')), version()"""
        )
        meetings, segments, hours, table, gin, version = cursor.fetchone()
    return {"meetings": meetings, "segments": segments, "hours": float(hours), "table": table, "gin": gin, "postgres": version.split(" on ")[0]}


def visible_share(username: str) -> float:
    from django.contrib.auth.models import User

    from meetings.access import meetings_visible_to
    from meetings.models import Meeting

    return meetings_visible_to(User.objects.get(username=username)).count() / Meeting.objects.count()


def query_plan(rng: np.random.Generator) -> list[tuple[str, str, dict, str]]:
    """(kind, query, filters, username) for each search to time."""
    from django.contrib.auth.models import User

    from meetings.access import meetings_visible_to
    from meetings.models import Speaker

    en = VOCAB["en"].split()
    rare = en[-40:] + TAIL[::40]
    common = ["people", "time", "work", "team", "project", "data", "customer", "meeting", "question", "plan", "the", "think"]
    mid = en[110:200]
    owner = User.objects.get(username="user0")
    visible = meetings_visible_to(owner)
    meeting_ids = list(visible.filter(language="en").values_list("pk", flat=True))
    # Names of people who speak in meetings user0 can see, as someone would type them.
    names = sorted(set(Speaker.objects.filter(meeting__in=visible.values("pk")).exclude(display_name="").values_list("display_name", flat=True)))
    pick = lambda seq: seq[int(rng.integers(0, len(seq)))]  # noqa: E731
    first_day = (END - timedelta(days=365 * YEARS)).date()
    plan = []
    for _ in range(QUERIES_PER_KIND):
        plan.append(("rare word", pick(rare), {}, "user0"))
        plan.append(("common word", pick(common), {}, "user0"))
        plan.append(("mid-frequency word", pick(mid), {}, "user0"))
        plan.append(("two words", f"{pick(mid)} {pick(mid)}", {}, "user0"))
        plan.append(("phrase", f'"{pick(PHRASES["en"] + PHRASES["fr"] + PHRASES["de"])}"', {}, "user0"))
        plan.append(("or / exclusion", f"{pick(mid)} or {pick(rare)} -{pick(common)}", {}, "user0"))
        plan.append(("stemmed / other language", pick(["meetings", "decisions", "réunions", "Besprechungen", "reuniones", "совещания", "clients"]), {}, "user1"))
        plan.append(("CJK", pick(["会議", "予算", "来週の会議", "问题", "会议", "客户", "회의", "減価償却"]), {}, "user2"))
        plan.append(("filter: meeting", pick(common + mid), {"meeting_id": pick(meeting_ids)}, "user0"))
        plan.append(("filter: speaker", pick(common + mid), {"speaker": pick(names)}, "user0"))
        day = first_day + timedelta(days=int(rng.integers(0, 365 * YEARS - 90)))
        plan.append(("filter: dates (3 months)", pick(common + mid), {"date_from": day, "date_to": day + timedelta(days=90)}, "user0"))
        plan.append(("non-owner (shares only)", pick(common + mid + rare), {}, "user50"))
        plan.append(("non-owner, common word", pick(common), {}, "user50"))
        plan.append(("board member, common word", pick(common), {}, BOARD[0]))
        plan.append(("board member, mid-frequency word", pick(mid), {}, BOARD[0]))
        plan.append(("page 5", pick(common), {"offset": 80}, "user0"))
    return plan


def run_queries(seed: int = 11) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
    """Wall-clock and CPU milliseconds per search, by kind, and the totals reported."""
    from django.contrib.auth.models import User
    from django.db import connection

    from meetings.search import search_segments

    users = {u.username: u for u in User.objects.all()}
    plan = query_plan(np.random.default_rng(seed))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    totals: dict[str, list[int]] = {}
    for repeat in range(REPEATS + 1):  # the first round warms the cache and is not counted
        for kind, query, filters, username in plan:
            cpu_before, t = cpu_seconds(backend), time.perf_counter()
            page = search_segments(user=users[username], query=query, **filters)
            ms, cpu_ms = (time.perf_counter() - t) * 1000, (cpu_seconds(backend) - cpu_before) * 1000
            if repeat:
                wall.setdefault(kind, []).append(ms)
                cpu.setdefault(kind, []).append(cpu_ms)
                totals.setdefault(kind, []).append(page.total)
    return wall, cpu, totals


def cpu_seconds(backend_pid: int) -> float:
    """CPU time of this process plus its PostgreSQL backend: what a search costs whatever else runs.

    The backend's share comes from /proc/<pid>/schedstat (nanoseconds on CPU), so the database must run
    on this machine; elsewhere only this process's time is counted.
    """
    try:
        with open(f"/proc/{backend_pid}/schedstat") as fh:
            backend = int(fh.read().split()[0]) / 1e9
    except OSError:
        backend = 0.0
    return time.process_time() + backend


def summarize(wall, cpu, totals) -> list[dict]:
    pct = lambda values, q: round(float(np.percentile(values, q)), 1)  # noqa: E731
    return [
        {
            "kind": kind,
            "p50_ms": pct(values, 50),
            "p95_ms": pct(values, 95),
            "max_ms": round(max(values), 1),
            "cpu_p50_ms": pct(cpu[kind], 50),
            "cpu_p95_ms": pct(cpu[kind], 95),
            "searches": len(values),
            "median_total": int(statistics.median(totals[kind])),
        }
        for kind, values in wall.items()
    ]


def report(kinds: list[dict], size: dict, shares: dict, fill_s) -> str:
    lines = ["| query kind | searches | median total | p50 ms | p95 ms | max ms | CPU p50 ms | CPU p95 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {k['kind']} | {k['searches']} | {k['median_total']} | {k['p50_ms']} | {k['p95_ms']} | {k['max_ms']} | {k['cpu_p50_ms']} | {k['cpu_p95_ms']} |"
        for k in kinds
    ]
    head = (
        f"{size['meetings']:,} meetings, {size['hours']:,.0f} meeting-hours, {size['segments']:,} segments; "
        f"segment table {size['table']}, GIN index {size['gin']}; " + ", ".join(f"{u} sees {s:.1%}" for u, s in shares.items())
        + (f"; filled in {fill_s:.0f} s" if fill_s else "")
    )
    return head + "\n\n" + "\n".join(lines)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--db", default="scribe_bench")
    parser.add_argument("--keep", action="store_true", help="reuse an already filled database")
    parser.add_argument("--json", type=Path, help=f"write the results here, e.g. benchmarks/results/search-{TODAY}.json")
    parser.add_argument("--note", default="", help="said in the results file, e.g. that the machine was shared")
    args = parser.parse_args()
    setup_django(args.db, args.keep)
    from meetings.models import Segment

    fill_s = None
    if not (args.keep and Segment.objects.exists()):
        fill_s = fill(args.hours)["fill_s"]
    size = database_size()
    shares = {u: visible_share(u) for u in ("user0", "user50", BOARD[0])}
    print("Searching ...", flush=True)
    load_before = load_average()
    wall, cpu, totals = run_queries()
    kinds = summarize(wall, cpu, totals)
    print()
    print(report(kinds, size, shares, fill_s))
    if args.json:
        result = {
            "hours": round(size["hours"]),
            "segments": size["segments"],
            "meetings": size["meetings"],
            "kinds": kinds,
            "device": f"{platform.node()}: {os.cpu_count()} CPU cores, {size['postgres']}, default settings (shared_buffers 128 MB, work_mem 4 MB)",
            "date": TODAY,
            "visible_share": {u: round(s, 3) for u, s in shares.items()},
            "load_average_before_after": [load_before, load_average()],
            "fill_s": round(fill_s) if fill_s else None,
            "note": args.note,
            "command": f"benchmarks/search_bench.py --hours {args.hours} --db {args.db}{' --keep' if args.keep else ''} --json {args.json} --note ...",
        }
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
