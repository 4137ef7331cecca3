"""Full-text search over transcript segments, on the real PostgreSQL index and trigger."""
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from meetings import search as search_module
from meetings import services
from meetings.models import Meeting, Segment, Sharing, Speaker
from meetings.search import CANDIDATE_CAP, search_segments
from tests.factories import meeting_with_transcript

pytestmark = pytest.mark.django_db


def search(user, query, **filters):
    return search_segments(user=user, query=query, **filters)


def texts(page):
    return [Segment.objects.get(pk=hit.segment_id).text for hit in page.hits]


def test_it_finds_a_word_and_returns_the_segment_and_its_time(owner):
    meeting = meeting_with_transcript(owner)

    page = search(owner, "kidney")

    assert page.total == 1 and not page.total_is_capped
    hit = page.hits[0]
    segment = Segment.objects.get(pk=hit.segment_id)
    assert (hit.meeting_id, hit.meeting_title, hit.start_ms, hit.end_ms) == (meeting.pk, "Ward round", 9_800, 15_000)
    assert hit.speaker_name == "SPEAKER_00"
    assert "kidney" in segment.text
    assert "<mark>kidney</mark>" in hit.snippet_html
    assert hit.meeting_date == meeting.created_at


def test_english_stemming_finds_meeting_for_meetings(owner):
    meeting_with_transcript(owner, lines=[("SPEAKER_00", 0, 1_000, "The meeting starts at nine.")])

    assert texts(search(owner, "meetings")) == ["The meeting starts at nine."]


def test_french_and_german_stemming_find_other_forms(owner):
    meeting_with_transcript(owner, title="Réunion", language="fr", lines=[("SPEAKER_00", 0, 1_000, "Les réunions commencent tôt.")])
    meeting_with_transcript(owner, title="Sitzung", language="de", lines=[("SPEAKER_00", 0, 1_000, "Die Besprechung dauert lange.")])

    assert texts(search(owner, "réunion")) == ["Les réunions commencent tôt."]
    assert texts(search(owner, "Besprechungen")) == ["Die Besprechung dauert lange."]


def test_exact_words_match_whatever_the_meeting_language(owner):
    # A German meeting where someone says an English word: the unstemmed form is indexed too.
    meeting_with_transcript(owner, language="de", lines=[("SPEAKER_00", 0, 1_000, "Wir brauchen ein neues Dashboard.")])

    assert len(search(owner, "dashboard").hits) == 1


def test_a_cjk_word_is_found_inside_a_sentence(owner):
    meeting_with_transcript(owner, language="ja", lines=[("SPEAKER_00", 0, 2_000, "今日の会議は三時からです。")])
    meeting_with_transcript(owner, language="zh", lines=[("SPEAKER_00", 0, 2_000, "我们讨论了预算问题")])

    page = search(owner, "会議")

    assert texts(page) == ["今日の会議は三時からです。"]
    assert "<mark>会議</mark>" in page.hits[0].snippet_html
    assert texts(search(owner, "预算")) == ["我们讨论了预算问题"]
    assert search(owner, "会議室").hits == []  # every bigram must be there, in order


def test_cjk_inside_another_language_is_found(owner):
    meeting_with_transcript(owner, lines=[("SPEAKER_00", 0, 1_000, "The client from 東京支社 joined late.")])

    assert len(search(owner, "東京").hits) == 1


def test_quotes_search_for_a_phrase(owner):
    meeting_with_transcript(
        owner,
        lines=[
            ("SPEAKER_00", 0, 1_000, "The blood pressure is fine."),
            ("SPEAKER_01", 1_000, 2_000, "Pressure from the family, and a blood test."),
        ],
    )

    assert texts(search(owner, '"blood pressure"')) == ["The blood pressure is fine."]
    assert len(search(owner, "blood pressure").hits) == 2


def test_a_minus_sign_excludes_a_word_and_or_finds_either(owner):
    meeting_with_transcript(owner)

    assert texts(search(owner, "patient -bed")) == []
    assert len(search(owner, "dose OR overnight").hits) == 2
    assert texts(search(owner, "dose -kidneys")) == []  # exclusions are stemmed too


def test_an_outsider_cannot_find_another_users_segments(owner, outsider):
    meeting_with_transcript(owner)

    assert search(outsider, "kidney").hits == []
    assert search(outsider, "kidney").total == 0


