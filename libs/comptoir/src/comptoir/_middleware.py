"""Request id: taken from `X-Request-ID` when the caller (the gateway) sent a sane
one, generated otherwise; put in the logging context and echoed back.

The request's ids (request, trace, span, user) are also left in the WSGI
environ (`request.META`), where gunicorn's access line reads them after the
request's context is gone (`comptoir.gunicorn`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ._logging import _current_trace_ids, request_id_var, user_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEADER = "X-Request-ID"


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        meta = request.META
        meta["comptoir.request_id"] = request_id
        meta["comptoir.trace_id"], meta["comptoir.span_id"] = _current_trace_ids()
        try:
            response = self.get_response(request)
        finally:
            meta["comptoir.user_id"] = user_id_var.get()
            user_id_var.reset(user_token)
            request_id_var.reset(token)
        response[HEADER] = request_id
        return response
