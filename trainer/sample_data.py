"""A small, learnable chat dataset made offline, for demos and tests.

The task is a fixed lookup (country -> capital) phrased a few ways, so a
random-init tiny model can memorise it within a minute on a CPU and the loss
visibly falls.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS: dict[str, str] = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Cuba": "Havana",
    "Mexico": "Mexico City",
    "Russia": "Moscow",
    "Turkey": "Ankara",
}

QUESTIONS = (
    "What is the capital of {country}?",
    "Name the capital city of {country}.",
    "Which city is the capital of {country}?",
)

SYSTEM_PROMPT = "You answer geography questions in one sentence."


def capital_conversations(seed: int = 0) -> list[dict[str, object]]:
    """Every (country, question) pair as an OpenAI-style chat example, shuffled."""
    rows: list[dict[str, object]] = []
    for country, capital in CAPITALS.items():
        for question in QUESTIONS:
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": question.format(country=country)},
                        {"role": "assistant", "content": f"The capital of {country} is {capital}."},
                    ]
                }
            )
    random.Random(seed).shuffle(rows)
    return rows


def write_sample_dataset(path: Path, seed: int = 0) -> Path:
    """Write the sample chat dataset as JSONL and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in capital_conversations(seed):
            out.write(json.dumps(row) + "\n")
    return path
