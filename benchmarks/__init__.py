"""Benchmarks of async_queue and powercrud, kept out of the installed packages.

Each module is a command run from the repository's root, for example::

    PYTHONPATH=. python -m benchmarks.queue --scale 0.1
"""
