from comptoir.urls import handler400, handler403, handler404, handler500, service_urlpatterns
from payments import urls as app_urls

urlpatterns = service_urlpatterns(app_urls)

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
