"""The settings file template names every setting the code reads, in a form systemd reads as meant."""
import re
from pathlib import Path

from tests.servers import REPO

EXAMPLE = REPO / "deploy" / "scribe.env.example"
# Read only by tests, or by the one-off `manage.py ensure_admin` rather than by the services.
NOT_SITE_SETTINGS = {"SCRIBE_CELERY_EAGER", "SCRIBE_EGRESS_GUARD_LOG", "SCRIBE_TEST_DB_NAME", "SCRIBE_TEST_RUN_ID",
                     "SCRIBE_ADMIN_USERNAME", "SCRIBE_ADMIN_PASSWORD"}


def settings_read_by_the_code() -> set[str]:
    names = set()
    for folder in ("config", "meetings", "transcription", "frontend"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r'"(SCRIBE_[A-Z0-9_]+)"', path.read_text()))
    return names - NOT_SITE_SETTINGS


def test_every_setting_the_code_reads_is_in_the_example():
    text = EXAMPLE.read_text()
    missing = sorted(name for name in settings_read_by_the_code() if not re.search(rf"^#? ?{name}(_FILE)?=", text, re.M))
    assert not missing, f"not in {EXAMPLE.name}: {missing}"


def test_every_setting_is_explained_and_no_value_carries_a_trailing_comment():
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^#? ?SCRIBE_\w+=", line):
            value = line.split("=", 1)[1]
            assert " #" not in value and "\t#" not in value, f"line {number + 1}: put the comment on its own line"
            above = next(lines[i] for i in range(number - 1, -1, -1) if not re.match(r"^#? ?SCRIBE_\w+=", lines[i]))
            assert above.startswith("# ") and not above.startswith("# ----"), f"line {number + 1}: {line} has no explanation above it"
