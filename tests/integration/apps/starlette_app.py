"""A Starlette app wrapped in the ASGI middleware."""

from __future__ import annotations

from plain_app import churn, report
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gctuner.asgi import GCTunerMiddleware


async def index(request: Request) -> Response:
    return Response(report(), media_type="application/json")


async def garbage(request: Request) -> Response:
    return Response(churn(), media_type="application/json")


app = GCTunerMiddleware(Starlette(routes=[Route("/", index), Route("/churn", garbage)]))
