"""Full-text search over the transcript segments a user may see (how typed words become a query:
search_query.py).

Which matches, in which order: the newest CANDIDATE_CAP matches in the meetings the user may see
(after the filters) are ranked with ts_rank_cd, best first, newest first on equal rank. Ranking every
match of a common word (a million segments in 10,000 meeting-hours) would read every vector; the
newest thousand are what someone searching a transcript archive almost always wants, and dates or a
speaker reach further back.

How they are found, in two stages (three statements in all, after the one that expands the words):
1. The ids of the meetings in scope, newest first (meetings the user owns or was shared, narrowed by
   the filters; a speaker filter scopes to Speaker rows instead, so only those speakers' segments are
   read), and how common the words are, from the word statistics ANALYZE keeps on the vectors.
2. Matches among the newest slice of those meetings, the slice sized so that by that estimate it holds
   SLICE_MARGIN times the cap. The GIN index holds each segment's meeting and speaker beside its
   words (migration 0007), so "these words in these meetings" is one index scan that skips through the
   words' entries to the slice's meetings: about as cheap for "the" as for a rare name, and the heap is
   read only for real matches. A slice that turns out to hold fewer than the cap is widened by what it
   held and searched again. No planner setting is changed.

   Each meeting in that list costs the index scan a lookup of its own (about 80 us at 50,000
   meeting-hours), so words that few of the user's meetings hold, where the slice is all of them
   (2,600 meetings for a user who sees 5% of 50,000), spent 200-400 ms on the lookups alone. When the
   whole scope is to be searched and it holds AUDIENCE_FROM_MEETINGS meetings or more, the words are
   looked up with the user's audience keys instead (the user's id and their groups', which the index
   holds for every segment, migration 0010): a handful of keys whatever the number of meetings, and the
   heap is read only for matches the user may see, which the estimate says are few. Each match is
   still kept only if its meeting is in the list from stage 1, which also gives the newest-first order,
   so a stale audience can hide a match but never show one. Finding the words alone and keeping the
   user's meetings in a join would read every match on the site for a word that is rare for the user
   but not for the site (15,000 heap visits in a table larger than memory for one name: seconds).

Counts: exact whenever the whole scope was searched (also above the cap); when only a slice was, the
slice's exact count scaled by the scope's size ("about 12,000"), to two significant figures.

Why not an index ordered by time (PostgreSQL's RUM extension, `ORDER BY date <=> now()` inside a
tsvector index): what limits a search is less the word than what the user may see, a few percent of
the meetings, decided per meeting through shares. A time-ordered word index hands back every match in
date order, visible or not, so for a user who sees 5% of the meetings it returns about twenty rows,
each a heap visit, for every one kept (21,306 rows for the newest 1,001 visible matches of "team" in
the 10,000-hour benchmark, where the scan below reads those 1,001 and a few hundred more); it also needs the meeting date copied onto every segment and
kept in step, and one more package (postgresql-NN-rum) on every offline site. The two stages above
use only core PostgreSQL (GIN array and tsvector operator classes); measured figures are in
benchmarks/results/search-2026-11-30.json. Partitioning the segments by time would confine a search
to recent partitions, but the slice of newest meetings already does, without changing the table.
"""
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from .access import meetings_visible_to
from .models import Meeting, Speaker
from .search_query import HEADLINE_OPTIONS, build_query, cjk_words, lexemes, parse_query, snippet_html

