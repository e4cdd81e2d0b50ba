import comptoir.events


def test_public_api_is_exactly_the_documented_names() -> None:
    # Services code against these names: adding or removing one is a deliberate change here.
    assert sorted(comptoir.events.__all__) == [
        "ConsumerStats",
        "ContractError",
        "DEFAULT_PURPOSE",
        "DeadLetter",
        "Delivery",
        "Envelope",
        "EnvelopeError",
        "EventConsumer",
        "EventSettings",
        "Handler",
        "InboxMessage",
        "NotInTransactionError",
        "OutboxMessage",
        "OutboxRelay",
        "RelayStats",
        "ReplayedDeadLetter",
        "contracts_dir",
        "current_delivery",
        "current_version",
        "declare_topics",
        "dlq_topic",
        "event_handler",
        "event_settings",
        "get_dead_letter",
        "handled_topics",
        "handlers_for",
        "list_dead_letters",
        "ops_urlpatterns",
        "publish_event",
        "purge_dead_letters",
        "replay_dead_letter",
        "retry_topic",
        "topic_for",
        "validate_payload",
    ]
    for name in comptoir.events.__all__:
        assert getattr(comptoir.events, name) is not None
    assert "publish_event" in dir(comptoir.events)
