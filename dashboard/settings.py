"""Django settings for Berth.

Everything is configured by environment variables with working defaults (DESIGN.md decision 11).
One BERTH_ROOT plus one BERTH_RUN is one whole engine: the database lives under BERTH_ROOT unless
DATABASE_URL says otherwise, so two engines with different roots never see each other's records.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent

BERTH_ROOT = Path(os.environ.get("BERTH_ROOT", "/var/lib/berth"))
BERTH_RUN = Path(os.environ.get("BERTH_RUN", "/run/berth"))
BERTH_RUNTIME = os.environ.get("BERTH_RUNTIME", "runc")
BERTH_CONMON = os.environ.get("BERTH_CONMON", "conmon")
# Names the host-wide network objects of this engine: its nft table, default bridge (TAG0) and the
# prefix of its user bridges and veths. Tests give each engine its own.
BERTH_NET_TAG = os.environ.get("BERTH_NET_TAG", "berth")
BERTH_BIND_ALLOW = [p for p in os.environ.get("BERTH_BIND_ALLOW", "").split(":") if p]
# Largest tmpfs (bytes) a container may mount; unset: half of the host's memory, the kernel's default.
BERTH_TMPFS_MAX_SIZE = int(os.environ.get("BERTH_TMPFS_MAX_SIZE") or 0) or None
# Free space (bytes) every writer leaves under BERTH_ROOT; unset: max(1 GiB, 5 % of the file system).
BERTH_DISK_RESERVE = int(os.environ["BERTH_DISK_RESERVE"]) if os.environ.get("BERTH_DISK_RESERVE") else None
# Days the audit log keeps events; older ones are pruned hourly by the server (0: keep for ever).
BERTH_EVENTS_RETENTION_DAYS = int(os.environ.get("BERTH_EVENTS_RETENTION_DAYS") or 90)


def _secret_key() -> str:
    """Read the key kept under BERTH_ROOT, creating it on first run (mode 0600, written atomically)."""
    if os.environ.get("BERTH_SECRET_KEY"):
        return os.environ["BERTH_SECRET_KEY"]
    path = BERTH_ROOT / "secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    BERTH_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    tmp = path.with_name(f".secret-key.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # first writer wins when two processes start at once
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("BERTH_DEBUG") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("BERTH_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("BERTH_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "engine",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dashboard.security.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.livecursor.LiveCursorMiddleware",  # the newest event id, before the view reads (live.js)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard.errors.EngineErrorMiddleware",
]

ROOT_URLCONF = "dashboard.urls"

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

WSGI_APPLICATION = None
ASGI_APPLICATION = "dashboard.asgi.application"


def _database() -> dict:
    url = os.environ.get("DATABASE_URL")
    sqlite_options = {
        # Web server, CLI processes and conmon exit commands write at once (DESIGN.md decision 10).
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BERTH_ROOT / "berth.sqlite3",
            "OPTIONS": sqlite_options,
        }
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parsed.path),
            "OPTIONS": sqlite_options,
        }
    if parsed.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
        }
    raise ValueError(f"DATABASE_URL: unsupported scheme {parsed.scheme!r} (use sqlite:// or postgres://)")


DATABASES = {"default": _database()}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Tests use a file, not SQLite's in-memory default: conmon's exit command (`manage.py berth
    # container-exited`) runs in another process and must see the rows the test process wrote.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("BERTH_TEST_DB") or f"/tmp/berth-test-{os.getpid()}.sqlite3"
    }

if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BERTH_ROOT / "static"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Web security (SECURITY.md, web checklist 6 and 11).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = 8 * 3600
SESSION_COOKIE_SECURE = os.environ.get("BERTH_HTTPS") == "1"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0

# Login rate limit (dashboard/ratelimit.py): per username+IP, and per IP across usernames.
BERTH_LOGIN_MAX_FAILURES = 10
BERTH_LOGIN_MAX_FAILURES_PER_IP = 50
BERTH_LOGIN_WINDOW = 15 * 60
BERTH_LOGIN_LOCKOUT = 15 * 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # journald gets a priority prefix and no second timestamp (dashboard/logconfig.py)
    "formatters": {"berth": {"()": "dashboard.logconfig.Formatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "berth"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BERTH_LOG_LEVEL", "WARNING")},
}

# Uploads (image import/load). Archives stream to files under $BERTH_ROOT/tmp through
# dashboard.forms_images.EngineUploadHandler, never into memory; the limits below cover the other
# form fields only. BERTH_UPLOAD_MAX_SIZE caps one uploaded archive (bytes, default 20 GiB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
BERTH_UPLOAD_MAX_SIZE = int(os.environ.get("BERTH_UPLOAD_MAX_SIZE", str(20 * 1024**3)))
# One upload through a container's Files tab (all its files together; engine.services.filebrowser).
BERTH_FILES_UPLOAD_MAX_SIZE = int(os.environ.get("BERTH_FILES_UPLOAD_MAX_SIZE", str(256 * 1024**2)))
