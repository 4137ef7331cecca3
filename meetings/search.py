"""Full-text search over the transcript segments a user may see.

How text is indexed (see migration 0002 and languages.py): each segment's vector holds the words
stemmed by its meeting's language (`english`, `french`, ... for the ten languages PostgreSQL has a
Snowball stemmer for) plus the same words unstemmed (`simple`). Chinese, Japanese and Korean have no
stemmer and no spaces between words, so CJK runs, in any language, are indexed as overlapping
character bigrams; a CJK word in a query becomes a phrase of its bigrams.

How a query is built: the user's text is read with websearch syntax ("quoted phrase", OR, -word).
Every term is expanded in every stemming language and `simple`, and the distinct forms are ORed, so
"meetings" finds "meeting" in an English transcript and "Besprechungen" finds "Besprechung" in a
German one whatever language the searcher has in mind. The result is one constant tsquery that the
GIN index on `search_vector` can answer; it never depends on a row's column. Stems are not confined
to transcripts of their own language, so rare cross-language collisions can add a result; exact words
always match.

Ranking: ts_rank_cd over at most CANDIDATE_CAP matching segments. A word that occurs in a quarter of
all segments would otherwise mean reading and ranking 100,000 vectors per page; instead the count is
reported as "more than CANDIDATE_CAP" and the user narrows the search. The candidates are the first
matches the index scan meets, so with a capped count the best of them is shown, not the best overall.
"""
import html
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, connection
from django.db.models import BooleanField, FloatField, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from .access import meetings_visible_to
from .languages import CJK_RUN, STEMMING_CONFIGS, has_cjk, search_config_for, split_cjk
from .models import Meeting, Segment, Speaker

CANDIDATE_CAP = 1000
MAX_QUERY_CHARS = 500
MAX_TERMS = 16
# ts_headline inserts these around matches. Private-use characters never come out of speech
# recognition, so after HTML-escaping everything else they can safely become <mark> tags.
START, STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = f"StartSel={START}, StopSel={STOP}, MaxWords=40, MinWords=15, ShortWord=2"
QUERY_CONFIGS = ["simple", *STEMMING_CONFIGS]

# A quoted phrase (the closing quote may be missing, as websearch_to_tsquery allows) or a word,
# each optionally preceded by a minus sign.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000\ue001]")


@dataclass(frozen=True)
class SearchHit:
    segment_id: int
    meeting_id: int
    meeting_title: str
    start_ms: int
    end_ms: int
    speaker_name: str
    snippet_html: str
    rank: float
    meeting_date: datetime


@dataclass(frozen=True)
class SearchPage:
    query: str
    hits: list[SearchHit]
    total: int
    limit: int
    offset: int
    total_is_capped: bool = False  # more than `total` segments match; only the first `total` are ranked


@dataclass(frozen=True)
class _Term:
    text: str  # websearch input for one word or phrase, CJK already split into bigrams
    negated: bool
    raw: str  # as typed, for highlighting CJK words


def search_config_for_meeting(meeting: Meeting) -> str:
    """The regconfig name stored on the meeting's segments (services set it on every write)."""
    return search_config_for(meeting.language)


def parse_query(query: str) -> list[_Term | str]:
    """Split websearch syntax into terms and "or" operators, the way websearch_to_tsquery reads it."""
    items: list[_Term | str] = []
    for match in _TOKEN.finditer(query[:MAX_QUERY_CHARS]):
        phrase_minus, phrase, word_minus, word = match.groups()
        if word is not None and word.lower() == "or" and not word_minus:
            items.append("or")
            continue
        raw = phrase if phrase is not None else word
        if raw.strip():
            # Quoting every term makes a CJK run (now several bigrams) one phrase, not an AND of pairs.
            items.append(_Term(f'"{split_cjk(raw).strip()}"', negated=bool(phrase_minus or word_minus), raw=raw))
        if len(items) >= MAX_TERMS * 2:
            break
    return items


def _expand_terms(terms: list[_Term]) -> list[str | None]:
    """Each term as a tsquery text: the OR of its distinct forms in every configuration; None if it has none."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.i, string_agg(DISTINCT '(' || q::text || ')', ' | ')
            FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, i)
            CROSS JOIN unnest(%s::regconfig[]) AS c(config)
            CROSS JOIN LATERAL websearch_to_tsquery(c.config, t.term) AS q
            WHERE numnode(q) > 0
            GROUP BY t.i
            """,
            [[term.text for term in terms], QUERY_CONFIGS],
        )
        forms = dict(cursor.fetchall())
    return [forms.get(i + 1) for i in range(len(terms))]