def test_a_member_shared_by_user_or_by_group_can_find_segments(owner, member, team):
    by_user = meeting_with_transcript(owner, title="Shared with Bob", lines=[("SPEAKER_00", 0, 1_000, "Kidney results.")])
    by_group = meeting_with_transcript(owner, title="Shared with Cardiology", lines=[("SPEAKER_00", 0, 1_000, "Kidney scan.")])
    meeting_with_transcript(owner, title="Private", lines=[("SPEAKER_00", 0, 1_000, "Kidney notes.")])
    Sharing.objects.create(meeting=by_user, user=member, created_by=owner)
    Sharing.objects.create(meeting=by_group, group=team, created_by=owner)

    page = search(member, "kidney")

    assert sorted(hit.meeting_title for hit in page.hits) == ["Shared with Bob", "Shared with Cardiology"]
    assert len(search(owner, "kidney").hits) == 3


def test_it_filters_by_meeting(owner):
    first = meeting_with_transcript(owner, title="First")
    meeting_with_transcript(owner, title="Second")

    page = search(owner, "kidney", meeting_id=first.pk)

    assert [hit.meeting_id for hit in page.hits] == [first.pk]


def test_it_filters_by_speaker_name_or_label_across_meetings(owner):
    first = meeting_with_transcript(owner, title="First")
    meeting_with_transcript(owner, title="Second")
    Speaker.objects.filter(meeting=first, label="SPEAKER_01").update(display_name="Dr Jones")

    assert [h.speaker_name for h in search(owner, "blood OR kidney", speaker="dr jones").hits] == ["Dr Jones"]
    assert len(search(owner, "blood OR kidney", speaker="speaker_00").hits) == 2
    assert search(owner, "kidney", speaker="Nobody").hits == []


def test_it_filters_by_meeting_date_started_or_created(owner):
    old = meeting_with_transcript(owner, title="Old")
    new = meeting_with_transcript(owner, title="New")
    old.started_at = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    old.save(update_fields=["started_at"])
    type(new).objects.filter(pk=new.pk).update(created_at=datetime(2026, 6, 1, 10, tzinfo=timezone.utc))

    def titles(**dates):
        return [hit.meeting_title for hit in search(owner, "kidney", **dates).hits]

    assert titles(date_from=date(2026, 5, 1)) == ["New"]
    assert titles(date_to=date(2026, 3, 1)) == ["Old"]
    assert titles(date_from=date(2026, 3, 1), date_to=date(2026, 6, 1)) == ["New", "Old"]  # newest first on equal rank
    assert titles(date_from=date(2026, 3, 2), date_to=date(2026, 5, 31)) == []


def test_the_snippet_highlights_matches_and_escapes_html_in_the_transcript(owner):
    meeting_with_transcript(owner, lines=[("SPEAKER_00", 0, 1_000, 'He typed <script>alert("budget")</script> & left.')])

    snippet = search(owner, "budget").hits[0].snippet_html

    assert "<script>" not in snippet
    assert "&lt;script&gt;" in snippet and "&amp;" in snippet
    assert "<mark>budget</mark>" in snippet


def test_edited_text_is_reindexed(owner):
    meeting = meeting_with_transcript(owner)
    segment = meeting.segments.get(start_ms=9_800)

    services.segment_edit(segment=segment, by=owner, text="Then we keep the dose and check the liver function tomorrow.")

    assert search(owner, "kidney").hits == []
    assert [hit.segment_id for hit in search(owner, "liver").hits] == [segment.pk]


def test_bulk_writes_and_a_language_change_are_indexed_by_the_trigger(owner):
    meeting = meeting_with_transcript(owner, language="")
    Segment.objects.bulk_create([Segment(meeting=meeting, start_ms=20_000, end_ms=21_000, text="Meetings galore", origin="live")])
    assert search(owner, "galore").total == 1
    assert search(owner, "meeting").total == 0  # 'simple': no stemming yet

    services.meeting_update(meeting=meeting, by=owner, title=meeting.title, language="en", delay_ms=meeting.delay_ms)

    assert search(owner, "meeting").total == 1


