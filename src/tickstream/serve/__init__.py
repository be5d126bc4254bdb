"""HTTP API, WebSocket fan-out, Prometheus metrics and the dashboard.

Entry points: :func:`tickstream.serve.app.create_app` (the FastAPI app for a
:class:`tickstream.serve.context.ServeContext`) and :class:`tickstream.serve.server.HttpServer`
(uvicorn as a runtime component).
"""
