"""ASGI entry point of the sample project (the repository root must be importable).

For example ``uvicorn sample.asgi:application`` from ``test-projects/sample``: the
dashboard's polled fragments then run as async views.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample.settings")

application = get_asgi_application()
