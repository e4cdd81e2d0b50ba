"""user_service settings: the chassis's base settings plus what this service owns."""

from django.core.exceptions import ImproperlyConfigured

from comptoir.settings import *

INSTALLED_APPS += ["users"]

AUTH_USER_MODEL = "users.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Signing keys. Either PEM env vars (a secret store injects them) or a folder of
# `<kid>.pem` files; the folder defaults to a git-ignored one created on first use.
JWT_PRIVATE_KEYS_DIR = env.str("JWT_PRIVATE_KEYS_DIR", default=str(BASE_DIR / ".keys"))
JWT_SIGNING_KEY_PEM = env.str("JWT_SIGNING_KEY_PEM", default="")
JWT_SIGNING_KEY_ID = env.str("JWT_SIGNING_KEY_ID", default="")
JWT_PREVIOUS_KEY_PEM = env.str("JWT_PREVIOUS_KEY_PEM", default="")
JWT_PREVIOUS_KEY_ID = env.str("JWT_PREVIOUS_KEY_ID", default="")
# In production the signing key comes from a secret store: the PEM, or a key folder
# mounted from it. The folder inside the source tree is for development only.
if not DEBUG and not JWT_SIGNING_KEY_PEM and not env.str("JWT_PRIVATE_KEYS_DIR", default=""):
    raise ImproperlyConfigured(
        "refusing to start with DEBUG=False: JWT_SIGNING_KEY_PEM is not set (nor JWT_PRIVATE_KEYS_DIR, "
        "a key folder from a secret store); the development key folder services/user_service/.keys "
        "is not for production"
    )
# The active key plus the one before it: tokens signed just before a rotation stay valid.
JWT_PUBLISHED_KEYS = env.int("JWT_PUBLISHED_KEYS", default=2)

JWT_ACCESS_TOKEN_LIFETIME_S = env.int("JWT_ACCESS_TOKEN_LIFETIME_S", default=15 * 60)
JWT_REFRESH_TOKEN_LIFETIME_S = env.int("JWT_REFRESH_TOKEN_LIFETIME_S", default=14 * 24 * 3600)
JWT_SERVICE_TOKEN_LIFETIME_S = env.int("JWT_SERVICE_TOKEN_LIFETIME_S", default=5 * 60)
# Where revoked access tokens are listed for the gateway (users/revocation.py): the
# Redis the gateway reads (GATEWAY_REVOCATION_REDIS_URL there).
TOKEN_REVOCATION_REDIS_URL = env.str("TOKEN_REVOCATION_REDIS_URL", default=REDIS_URL)

# This service verifies its own tokens from its key store, not over HTTP.
COMPTOIR_JWKS_PROVIDER = "users.keys.jwks"

REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
    {
        "login": env.str("THROTTLE_LOGIN", default="10/minute"),
        "register": env.str("THROTTLE_REGISTER", default="10/minute"),
        "service_token": env.str("THROTTLE_SERVICE_TOKEN", default="60/minute"),
    }
)
# Behind the gateway the client address is the last X-Forwarded-For entry it appended.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("TRUSTED_PROXY_COUNT", default=1)
