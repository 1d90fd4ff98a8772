"""Which page a visitor lands on: the browser mode (/browser) when this server can offer it, so a
class of thirty draws on thirty laptops instead of queueing on one CPU; the server's page otherwise.

    GET /                   -> 307 to /browser, when the browser mode can run here (BrowserMode.problems)
    GET /?mode=server       -> the server's page, and the choice is remembered (a cookie) for later visits
    GET /browser?mode=browser   forgets that choice: / leads to /browser again

Only a plain GET of / is redirected: Gradio's API, its assets, and every other path pass untouched.
/browser itself falls back to the server's page, saying why, where this browser cannot run it.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

COOKIE = "imagen-mode"
SERVER, BROWSER = "server", "browser"
ONE_YEAR_S = 365 * 24 * 3600


def _send_with_cookie(send: Callable, cookie: str) -> Callable:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
        await send(message)
    return wrapped


class LandingMiddleware:
    """ASGI middleware: a plain GET of / goes to /browser while `problems()` is empty and the visitor
    has not picked the server. `problems` must be cheap: it is asked at every landing."""

    def __init__(self, app: Callable, problems: Callable[[], list[str]]):
        self.app, self.problems = app, problems

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        root, path = scope.get("root_path", "").rstrip("/"), scope["path"]
        if root and path.startswith(root):  # behind a proxy that mounts the app under a prefix
            path = path[len(root):] or "/"
        mode = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("mode", [None])[0]
        if path in ("/browser", "/browser/") and mode == BROWSER:  # the visitor picked the browser again
            return await self.app(scope, receive, _send_with_cookie(send, f"{COOKIE}=; Path=/; Max-Age=0"))
        if path != "/":
            return await self.app(scope, receive, send)
        if mode == SERVER:
            cookie = f"{COOKIE}={SERVER}; Path=/; Max-Age={ONE_YEAR_S}; SameSite=Lax"
            return await self.app(scope, receive, _send_with_cookie(send, cookie))
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except Exception:  # a malformed cookie header: as if there were none
                    pass
        picked = cookies[COOKIE].value if COOKIE in cookies else None
        if picked == SERVER or self.problems():
            return await self.app(scope, receive, send)
        location = f"{root}/browser"
        await send({"type": "http.response.start", "status": 307,
                    "headers": [(b"location", location.encode()), (b"cache-control", b"no-store"),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
