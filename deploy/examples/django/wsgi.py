"""An example Django service opted in to gctuner: wrap the WSGI application.

The middleware answers /tune_gc (and /metrics when prometheus_client is
installed) and passes every other request to Django. Run it under gunicorn
with several workers: a POST reaching any of them changes the collector in
all of them. The token comes from GCTUNER_TOKEN (a Secret in Kubernetes).
"""

import os

from django.core.wsgi import get_wsgi_application

from gctuner.wsgi import GCTunerMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
application = GCTunerMiddleware(get_wsgi_application())
