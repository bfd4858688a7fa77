"""The browser console's static files (``static/``), served at ``GET /ui`` by ``gateway.http.routes.ui``."""
