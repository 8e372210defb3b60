"""The steps SDK: the one way to write a step, as a typed async function.

    from steps.sdk import step

    @step("summarise")
    async def summarise(doc: Document) -> Summary: ...

The decorator only annotates the function (no global registry): a runner collects the steps of
a module with `collect_steps`. Input is validated into the first parameter's pydantic model (if
it has one); a pydantic result is dumped to JSON-ready data. An exception becomes a task failure
whose error name is the exception's class name, as Lambda reports it, or the explicit `error`
of a `StepFailed`.
"""

from steps.sdk.step import StepDefinition, StepFailed, collect_steps, invoke_step, load_steps, step

__all__ = ["StepDefinition", "StepFailed", "collect_steps", "invoke_step", "load_steps", "step"]