CANDIDATE_CAP = 1000
# The newest slice of a search's meetings is sized to hold this many times CANDIDATE_CAP matches by
# the planner's estimate: every match in the slice is read, so a wide margin costs heap visits on
# every search, while a short slice costs one more statement, sized by what it found.
SLICE_MARGIN = 1.5
# A search that must look through all of this many meetings or more finds its matches by the user's
# audience keys instead of by meeting: listing the meetings costs an index lookup each (about 80 us at
# 50,000 meeting-hours), the keys a few, and every match the user may see is then read, which the
# statistics say are fewer than the slice margin (else only a newer slice is searched).
AUDIENCE_FROM_MEETINGS = 250
# A slice of that many meetings that is at least this share of the scope is searched as the whole scope
# by audience instead: every match in scope is read, by the estimate at most 1 / AUDIENCE_WHOLE_SCOPE
# times the slice's, where the slice by meeting would cost its lookups and, when the estimate was too
# high, a second statement.
AUDIENCE_WHOLE_SCOPE = 3
MEETING_DATE = Coalesce("started_at", "created_at")  # what the results show and sort by
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
    ranked: int = 0  # matches ranked and paged through: the newest, at most CANDIDATE_CAP
    total_is_estimate: bool = False  # `total` was extrapolated from the newest meetings ("about N")

    @property
    def total_is_capped(self) -> bool:
        """More segments match than are ranked; only the newest CANDIDATE_CAP can be paged through."""
        return self.total > self.ranked


@dataclass(frozen=True)
class SearchFilters:
    """What narrows a search besides its words. A filter on meetings goes in _scope_meetings, one on
    speakers (who said it) in _speaker_restrictions; both keep the search on the user's meetings."""

    meeting_id: int | None = None
    speaker: str = ""
    date_from: date | None = None
    date_to: date | None = None
    person: str = ""  # a known voice's person: "u<user id>" or "p<person id>"


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _scope_meetings(user, filters: SearchFilters) -> QuerySet[Meeting]:
    """The meetings the user may see that the filters keep."""
    meetings = meetings_visible_to(user)
    if filters.meeting_id is not None:
        meetings = meetings.filter(pk=filters.meeting_id)
    if filters.date_from or filters.date_to:
        meetings = meetings.alias(meeting_date=MEETING_DATE)
        if filters.date_from:
            meetings = meetings.filter(meeting_date__gte=_day_start(filters.date_from))
        if filters.date_to:
            meetings = meetings.filter(meeting_date__lt=_day_start(filters.date_to + timedelta(days=1)))
    return meetings


def _speaker_restrictions(filters: SearchFilters) -> list[Q]:
    """Conditions on Speaker rows; a search with any of them only reads those speakers' segments."""
    restrictions = []
    if filters.speaker:
        restrictions.append(Q(display_name__iexact=filters.speaker) | Q(label__iexact=filters.speaker))
    if filters.person:
        restrictions.append(Q(pk__in=_person_speakers(filters.person)))
    return restrictions


def people_for_search(user) -> list[tuple[str, str]]:
    """(key, name) of the people linked to speakers in meetings the user can see, for the person filter.
    Keys are "u<user id>" or "p<person id>"; read through the speakers' reverse `identity` relation."""
    rows = (Speaker.objects.filter(meeting__in=meetings_visible_to(user).values("pk"), identity__isnull=False)
            .values_list("identity__user_id", "identity__person_id", "identity__name").order_by("identity__name").distinct())
    seen, people = set(), []
    for user_id, person_id, name in rows:
        key = f"u{user_id}" if user_id else f"p{person_id}"
        if key not in seen:
            seen.add(key)
            people.append((key, name))
    return people


def _person_speakers(key: str):
    """Speakers linked to one person ("u<user id>" or "p<person id>") in any meeting: the known-voices
    filter. Read through the speaker's reverse `identity` relation, so search needs no import of voices."""
    kind, number = key[:1], key[1:]
    if not number.isdigit() or kind not in ("u", "p"):
        return Speaker.objects.none().values("pk")
    field = "identity__user_id" if kind == "u" else "identity__person_id"
    return Speaker.objects.filter(**{field: int(number)}).values("pk")


