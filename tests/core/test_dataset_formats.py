from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.dataset_formats import DatasetError, DatasetFormat, read_examples, validate_dataset


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


USER = {"role": "user", "content": "q"}
ROWS: dict[DatasetFormat, dict[str, Any]] = {
    DatasetFormat.CHAT: {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    DatasetFormat.ALPACA: {"instruction": "q", "input": "ctx", "output": "a"},
    DatasetFormat.SHAREGPT: {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
    DatasetFormat.PROMPT_COMPLETION: {"prompt": "q", "completion": "a"},
    DatasetFormat.TEXT: {"text": "some text"},
}


@pytest.mark.parametrize("fmt", list(ROWS))
def test_each_format_is_detected(tmp_path: Path, fmt: DatasetFormat) -> None:
    summary = validate_dataset(_write(tmp_path / "d.jsonl", [ROWS[fmt]] * 10))
    assert summary.format is fmt and summary.examples == 10


def test_sharegpt_and_alpaca_become_chat_messages(tmp_path: Path) -> None:
    _, sharegpt, _ = read_examples(_write(tmp_path / "s.jsonl", [ROWS[DatasetFormat.SHAREGPT]]))
    assert [(m.role, m.content) for m in sharegpt[0].messages] == [("user", "q"), ("assistant", "a")]
    _, alpaca, _ = read_examples(_write(tmp_path / "a.jsonl", [ROWS[DatasetFormat.ALPACA]]))
    assert [(m.role, m.content) for m in alpaca[0].messages] == [("user", "q\n\nctx"), ("assistant", "a")]


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"foo": 1}, "unrecognised row"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown role"),
        ({"messages": [{"role": "user"}]}, "no 'content'"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant message"),
        ({"messages": [{"role": "assistant", "content": "a", "weight": 2}]}, "weight must be 0 or 1"),
        ({"text": "wrong format for this file"}, "file started as chat"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "no assistant message"),
        ({"messages": [USER, {"role": "assistant", "content": "  \n"}]}, "no content"),
        ({"messages": [USER, {"role": "assistant", "content": "a", "weight": 0}]}, "weight 0"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path: Path, bad_row: Any, reason: str) -> None:
    rows: list[Any] = [ROWS[DatasetFormat.CHAT]] * 12
    rows[4] = bad_row
    with pytest.raises(DatasetError) as caught:
        validate_dataset(_write(tmp_path / "d.jsonl", rows))
    assert caught.value.line == 5
    assert reason in str(caught.value)


def test_empty_and_too_small_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no examples"):
        validate_dataset(empty)
    with pytest.raises(DatasetError, match="at least 10"):
        validate_dataset(_write(tmp_path / "small.jsonl", [ROWS[DatasetFormat.TEXT]] * 9))


def test_weight_on_non_assistant_messages_is_ignored(tmp_path: Path) -> None:
    row = {"messages": [{"role": "user", "content": "q", "weight": 0}, {"role": "assistant", "content": "a"}]}
    _, examples, _ = read_examples(_write(tmp_path / "d.jsonl", [row]))
    assert [m.weight for m in examples[0].messages] == [1, 1]


def test_a_conversation_may_end_with_a_user_turn_after_the_last_answer(tmp_path: Path) -> None:
    row = {"messages": [USER, {"role": "assistant", "content": "a"}, {"role": "user", "content": "thanks"}]}
    _, examples, _ = read_examples(_write(tmp_path / "d.jsonl", [row]))
    assert examples[0].messages[-1].role == "user"
