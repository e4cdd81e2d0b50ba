from comptoir import create_celery_app

app = create_celery_app("product_service")
