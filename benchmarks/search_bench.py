"""Search latency on synthetic transcripts: 1,000 meeting-hours by default. A script, not a test.

    .venv/bin/python benchmarks/search_bench.py [--hours 1000] [--db scribe_bench] [--keep]

Drops and recreates the database named by --db (never the site's own), migrates it, fills it with
COPY, runs a mixed set of searches through meetings.search.search_segments and prints p50/p95 per
kind of query. With --keep an existing filled database is reused.
"""
import argparse
import os
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Speech runs at about 2.5 words a second; segments end at pauses, every 8-10 s.
SEGMENT_MS = (8_000, 10_000)
WORDS_PER_SECOND = 2.4
# Share of meeting-hours per language, roughly a European company with an Asian office.
LANGUAGE_SHARE = {"en": 0.62, "fr": 0.08, "de": 0.08, "es": 0.06, "ru": 0.04, "ja": 0.06, "zh": 0.04, "ko": 0.02}

# Vocabularies in frequency order; a Zipf law (s = 1.1) over the position gives common and rare words.
VOCAB = {
    "en": """the to and of a that i it you we is in this so for on be have they with but not what
    just do are was at can think if as there about our going know all like one will so would get
    or right yeah from people some more need because okay time out up then really now make by see
    which when also well other work an want how any those these been them team could very week
    project where data new here first back next good two customer into much kind going question
    say different think way only over plan something still look sure point year whether release
    meeting issue budget number process quarter sales product support report update review
    change decision client patient risk design feedback test deadline contract price service
    market system model training action schedule hospital invoice migration server database
    launch roadmap hiring policy audit security compliance revenue forecast pipeline margin
    dashboard onboarding interview procurement vendor warehouse shipment inventory quality
    nurse doctor medication dose kidney blood pressure surgery ward discharge referral therapy
    architecture latency throughput incident outage rollback deployment kubernetes terraform
    regulator tribunal settlement arbitration litigation deposition subpoena affidavit
    anticoagulant nephrology echocardiogram thrombosis biopsy oncology radiotherapy
    procurement amortisation depreciation reconciliation escrow debenture indemnity
    hyperparameter tokenizer quantization checkpoint embeddings gradient transformer
    zeppelin quokka marmalade tambourine origami saxophone kaleidoscope labyrinth
    """,
    "fr": """le la de et les des un une est que nous vous il pas pour dans ce qui on sur avec
    projet réunion budget client équipe semaine rapport décision réunions clients projets
    livraison facture contrat produit marché prix qualité service délai risques fournisseur
    hôpital patient médecin infirmière traitement ordonnance chirurgie rendez-vous
    amortissement rapprochement trésorerie contentieux arbitrage quincaillerie""",
    "de": """der die das und ist nicht wir ich sie es ein eine zu mit den auf für von dass
    Besprechung Projekt Kunde Budget Woche Bericht Entscheidung Besprechungen Kunden Projekte
    Lieferung Rechnung Vertrag Produkt Markt Preis Qualität Termin Risiko Lieferant
    Krankenhaus Patient Ärztin Behandlung Rezept Operation Sprechstunde
    Abschreibung Rückstellung Schiedsverfahren Handschuhfach Donaudampfschifffahrt""",
    "es": """el la de que y en los se del las un por con no una para es al lo como más
    reunión proyecto presupuesto cliente equipo semana informe decisión reuniones clientes
    entrega factura contrato producto mercado precio calidad plazo riesgo proveedor
    hospital paciente médico enfermera tratamiento receta cirugía
    amortización conciliación arbitraje litigio desfibrilador""",
    "ru": """и в не что на я с он как это по но мы вы они к у же за бы
    совещание проект бюджет клиент команда неделя отчёт решение совещания клиенты
    поставка счёт договор продукт рынок цена качество срок риск поставщик
    больница пациент врач лечение рецепт операция амортизация арбитраж""",
    "ja": """は の が を に で と も です ます した これ それ 今日 会議 予算 顧客 提案
    報告 決定 来週 問題 確認 資料 担当 契約 製品 市場 価格 品質 納期 リスク
    病院 患者 医師 治療 手術 減価償却 仲裁 棚卸""",
    "zh": """的 是 在 了 我们 你 他 这 那 有 和 就 也 今天 会议 预算 客户 团队 报告
    决定 下周 问题 确认 资料 合同 产品 市场 价格 质量 交期 风险 医院 病人 医生
    治疗 手术 折旧 仲裁 盘点""",
    "ko": """은 는 이 가 을 를 에 의 도 오늘 회의 예산 고객 팀 보고서 결정 다음주 문제
    확인 자료 계약 제품 시장 가격 품질 납기 위험 병원 환자 의사 치료 수술""",
}
# Set phrases dropped into 3% of segments, so phrase queries have real hits.
PHRASES = {
    "en": ["action items", "next quarter", "blood pressure", "customer churn", "go live", "root cause"],
    "fr": ["ordre du jour", "chiffre d'affaires"],
    "de": ["nächste Woche", "offene Punkte"],
    "es": ["orden del día", "próxima semana"],
    "ru": ["следующая неделя"],
    "ja": ["来週の会議"],
    "zh": ["下周的会议"],
    "ko": ["다음주 회의"],
}
# The long tail: names of products, places, projects and people, which make up most distinct words in
# real meetings and most searches for something specific. 8,000 of them, tens of hits each.
_SYLLABLES = "ka lo mi ren tas vo dri nel por sen qui bar tel gor fin lu mar zen hal cor".split()
TAIL = [a.capitalize() + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES]
NAMES = ["Alice Martin", "Bob Keller", "Chen Wei", "Dr Jones", "Elena Petrova", "Farid Haddad", "Grace Kim", "Hiro Tanaka"]
CJK = {"ja", "zh"}  # written without spaces (Korean separates words with spaces)
USERS = 8
CANDIDATE_QUERIES_PER_KIND = 25
REPEATS = 3


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


