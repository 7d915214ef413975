"""The dashboard's URLs: ``path("jobs/", include("async_queue.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import pause_views, schedule_views, views

app_name = "async_queue"

urlpatterns = [
    path("", views.JobListView.as_view(), name="job-list"),
    path("<int:pk>/", views.JobDetailView.as_view(), name="job-detail"),
    path("<int:pk>/row/", views.JobRowView.as_view(), name="job-row"),
    path("<int:pk>/live/", views.JobLiveView.as_view(), name="job-live"),
    path("<int:pk>/retry/", views.RetryJobView.as_view(), name="job-retry"),
    path("<int:pk>/cancel/", views.CancelJobView.as_view(), name="job-cancel"),
    path("<int:pk>/delete/", views.DeleteJobView.as_view(), name="job-delete"),
    path("metrics/", views.MetricsView.as_view(), name="metrics"),
    path("schedules/", schedule_views.ScheduleListView.as_view(), name="schedule-list"),
    path("schedules/new/", schedule_views.ScheduleFormView.as_view(), name="schedule-create"),
    path("schedules/<int:pk>/", schedule_views.ScheduleFormView.as_view(), name="schedule-edit"),
    path(
        "schedules/<int:pk>/enable/",
        schedule_views.EnableScheduleView.as_view(),
        name="schedule-enable",
    ),
    path(
        "schedules/<int:pk>/disable/",
        schedule_views.DisableScheduleView.as_view(),
        name="schedule-disable",
    ),
    path("schedules/<int:pk>/run/", schedule_views.RunScheduleView.as_view(), name="schedule-run"),
    path("pauses/", pause_views.PauseView.as_view(), name="pause"),
    path("pauses/<int:pk>/resume/", pause_views.ResumeView.as_view(), name="resume"),
]
