"""`create_admin`: the console's pages, its static files and its error pages, as one ASGI
app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from commerce_core import Platform
from commerce_core_admin import views
from commerce_core_admin.app import HEADERS, PACKAGE, AdminConfig, Console, plain

__all__ = ["create_admin"]


def create_admin(platform: Platform, config: AdminConfig) -> Starlette:
    """The console as an ASGI app: mount it (``Mount("/admin", app=...)``) in a host, or
    let the reference server mount it at ``/admin``."""
    console = Console(platform, config)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        response = plain(status, "Not found." if status == 404 else "Not allowed.")
        for name, value in HEADERS.items():
            response.headers[name] = value
        return response

    routes: list[Route | Mount] = [console.route(path, view, methods=methods, public=public)
                                   for path, view, methods, public in views.ROUTES]
    routes.append(Mount("/static", StaticFiles(packages=[(PACKAGE, "static")]),
                        name="static"))
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.router.redirect_slashes = False
    app.state.console = console
    return app

