"""Optional parts of the queue: the django.tasks backend, the tracker."""