@pytest.mark.parametrize("query", ["", "   ", "!!!", "&|:*", "'", '"', "-kidney", "or", "( ) <->", "a" * 5000, "\x00"])
def test_empty_or_garbage_queries_return_nothing_without_error(owner, query):
    meeting_with_transcript(owner)

    page = search(owner, query)

    assert page.hits == [] and page.total == 0


def test_the_total_is_exact_and_only_the_newest_cap_is_ranked(owner):
    meeting = meeting_with_transcript(owner, lines=[])
    Segment.objects.bulk_create(
        [Segment(meeting=meeting, start_ms=i, end_ms=i, text=f"Budget line {i}", origin="live") for i in range(CANDIDATE_CAP + 5)]
    )

    page = search(owner, "budget", offset=CANDIDATE_CAP - 5, limit=20)

    assert (page.total, page.ranked, page.total_is_estimate, page.total_is_capped) == (CANDIDATE_CAP + 5, CANDIDATE_CAP, False, True)
    assert len(page.hits) == 5


def test_a_page_past_the_end_still_reports_the_total(owner):
    meeting_with_transcript(owner)

    page = search(owner, "kidney", offset=40)

    assert (page.hits, page.total) == ([], 1)


def test_a_search_page_takes_three_queries_whatever_the_number_of_meetings(owner, member, team, django_assert_max_num_queries):
    for i in range(12):
        meeting = meeting_with_transcript(owner, title=f"Round {i}")
        Sharing.objects.create(meeting=meeting, group=team, created_by=owner)

    # Expand the terms; list the meetings in scope and estimate how common the words are; search and rank.
    with django_assert_max_num_queries(3):
        page = search(member, "kidney OR blood", speaker="SPEAKER_01", date_from=date(2000, 1, 1))

    assert len(page.hits) == 12


DAY0 = datetime(2021, 1, 4, 9, tzinfo=timezone.utc)


def dated_meetings(owner, days: list[int], lines) -> list[Meeting]:
    """Meetings started `days` after DAY0, created in the order given (not by date, as imports are)."""
    meetings = []
    for day in days:
        meeting = meeting_with_transcript(owner, title=f"Day {day}", lines=lines)
        Meeting.objects.filter(pk=meeting.pk).update(started_at=DAY0 + timedelta(days=day))
        meetings.append(meeting)
    return meetings


