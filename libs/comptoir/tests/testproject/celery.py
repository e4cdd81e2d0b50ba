from comptoir import create_celery_app

app = create_celery_app("comptoir_chassis", "testproject.settings")
