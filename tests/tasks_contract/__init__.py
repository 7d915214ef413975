"""The django.tasks backend's contract: the tasks its tests enqueue.

An installed app (tests/settings.py, Django 6.0+): a worker runs only tasks that
live in one.
"""
