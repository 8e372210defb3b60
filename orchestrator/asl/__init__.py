"""The pure Amazon States Language core: parse, validate, evaluate, decide. No I/O, no clock, no asyncio."""
