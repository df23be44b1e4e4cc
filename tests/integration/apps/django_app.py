"""A minimal Django project in one file (settings in code, one view), wrapped
in the WSGI middleware as a project's wsgi.py would do."""

from __future__ import annotations

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path
from plain_app import report

from gctuner.wsgi import GCTunerMiddleware

settings.configure(
    DEBUG=False,
    SECRET_KEY="integration-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
)
django.setup()


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(report(), content_type="application/json")


urlpatterns = [path("", index)]

application = GCTunerMiddleware(get_wsgi_application())
