"""The root URLconf of powercrud's tests (``pytest.mark.urls``): ``tests.urls`` + the CRUD routes.

Once ``tests/urls.py`` includes ``tests.crudapp.urls`` under ``crud/``, the marks and this
module can go.
"""

from django.urls import include, path

from tests.urls import urlpatterns as base

urlpatterns = [*base, path("crud/", include("tests.crudapp.urls"))]