def build_tsquery(items: list[_Term | str]) -> str | None:
    """One constant tsquery text with websearch precedence (AND binds tighter than OR), or None.

    A query without any word to look for ("-budget", "!!!") gives None: matching everything but a word
    cannot use the index and is not what anyone searching means.
    """
    terms = [item for item in items if isinstance(item, _Term)]
    if not any(not term.negated for term in terms):
        return None
    forms = iter(_expand_terms(terms))
    groups: list[list[str]] = [[]]
    for item in items:
        if item == "or":
            groups.append([])
        elif (form := next(forms)) is not None:
            groups[-1].append(f"!( {form} )" if item.negated else f"( {form} )")
    # A group of only exclusions would match nearly everything; websearch drops dangling ORs the same way.
    groups = [group for group in groups if any(not part.startswith("!") for part in group)]
    if not groups:
        return None
    return " | ".join("( " + " & ".join(group) + " )" for group in groups)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _candidate_sql(*, user, tsquery: str, meeting_id, speaker, date_from, date_to, person=None) -> tuple[str, tuple]:
    """SQL for the matching segments the user may see, filtered, ranked and capped at CANDIDATE_CAP + 1."""
    meetings = meetings_visible_to(user)
    if meeting_id is not None:
        meetings = meetings.filter(pk=meeting_id)
    if date_from or date_to:
        meetings = meetings.alias(meeting_date=Coalesce("started_at", "created_at"))
        if date_from:
            meetings = meetings.filter(meeting_date__gte=_day_start(date_from))
        if date_to:
            meetings = meetings.filter(meeting_date__lt=_day_start(date_to + timedelta(days=1)))
    table = Segment._meta.db_table
    segments = Segment.objects.filter(meeting__in=meetings.values("pk")).filter(
        RawSQL(f"{table}.search_vector @@ %s::tsquery", [tsquery], output_field=BooleanField())
    )
    if speaker:
        named = Speaker.objects.filter(Q(display_name__iexact=speaker) | Q(label__iexact=speaker))
        segments = segments.filter(speaker__in=named.values("pk"))
    if person:
        segments = segments.filter(speaker__in=_person_speakers(person))
    segments = segments.annotate(
        rank=RawSQL(f"ts_rank_cd({table}.search_vector, %s::tsquery)", [tsquery], output_field=FloatField())
    )
    # No ORDER BY: the cap must stop the index scan early instead of sorting every match.
    segments = segments.order_by().values("id", "meeting_id", "speaker_id", "start_ms", "end_ms", "rank")
    return segments[: CANDIDATE_CAP + 1].query.sql_with_params()


def _person_speakers(key: str):
    """Speakers linked to one person (a user or a person record) in any meeting: the known-voices filter."""
    from voices.selectors import speakers_of_person

    return speakers_of_person(key).values("pk")


_PAGE_SQL = """
WITH candidates AS MATERIALIZED ({candidates}),
     counted AS (SELECT count(*) AS total FROM candidates)
SELECT counted.total, page.id, page.meeting_id, page.title, page.start_ms, page.end_ms, page.rank, page.meeting_date,
       COALESCE(NULLIF(sp.display_name, ''), sp.label, '') AS speaker_name,
       ts_headline(s.search_config::regconfig, replace(s.text, '<', '< '), %s::tsquery, %s) AS headline
FROM counted
LEFT JOIN LATERAL (
    -- Sort the candidates first; only the page's rows are read again for their text and headline.
    SELECT c.*, m.title, COALESCE(m.started_at, m.created_at) AS meeting_date
    FROM candidates c JOIN meetings_meeting m ON m.id = c.meeting_id
    ORDER BY c.rank DESC, meeting_date DESC, c.start_ms, c.id
    LIMIT %s OFFSET %s
) page ON true
LEFT JOIN meetings_segment s ON s.id = page.id
LEFT JOIN meetings_speaker sp ON sp.id = page.speaker_id
ORDER BY page.rank DESC, page.meeting_date DESC, page.start_ms, page.id
"""

# A search always reads matches through the GIN index (a bitmap scan). Left to itself the planner
# often prefers walking the whole table, or a b-tree in full, until the candidate cap is reached,
# assuming matches lie evenly through the table and among the meetings the user may see; for a common
# word seen by a user with a fifth of the meetings that means testing @@ on half the table (40-60 ms
# instead of under 10 ms on 400,000 segments). JIT only adds compile time to a query this size, and
# the disabled scans' cost estimates would trigger it.
_PLANNER_SETTINGS = {"enable_seqscan": "off", "enable_indexscan": "off", "jit": "off"}


