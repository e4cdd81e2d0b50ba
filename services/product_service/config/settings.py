"""product_service settings: the chassis defaults plus what this service owns."""

from pathlib import Path

from comptoir import service_settings

BASE_DIR = Path(__file__).resolve().parent.parent

globals().update(service_settings("product_service", BASE_DIR))

INSTALLED_APPS += ["catalog"]  # type: ignore[name-defined]  # noqa: F821

# Catalogue pages: `?page_size=` may ask for up to this many products at once.
CATALOG_MAX_PAGE_SIZE = 100
