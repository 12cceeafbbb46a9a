"""What the client tests share: the tools, types and questions their flows use.

The sandbox answers deterministically (docs/sandbox.md, "The model's policy" and
"Structured outputs"), so each flow's final answer is known in advance: a question
naming a tool's words calls it, its output comes back in the answer, and a typed
answer takes its values from the tool output or the question.
"""

from __future__ import annotations

from pydantic import BaseModel

MODEL = "gpt-4o-mini"
WEATHER_QUESTION = "What's the weather in Paris?"
WEATHER_ANSWER = "Tool results: get_weather: The weather in Paris is sunny, 21 degrees."
FACTS = "Paris is the capital of France and has 2100000 inhabitants."


def weather_report(city: str) -> str:
    """Get the weather for a city."""
    return f"The weather in {city} is sunny, 21 degrees."


class Weather(BaseModel):
    city: str
    temperature: int


class City(BaseModel):
    name: str
    population: int
    country: str