class Words:
    """Draws Zipf-distributed words for one language."""

    def __init__(self, language: str, rng: np.random.Generator):
        self.words = np.array(VOCAB[language].split() + ([] if language in CJK else TAIL))
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** 1.1
        self.cdf = np.cumsum(weights / weights.sum())
        self.joiner = "" if language in CJK else " "
        self.phrases = PHRASES[language]
        self.rng = rng

    def segment(self, n_words: int) -> str:
        words = list(self.words[np.minimum(np.searchsorted(self.cdf, self.rng.random(n_words)), len(self.words) - 1)])
        if self.rng.random() < 0.03:
            words.insert(int(self.rng.integers(0, n_words)), str(self.rng.choice(self.phrases)))
        text = self.joiner.join(words)
        return text[0].upper() + text[1:] + ("。" if self.joiner == "" else ".")


def fill(hours: int, seed: int = 7) -> dict:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from meetings.languages import search_config_for
    from meetings.models import Meeting, Sharing, Speaker

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    users = User.objects.bulk_create([User(username=f"user{i}", first_name=NAMES[i].split()[0]) for i in range(USERS)])
    board = Group.objects.create(name="Board")
    board.user_set.add(users[-1], users[-2])
    # Meetings of 20-100 minutes until the hours are reached, over the last two years.
    languages, shares = list(LANGUAGE_SHARE), list(LANGUAGE_SHARE.values())
    plan, total_ms = [], 0
    while total_ms < hours * 3_600_000:
        minutes = int(rng.integers(20, 101))
        plan.append((minutes * 60_000, str(rng.choice(languages, p=shares))))
        total_ms += minutes * 60_000
    start = datetime(2024, 11, 1, tzinfo=timezone.utc)
    meetings = Meeting.objects.bulk_create(
        [
            Meeting(
                title=f"Meeting {i}",
                owner=users[int(rng.integers(0, USERS - 2))],  # the last two users own nothing
                language=language,
                status=Meeting.Status.READY,
                started_at=start + timedelta(minutes=int(rng.integers(0, 2 * 365 * 24 * 60))),
            )
            for i, (_, language) in enumerate(plan)
        ]
    )
    sharings = []
    for meeting in meetings:
        if rng.random() < 0.3:
            other = users[int(rng.integers(0, USERS))]
            if other.pk != meeting.owner_id:
                sharings.append(Sharing(meeting=meeting, user=other, created_by=meeting.owner))
        if rng.random() < 0.2:
            sharings.append(Sharing(meeting=meeting, group=board, created_by=meeting.owner))
    Sharing.objects.bulk_create(sharings)
    speakers = Speaker.objects.bulk_create(
        [
            Speaker(meeting=m, label=f"SPEAKER_{k:02d}", display_name=NAMES[int(rng.integers(0, len(NAMES)))] if rng.random() < 0.6 else "")
            for m in meetings
            for k in range(int(rng.integers(2, 6)))
        ]
    )
    by_meeting: dict[int, list[int]] = {}
    for s in speakers:
        by_meeting.setdefault(s.meeting_id, []).append(s.pk)
    print(f"{len(meetings)} meetings, {len(sharings)} sharings, {len(speakers)} speakers ({time.perf_counter() - t0:.1f} s)", flush=True)

    words = {language: Words(language, rng) for language in VOCAB}
    with connection.cursor() as cursor:
        # Building the GIN index once after the load is several times faster than maintaining it row by row.
        cursor.execute("DROP INDEX segment_search_gin")
        n_segments = 0
        with cursor.connection.cursor().copy(
            "COPY meetings_segment (meeting_id, start_ms, end_ms, speaker_id, text, origin, model_version, search_config) FROM STDIN"
        ) as copy:
            for i, (meeting, (duration_ms, language)) in enumerate(zip(meetings, plan)):
                config, ids, at = search_config_for(language), by_meeting[meeting.pk], 0
                while at < duration_ms:
                    length = int(rng.integers(*SEGMENT_MS))
                    n_words = max(3, int(rng.normal(length / 1000 * WORDS_PER_SECOND, 3)))
                    speaker = ids[int(rng.integers(0, len(ids)))]
                    copy.write_row((meeting.pk, at, at + length, speaker, words[language].segment(n_words), "reprocessed", "bench", config))
                    at += length
                    n_segments += 1
                if (i + 1) % 100 == 0 or i + 1 == len(meetings):
                    elapsed = time.perf_counter() - t0
                    print(f"  {i + 1}/{len(meetings)} meetings, {n_segments:,} segments, {elapsed:.0f} s", flush=True)
        print("Building the GIN index ...", flush=True)
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("CREATE INDEX segment_search_gin ON meetings_segment USING gin (search_vector)")
    with connection.cursor() as cursor:
        print("VACUUM ANALYZE ...", flush=True)
        cursor.execute("VACUUM ANALYZE")
    print(f"Filled in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"fill_s": time.perf_counter() - t0}


def database_size() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT (SELECT count(*) FROM meetings_meeting), (SELECT count(*) FROM meetings_segment),
                      (SELECT sum(end_ms - start_ms) / 3600000.0 FROM meetings_segment),
                      pg_size_pretty(pg_total_relation_size('meetings_segment')),
                      pg_size_pretty(pg_relation_size('segment_search_gin'))"""
        )
        meetings, segments, hours, table, gin = cursor.fetchone()
    return {"meetings": meetings, "segments": segments, "hours": float(hours), "table": table, "gin": gin}


def query_plan(rng: np.random.Generator) -> list[tuple[str, str, dict, str]]:
    """(kind, query, filters, username) for each search to time."""
    from django.contrib.auth.models import User

    from meetings.access import meetings_visible_to

    en = VOCAB["en"].split()
    n = CANDIDATE_QUERIES_PER_KIND
    rare = en[-40:] + TAIL[::40]
    common = ["people", "time", "work", "team", "project", "data", "customer", "meeting", "question", "plan", "the", "think"]
    mid = en[110:200]
    owner = User.objects.get(username="user0")
    meeting_ids = list(meetings_visible_to(owner).filter(language="en").values_list("pk", flat=True))
    pick = lambda seq: seq[int(rng.integers(0, len(seq)))]  # noqa: E731
    plan = []
    for i in range(n):
        plan.append(("rare word", pick(rare), {}, "user0"))
        plan.append(("common word", pick(common), {}, "user0"))
        plan.append(("two words", f"{pick(mid)} {pick(mid)}", {}, "user0"))
        plan.append(("phrase", f'"{pick(PHRASES["en"] + PHRASES["fr"] + PHRASES["de"])}"', {}, "user0"))
        plan.append(("or / exclusion", f"{pick(mid)} or {pick(rare)} -{pick(common)}", {}, "user0"))
        plan.append(("stemmed / other language", pick(["meetings", "decisions", "réunions", "Besprechungen", "reuniones", "совещания", "clients"]), {}, "user1"))
        plan.append(("CJK", pick(["会議", "予算", "来週の会議", "问题", "会议", "客户", "회의", "減価償却"]), {}, "user2"))
        plan.append(("filter: meeting", pick(common + mid), {"meeting_id": pick(meeting_ids)}, "user0"))
        plan.append(("filter: speaker", pick(common + mid), {"speaker": pick(NAMES)}, "user0"))
        day = date(2024, 11, 1) + timedelta(days=int(rng.integers(0, 640)))
        plan.append(("filter: dates (3 months)", pick(common + mid), {"date_from": day, "date_to": day + timedelta(days=90)}, "user0"))
        plan.append(("non-owner (shares only)", pick(common + mid + rare), {}, "user7"))
        plan.append(("non-owner, common word", pick(common), {}, "user7"))
        plan.append(("page 5", pick(common), {"offset": 80}, "user0"))
    return plan


def run_queries(seed: int = 11) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    from django.contrib.auth.models import User

    from meetings.search import search_segments

    users = {u.username: u for u in User.objects.all()}
    plan = query_plan(np.random.default_rng(seed))
    timings: dict[str, list[float]] = {}
    totals: dict[str, list[int]] = {}
    for repeat in range(REPEATS + 1):  # the first round warms the cache and is not counted
        for kind, query, filters, username in plan:
            t = time.perf_counter()
            page = search_segments(user=users[username], query=query, **filters)
            ms = (time.perf_counter() - t) * 1000
            if repeat:
                timings.setdefault(kind, []).append(ms)
                totals.setdefault(kind, []).append(page.total)
    return timings, totals


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(timings, totals, size, fill_s) -> str:
    lines = [
        "| query kind | searches | median hits | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    everything = []
    for kind, values in timings.items():
        everything += values
        lines.append(
            f"| {kind} | {len(values)} | {statistics.median(totals[kind]):.0f} | {percentile(values, 50):.1f} | "
            f"{percentile(values, 95):.1f} | {max(values):.1f} |"
        )
    lines.append(f"| **all** | {len(everything)} | | **{percentile(everything, 50):.1f}** | **{percentile(everything, 95):.1f}** | {max(everything):.1f} |")
    head = (
        f"{size['meetings']:,} meetings, {size['hours']:,.0f} meeting-hours, {size['segments']:,} segments; "
        f"segment table {size['table']}, GIN index {size['gin']}"
        + (f"; filled in {fill_s:.0f} s" if fill_s else "")
    )
    return head + "\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=1000)
    parser.add_argument("--db", default="scribe_bench")
    parser.add_argument("--keep", action="store_true", help="reuse an already filled database")
    args = parser.parse_args()
    setup_django(args.db, args.keep)
    from meetings.models import Segment

    fill_s = None
    if not (args.keep and Segment.objects.exists()):
        fill_s = fill(args.hours)["fill_s"]
    size = database_size()
    print("Searching ...", flush=True)
    timings, totals = run_queries()
    print()
    print(report(timings, totals, size, fill_s))


if __name__ == "__main__":
    main()
