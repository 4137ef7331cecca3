"""Synthetic transcripts for the search benchmark that look like a site's own: language mix, Zipf word
frequencies, meetings over six years, the same people speaking in many meetings, and users who see a
few percent of the meetings through shares.

Users, groups, meetings, speakers and shares are made by SQL on the server (generate_series); the
transcript text is drawn with numpy and streamed in with COPY, so the database's trigger indexes it
exactly as it indexes real transcripts.
"""
import json
import time
from datetime import datetime, timezone

import numpy as np

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
CJK = {"ja", "zh"}  # written without spaces (Korean separates words with spaces)

# Who sees what. 60 users in 6 departments; users 0-49 own meetings (2% each), users 50-59 own none.
# Each meeting is shared with one colleague half the time and with the owner's department 15% of the
# time, so a user sees about 3-5% of all meetings; the two board members also get a fifth of all
# meetings through the board's group.
USERS, DEPARTMENTS, OWNERS = 60, 6, 50
SHARE_WITH_USER, SHARE_WITH_DEPARTMENT, SHARE_WITH_BOARD = 0.5, 0.15, 0.2
BOARD = ("user58", "user59")
YEARS = 6
END = datetime(2026, 11, 30, tzinfo=timezone.utc)
# People who speak: 60 per department, most meetings drawing on the owner's department.
FIRST = "Alice Bob Chen Dana Elena Farid Grace Hiro Ines Jonas Kemal Lena Mateo Nadia Omar Priya Quentin Rosa Sven Tomasz".split()
LAST = "Martin Keller Wei Jones Petrova Haddad Kim Tanaka Silva Berg Novak Rossi".split()
PEOPLE = [f"{f} {l}" for l in LAST for f in FIRST][: DEPARTMENTS * 40]
NAMED_SPEAKER_SHARE, SAME_DEPARTMENT_SPEAKER = 0.7, 0.85


class Words:
    """Draws Zipf-distributed words for one language."""

    def __init__(self, language: str, rng: np.random.Generator):
        self.words = np.array(VOCAB[language].split() + ([] if language in CJK else TAIL), dtype=object)
        weights = 1.0 / np.arange(1, len(self.words) + 1) ** 1.1
        self.cdf = np.cumsum(weights / weights.sum())
        self.joiner = "" if language in CJK else " "
        self.phrases = PHRASES[language]
        self.rng = rng

    def segments(self, counts: np.ndarray, starts: np.ndarray) -> list[tuple[str, str]]:
        """(text, words) per entry of `counts` (words in the segment, drawn in one numpy call); `words` is the
        segment's timed words as stored (meetings.segments.words_pack, as JSON), laid over [starts[i], starts[i + 1]]."""
        drawn = self.words[np.minimum(np.searchsorted(self.cdf, self.rng.random(int(counts.sum()))), len(self.words) - 1)]
        bounds = np.concatenate([[0], np.cumsum(counts)])
        with_phrase = self.rng.random(len(counts)) < 0.03
        rows = []
        for i in range(len(counts)):
            words = list(drawn[bounds[i] : bounds[i + 1]])
            if with_phrase[i]:
                words.insert(int(self.rng.integers(0, len(words))), str(self.rng.choice(self.phrases)))
            text = self.joiner.join(words)
            text = text[0].upper() + text[1:] + ("。" if self.joiner == "" else ".")
            rows.append((text, _timed_words(text.split() if self.joiner else words, int(starts[i]), int(starts[i + 1]))))
        return rows


def _timed_words(words: list[str], start_ms: int, end_ms: int) -> str:
    """words_pack's JSON for words laid end to end over the segment, each taking time by its length,
    escaped for COPY's text format."""
    ends = start_ms + (end_ms - start_ms) * np.cumsum([len(w) for w in words]) // max(1, sum(len(w) for w in words))
    begins = [start_ms, *ends[:-1]]
    return json.dumps([[w, int(b), int(e)] for w, b, e in zip(words, begins, ends)], ensure_ascii=False).replace("\\", "\\\\")


