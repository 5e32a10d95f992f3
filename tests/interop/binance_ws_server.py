"""An independent WebSocket server for Tickline's interop test, built on Python's `websockets`.

Serves a Binance line capture (`<recv_ns> <json>` per line, as written by `tickline gen-feed`):
the REST depth snapshot line at GET /api/v3/depth (plain HTTP, its own port), and every other
line, in order, to each WebSocket client of /stream?streams=... (combined-stream frames, sent as
they are) once the client connects. Answers SUBSCRIBE/UNSUBSCRIBE with {"result":null,"id":N}.

Prints one line `READY <ws_port> <http_port>` when listening, then serves until killed.
Usage: python binance_ws_server.py CAPTURE [--ping-interval S] [--drop-after N]
"""

import asyncio
import http.server
import json
import sys
import threading

import websockets


def load(path):
    snapshot, frames = None, []
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            _, payload = line.split(b" ", 1)
            if payload.startswith(b'{"lastUpdateId"'):
                snapshot = payload
            else:
                frames.append(payload.decode("utf-8"))
    return snapshot, frames


def serve_http(snapshot):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/api/v3/depth") and snapshot is not None:
                body, code = snapshot, 200
            else:
                body, code = b'{"code":-1121,"msg":"Invalid symbol."}', 400
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


async def main():
    path = sys.argv[1]
    drop_after = None
    if "--drop-after" in sys.argv:
        drop_after = int(sys.argv[sys.argv.index("--drop-after") + 1])
    snapshot, frames = load(path)
    http_port = serve_http(snapshot)

    async def handler(ws):
        async def answer():
            async for msg in ws:
                req = json.loads(msg)
                if req.get("method") in ("SUBSCRIBE", "UNSUBSCRIBE"):
                    await ws.send(json.dumps({"result": None, "id": req.get("id")}))

        reader = asyncio.ensure_future(answer())
        try:
            for i, frame in enumerate(frames):
                if drop_after is not None and i == drop_after:
                    await ws.close()
                    return
                await ws.send(frame)
            await ws.wait_closed()
        finally:
            reader.cancel()

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=2**22) as server:
        ws_port = server.sockets[0].getsockname()[1]
        print(f"READY {ws_port} {http_port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
