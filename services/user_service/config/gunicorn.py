"""gunicorn's settings (`gunicorn -c config/gunicorn.py`): its lines in ECS JSON, like the rest."""

from comptoir.gunicorn import gunicorn_settings

globals().update(gunicorn_settings("user_service"))
