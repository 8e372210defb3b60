"""What serves executions to people and programs: the read model (a projection of the history and
events topics into SQLite), and the HTTP API and pages built on it (`app.create_app`, one router
per resource in `routers/`)."""

__all__ = ["app", "readmodel", "routers"]  # modules: `app.create_app`, `readmodel.ReadModel`
