from comptoir import create_celery_app

app = create_celery_app("order_service")
