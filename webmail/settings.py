"""Settings for the whole system: web, mail, worker and beat roles read the same file.

Every value comes from the environment with a documented default that makes a local run work
with no configuration (README.md has the table). Unset ``DATABASE_URL`` / ``REDIS_URL`` point at
the embedded PostgreSQL and Redis that ``make run`` and ``make test`` start under ``./var/``.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webmail.env import env_bool, env_float, env_int, env_list, env_size, env_str, parse_transports

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

EMBEDDED_PG_PORT = env_int("EMBEDDED_PG_PORT", 55432)
EMBEDDED_REDIS_PORT = env_int("EMBEDDED_REDIS_PORT", 56379)

SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-change-me-" + "0" * 32)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "django_htmx",
    "mailcore",
    "webmail",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "webmail.urls"
ASGI_APPLICATION = "webmail.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

_database_url = env_str("DATABASE_URL", f"postgres://postgres@127.0.0.1:{EMBEDDED_PG_PORT}/mailsystem")
if not _database_url.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(f"DATABASE_URL must be a PostgreSQL URL, not {_database_url!r}")
DATABASES = {
    "default": dj_database_url.parse(
        _database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0")

AUTH_USER_MODEL = "mailcore.Account"
AUTHENTICATION_BACKENDS = ["mailcore.auth.AddressBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "SAMEORIGIN"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at start-up when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Hands due outbound queue rows to workers; the schedule itself lives in PostgreSQL.
    "relay-dispatch": {"task": "mailcore.relay.tasks.queue_dispatch", "schedule": 15.0},
    "relay-purge": {"task": "mailcore.relay.tasks.queue_purge", "schedule": 3600.0},
    # Fills the full-text vectors of newly stored messages (mailcore/store/index.py).
    "search-index": {"task": "mailcore.tasks.search_index", "schedule": env_float("SEARCH_INDEX_INTERVAL", 2.0)},
}

# --- Mail ---------------------------------------------------------------------------------
MAIL_HOSTNAME = env_str("MAIL_HOSTNAME", "localhost")
MAIL_BIND = env_str("MAIL_BIND", "127.0.0.1")
HTTP_PORT = env_int("HTTP_PORT", 8000, minimum=1, maximum=65535)
SMTP_PORT = env_int("SMTP_PORT", 2525, minimum=0, maximum=65535)
SUBMISSION_PORT = env_int("SUBMISSION_PORT", 2587, minimum=0, maximum=65535)
SMTPS_PORT = env_int("SMTPS_PORT", 2465, minimum=0, maximum=65535)
IMAP_PORT = env_int("IMAP_PORT", 2143, minimum=0, maximum=65535)
IMAPS_PORT = env_int("IMAPS_PORT", 2993, minimum=0, maximum=65535)
POP3_PORT = env_int("POP3_PORT", 2110, minimum=0, maximum=65535)
POP3S_PORT = env_int("POP3S_PORT", 2995, minimum=0, maximum=65535)
# Worker processes of `runmail` sharing the mail ports (SO_REUSEPORT); 1 runs everything in one.
MAIL_PROCESSES = env_int("MAIL_PROCESSES", 1, minimum=1, maximum=256)
# Listeners that expect a PROXY protocol (v1 or v2) header first, by role name:
# smtp, submission, smtps, imap, imaps, pop3, pop3s.
PROXY_PROTOCOL_LISTENERS = env_list("PROXY_PROTOCOL_LISTENERS", [])

TLS_CERT_FILE = env_str("TLS_CERT_FILE", "")
TLS_KEY_FILE = env_str("TLS_KEY_FILE", "")
# Plaintext logins (IMAP LOGIN, POP3 USER/PASS) before TLS, allowed only from loopback clients.
ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK = env_bool("ALLOW_PLAINTEXT_AUTH_ON_LOOPBACK", False)

MAX_MESSAGE_SIZE = env_size("MAX_MESSAGE_SIZE", 25 * 1024 * 1024)
# The largest HTTP request body the web role reads (uploads travel raw, not base64, so a full
# message fits with room for the form's text fields); larger ones get 413 before Django reads them.
MAX_REQUEST_BODY = env_size("MAX_REQUEST_BODY", MAX_MESSAGE_SIZE + 2 * 1024 * 1024)
DEFAULT_QUOTA = env_size("DEFAULT_QUOTA", 1024**3)
MAX_RECIPIENTS = env_int("MAX_RECIPIENTS", 100, minimum=1)
# Messages one SMTP connection may carry before it gets 421 (then the client reconnects).
SMTP_MAX_MESSAGES_PER_CONNECTION = env_int("SMTP_MAX_MESSAGES_PER_CONNECTION", 100, minimum=1)
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 5, minimum=1)
AUTH_FAILURE_WINDOW = env_int("AUTH_FAILURE_WINDOW", 300, minimum=1)
POP3_LEAVE_ON_SERVER = env_bool("POP3_LEAVE_ON_SERVER", False)

# DMARC (RFC 7489) on the MX port: p=reject refuses at end of DATA, p=quarantine files in Junk.
# Off: results are only recorded in Authentication-Results.
SMTP_DMARC_ENFORCE = env_bool("SMTP_DMARC_ENFORCE", True)

DNS_NAMESERVERS = env_list("DNS_NAMESERVERS", [])
DNS_PORT = env_int("DNS_PORT", 53, minimum=1, maximum=65535)
try:
    RELAY_TRANSPORTS = parse_transports(env_str("RELAY_TRANSPORTS", ""))
except ValueError as exc:
    raise ImproperlyConfigured(f"RELAY_TRANSPORTS: {exc}") from None
# Port of MX hosts found in DNS (25; tests point it at a server on 127.0.0.1).
RELAY_MX_PORT = env_int("RELAY_MX_PORT", 25, minimum=1, maximum=65535)
RELAY_SMARTHOST = env_str("RELAY_SMARTHOST", "")
RELAY_SMARTHOST_USER = env_str("RELAY_SMARTHOST_USER", "")
RELAY_SMARTHOST_PASSWORD = env_str("RELAY_SMARTHOST_PASSWORD", "")
RELAY_RETRY_FIRST = env_int("RELAY_RETRY_FIRST", 300, minimum=1)
RELAY_RETRY_MAX = env_int("RELAY_RETRY_MAX", 4 * 3600, minimum=1)
RELAY_RETRY_FACTOR = env_float("RELAY_RETRY_FACTOR", 2.0)
RELAY_GIVE_UP_AFTER = env_int("RELAY_GIVE_UP_AFTER", 5 * 24 * 3600, minimum=1)
RELAY_DELAY_WARNING_AFTER = env_int("RELAY_DELAY_WARNING_AFTER", 4 * 3600, minimum=0)
RELAY_LEASE_SECONDS = env_int("RELAY_LEASE_SECONDS", 300, minimum=5)
RELAY_CONCURRENCY_PER_DESTINATION = env_int("RELAY_CONCURRENCY_PER_DESTINATION", 2, minimum=1)
# A recipient whose delivery was interrupted this many times (its worker died each time) fails: 554 5.3.0.
RELAY_MAX_INTERRUPTIONS = env_int("RELAY_MAX_INTERRUPTIONS", 5, minimum=1)

TRASH_RETENTION_DAYS = env_int("TRASH_RETENTION_DAYS", 30, minimum=0)

# How long the per-process event publisher waits after an event for others to send with it in
# one Redis round trip (mailcore.events); 0 sends each as soon as it is queued. At most 0.5 s:
# the browser and IMAP IDLE are promised changes within a second.
EVENTS_GATHER_SECONDS = env_float("EVENTS_GATHER_SECONDS", 0.005, minimum=0.0, maximum=0.5)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # aiosmtpd logs every command line of every connection at INFO; our SMTP handler logs
        # one line per accepted message instead (SMTP_PROTOCOL_LOG_LEVEL=INFO brings them back).
        "mail.log": {"level": env_str("SMTP_PROTOCOL_LOG_LEVEL", "WARNING")},
    },
}
