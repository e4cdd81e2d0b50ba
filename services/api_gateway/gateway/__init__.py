"""Comptoir's API gateway: the single public entry point in front of the services."""
