"""Search hits placed at the word that matched, not at the start of its segment.

PostgreSQL's headline marks the words that matched the query (stems included: "meetings" marks
"meeting"). The first marked word is looked up among the segment's timed words, in order; a hit whose
segment has no word times, or whose marked word is not found, keeps the segment's start.
"""
import html
import re
from dataclasses import replace

from .languages import has_cjk
from .models import Segment

_MARKED = re.compile(r"<mark>(.*?)</mark>", re.S)


def _plain(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def hits_at_words(hits: list) -> list:
    """`hits` (SearchHit) with start_ms moved to their first matching word; one query for the page."""
    words = dict(Segment.objects.filter(pk__in=[h.segment_id for h in hits]).values_list("pk", "words"))
    return [replace(hit, start_ms=_word_start(hit, words.get(hit.segment_id) or [])) for hit in hits]


def _word_start(hit, words: list) -> int:
    marked = [_plain(html.unescape(re.sub(r"<[^>]*>", "", m))) for m in _MARKED.findall(hit.snippet_html)]
    marked = [m for m in marked if m]
    for text, start_ms, _ in words:
        plain = _plain(text)
        # CJK is indexed as character pairs, and the engine's CJK "words" run longer: a pair inside one counts.
        if plain and any(plain == m or (has_cjk(m) and m in plain) for m in marked):
            return start_ms
    return hit.start_ms