def analyze():
    """Statistics as a site has them (autovacuum); the search sizes its slice of meetings from them."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE meetings_meeting, meetings_speaker, meetings_segment")


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(search_module, "CANDIDATE_CAP", 10)
    return 10


@pytest.mark.parametrize("statistics", [False, True], ids=["no-statistics", "analyzed"])
def test_a_common_words_first_page_holds_the_newest_matching_meetings(owner, small_cap, statistics):
    days = list(range(0, 400, 10))
    random.Random(3).shuffle(days)
    lines = [("SPEAKER_00", 0, 1_000, "The budget for the ward."), ("SPEAKER_01", 1_000, 2_000, "A budget line and the budget total.")]
    dated_meetings(owner, days, lines)
    if statistics:
        analyze()

    page = search(owner, "budget", limit=small_cap)

    newest = {f"Day {day}" for day in sorted(days)[-5:]}  # two matches a meeting, ten ranked
    assert {hit.meeting_title for hit in page.hits} == newest
    assert page.ranked == small_cap and page.total_is_capped
    # Best first among them: the segment saying "budget" twice outranks the other of its meeting.
    assert [hit.start_ms for hit in page.hits[:5]] == [1_000] * 5
    assert page.total_is_estimate == statistics and 40 <= page.total <= 160  # 80 match in all


def test_a_word_said_only_in_old_meetings_is_still_found(owner, small_cap):
    dated_meetings(owner, range(30), [("SPEAKER_00", 0, 1_000, "Nothing to report today.")])
    dated_meetings(owner, range(-60, -50), [("SPEAKER_00", i * 1_000, i * 1_000 + 900, "Budget and more budget.") for i in range(6)])
    analyze()

    # The newest meetings, where sixty matches spread evenly would lie, hold none: it searches again, wider.
    with CaptureQueriesContext(connection) as queries:
        page = search(owner, "budget")

    assert page.ranked == small_cap and all(hit.meeting_date < DAY0 for hit in page.hits)
    assert len(queries) == 4


@pytest.mark.parametrize("statistics", [False, True], ids=["no-statistics", "analyzed"])
@pytest.mark.parametrize("audience_from", [10**9, 1], ids=["by-meeting", "by-audience"])
def test_every_filter_returns_only_what_the_user_may_see(owner, member, outsider, team, small_cap, statistics, audience_from, monkeypatch):
    monkeypatch.setattr(search_module, "AUDIENCE_FROM_MEETINGS", audience_from)
    lines = [("SPEAKER_00", 0, 1_000, "Budget review."), ("SPEAKER_01", 1_000, 2_000, "The budget is fine.")]
    mine = dated_meetings(owner, range(0, 60, 2), lines)
    theirs = dated_meetings(outsider, range(1, 61, 2), lines)
    for meeting in mine[::3]:
        Sharing.objects.create(meeting=meeting, user=member, created_by=owner)
    for meeting in mine[1::3]:
        Sharing.objects.create(meeting=meeting, group=team, created_by=owner)
    Speaker.objects.filter(label="SPEAKER_01").update(display_name="Dr Jones")  # the same person everywhere
    if statistics:
        analyze()
    visible = {m.pk for m in mine[::3] + mine[1::3]}
    searches = [
        {},
        {"speaker": "Dr Jones"},
        {"speaker": "speaker_00"},
        {"date_from": date(2021, 1, 1), "date_to": date(2021, 3, 31)},
        {"date_from": date(2021, 2, 1), "speaker": "dr jones"},
        {"meeting_id": mine[0].pk},
        {"meeting_id": mine[2].pk},
        {"meeting_id": theirs[0].pk},
    ]
    for filters in searches:
        pages = [search(member, "budget", limit=100, offset=offset, **filters) for offset in (0, 5)]
        found = {hit.meeting_id for page in pages for hit in page.hits}
        assert found <= visible, filters
    assert len(search(member, "budget", speaker="Dr Jones", limit=100).hits) == small_cap  # the cap, all from visible meetings
    assert search(member, "budget", meeting_id=theirs[0].pk).total == 0
    assert search(member, "budget", meeting_id=mine[2].pk).total == 0  # owner's, not shared
    assert search(outsider, "budget", meeting_id=mine[0].pk).total == 0
    assert search(member, "budget", meeting_id=mine[0].pk).total == 2


def test_the_page_says_about_how_many_and_that_only_the_newest_are_ranked(client, owner, small_cap):
    dated_meetings(owner, range(40), [("SPEAKER_00", 0, 1_000, "Budget review.")])
    analyze()
    client.force_login(owner)

    html = client.get(reverse("meetings:search"), {"q": "budget"}).content.decode()

    assert "About 40 results" in html
    assert "The newest 10 are ranked here" in html
    assert html.count('class="result-link"') == 10 and "Next</a>" not in html  # only the ranked ones are paged


@pytest.fixture
def audience_plan(monkeypatch):
    """Searches through every meeting in scope go by the user's audience keys, as on a large site."""
    monkeypatch.setattr(search_module, "AUDIENCE_FROM_MEETINGS", 1)


def audiences(meeting) -> set[tuple]:
    return {tuple(segment.audience) for segment in Segment.objects.filter(meeting=meeting)}


