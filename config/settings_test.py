"""Settings for the test suite: the real PostgreSQL and Redis, kept apart from a running site's data."""
import atexit
import os
import shutil
import tempfile

from .settings import *  # noqa: F403

if os.environ.get("SCRIBE_MEDIA_ROOT"):
    MEDIA_ROOT = Path(os.environ["SCRIBE_MEDIA_ROOT"])  # noqa: F405
else:
    MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="scribe-test-media-"))  # noqa: F405
    atexit.register(shutil.rmtree, MEDIA_ROOT, ignore_errors=True)
# One id per test run, inherited by the servers and workers it starts, so that two runs on one machine
# (two checkouts, or a developer and CI) never read each other's channel or Celery messages.
RUN_ID = os.environ.setdefault("SCRIBE_TEST_RUN_ID", str(os.getpid()))
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"scribe-test-{RUN_ID}"  # noqa: F405
CHANNEL_LAYERS["live"]["CONFIG"]["prefix"] = f"scribe-test-{RUN_ID}-live"  # noqa: F405
CELERY_BROKER_URL = os.environ.get("SCRIBE_CELERY_BROKER_URL", "redis://127.0.0.1:6379/3")
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"scribe-test-{RUN_ID}-"}  # noqa: F405
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"scribe-test-{RUN_ID}-"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests
# A database per test run, so that two runs on one machine (a developer and CI) never share one.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SCRIBE_TEST_DB_NAME") or f"test_scribe_{RUN_ID}"}  # noqa: F405
# The engine inside the test server's process unless a test asks for caption workers (one process to start).
ASR_LIVE_ENGINE = os.environ.get("SCRIBE_ASR_LIVE_ENGINE") or "local"
# Tests build model folders under the temporary folder; the security tests' server narrows this to one folder.
MODEL_IMPORT_ROOTS = envlist("SCRIBE_MODEL_ROOTS", [tempfile.gettempdir()])  # noqa: F405
