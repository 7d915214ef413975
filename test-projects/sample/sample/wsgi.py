"""WSGI entry point of the sample project (the repository root must be importable)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample.settings")

application = get_wsgi_application()
