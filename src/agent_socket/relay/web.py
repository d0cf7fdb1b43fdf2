"""Everything around the protocol: landing page, /healthz, the browser SDK and examples."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agent_socket import __version__
from agent_socket.relay.state import RelayState

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SDK_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SDK_HEADERS = {
    "cache-control": "public, max-age=300",
    "access-control-allow-origin": "*",
    "x-content-type-options": "nosniff",
}

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agent-socket relay</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}}
code,pre{{background:#f4f4f5;border-radius:4px;padding:.1rem .3rem}}pre{{padding:.8rem}}</style>
</head><body>
<h1>agent-socket relay</h1>
<p>This relay lets an app expose tools to any AI chat through one link. The app holds a
WebSocket to <code>/v1/_ws</code>; the AI needs nothing but plain HTTPS: it reads
<code>agents.md</code>, lists <code>tools.json</code> and calls tools.</p>
<h2>Connect an app</h2>
<pre>pip install agent-socket
python -c "from agent_socket import App; app = App('hello'); app.run('{origin}')"</pre>
<p>In a web page, import the browser SDK from
<a href="/sdk/agent-socket.js">/sdk/agent-socket.js</a>
and see the <a href="/examples/">examples</a>.</p>
<p>Version {version} · <a href="/healthz">health</a> ·
docs: <code>docs/</code> in the agent-socket repository.</p>
</body></html>
"""


def routes(relay: RelayState) -> list[BaseRoute]:
    async def landing(request: Request) -> Response:
        origin = relay.config.public_url or str(request.base_url).rstrip("/")
        return HTMLResponse(LANDING.format(origin=origin, version=__version__))

    async def healthz(request: Request) -> Response:
        health = {"status": "ok", "version": __version__, "sessions": len(relay.hub.sessions)}
        if relay.hub.cluster is not None:
            health["nats"] = relay.hub.cluster.status()
        return JSONResponse(health)

    async def sdk(request: Request) -> Response:
        """The browser SDK's own files: cacheable, and importable from any origin."""
        name = request.path_params["name"]
        path = WEB_DIR / name
        kind = SDK_TYPES.get(path.suffix)
        if kind is None or "/" in name or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type=kind, headers=SDK_HEADERS)

    out: list[BaseRoute] = [
        Route("/", landing),
        Route("/healthz", healthz),
        Route("/sdk/{name}", sdk),
    ]
    if WEB_DIR.is_dir():
        examples = WEB_DIR / "examples"
        if examples.is_dir():
            out.append(Mount("/examples", app=StaticFiles(directory=examples, html=True)))
    return out