def test_segments_carry_their_meetings_audience_through_shares_and_owner_changes(owner, member, outsider, team):
    meeting = meeting_with_transcript(owner)
    other = meeting_with_transcript(outsider, title="Theirs")
    assert audiences(meeting) == {(owner.pk,)}

    by_user = Sharing.objects.create(meeting=meeting, user=member, created_by=owner)
    by_group = Sharing.objects.create(meeting=meeting, group=team, created_by=owner)
    assert audiences(meeting) == {tuple(sorted([-team.pk, owner.pk, member.pk]))}
    assert audiences(other) == {(outsider.pk,)}  # another meeting's segments are left alone

    Segment.objects.bulk_create([Segment(meeting=meeting, start_ms=20_000, end_ms=21_000, text="Late", origin="live", audience=[outsider.pk])])
    assert audiences(meeting) == {tuple(sorted([-team.pk, owner.pk, member.pk]))}  # what a writer sends is not trusted

    by_user.delete()
    assert audiences(meeting) == {tuple(sorted([-team.pk, owner.pk]))}
    Sharing.objects.filter(pk=by_group.pk).update(group=None, user=outsider)
    assert audiences(meeting) == {tuple(sorted([owner.pk, outsider.pk]))}

    Meeting.objects.filter(pk=meeting.pk).update(owner=member)
    assert audiences(meeting) == {tuple(sorted([member.pk, outsider.pk]))}

    moved = Segment.objects.filter(meeting=meeting).first()
    Segment.objects.filter(pk=moved.pk).update(meeting=other)
    assert Segment.objects.get(pk=moved.pk).audience == [outsider.pk]

    Segment.objects.filter(pk=moved.pk).update(audience=[member.pk])
    assert Segment.objects.get(pk=moved.pk).audience == [outsider.pk]

    other.delete()
    assert not Segment.objects.filter(pk=moved.pk).exists() and audiences(meeting)
    meeting_id = meeting.pk
    meeting.delete()  # its shares go with it, and so do its segments
    assert not Segment.objects.filter(meeting_id=meeting_id).exists() and not Sharing.objects.exists()


def test_a_share_added_or_removed_changes_what_the_audience_plan_finds(owner, member, team, audience_plan):
    meeting = meeting_with_transcript(owner)
    assert search(member, "kidney").total == 0

    sharing = Sharing.objects.create(meeting=meeting, group=team, created_by=owner)
    assert search(member, "kidney").total == 1

    sharing.delete()
    assert search(member, "kidney").total == 0
    member.groups.add(Group.objects.create(name="Renal"))
    Sharing.objects.create(meeting=meeting, group=Group.objects.get(name="Renal"), created_by=owner)
    assert search(member, "kidney").total == 1
    member.groups.remove(Group.objects.get(name="Renal"))  # leaving the group: the audience needs no change
    assert search(member, "kidney").total == 0


def test_a_stale_audience_never_shows_a_meeting_the_user_may_not_see(owner, member, audience_plan):
    meeting = meeting_with_transcript(owner)
    with connection.cursor() as cursor:  # as if a share had been removed behind the triggers' back
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE meetings_segment DISABLE TRIGGER meetings_segment_audience")
        cursor.execute("UPDATE meetings_segment SET audience = %s WHERE meeting_id = %s", [[owner.pk, member.pk], meeting.pk])
        cursor.execute("ALTER TABLE meetings_segment ENABLE TRIGGER meetings_segment_audience")

    assert search(member, "kidney").total == 0 and search(owner, "kidney").total == 1


@pytest.mark.parametrize("statistics", [False, True], ids=["no-statistics", "analyzed"])
def test_the_audience_plan_gives_the_newest_matches_first_and_exact_counts(owner, member, team, small_cap, audience_plan, statistics):
    days = list(range(0, 400, 10))
    random.Random(5).shuffle(days)
    filler = [("SPEAKER_00", i * 1_000, i * 1_000 + 900, "Nothing new on the ward today.") for i in range(4)]
    quokka = [("SPEAKER_01", 9_000, 10_000, "A quokka and a quokka."), ("SPEAKER_00", 10_000, 11_000, "The quokka file.")]
    with_word = dated_meetings(owner, days[:7], filler + quokka)
    dated_meetings(owner, days[7:], filler)
    dated_meetings(member, [500], quokka)  # newer, but not shared
    for meeting in with_word:
        Sharing.objects.create(meeting=meeting, group=team, created_by=owner)
    if statistics:
        analyze()

    with CaptureQueriesContext(connection) as queries:
        page = search(owner, "quokka", limit=small_cap)

    assert "audience &&" in queries[-1]["sql"]
    newest = {f"Day {day}" for day in sorted(days[:7])[-5:]}  # two matches a meeting, ten ranked
    assert {hit.meeting_title for hit in page.hits} == newest
    assert [hit.start_ms for hit in page.hits[:5]] == [9_000] * 5  # best first, then newest first
    assert [hit.meeting_date for hit in page.hits[:5]] == sorted((hit.meeting_date for hit in page.hits[:5]), reverse=True)
    assert (page.total, page.total_is_estimate, page.ranked) == (14, False, small_cap)
    assert search(member, "quokka").total == 16
