"""The API's routers, one per resource; `orchestrator.api.app.create_app` includes them all."""
