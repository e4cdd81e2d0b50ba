from comptoir import create_celery_app

app = create_celery_app("email_service")
