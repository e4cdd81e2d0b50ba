"""A test app whose handler records what it handled, for the event backbone's tests."""