def _scope_sql(user, filters: SearchFilters) -> tuple[str, str, list]:
    """(segment column, SQL, params): the SQL gives the ids of the meetings (or speakers) to search,
    newest meeting first, and how many rows that table has in all."""
    meetings = _scope_meetings(user, filters)
    if restrictions := _speaker_restrictions(filters):
        units = Speaker.objects.filter(*restrictions, meeting__in=meetings.values("pk")).annotate(
            unit_date=Coalesce("meeting__started_at", "meeting__created_at")
        )
        column, table = "speaker_id", Speaker._meta.db_table
    else:
        units, column, table = meetings.annotate(unit_date=MEETING_DATE), "meeting_id", Meeting._meta.db_table
    sql, params = units.order_by().values_list("pk", "unit_date").query.sql_with_params()
    # The user's keys in Segment.audience ride along: the user's id and their groups' ids negated.
    wrapped = (
        f"SELECT array_agg(u.id ORDER BY u.unit_date DESC, u.id DESC), "
        f"(SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass), "
        f"ARRAY(SELECT -ug.group_id::bigint FROM auth_user_groups ug WHERE ug.user_id = %s) || %s::bigint "
        f"FROM ({sql}) AS u(id, unit_date)"
    )
    return column, wrapped, [user.pk, user.pk, *params]


def _slice_size(*, units: int, units_in_table: float, matches_in_table: float) -> int:
    """How many of the newest units (meetings or speakers) should hold SLICE_MARGIN * CANDIDATE_CAP matches.

    Assumes matches spread evenly over units: the scope's share of the table times the planner's
    estimate of all matches.
    """
    if units_in_table <= 0 or matches_in_table <= 0:
        return units  # no statistics yet: a small or new database, search it all
    wanted = SLICE_MARGIN * (CANDIDATE_CAP + 1) * units_in_table / matches_in_table
    return max(1, min(units, math.ceil(wanted)))


def _estimate_matches(groups: list[list[list[str]]], statistics: tuple) -> float:
    """About how many segments match, from the word statistics ANALYZE keeps on the vectors; 0 without them.

    The planner's own estimate adds up a word's forms (the stem and the exact word, found in the same
    segments), doubling most counts; here a word counts as its commonest form, words sought together
    multiply (as the planner assumes) and alternatives add up.
    """
    rows, frequencies, least = statistics
    if not rows or rows <= 0 or least is None:
        return 0.0
    frequencies = frequencies or {}

    def share(form: str) -> float:
        return math.prod(frequencies.get(lexeme, least / 2) for lexeme in lexemes(form))

    return rows * min(1.0, sum(math.prod(max(map(share, forms)) for forms in group) for group in groups))


def _scope_and_statistics(cursor, scope: tuple[str, list], groups: list[list[list[str]]]) -> tuple[list[int], float, list[int], float]:
    """One statement: the ids in scope newest first, the rows in their table, the user's audience keys and
    the estimated matches."""
    scope_sql, scope_params = scope
    wanted = sorted({lexeme for group in groups for forms in group for form in forms for lexeme in lexemes(form)})
    cursor.execute(f"SELECT * FROM ({scope_sql}) AS scope CROSS JOIN ({_WORD_STATISTICS_SQL}) AS statistics", [*scope_params, wanted])
    unit_ids, units_in_table, audience_keys, *statistics = cursor.fetchone()
    return unit_ids or [], units_in_table, audience_keys, _estimate_matches(groups, tuple(statistics))


# Frequencies of the given lexemes among the most common ones, the least common frequency listed
# (most_common_elem_freqs carries min, max and null share after one entry per element), and the row count.
_WORD_STATISTICS_SQL = """
SELECT c.reltuples,
       (SELECT json_object_agg(e.lexeme, e.share) FROM unnest(st.most_common_elems::text::text[], st.most_common_elem_freqs) AS e(lexeme, share)
        WHERE e.lexeme = ANY(%s::text[])),
       st.most_common_elem_freqs[cardinality(st.most_common_elems::text::text[]) + 1]
FROM pg_class c LEFT JOIN pg_stats st ON st.schemaname = current_schema() AND st.tablename = c.relname AND st.attname = 'search_vector'
WHERE c.oid = 'meetings_segment'::regclass
"""

