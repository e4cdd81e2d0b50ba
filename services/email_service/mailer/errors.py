"""email_service's error codes (beside the chassis' shared `ErrorCode`)."""

from enum import StrEnum


class MailerErrorCode(StrEnum):
    UNKNOWN_TEMPLATE = "unknown_template"
    MISSING_CONTEXT = "missing_context"
