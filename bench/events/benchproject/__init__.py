"""A minimal service for the event backbone benchmark (its own database, bench_events)."""

# The service these settings are for: comptoir.settings (the base settings) reads it.
SERVICE_NAME = "bench_events"
