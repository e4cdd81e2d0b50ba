"""gunicorn's settings for the storefront (`-c config/gunicorn.py`): its own lines and
its access lines as ECS JSON on stdout."""

import os

from config.logs import logging_config

logconfig_dict = logging_config(os.environ.get("LOG_LEVEL", "INFO"), gunicorn=True)
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
