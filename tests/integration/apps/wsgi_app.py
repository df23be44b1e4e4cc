"""plain_app wrapped in the WSGI middleware: for uWSGI and the multiprocessing server."""

from __future__ import annotations

from plain_app import application as plain

from gctuner.wsgi import GCTunerMiddleware

application = GCTunerMiddleware(plain)
