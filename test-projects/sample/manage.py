#!/usr/bin/env python
"""The sample project's manage.py; runs from a checkout without installing async_queue."""

import os
import sys
from pathlib import Path

# The repository root, so that ``async_queue`` (and later ``powercrud``) import from the checkout.
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sample.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
