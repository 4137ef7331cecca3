"""Settings for one Scribe site. Every value can be set from the environment (see deploy/scribe.env.example)."""
import os
import secrets
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from .env import envbool, envint, envlist, envsecret, envstr

# Air-gapped by construction: no library may reach a model hub or send telemetry, whatever the
# operator's shell exports. Set before any ML library is imported by any process that loads settings.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
os.environ["DO_NOT_TRACK"] = "1"

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("SCRIBE_VAR_DIR", str(BASE_DIR / "var")))
MEDIA_ROOT = Path(envstr("SCRIBE_MEDIA_ROOT", str(VAR_DIR / "media")))
STATIC_ROOT = Path(envstr("SCRIBE_STATIC_ROOT", str(VAR_DIR / "static")))

if os.environ.get("SCRIBE_EGRESS_GUARD_LOG"):
    # Test runs start servers and workers in child processes; they report any outbound connection here.
    from .egress import install_guard

    install_guard(report_path=os.environ["SCRIBE_EGRESS_GUARD_LOG"])


def _secret_key() -> str:
    if os.environ.get("SCRIBE_SECRET_KEY") or os.environ.get("SCRIBE_SECRET_KEY_FILE"):
        return envsecret("SCRIBE_SECRET_KEY")
    # Single-box default: a key generated once and kept beside the data, readable by the service only.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("SCRIBE_DEBUG", False)
ALLOWED_HOSTS = envlist("SCRIBE_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = envlist("SCRIBE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "axes",
    "meetings",
    "transcription",
    "administration",
    "voices",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Login is required for every page unless a view opts out with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Pages that show meeting content must not stay in a browser's or proxy's cache.
    "config.middleware.NoStoreMiddleware",
    # Last, as django-axes requires: answers a locked-out sign-in with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": envstr("SCRIBE_DB_NAME", "scribe"),
        "USER": envstr("SCRIBE_DB_USER", "scribe"),
        "PASSWORD": envsecret("SCRIBE_DB_PASSWORD", ""),
        "HOST": envstr("SCRIBE_DB_HOST", "127.0.0.1"),
        "PORT": envint("SCRIBE_DB_PORT", 5432, minimum=1, maximum=65535),
        "CONN_MAX_AGE": envint("SCRIBE_DB_CONN_MAX_AGE", 0, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("SCRIBE_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_PREFIX = envstr("SCRIBE_CHANNEL_PREFIX", "scribe")
CHANNEL_LAYERS = {
    # Point-to-point work queues: caption workers take streams from a shared channel, one worker each.
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis's blocking pop:
        # every socket idle for 5 s would die with "Timeout reading". Reads must outlast the pop.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": CHANNEL_PREFIX},
    },
    # The live sockets: a caption goes to a meeting's followers as one Redis publish per server process,
    # which hands it to its own sockets in memory (with the core layer it was one Redis list per follower).
    "live": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"{CHANNEL_PREFIX}-live"},
    },
}

# Which of the layers above the live sockets use; `default` only to compare (benchmarks/fanout_bench.py).
LIVE_CHANNEL_LAYER = envstr("SCRIBE_LIVE_CHANNEL_LAYER", "live")

