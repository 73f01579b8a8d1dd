"""Detect, validate and normalise the JSONL dataset formats users bring.

Pure Python (no torch), so the API can check a file at upload time and the
trainer can read it with the same rules. Every example becomes one of three
shapes: a chat (messages with roles), a prompt/completion pair, or plain text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

MIN_EXAMPLES = 10
MAX_LINE_BYTES = 16 << 20  # one example; longer lines are refused rather than read into memory whole
CHAT_ROLES = frozenset({"system", "user", "assistant"})
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class DatasetFormat(StrEnum):
    CHAT = "chat"
    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    PROMPT_COMPLETION = "prompt_completion"
    TEXT = "text"


class DatasetError(ValueError):
    """A dataset that cannot be trained on; ``line`` is 1-based, or None for the whole file."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    weight: int = 1  # 0 = never learn from this turn (OpenAI's per-message weight)


@dataclass(frozen=True)
class Example:
    """One normalised training example: exactly one of the three shapes is set."""

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None


@dataclass
class DatasetSummary:
    format: DatasetFormat
    lines: int
    examples: int
    warnings: list[str] = field(default_factory=list)


def detect_format(row: dict[str, Any]) -> DatasetFormat | None:
    if "messages" in row:
        return DatasetFormat.CHAT
    if "conversations" in row:
        return DatasetFormat.SHAREGPT
    if "instruction" in row and "output" in row:
        return DatasetFormat.ALPACA
    if "prompt" in row and "completion" in row:
        return DatasetFormat.PROMPT_COMPLETION
    if "text" in row:
        return DatasetFormat.TEXT
    return None


def _require_str(row: dict[str, Any], key: str, line: int, allow_empty: bool = False) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DatasetError(f"'{key}' must be a string", line)
    if not allow_empty and not value.strip():
        raise DatasetError(f"'{key}' is empty", line)
    return value


def _chat_messages(raw: Any, line: int, role_key: str, content_key: str, roles: dict[str, str]) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise DatasetError("the conversation must be a non-empty list of messages", line)
    messages: list[Message] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise DatasetError(f"message {index} is not an object", line)
        role = item.get(role_key)
        if role not in roles:
            raise DatasetError(f"message {index} has unknown role {role!r} (expected one of {sorted(roles)})", line)
        content = item.get(content_key)
        if not isinstance(content, str):
            raise DatasetError(f"message {index} has no '{content_key}' string", line)
        weight = item.get("weight", 1)
        if weight not in (0, 1):
            raise DatasetError(f"message {index} has weight {weight!r}; weight must be 0 or 1", line)
        if roles[role] != "assistant":
            weight = 1  # as at OpenAI, weight only means something on assistant turns
        elif not content.strip():
            raise DatasetError(f"message {index} is an assistant message with no content", line)
        messages.append(Message(role=roles[role], content=content, weight=weight))
    if not any(m.role == "assistant" for m in messages):
        raise DatasetError("the conversation has no assistant message", line)
    if not any(m.role == "assistant" and m.weight for m in messages):
        raise DatasetError("every assistant message has weight 0, so there is nothing to learn", line)
    return tuple(messages)


def parse_example(row: dict[str, Any], fmt: DatasetFormat, line: int) -> Example:
    """Turn one JSON row of a known format into an Example, or raise DatasetError."""
    if fmt is DatasetFormat.CHAT:
        identity = {role: role for role in CHAT_ROLES}
        return Example(messages=_chat_messages(row.get("messages"), line, "role", "content", identity))
    if fmt is DatasetFormat.SHAREGPT:
        return Example(messages=_chat_messages(row.get("conversations"), line, "from", "value", SHAREGPT_ROLES))
    if fmt is DatasetFormat.ALPACA:
        instruction = _require_str(row, "instruction", line)
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise DatasetError("'input' must be a string", line)
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        output = _require_str(row, "output", line)
        return Example(messages=(Message("user", prompt), Message("assistant", output)))
    if fmt is DatasetFormat.PROMPT_COMPLETION:
        return Example(
            prompt=_require_str(row, "prompt", line, allow_empty=True),
            completion=_require_str(row, "completion", line),
        )
    return Example(text=_require_str(row, "text", line))


def _decode_row(raw: bytes, number: int) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}); save the file as UTF-8",
            number,
        ) from exc
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"is not valid JSON: {exc.msg} at column {exc.colno}", number) from exc
    except RecursionError as exc:
        raise DatasetError("is nested too deeply to be a training example", number) from exc
    if not isinstance(row, dict):
        raise DatasetError("each line must be a JSON object", number)
    return row


def _json_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """One row at a time: memory stays flat whatever the file's size."""
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise DatasetError(f"is longer than {MAX_LINE_BYTES} bytes; one example per line", number)
            if raw.strip():
                yield number, _decode_row(raw, number)


def iter_examples(path: Path) -> Iterator[tuple[DatasetFormat, int, Example]]:
    """Validate a JSONL file row by row: (format, line number, example).

    The format is taken from the first row; every row must share it.
    """
    fmt: DatasetFormat | None = None
    for number, row in _json_rows(path):
        row_format = detect_format(row)
        if row_format is None:
            raise DatasetError(
                "unrecognised row: expected 'messages', 'conversations', 'instruction'+'output', "
                "'prompt'+'completion' or 'text'",
                number,
            )
        if fmt is None:
            fmt = row_format
        elif row_format is not fmt:
            raise DatasetError(f"row is {row_format.value} but the file started as {fmt.value}", number)
        yield fmt, number, parse_example(row, fmt, number)


def read_examples(path: Path) -> tuple[DatasetFormat, list[Example], int]:
    """Read and validate a JSONL file: (format, examples, number of lines)."""
    fmt: DatasetFormat | None = None
    examples: list[Example] = []
    lines = 0
    for row_format, number, example in iter_examples(path):
        fmt, lines = row_format, number
        examples.append(example)
    if fmt is None:
        raise DatasetError("the file has no examples")
    return fmt, examples, lines


def validate_dataset(path: Path, min_examples: int = MIN_EXAMPLES) -> DatasetSummary:
    """Validate a dataset file as an upload would, returning its summary; streams the file."""
    fmt: DatasetFormat | None = None
    count = lines = 0
    for row_format, number, _ in iter_examples(path):
        fmt, lines, count = row_format, number, count + 1
    if fmt is None:
        raise DatasetError("the file has no examples")
    if count < min_examples:
        raise DatasetError(f"only {count} usable examples; at least {min_examples} are needed")
    return DatasetSummary(format=fmt, lines=lines, examples=count)
