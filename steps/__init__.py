"""Baton's step services: the SDK (`sdk`: @step and the handler contract), the Kafka shell
(`service`), the built-in services (`fn`, `llm`, `http`, `retrieval`, `review`), the same handlers
in-process (`inprocess`) and an in-memory test bus (`testing`)."""

__all__: list[str] = []  # a family of packages: import from the one you need
