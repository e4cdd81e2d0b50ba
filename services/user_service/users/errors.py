"""Error codes user_service answers with (beside the chassis' shared `ErrorCode`)."""

from enum import StrEnum

from comptoir import ApplicationError


class UserErrorCode(StrEnum):
    EMAIL_TAKEN = "email_taken"
    WEAK_PASSWORD = "weak_password"  # noqa: S105 - an error code, not a secret
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"  # noqa: S105 - an error code, not a secret
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105 - an error code, not a secret
    INVALID_CLIENT = "invalid_client"
    USER_NOT_FOUND = "user_not_found"


class AuthenticationError(ApplicationError):
    """Credentials or a token that do not open a session: 401, whatever the reason."""

    status_code = 401
