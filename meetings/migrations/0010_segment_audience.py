"""Who may see each segment, kept on the segment and indexed with its words (see meetings/search.py).

`audience` lists the meeting's owner and the users it is shared with (their ids) and the groups it is
shared with (their ids negated). A search for a word few of the user's meetings hold then asks the
index for "this word, seen by this user or one of their groups": a handful of keys, however many
meetings the user can see, where listing the meetings costs one index lookup each (thousands for a
user who sees a few percent of a large site's meetings).

Triggers keep it right on every write path (the ORM, bulk writes, raw SQL, cascades): a segment takes
its meeting's audience when written, and adding, changing or removing a share, or giving a meeting
to another owner, rewrites the audience of that meeting's segments (a few hundred rows an hour of
transcript). Group membership is not copied onto segments: a search expands the user's groups, so
joining or leaving a group changes nothing here. Search still checks every match against the meetings
the user may see, so a stale audience can hide a match but never show one.

Existing segments are filled a batch of meetings at a time (each batch its own transaction, so the
table stays writable), then the index is built concurrently and the old one dropped.
"""
import django.contrib.postgres.fields
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

AUDIENCE_FUNCTIONS = """
-- PL/pgSQL rather than SQL functions: their plans are kept for the session, where a SQL function that
-- cannot be inlined is planned again on every call (about 130 us a segment written, against 10).
CREATE FUNCTION meetings_meeting_audience(meeting bigint) RETURNS bigint[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(array_agg(DISTINCT k ORDER BY k), '{}')
        FROM (SELECT owner_id::bigint FROM meetings_meeting WHERE id = meeting
              UNION ALL
              SELECT coalesce(user_id::bigint, -group_id::bigint) FROM meetings_sharing WHERE meeting_id = meeting) AS keys(k)
        WHERE k IS NOT NULL
    );
END
$$;

CREATE FUNCTION meetings_refresh_audience(meeting bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    keys bigint[] := meetings_meeting_audience(meeting);
BEGIN
    UPDATE meetings_segment SET audience = keys WHERE meeting_id = meeting AND audience IS DISTINCT FROM keys;
END
$$;

CREATE FUNCTION meetings_segment_audience() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Whatever the writer sent: the audience is the meeting's, never the caller's say.
    NEW.audience := meetings_meeting_audience(NEW.meeting_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER meetings_segment_audience
BEFORE INSERT OR UPDATE OF meeting_id, audience ON meetings_segment
FOR EACH ROW EXECUTE FUNCTION meetings_segment_audience();

CREATE FUNCTION meetings_sharing_audience() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM meetings_refresh_audience(OLD.meeting_id);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM meetings_refresh_audience(NEW.meeting_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER meetings_sharing_audience
AFTER INSERT OR DELETE OR UPDATE OF meeting_id, user_id, group_id ON meetings_sharing
FOR EACH ROW EXECUTE FUNCTION meetings_sharing_audience();

CREATE FUNCTION meetings_owner_audience() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM meetings_refresh_audience(NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER meetings_owner_audience
AFTER UPDATE OF owner_id ON meetings_meeting
FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id) EXECUTE FUNCTION meetings_owner_audience();
"""

REVERSE = """
DROP TRIGGER IF EXISTS meetings_owner_audience ON meetings_meeting;
DROP FUNCTION IF EXISTS meetings_owner_audience();
DROP TRIGGER IF EXISTS meetings_sharing_audience ON meetings_sharing;
DROP FUNCTION IF EXISTS meetings_sharing_audience();
DROP TRIGGER IF EXISTS meetings_segment_audience ON meetings_segment;
DROP FUNCTION IF EXISTS meetings_segment_audience();
DROP FUNCTION IF EXISTS meetings_refresh_audience(bigint);
DROP FUNCTION IF EXISTS meetings_meeting_audience(bigint);
"""

BATCH_MEETINGS = 200


def fill_audience(apps, schema_editor):
    """Segments written before the triggers existed, a batch of meetings per transaction."""
    Meeting = apps.get_model("meetings", "Meeting")
    ids = list(Meeting.objects.order_by("pk").values_list("pk", flat=True))
    with schema_editor.connection.cursor() as cursor:
        for start in range(0, len(ids), BATCH_MEETINGS):
            batch = ids[start : start + BATCH_MEETINGS]
            cursor.execute(
                "UPDATE meetings_segment SET audience = meetings_meeting_audience(meeting_id) WHERE meeting_id BETWEEN %s AND %s AND audience IS NULL",
                [batch[0], batch[-1]],
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("meetings", "0009_merge_search_index_and_segment_words")]

    operations = [
        migrations.AddField(
            model_name="segment",
            name="audience",
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), editable=False, null=True, size=None),
        ),
        migrations.RunSQL(AUDIENCE_FUNCTIONS, REVERSE),
        migrations.RunPython(fill_audience, migrations.RunPython.noop),
        AddIndexConcurrently(
            model_name="segment",
            index=GinIndex(
                models.Func(models.F("meeting_id"), template="ARRAY[%(expressions)s]"),
                models.Func(models.F("speaker_id"), template="ARRAY[%(expressions)s]"),
                models.F("audience"),
                models.F("search_vector"),
                name="segment_search_audience_gin",
            ),
        ),
        RemoveIndexConcurrently(model_name="segment", name="segment_search_scoped_gin"),
    ]
