"""An example Starlette service opted in to gctuner: wrap the ASGI app.

With FastAPI it is the same line (or ``app.add_middleware(GCTunerMiddleware)``).
Run it with ``uvicorn --workers N``: a POST reaching any worker changes the
collector in all of them. The token comes from GCTUNER_TOKEN.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gctuner.asgi import GCTunerMiddleware


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = GCTunerMiddleware(Starlette(routes=[Route("/", index)]))
