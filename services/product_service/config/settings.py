"""product_service settings: the chassis's base settings plus what this service owns."""

from comptoir.settings import *

INSTALLED_APPS += ["catalog"]

# Catalogue pages: `?page_size=` may ask for up to this many products at once.
CATALOG_MAX_PAGE_SIZE = 100
