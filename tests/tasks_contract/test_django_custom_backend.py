# Ported from Django (https://github.com/django/django),
# tests/tasks/test_custom_backend.py at commit 66e0a0d3a52dd0368edccd7c838b664ba11850c1.
# Changed: the backend under test is this one, not a custom class of the test module.
#
# Copyright (c) Django Software Foundation and individual contributors.
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without modification,
# are permitted provided that the following conditions are met:
#
#     1. Redistributions of source code must retain the above copyright notice,
#        this list of conditions and the following disclaimer.
#
#     2. Redistributions in binary form must reproduce the above copyright
#        notice, this list of conditions and the following disclaimer in the
#        documentation and/or other materials provided with the distribution.
#
#     3. Neither the name of Django nor the names of its contributors may be used
#        to endorse or promote products derived from this software without
#        specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
# ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
# WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
# DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT OWNER OR CONTRIBUTORS BE LIABLE FOR
# ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES
# (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES;
# LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON
# ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
# SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

"""Django's custom-backend tests that hold for any backend.

Not ported, as they test the test module's own backend classes: its options
(``test_using_correct_backend``, ``test_options``), a backend without priorities
(``test_backend_does_not_support_priority``; this one has them) and one without
``enqueue()`` (``test_no_enqueue``).
"""

from unittest import mock

import pytest

pytest.importorskip("django.tasks", reason="django.tasks needs Django 6.0+")

from django.tasks import default_task_backend
from django.tasks.exceptions import InvalidTask
from django.test import SimpleTestCase

from async_queue.backends import QueueBackend

from . import django_tasks as test_tasks


class CustomBackendTestCase(SimpleTestCase):
    @mock.patch.multiple(QueueBackend, supports_async_task=False)
    def test_enqueue_async_task_on_non_async_backend(self):
        with self.assertRaisesMessage(InvalidTask, "Backend does not support async Tasks."):
            default_task_backend.validate_task(test_tasks.noop_task_async)
