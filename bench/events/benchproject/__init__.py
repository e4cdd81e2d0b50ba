"""A minimal service for the event backbone benchmark (its own database, bench_events)."""
