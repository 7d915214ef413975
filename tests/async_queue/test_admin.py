import pytest
from django.urls import reverse

from async_queue import Job, Status, schedule
from tests.testapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_changelist_with_filters_and_search_renders(superuser_client):
    schedule(tasks.echo)
    url = reverse("admin:async_queue_job_changelist")
    assert superuser_client.get(url).status_code == 200
    response = superuser_client.get(url, {"status__exact": "queued", "q": "echo"})
    assert response.status_code == 200
    assert b"tests.testapp.tasks.echo" in response.content
    assert superuser_client.get(reverse("admin:async_queue_joberror_changelist")).status_code == 200


def test_detail_is_read_only_and_shows_errors_inline(superuser_client):
    job = schedule(tasks.fail, ["kaboom"], max_attempts=1)
    job.execute()
    response = superuser_client.get(reverse("admin:async_queue_job_change", args=[job.pk]))
    assert response.status_code == 200
    assert b"kaboom" in response.content
    assert b"Traceback (most recent call last)" in response.content
    assert b'name="name"' not in response.content  # no editable inputs
    assert superuser_client.get(reverse("admin:async_queue_job_add")).status_code == 403


@pytest.mark.parametrize("model", ["job", "joberror"])
def test_read_only_pages_offer_no_save_buttons_and_refuse_a_post(superuser_client, model):
    job = schedule(tasks.fail, max_attempts=1)
    job.execute()
    pk = job.pk if model == "job" else job.errors.get().pk
    url = reverse(f"admin:async_queue_{model}_change", args=[pk])
    content = superuser_client.get(url).content.decode()
    for button in ('name="_save"', 'name="_continue"', 'name="_addanother"'):
        assert button not in content
    assert "Close" in content  # the page says how to leave instead
    assert superuser_client.post(url, {"_save": "Save"}).status_code == 403


def test_retry_and_cancel_actions(superuser_client):
    failed = schedule(tasks.fail, max_attempts=1)
    failed.execute()
    queued = schedule(tasks.echo)
    url = reverse("admin:async_queue_job_changelist")
    ids = [failed.pk, queued.pk]
    superuser_client.post(url, {"action": "retry_jobs", "_selected_action": ids})
    failed.refresh_from_db()
    assert failed.status == Status.QUEUED
    response = superuser_client.post(
        url, {"action": "cancel_jobs", "_selected_action": ids}, follow=True
    )
    assert b"Cancelled 2 job(s)." in response.content
    assert set(Job.objects.cancelled().values_list("pk", flat=True)) == set(ids)


def test_the_change_page_redacts_secrets_and_escapes_markup(superuser_client):
    job = schedule(
        tasks.echo,
        [{"token": "tok-1"}, "<b>x</b>"],
        {"password": "pw-2", "note": "<script>alert(1)</script>"},
        meta={"api_key": "key-3"},
    )
    job.execute()
    response = superuser_client.get(reverse("admin:async_queue_job_change", args=[job.pk]))
    content = response.content.decode()
    for secret in ("tok-1", "pw-2", "key-3"):
        assert secret not in content  # in args, kwargs, meta and the echoed result
    assert "&quot;password&quot;: &quot;••••••&quot;" in content
    assert "<script>alert" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert 'name="kwargs"' not in content  # shown, never editable