CELERY_BROKER_URL = envstr("SCRIBE_CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
# Results are kept only where a chord needs them (reprocessing's transcription and speaker separation,
# which run side by side before the store stage): the chord counts them here.
CELERY_RESULT_BACKEND = envstr("SCRIBE_CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Two queues: "gpu" for work that needs the speech engine (one worker per GPU, on any number of GPU hosts),
# "cpu" for the rest. deploy/systemd starts one worker per queue; a single box can run one worker on both.
GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
CELERY_TASK_DEFAULT_QUEUE = CPU_QUEUE
# Model work goes to GPU hosts, file work to any host; every host shares PostgreSQL and the media store.
CELERY_TASK_ROUTES = {
    "transcription.tasks.reprocess_decode": {"queue": CPU_QUEUE},
    "transcription.tasks.reprocess_transcribe": {"queue": GPU_QUEUE},
    "transcription.tasks.reprocess_diarize": {"queue": GPU_QUEUE},
    "transcription.tasks.reprocess_store": {"queue": CPU_QUEUE},
    "voices.tasks.voiceprint_build": {"queue": GPU_QUEUE},  # runs the speaker-separation embedding model
    "transcription.tasks.speakers_store": {"queue": CPU_QUEUE},
}
CELERY_TASK_ALWAYS_EAGER = envbool("SCRIBE_CELERY_EAGER", False)
# With acks_late, a task whose worker dies mid-way (a GPU host powered off) goes back to the queue once it
# has been unacknowledged this long; it must exceed the longest task, or a slow task would run twice.
_visibility_timeout = envint("SCRIBE_CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout,
    # Every worker looks for such overdue tasks every 10 s (kombu's default is every 100 s).
    "unacked_restore_interval": min(10, _visibility_timeout),
    "unacked_restore_throttle": 1,
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (django-axes): an account, or a client address, is locked out after this many
# failures in a row, for AXES_COOLOFF_MINUTES or until an administrator lifts it (Django admin,
# "Access attempts", or `manage.py axes_reset_username NAME`). Both the site's and the admin's sign-in.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("SCRIBE_AXES_FAILURE_LIMIT", 5, minimum=1)
_axes_cooloff = envint("SCRIBE_AXES_COOLOFF_MINUTES", 30, minimum=0)  # 0: until an administrator lifts it
AXES_COOLOFF_TIME = timedelta(minutes=_axes_cooloff) if _axes_cooloff else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: one account from anywhere, or one address
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "meetings:list"
LOGOUT_REDIRECT_URL = "login"

# TLS is terminated by nginx in a production install; the single-box development server is plain HTTP
# on loopback, so cookies are only marked secure when the site says it is behind HTTPS.
HTTPS = envbool("SCRIBE_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and envbool("SCRIBE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = envint("SCRIBE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
# An internal site's host name must not go on the browsers' public HSTS preload list.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_AGE = envint("SCRIBE_SESSION_HOURS", 10, minimum=1) * 3600
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("SCRIBE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders too, so a checkout works before collectstatic has run.
WHITENOISE_USE_FINDERS = True

# Behind nginx: after its permission check and audit, Django answers a recording download with an
# X-Accel-Redirect to this internal location (which maps to MEDIA_ROOT), and nginx sends the bytes.
# Empty: Django streams the file itself (development, tests).
MEDIA_ACCEL_REDIRECT = envstr("SCRIBE_MEDIA_ACCEL_REDIRECT", "")
if MEDIA_ACCEL_REDIRECT and not (MEDIA_ACCEL_REDIRECT.startswith("/") and MEDIA_ACCEL_REDIRECT.endswith("/")):
    raise ImproperlyConfigured(f"SCRIBE_MEDIA_ACCEL_REDIRECT must be a path like /protected-media/, not {MEDIA_ACCEL_REDIRECT!r}")
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# Speech engine and reprocessing (filled in by the transcription app).
ASR_MODEL_DIR = envstr("SCRIBE_ASR_MODEL_DIR", "")
ASR_DEFAULT_DELAY_MS = envint("SCRIBE_ASR_DEFAULT_DELAY_MS", 480, minimum=80, maximum=2400)
ASR_REPROCESS_DELAY_MS = envint("SCRIBE_ASR_REPROCESS_DELAY_MS", 960, minimum=80, maximum=2400)
DIARIZATION_DIR = envstr("SCRIBE_DIARIZATION_DIR", "")
ASR_DEVICE = envstr("SCRIBE_ASR_DEVICE", "")  # "cuda", "cuda:1" or "cpu"; empty: the first GPU if any
# Upper bound on live streams per engine; free GPU memory and the step-time budget usually bind first.
ASR_MAX_STREAMS = envint("SCRIBE_ASR_MAX_STREAMS", 256, minimum=1)
# A live stream is refused when the engine's step would be predicted over this many ms (lag p95 is about
# twice the step); 0: the engine's default, 60 ms (75 % of a step's 80 ms) on a GPU, no limit on a CPU.
ASR_STEP_BUDGET_MS = envint("SCRIBE_ASR_STEP_BUDGET_MS", 0, minimum=0, maximum=80)
# Ring caches (EngineOptions.kv_cache): empty for the engine's choice (the decoder's rings in 8 bits on GPUs
# with fp8 for live engines, the model's dtype otherwise), "bfloat16", "float8" (decoder's rings in 8 bits,
# the same agreement with the reference decoder) or "float8-all" (the encoder's too: more streams, a few
# points less agreement; benchmarks/results/capacity-2026-11-30-h200.json).
ASR_KV_CACHE = envstr("SCRIBE_ASR_KV_CACHE", "")
if ASR_KV_CACHE not in ("", "bfloat16", "float8", "float8-all"):
    raise ImproperlyConfigured(f"SCRIBE_ASR_KV_CACHE must be empty, bfloat16, float8 or float8-all, not {ASR_KV_CACHE!r}")
ASR_OFFLINE_SEGMENT_S = envint("SCRIBE_ASR_OFFLINE_SEGMENT_S", 60, minimum=4)
# Offline segments decoded at once (prefill plus decode), also capped by free GPU memory.
ASR_OFFLINE_BATCH = envint("SCRIBE_ASR_OFFLINE_BATCH", 256, minimum=1)
# Decoder ring in steps for GPU workers that only reprocess (no live captions); 0: the model's own.
# 1024 fits 60-70 s segments and runs about 3.5x as many at once (benchmarks/results/reprocess-*).
ASR_TEXT_WINDOW = envint("SCRIBE_ASR_TEXT_WINDOW", 0, minimum=0)
# Before an engine loads a registered model it re-reads every file and compares it with the checksums
# taken at import (about 10 s for Voxtral Mini 4B from a fast disk); off only where start-up time matters more.
ASR_VERIFY_ON_LOAD = envbool("SCRIBE_ASR_VERIFY_ON_LOAD", True)

# Administration: periodic work run by Celery beat (`celery -A config beat`, or a worker started with -B).
STATUS_SAMPLE_EVERY_S = envint("SCRIBE_STATUS_SAMPLE_EVERY_S", 60, minimum=10)
STATUS_SAMPLE_KEEP_DAYS = envint("SCRIBE_STATUS_SAMPLE_KEEP_DAYS", 7, minimum=1)
RETENTION_HOUR = envint("SCRIBE_RETENTION_HOUR", 3, minimum=0, maximum=23)  # local time of the nightly deletion
CELERY_BEAT_SCHEDULE = {
    "status-sample": {"task": "administration.tasks.record_status_sample", "schedule": float(STATUS_SAMPLE_EVERY_S)},
    "retention": {"task": "administration.tasks.apply_retention", "schedule": crontab(hour=RETENTION_HOUR, minute=15)},
    "abandoned-live-meetings": {"task": "transcription.tasks.end_abandoned_live_meetings", "schedule": 60.0},
    "abandoned-uploads": {"task": "transcription.tasks.remove_abandoned_uploads", "schedule": 3600.0},
}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")  # beat's last-run times, beside the data

# Model weights may only be imported from folders under these roots (console and `manage.py import_model`).
MODEL_IMPORT_ROOTS = envlist("SCRIBE_MODEL_ROOTS", ["/srv/models", str(VAR_DIR / "models")])

# Speaker separation reads this much audio at a time, so memory stays bounded on multi-hour recordings;
# speakers are matched across chunks by their voice embeddings.
DIARIZATION_CHUNK_S = envint("SCRIBE_DIARIZATION_CHUNK_S", 1800, minimum=30)
DIARIZATION_DEVICE = envstr("SCRIBE_DIARIZATION_DEVICE", "")  # empty: the first GPU if any
# Windows per GPU call for speaker separation's models; 0 keeps the pipeline's config.yaml (32).
DIARIZATION_BATCH_SIZE = envint("SCRIBE_DIARIZATION_BATCH_SIZE", 0, minimum=0)
# Chunks separated at once, each by its own copy of the pipeline; more keeps the GPU busier, for more GPU memory.
DIARIZATION_PARALLEL_CHUNKS = envint("SCRIBE_DIARIZATION_PARALLEL_CHUNKS", 1, minimum=1)
# Known voices: a voice is enrolled only from at least this much of one speaker's speech without overlap.
VOICEPRINT_MIN_SPEECH_S = envint("SCRIBE_VOICEPRINT_MIN_SPEECH_S", 20, minimum=3)

# Transcript segments (live and reprocessed) end at a sentence end, a speaker change, a pause this long,
# or when they would pass this length (meetings/segments.py).
SEGMENT_PAUSE_MS = envint("SCRIBE_SEGMENT_PAUSE_MS", 800, minimum=80)
SEGMENT_MAX_MS = envint("SCRIBE_SEGMENT_MAX_MS", 15_000, minimum=1000)
SEGMENT_MAX_CHARS = envint("SCRIBE_SEGMENT_MAX_CHARS", 250, minimum=20)

# Uploaded recordings stream to a file beside the media store (never into memory) and are refused past this
# size; nginx's client_max_body_size is rendered from the same value.
RECORDING_UPLOAD_MAX_MB = envint("SCRIBE_RECORDING_UPLOAD_MAX_MB", 8192, minimum=1)
# Every request body is bounded before it is stored (config/request_limits.py): recordings arrive in pieces
# of at most this size on the upload routes; any other request may carry at most REQUEST_BODY_MAX_BYTES.
UPLOAD_PIECE_MAX_BYTES = envint("SCRIBE_UPLOAD_PIECE_MB", 8, minimum=1, maximum=256) * 1024 * 1024
REQUEST_BODY_MAX_BYTES = envint("SCRIBE_REQUEST_BODY_MAX_KB", 1024, minimum=64) * 1024
# Resumable uploads left unfinished this long are removed by the beat task (transcription.tasks).
UPLOAD_ABANDONED_HOURS = envint("SCRIBE_UPLOAD_ABANDONED_HOURS", 24, minimum=1)
# Limits before work: a recording longer than this is refused from its container's header and stopped
# while decoding; each person may have this many recordings waiting or being transcribed at once.
RECORDING_MAX_HOURS = envint("SCRIBE_RECORDING_MAX_HOURS", 12, minimum=1)
REPROCESS_MAX_QUEUED_PER_USER = envint("SCRIBE_REPROCESS_MAX_QUEUED_PER_USER", 3, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("SCRIBE_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
