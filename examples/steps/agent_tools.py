"""The agent example's own tool, a plain `@step` function (examples/genai/agent/).

Run with `--steps examples.steps.agent_tools` (baton execute) or `baton step fn --module
examples.steps.agent_tools`. The agent offers it to the model next to the MCP server's tools.
"""

from __future__ import annotations

from pydantic import BaseModel

from steps.sdk import step

# The tool as baton:llm's Tools takes it (the definition declares the same).
CONVERT_TEMPERATURE = {
    "Name": "convert_temperature",
    "Description": "Convert a temperature from degrees Celsius to degrees Fahrenheit.",
    "InputSchema": {"type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"],
                    "additionalProperties": False},
}


class Celsius(BaseModel):
    celsius: float


class Fahrenheit(BaseModel):
    celsius: float
    fahrenheit: float


@step("convert_temperature")
async def convert_temperature(temperature: Celsius) -> Fahrenheit:
    """°F = °C × 9/5 + 32, rounded to one decimal."""
    return Fahrenheit(celsius=temperature.celsius, fahrenheit=round(temperature.celsius * 9 / 5 + 32, 1))
