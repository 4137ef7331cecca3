"""How the words someone types become one tsquery, and how a matched segment is highlighted.

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
"""
import html
import re
from dataclasses import dataclass

from django.db import connection

from .languages import CJK_RUN, STEMMING_CONFIGS, has_cjk, search_config_for, split_cjk
from .models import Meeting

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
_LEXEME = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class Term:
    text: str  # websearch input for one word or phrase, CJK already split into bigrams
    negated: bool
    raw: str  # as typed, for highlighting CJK words


def search_config_for_meeting(meeting: Meeting) -> str:
    """The regconfig name stored on the meeting's segments (services set it on every write)."""
    return search_config_for(meeting.language)


def parse_query(query: str) -> list[Term | str]:
    """Split websearch syntax into terms and "or" operators, the way websearch_to_tsquery reads it."""
    items: list[Term | str] = []
    for match in _TOKEN.finditer(query[:MAX_QUERY_CHARS]):
        phrase_minus, phrase, word_minus, word = match.groups()
        if word is not None and word.lower() == "or" and not word_minus:
            items.append("or")
            continue
        raw = phrase if phrase is not None else word
        if raw.strip():
            # Quoting every term makes a CJK run (now several bigrams) one phrase, not an AND of pairs.
            items.append(Term(f'"{split_cjk(raw).strip()}"', negated=bool(phrase_minus or word_minus), raw=raw))
        if len(items) >= MAX_TERMS * 2:
            break
    return items


def _expand_terms(terms: list[Term]) -> list[list[str]]:
    """Each term's distinct forms (tsquery texts) over every configuration; empty if it has none."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.i, array_agg(DISTINCT q::text)
            FROM unnest(%s::text[]) WITH ORDINALITY AS t(term, i)
            CROSS JOIN unnest(%s::regconfig[]) AS c(config)
            CROSS JOIN LATERAL websearch_to_tsquery(c.config, t.term) AS q
            WHERE numnode(q) > 0
            GROUP BY t.i
            """,
            [[term.text for term in terms], QUERY_CONFIGS],
        )
        forms = dict(cursor.fetchall())
    return [sorted(forms.get(i + 1, [])) for i in range(len(terms))]


@dataclass(frozen=True)
class Query:
    tsquery: str
    groups: list[list[list[str]]]  # OR of groups, each an AND of terms, each the forms of a word sought


def build_query(items: list[Term | str]) -> Query | None:
    """One constant tsquery with websearch precedence (AND binds tighter than OR), or None.

    A query without any word to look for ("-budget", "!!!") gives None: matching everything but a word
    cannot use the index and is not what anyone searching means.
    """
    terms = [item for item in items if isinstance(item, Term)]
    if not any(not term.negated for term in terms):
        return None
    forms = iter(_expand_terms(terms))
    groups: list[list[tuple[list[str], bool]]] = [[]]
    for item in items:
        if item == "or":
            groups.append([])
        elif term_forms := next(forms):
            groups[-1].append((term_forms, item.negated))
    # A group of only exclusions would match nearly everything; websearch drops dangling ORs the same way.
    groups = [group for group in groups if any(not negated for _, negated in group)]
    if not groups:
        return None
    tsquery = " | ".join(
        "( " + " & ".join(("!" if negated else "") + "( " + " | ".join(f"({f})" for f in term_forms) + " )" for term_forms, negated in group) + " )"
        for group in groups
    )
    return Query(tsquery, [[term_forms for term_forms, negated in group if not negated] for group in groups])


def build_tsquery(items: list[Term | str]) -> str | None:
    query = build_query(items)
    return query.tsquery if query else None


def lexemes(form: str) -> list[str]:
    """The lexemes of one tsquery text, unquoted."""
    return [lexeme.replace("''", "'") for lexeme in _LEXEME.findall(form)]


def cjk_words(items) -> list[str]:
    words = {w for item in items if isinstance(item, Term) and not item.negated for w in CJK_RUN.findall(item.raw)}
    return sorted(words, key=len, reverse=True)


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