# Matches among the given meetings (or speakers), newest first, capped; ranked afterwards.
# `ARRAY[meeting_id] && ids` is answered by the same GIN index as the words (migration 0007): one index
# scan that only visits the word's entries in those meetings, whatever their number, where a b-tree on
# the meetings ANDed with the word's full entry list read every entry of a middling word. For a word
# in half of all segments the planner rather reads the slice's few meetings by their b-tree. The window
# count is every match in the slice, counted before the cap.
_SLICE_CANDIDATES_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT s.id, s.meeting_id, s.speaker_id, s.start_ms, s.end_ms, s.search_vector,
           COALESCE(m.started_at, m.created_at) AS meeting_date, count(*) OVER () AS total
    FROM meetings_segment s JOIN meetings_meeting m ON m.id = s.meeting_id
    WHERE s.search_vector @@ %(q)s::tsquery AND ARRAY[s.{column}] && %(ids)s::bigint[]
    ORDER BY meeting_date DESC, s.meeting_id DESC, s.start_ms, s.id
    LIMIT %(cap)s
)"""

# Matches among everything the user may see, found by the audience keys in the same GIN index
# (migration 0010): a few keys where the meetings would be thousands. The matches are then kept only if
# their meeting is in scope (the user may see it and the filters keep it), whatever the index said, and
# ordered by the meeting's place in the newest-first list, which a join with that list gives without
# reading the meetings table. MATERIALIZED keeps the planner from driving the search from the list of
# meetings, one index lookup each, which is what this plan is for avoiding; the list itself is
# materialized too, because unnest's output comes in list order, and for that order (and the LIMIT)
# the planner chose a nested loop comparing every match with every meeting: 8 million comparisons,
# 300 ms, for 4,908 matches in 1,642 meetings at 50,000 meeting-hours.
_AUDIENCE_CANDIDATES_SQL = """
WITH matches AS MATERIALIZED (
    SELECT s.id, s.meeting_id, s.speaker_id, s.start_ms, s.end_ms, s.search_vector
    FROM meetings_segment s
    WHERE s.search_vector @@ %(q)s::tsquery AND s.audience && %(keys)s::bigint[]
), scope AS MATERIALIZED (
    SELECT * FROM unnest(%(ids)s::bigint[]) WITH ORDINALITY AS scope(meeting_id, newest)
), candidates AS MATERIALIZED (
    SELECT c.*, scope.newest, count(*) OVER () AS total
    FROM matches c JOIN scope ON scope.meeting_id = c.meeting_id
    ORDER BY scope.newest, c.start_ms, c.id
    LIMIT %(cap)s
)"""

# Ranks the candidates and reads the page: `{order}` is the candidates' newest-first order.
_PAGE_SQL = """
, ranked AS (
    -- The one candidate past the cap only tells that there are more; it is not ranked.
    SELECT c.*, ts_rank_cd(c.search_vector, %(q)s::tsquery) AS rank
    FROM (SELECT * FROM candidates ORDER BY {order}, start_ms, id LIMIT %(ranked)s) c
)
SELECT counted.total, counted.found, page.id, page.meeting_id, m.title, page.start_ms, page.end_ms, page.rank,
       COALESCE(m.started_at, m.created_at), COALESCE(NULLIF(sp.display_name, ''), sp.label, ''),
       ts_headline(s.search_config::regconfig, replace(s.text, '<', '< '), %(q)s::tsquery, %(headline)s)
