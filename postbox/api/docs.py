"""`GET /docs`: the OpenAPI document in Swagger UI, every field, constraint, example and
answer of `/openapi.json` browsable, and each operation tried out from the page.

Swagger UI's files come from the `flask-swagger-ui` package (its `dist/`, Swagger UI 5)
and are served from here, so the page works offline and loads nothing from elsewhere; the
Content-Security-Policy holds it to this origin. Its validator badge, which would send the
document to validator.swagger.io, is off (`docs.js`). No key is needed to read the page:
it describes the API and holds nothing about this instance.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, render_template, send_from_directory

bp = Blueprint("docs", __name__, template_folder="templates")
SWAGGER_UI = str(files("flask_swagger_ui") / "dist")
_STATIC = str(Path(__file__).parent / "static")
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(_HEADERS)
    return response


@bp.get("/docs")
def docs() -> str:
    """The page: Swagger UI, pointed at /openapi.json."""
    return render_template("docs.html")


@bp.get("/docs/swagger-ui/<path:name>")
def swagger_ui(name: str) -> Response:
    """Swagger UI's own files, from the package."""
    return send_from_directory(SWAGGER_UI, name, max_age=3600)


@bp.get("/docs/docs.js")
def start_script() -> Response:
    """The script that starts Swagger UI with Postbox's settings."""
    return send_from_directory(_STATIC, "docs.js", max_age=3600)
