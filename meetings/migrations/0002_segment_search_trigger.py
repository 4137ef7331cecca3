"""Keep Segment.search_vector right on every write path with a trigger, and fill it for existing rows.

A trigger rather than save(): bulk_create, queryset.update(), the admin and raw SQL all bypass model
methods, and a stale index silently hides transcript text from search.
"""
from django.db import migrations

# Han, Hiragana, Katakana, Hangul: the same scripts as languages._CJK_RUN. Frozen here on purpose:
# changing the set means a new migration that also rebuilds the index.
CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff]"
NOT_CJK = "[^" + CJK[1:]

BIGRAMS = rf"""
CREATE FUNCTION meetings_cjk_bigrams(body text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    piece text[];
    result text := '';
BEGIN
    IF body !~ '{CJK}' THEN
        RETURN body;  -- the common case costs one regex test
    END IF;
    -- Each match is either a CJK run (piece[1]) or the text between runs (piece[2]).
    FOR piece IN SELECT regexp_matches(body, '({CJK}+)|({NOT_CJK}+)', 'g') LOOP
        IF piece[1] IS NULL THEN
            result := result || piece[2];
        ELSIF char_length(piece[1]) = 1 THEN
            result := result || ' ' || piece[1] || ' ';
        ELSE
            result := result || ' ' || (
                SELECT string_agg(substr(piece[1], i, 2), ' ' ORDER BY i)
                FROM generate_series(1, char_length(piece[1]) - 1) AS i
            ) || ' ';
        END IF;
    END LOOP;
    RETURN result;
END
$$
"""

TRIGGER_FUNCTION = """
CREATE FUNCTION meetings_segment_search_vector() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- Transcripts are not HTML, but the default parser skips anything shaped like a tag and all
    -- text inside <script>; a space after every '<' keeps those words (search.py undoes it).
    body text := meetings_cjk_bigrams(replace(NEW.text, '<', '< '));
    config regconfig;
BEGIN
    -- An unknown name must not make transcription fail: fall back to unstemmed words.
    SELECT c.oid::regconfig INTO config FROM pg_ts_config c
    WHERE c.cfgname = NEW.search_config AND c.cfgnamespace = 'pg_catalog'::regnamespace;
    IF config IS NULL OR config = 'simple'::regconfig THEN
        NEW.search_vector := to_tsvector('simple', body);
    ELSE
        -- Stemmed words for recall, plus the exact words so any query language finds them.
        NEW.search_vector := to_tsvector(config, body) || to_tsvector('simple', body);
    END IF;
    RETURN NEW;
END
$$
"""

TRIGGER = """
CREATE TRIGGER meetings_segment_search_vector
BEFORE INSERT OR UPDATE OF text, search_config ON meetings_segment
FOR EACH ROW EXECUTE FUNCTION meetings_segment_search_vector()
"""

# Rows written before the trigger existed.
BACKFILL = "UPDATE meetings_segment SET search_config = search_config"

REVERSE = [
    "DROP TRIGGER IF EXISTS meetings_segment_search_vector ON meetings_segment",
    "DROP FUNCTION IF EXISTS meetings_segment_search_vector()",
    "DROP FUNCTION IF EXISTS meetings_cjk_bigrams(text)",
]


class Migration(migrations.Migration):
    dependencies = [("meetings", "0001_initial")]

    operations = [migrations.RunSQL([BIGRAMS, TRIGGER_FUNCTION, TRIGGER, BACKFILL], REVERSE)]