FROM (SELECT COALESCE(max(total), 0) AS total, count(*) AS found FROM candidates) counted
LEFT JOIN LATERAL (
    -- Sort the candidates first; only the page's rows are read again for their text and headline.
    SELECT * FROM ranked ORDER BY rank DESC, {order}, start_ms, id LIMIT %(limit)s OFFSET %(offset)s
) page ON true
LEFT JOIN meetings_segment s ON s.id = page.id
LEFT JOIN meetings_meeting m ON m.id = page.meeting_id
LEFT JOIN meetings_speaker sp ON sp.id = page.speaker_id
ORDER BY page.rank DESC, {page_order}, page.start_ms, page.id
"""
_SLICE_ORDER = "meeting_date DESC, meeting_id DESC"
_SLICE_PAGE_SQL = _SLICE_CANDIDATES_SQL + _PAGE_SQL.format(order=_SLICE_ORDER, page_order="page.meeting_date DESC, page.meeting_id DESC")
_AUDIENCE_PAGE_SQL = _AUDIENCE_CANDIDATES_SQL + _PAGE_SQL.format(order="newest", page_order="page.newest")


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
    built = build_query(items)
    if built is None:
        return empty
    tsquery = built.tsquery
    filters = SearchFilters(meeting_id=meeting_id, speaker=(speaker or "").strip(), date_from=date_from, date_to=date_to,
                            person=(person or "").strip())
    try:
        column, scope_sql, scope_params = _scope_sql(user, filters)
    except EmptyResultSet:
        return empty
    with connection.cursor() as cursor:
        unit_ids, units_in_table, audience_keys, matches_in_table = _scope_and_statistics(cursor, (scope_sql, scope_params), built.groups)
        if not unit_ids:
            return empty
        params = {"q": tsquery, "headline": HEADLINE_OPTIONS, "cap": CANDIDATE_CAP + 1, "ranked": CANDIDATE_CAP, "offset": offset}
        params["limit"] = max(0, min(limit, CANDIDATE_CAP - offset))  # the extra candidate only tells that there are more
        params["keys"] = audience_keys
        size = _slice_size(units=len(unit_ids), units_in_table=units_in_table, matches_in_table=matches_in_table)
        rows, size = _search_newest(cursor, column, unit_ids, size, params)
    in_slice, found = rows[0][0], rows[0][1]
    estimated = size < len(unit_ids)
    total = _round_estimate(in_slice * len(unit_ids) / size) if estimated else in_slice
    highlight = cjk_words(items)
    hits = [_hit(row[2:], highlight) for row in rows if row[2] is not None]
    return SearchPage(
        query=query, hits=hits, total=total, limit=limit, offset=offset, ranked=min(found, CANDIDATE_CAP), total_is_estimate=estimated
    )


def _search_newest(cursor, column: str, unit_ids: list[int], size: int, params: dict) -> tuple[list[tuple], int]:
    """Rows of the page statement for the newest `size` units, widened until they hold more than the cap or
    are all of them; returns the rows and the number of units searched."""
    while True:
        if column == "meeting_id" and size >= AUDIENCE_FROM_MEETINGS and size * AUDIENCE_WHOLE_SCOPE >= len(unit_ids):
            cursor.execute(_AUDIENCE_PAGE_SQL, {**params, "ids": unit_ids})
            return cursor.fetchall(), len(unit_ids)
        else:
            cursor.execute(_SLICE_PAGE_SQL.format(column=column), {**params, "ids": unit_ids[:size]})
        rows = cursor.fetchall()
        in_slice, found = rows[0][0], rows[0][1]
        if found > CANDIDATE_CAP or size >= len(unit_ids):
            return rows, size
        # Fewer matches than the estimate promised (the words are commoner in older meetings): widen by
        # what this slice showed, or to everything when it showed nothing.
        size = min(len(unit_ids), math.ceil(size * SLICE_MARGIN * (CANDIDATE_CAP + 1) / max(in_slice, 1)))


def _round_estimate(value: float) -> int:
    """Two significant figures: "about 12,000", not a precision the estimate does not have."""
    if value < 100:
        return round(value)
    digits = 10 ** (len(str(int(value))) - 2)
    return int(round(value / digits) * digits)


def _hit(row, highlight: list[str]) -> SearchHit:
    segment_id, meeting_id, title, start_ms, end_ms, rank, meeting_date, speaker_name, headline = row
    return SearchHit(
        segment_id=segment_id,
        meeting_id=meeting_id,
        meeting_title=title,
        start_ms=start_ms,
        end_ms=end_ms,
        speaker_name=speaker_name,
        snippet_html=snippet_html(headline, highlight),
        rank=rank,
        meeting_date=meeting_date,
    )
