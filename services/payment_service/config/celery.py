from comptoir import create_celery_app

app = create_celery_app("payment_service")
