"""The WSGI entry point: `gunicorn postbox.api.wsgi:app`."""

from postbox.api.app import create_app

app = create_app()