def fill(hours: int, seed: int = 7) -> dict:
    """Fill an empty, migrated database with about `hours` meeting-hours; returns timings."""
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed / 100])
        user_ids, department_ids, board_id = _people_and_groups(cursor)
        _meetings(cursor, hours=hours, owners=user_ids[:OWNERS], departments=department_ids)
        _speakers(cursor, users=user_ids)
        _sharings(cursor, users=user_ids, departments=department_ids, board=board_id)
        cursor.execute("SELECT (SELECT count(*) FROM meetings_meeting), (SELECT count(*) FROM meetings_sharing), (SELECT count(*) FROM meetings_speaker)")
        print("{} meetings, {} sharings, {} speakers".format(*cursor.fetchone()), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        # Building the GIN index once after the load is several times faster than maintaining it row by row.
        cursor.execute("SELECT pg_get_indexdef('segment_search_audience_gin'::regclass)")
        create_gin = cursor.fetchone()[0]
        cursor.execute("DROP INDEX segment_search_audience_gin")
        n_segments = _segments(cursor, np.random.default_rng(seed), t0)
        print(f"Building the GIN index over {n_segments:,} segments ...", flush=True)
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(create_gin)
        print("VACUUM ANALYZE ...", flush=True)
        cursor.execute("VACUUM ANALYZE")
    print(f"Filled in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"fill_s": time.perf_counter() - t0}


def _people_and_groups(cursor) -> tuple[list[int], list[int], int]:
    cursor.execute(
        """INSERT INTO auth_user (username, first_name, last_name, email, password, is_staff, is_active, is_superuser, date_joined)
           SELECT 'user' || i, '', '', '', '!', false, true, false, now() FROM generate_series(0, %s - 1) i ORDER BY i RETURNING id""",
        [USERS],
    )
    users = sorted(row[0] for row in cursor.fetchall())
    cursor.execute("INSERT INTO auth_group (name) SELECT 'Department ' || d FROM generate_series(0, %s - 1) d ORDER BY d RETURNING id", [DEPARTMENTS])
    departments = sorted(row[0] for row in cursor.fetchall())
    cursor.execute("INSERT INTO auth_group (name) VALUES ('Board') RETURNING id")
    board = cursor.fetchone()[0]
    cursor.execute(
        """INSERT INTO auth_user_groups (user_id, group_id)
           SELECT u.id, (%s::int[])[1 + (substr(u.username, 5)::int %% %s)] FROM auth_user u
           UNION ALL SELECT u.id, %s FROM auth_user u WHERE u.username = ANY(%s)""",
        [departments, DEPARTMENTS, board, list(BOARD)],
    )
    return users, departments, board


def _meetings(cursor, *, hours: int, owners: list[int], departments: list[int]) -> None:
    # 20-100 minutes each (an hour on average), started at random over the last YEARS years; inserted
    # in date order, so ids and the segment table follow time as they do on a real site.
    languages, shares = list(LANGUAGE_SHARE), np.cumsum(list(LANGUAGE_SHARE.values())).tolist()
    cursor.execute(
        """INSERT INTO meetings_meeting (title, owner_id, created_at, started_at, ended_at, language, status, delay_ms)
           SELECT 'Meeting ' || row_number() OVER (ORDER BY at), owner, at - interval '2 days', at, at + minutes * interval '1 minute',
                  (%s::text[])[(SELECT count(*) FROM unnest(%s::float8[]) c WHERE c < pick)::int + 1], 'ready', 480
           FROM (SELECT %s - random() * %s * interval '365 days' AS at, (%s::int[])[1 + floor(random() * %s)::int] AS owner,
                        20 + floor(random() * 81)::int AS minutes, random() AS pick
                 FROM generate_series(1, %s)) g
           ORDER BY at""",
        [languages, shares, END, YEARS, owners, len(owners), hours],
    )


def _speakers(cursor, *, users: list[int]) -> None:
    # 2-5 speakers a meeting; most are named people of the owner's department, so a name recurs in
    # dozens of meetings.
    per_department = len(PEOPLE) // DEPARTMENTS
    cursor.execute(
        """INSERT INTO meetings_speaker (meeting_id, label, display_name)
           SELECT m.id, 'SPEAKER_0' || k,
                  CASE WHEN random() > %s THEN ''
                       WHEN random() < %s THEN (%s::text[])[1 + ((array_position(%s::int[], m.owner_id) - 1) %% %s) * %s + floor(random() * %s)::int]
                       ELSE (%s::text[])[1 + floor(random() * %s)::int] END
           FROM meetings_meeting m CROSS JOIN LATERAL generate_series(0, 1 + floor(random() * 4 + m.id * 0)::int) k""",
        [NAMED_SPEAKER_SHARE, SAME_DEPARTMENT_SPEAKER, PEOPLE, users, DEPARTMENTS, per_department, per_department, PEOPLE, len(PEOPLE)],
    )


def _sharings(cursor, *, users: list[int], departments: list[int], board: int) -> None:
    cursor.execute(
        """WITH m AS (SELECT id, owner_id, created_at, (%s::int[])[1 + floor(random() * %s)::int] AS colleague,
                             random() AS p_user, random() AS p_department, random() AS p_board FROM meetings_meeting)
           INSERT INTO meetings_sharing (meeting_id, user_id, group_id, role, created_at, created_by_id)
           SELECT id, colleague, NULL, 'view', created_at, owner_id FROM m WHERE p_user < %s AND colleague <> owner_id
           UNION ALL
           SELECT id, NULL, (%s::int[])[1 + (array_position(%s::int[], owner_id) - 1) %% %s], 'view', created_at, owner_id FROM m WHERE p_department < %s
           UNION ALL
           SELECT id, NULL, %s, 'view', created_at, owner_id FROM m WHERE p_board < %s""",
        [users, len(users), SHARE_WITH_USER, departments, users, DEPARTMENTS, SHARE_WITH_DEPARTMENT, board, SHARE_WITH_BOARD],
    )


def _segments(cursor, rng: np.random.Generator, t0: float) -> int:
    """Stream every meeting's transcript in with COPY, in meeting order; returns the number of segments."""
    from meetings.languages import search_config_for

    cursor.execute(
        """SELECT m.id, m.language, extract(epoch FROM m.ended_at - m.started_at)::int * 1000, array_agg(s.id ORDER BY s.id)
           FROM meetings_meeting m JOIN meetings_speaker s ON s.meeting_id = m.id GROUP BY m.id ORDER BY m.id"""
    )
    meetings = cursor.fetchall()
    words = {language: Words(language, rng) for language in VOCAB}
    n_segments = 0
    columns = "meeting_id, start_ms, end_ms, speaker_id, text, words, origin, model_version, search_config"
    with cursor.connection.cursor().copy(f"COPY meetings_segment ({columns}) FROM STDIN") as copy:
        for i, (meeting_id, language, duration_ms, speakers) in enumerate(meetings):
            lengths = rng.integers(*SEGMENT_MS, size=duration_ms // SEGMENT_MS[0] + 1)
            starts = np.concatenate([[0], np.cumsum(lengths)])
            n = int(np.searchsorted(starts, duration_ms))  # segments that start before the end
            counts = np.maximum(3, rng.normal(lengths[:n] / 1000 * WORDS_PER_SECOND, 3).astype(int))
            who = rng.integers(0, len(speakers), size=n)
            config = search_config_for(language)
            lines = [
                f"{meeting_id}\t{starts[k]}\t{starts[k + 1]}\t{speakers[who[k]]}\t{text}\t{timed}\treprocessed\tbench\t{config}\n"
                for k, (text, timed) in enumerate(words[language].segments(counts, starts))
            ]
            copy.write("".join(lines))
            n_segments += n
            if (i + 1) % 500 == 0 or i + 1 == len(meetings):
                print(f"  {i + 1}/{len(meetings)} meetings, {n_segments:,} segments, {time.perf_counter() - t0:.0f} s", flush=True)
    return n_segments
