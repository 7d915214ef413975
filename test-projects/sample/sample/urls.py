from django.contrib import admin
from django.urls import include, path
from library import views

urlpatterns = [
    path("", views.home, name="home"),
    path("demo/slow-job/", views.start_slow_job, name="start-slow-job"),
    path("demo/flaky-job/", views.start_flaky_job, name="start-flaky-job"),
    path("demo/bulk-edit/", views.start_bulk_edit, name="start-bulk-edit"),
    path("admin/", admin.site.urls),
    path("jobs/", include("async_queue.urls")),
    path("sample/", include("library.crud")),
]
