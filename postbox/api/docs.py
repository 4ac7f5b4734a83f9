"""`GET /docs`: the OpenAPI document as a readable page (server-rendered, no assets from
elsewhere, no key needed: it describes the API and holds nothing about this instance)."""

from __future__ import annotations

from flask import Blueprint, render_template

from postbox.api.openapi import openapi_document

bp = Blueprint("docs", __name__, template_folder="templates")
METHODS = ("get", "post", "put", "patch", "delete")


@bp.get("/docs")
def docs() -> str:
    """Every operation with its parameters, body and answers, then the schemas."""
    return render_template("docs.html", spec=openapi_document(), methods=METHODS)
