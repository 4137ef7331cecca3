# Joins the two audit-action migrations made side by side (sign-in lockouts, known voices).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("meetings", "0006_audit_lockouts_and_private_search"),
        ("meetings", "0006_audit_voice_actions"),
    ]
    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('login', 'Signed in'), ('login_failed', 'Failed sign-in'), ('logout', 'Signed out'), ('meeting_create', 'Created a meeting'), ('meeting_view', 'Opened a meeting'), ('meeting_update', 'Changed a meeting'), ('meeting_delete', 'Deleted a meeting'), ('media_download', 'Played or downloaded audio'), ('export', 'Exported a transcript'), ('search', 'Searched'), ('segment_edit', 'Edited transcript text'), ('speaker_rename', 'Renamed a speaker'), ('share_add', 'Shared a meeting'), ('share_remove', 'Stopped sharing a meeting'), ('access_denied', 'Was refused access'), ('live_follow', 'Followed live captions'), ('live_host', 'Streamed live audio'), ('admin', 'Changed users or groups'), ('model_import', 'Imported a model'), ('model_verify', 'Verified a model'), ('model_activate', 'Activated a model'), ('model_rollback', 'Rolled back a model'), ('settings_change', 'Changed site settings'), ('retention_delete', 'Deleted old audio or transcripts'), ('audit_export', 'Exported the audit log'), ('recording_upload', 'Uploaded a recording'), ('reprocess_cancel', 'Cancelled reprocessing'), ('speaker_merge', 'Merged speakers'), ('login_locked', 'Was locked out after failed sign-ins'), ('lockout_lifted', 'Lifted a sign-in lockout'), ('voice_enrol', 'Enrolled a voice'), ('voice_recognise', 'Named a speaker by voice'), ('voice_undo', 'Undid a voice recognition'), ('voice_delete', 'Deleted a voiceprint')], db_index=True, max_length=32),
        ),
    ]
