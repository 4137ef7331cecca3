"""The languages Voxtral Mini Realtime transcribes, and how each is indexed for full-text search.

PostgreSQL ships Snowball stemmers for ten of them. Chinese, Japanese and Korean have no stemmer and
are written without spaces between words, so the 'simple' parser would index a whole sentence as one
word. For those we index overlapping character pairs (bigrams), the approach of Lucene's CJK analyzer:
any word of two or more characters in a query becomes a phrase of bigrams that matches it in the text.
"""
import re

LANGUAGES = [
    ("en", "English", "english"),
    ("fr", "French", "french"),
    ("es", "Spanish", "spanish"),
    ("de", "German", "german"),
    ("it", "Italian", "italian"),
    ("pt", "Portuguese", "portuguese"),
    ("nl", "Dutch", "dutch"),
    ("ru", "Russian", "russian"),
    ("ar", "Arabic", "arabic"),
    ("hi", "Hindi", "hindi"),
    ("zh", "Chinese", "simple"),
    ("ja", "Japanese", "simple"),
    ("ko", "Korean", "simple"),
]
LANGUAGE_CHOICES = [("", "Detect automatically")] + [(code, name) for code, name, _ in LANGUAGES]
SEARCH_CONFIG = {code: config for code, _, config in LANGUAGES}
STEMMING_CONFIGS = sorted({config for _, _, config in LANGUAGES if config != "simple"})

# Han, Hiragana, Katakana and Hangul: scripts written without spaces between words.
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff]+")


def search_config_for(language: str) -> str:
    """The text search configuration used to stem a segment in `language` ('' = unknown)."""
    return SEARCH_CONFIG.get(language, "simple")


def _bigrams(run: str) -> str:
    if len(run) == 1:
        return run
    return " ".join(run[i : i + 2] for i in range(len(run) - 1))


def split_cjk(text: str) -> str:
    """Rewrite runs of CJK characters as space-separated bigrams; other text is left alone."""
    return CJK_RUN.sub(lambda m: f" {_bigrams(m.group(0))} ", text)


def has_cjk(text: str) -> bool:
    return bool(CJK_RUN.search(text))
