from django.contrib import admin
from django.urls import include, path
from library.views import home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("jobs/", include("async_queue.urls")),
    path("sample/", include("library.crud")),
]
