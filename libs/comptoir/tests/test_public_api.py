import comptoir


def test_public_api_is_exactly_the_documented_names() -> None:
    # Adding to or removing from the chassis API must be a deliberate change here.
    assert sorted(comptoir.__all__) == [
        "ApplicationError",
        "AuditPageQuerySerializer",
        "AuditWindowQuerySerializer",
        "AutoSchema",
        "BatchRequestSerializer",
        "BatchResponseSerializer",
        "BatchedCalls",
        "ConflictError",
        "ErrorBody",
        "ErrorCode",
        "ErrorResponseSerializer",
        "InvalidToken",
        "IsEndUser",
        "IsServiceClient",
        "IsStaff",
        "JWTAuthentication",
        "MAX_BATCH_ITEMS",
        "ModelSerializer",
        "NotFoundError",
        "Principal",
        "RequestContextFilter",
        "RequestIdMiddleware",
        "Serializer",
        "ServiceClient",
        "ServiceScopeRequired",
        "ServiceTokenProvider",
        "TopicSpec",
        "UpstreamError",
        "UpstreamResponse",
        "audit_next_after",
        "audit_page_query",
        "batch_response",
        "create_celery_app",
        "decode_token",
        "ensure_topics",
        "error_body",
        "event_topic_spec",
        "exception_handler",
        "health_urlpatterns",
        "infrastructure_urls",
        "kafka_client_config",
        "logging_config",
        "parse_error_body",
        "request_id_var",
        "requires_scope",
        "response_json",
        "run_checks",
        "service_client",
        "service_urls",
    ]
    for name in comptoir.__all__:
        assert getattr(comptoir, name) is not None


def test_metrics_api_is_exactly_the_documented_names() -> None:
    from comptoir import metrics

    assert sorted(metrics.__all__) == [
        "reconciliation_reported",
        "register_scrape_collector",
        "render",
        "serve_metrics",
    ]
    for name in metrics.__all__:
        assert callable(getattr(metrics, name))
