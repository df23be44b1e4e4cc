"""The API server as pods see it: ``10.88.0.1:443`` (the bridge's host address)
forwarded to the API server on loopback.

There is no kube-proxy on this node, so the ``kubernetes`` Service's
ClusterIP leads nowhere; the operator's pod reaches the API server here
instead (``deploy/examples/localcluster`` sets ``KUBERNETES_SERVICE_HOST``).
The API server itself stays bound to 127.0.0.1.

``python -m gctuner_localcluster.realnode.forward LISTEN_HOST LISTEN_PORT TARGET_PORT``
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(listen_host: str, listen_port: int, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, listen_host, listen_port)
    print(f"forwarding {listen_host}:{listen_port} to 127.0.0.1:{target_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