def search_segments(
    *,
    user,
    query: str,
    meeting_id: int | None = None,
    speaker: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: int = 20,
    offset: int = 0,
    person: str | None = None,
) -> SearchPage:
    """Ranked matches among segments of meetings the user may view. Bad or empty input finds nothing."""
    query = _CONTROL.sub(" ", query).strip()  # PostgreSQL text cannot hold NUL
    limit, offset = max(1, min(limit, 100)), max(0, offset)
    empty = SearchPage(query=query, hits=[], total=0, limit=limit, offset=offset)
    if not query or not user.is_authenticated:
        return empty
    items = parse_query(query)
    tsquery = build_tsquery(items)
    if tsquery is None:
        return empty
    try:
        sql, params = _candidate_sql(
            user=user, tsquery=tsquery, meeting_id=meeting_id, speaker=(speaker or "").strip(), date_from=date_from, date_to=date_to,
            person=person,
        )
    except EmptyResultSet:
        return empty
    page_size = max(0, min(limit, CANDIDATE_CAP - offset))  # the extra candidate only tells that there are more
    with connection.cursor() as cursor, _planner_settings(cursor):
        cursor.execute(_PAGE_SQL.format(candidates=sql), [*params, tsquery, HEADLINE_OPTIONS, page_size, offset])
        rows = cursor.fetchall()
    total = rows[0][0]
    cjk_words = _cjk_words(items)
    hits = [_hit(row[1:], cjk_words) for row in rows if row[1] is not None]
    return SearchPage(
        query=query, hits=hits, total=min(total, CANDIDATE_CAP), limit=limit, offset=offset, total_is_capped=total > CANDIDATE_CAP
    )


@contextmanager
def _planner_settings(cursor):
    """Apply _PLANNER_SETTINGS for the statements inside, then put the session's values back."""
    names = list(_PLANNER_SETTINGS)
    cursor.execute(
        "SELECT " + ", ".join(f"current_setting(%s), set_config(%s, %s, false)" for _ in names),
        [arg for name in names for arg in (name, name, _PLANNER_SETTINGS[name])],
    )
    previous = cursor.fetchone()[::2]
    try:
        yield
    finally:
        try:
            cursor.execute("SELECT " + ", ".join("set_config(%s, %s, false)" for _ in names), [a for pair in zip(names, previous) for a in pair])
        except DatabaseError:
            pass  # the transaction failed and its rollback undoes the settings anyway


def _cjk_words(items) -> list[str]:
    words = {w for item in items if isinstance(item, _Term) and not item.negated for w in CJK_RUN.findall(item.raw)}
    return sorted(words, key=len, reverse=True)


def _hit(row, cjk_words: list[str]) -> SearchHit:
    segment_id, meeting_id, title, start_ms, end_ms, rank, meeting_date, speaker_name, headline = row
    return SearchHit(
        segment_id=segment_id,
        meeting_id=meeting_id,
        meeting_title=title,
        start_ms=start_ms,
        end_ms=end_ms,
        speaker_name=speaker_name,
        snippet_html=snippet_html(headline, cjk_words),
        rank=rank,
        meeting_date=meeting_date,
    )


def snippet_html(headline: str, cjk_words: list[str] = ()) -> str:
    """Escape a ts_headline result and turn its markers into <mark>.

    The parser reads a CJK sentence as one token, so ts_headline cannot mark a CJK word inside it;
    those are marked here by substring.
    """
    if cjk_words and has_cjk(headline):
        pattern = "|".join(re.escape(word) for word in cjk_words)
        headline = re.sub(pattern, lambda m: START + m.group(0) + STOP, headline)
    # The text was read with a space after every '<', as the trigger indexes it; take it out again.
    text = html.escape(headline.replace("< ", "<"))
    # Nested or stray markers (marking a CJK word inside a marked word) must not unbalance the tags.
    out, depth = [], 0
    for part in re.split(f"([{START}{STOP}])", text):
        if part == START:
            depth += 1
            out.append("<mark>" if depth == 1 else "")
        elif part == STOP:
            if depth:
                depth -= 1
                out.append("</mark>" if depth == 0 else "")
        else:
            out.append(part)
    if depth:
        out.append("</mark>")
    return "".join(out)
