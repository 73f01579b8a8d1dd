"""Count a dataset's tokens as the trainer will, without torch: the ``tokenizers`` library and Jinja.

``transformers.AutoTokenizer`` would import torch into the API, so the estimate reads the model's
``tokenizer.json`` with ``tokenizers.Tokenizer`` and renders its chat template with a Jinja sandbox set
up as transformers sets it up. Each example becomes the text ``trainer.tokenize`` builds (the rendered
conversation; prompt + completion + eos; text + eos), encoded without added special tokens.

Counts are cached per example under ``<data root>/cache/token-counts``, keyed by the file's SHA-256 and
the tokenizer's identity (the hash of its vocabulary, chat template and eos token). Lengths are stored
before truncation, so one entry serves every ``max_seq_length``.
When a hub model's tokenizer is not in the local Hugging Face cache (the API never downloads), or the
template cannot be rendered, tokens are estimated as UTF-8 bytes / 4, and the estimate says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.dataset_formats import Example, Message, read_examples
from core.model_files import read_json, read_text, sha256_of
from core.settings import Settings
from trainer.chat_template import CHATML_TEMPLATE

log = logging.getLogger(__name__)

BYTES_PER_TOKEN = 4  # the usual rule of thumb for English text with a BPE vocabulary
CACHE_FORMAT = 1  # bump when the way texts are built or counted changes
HEURISTIC_IDENTITY = "bytes/4"  # the cache key's tokenizer part when counting without one


class CountedWith(StrEnum):
    TOKENIZER = "tokenizer"
    HEURISTIC = "bytes/4 heuristic"


@dataclass(frozen=True)
class TokenizerFiles:
    """What counting needs from a model: its tokenizer.json, chat template and eos token."""

    tokenizer_json: Path
    chat_template: str
    eos_token: str
    special_tokens: dict[str, str]

    @property
    def identity(self) -> str:
        return _identity(self.tokenizer_json, self.chat_template, self.eos_token)


@dataclass(frozen=True)
class TokenCounts:
    """Tokens per training example, before truncation."""

    lengths: tuple[int, ...]
    counted_with: CountedWith
    tokenizer: str  # where the tokenizer came from, or why there was none
    from_cache: bool


def _special(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<|im_end|>", ...} in older tokenizer_config.json files
        value = value.get("content")
    return value if isinstance(value, str) else None


def _template(config: dict[str, Any], template_file: Path | None) -> str:
    if template_file is not None and (text := read_text(template_file)) is not None:
        return text
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the trainer uses the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else CHATML_TEMPLATE  # as trainer.model_loading does


def tokenizer_files(base_model: str) -> TokenizerFiles | str:
    """The model's tokenizer files from its directory or the local hub cache; a reason string if there are none."""
    directory = Path(base_model)
    if directory.is_absolute():
        # No is_file() checks: the reads below find out, and tokenizer.json's existence costs one stat there.
        found: dict[str, Path | None] = {
            name: directory / name for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
        }
    else:
        found = {name: cached_hub_file(base_model, name) for name in ("tokenizer.json", "tokenizer_config.json")}
        found["chat_template.jinja"] = cached_hub_file(base_model, "chat_template.jinja")
    tokenizer_json = found["tokenizer.json"]
    if tokenizer_json is None or not tokenizer_json.is_file():
        if directory.is_absolute():
            return f"no tokenizer.json in the model directory {directory.name}"
        return f"the tokenizer of {base_model} is not in the local Hugging Face cache (the API never downloads)"
    config_path = found["tokenizer_config.json"]
    parsed = read_json(config_path) if config_path else None
    config: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    specials = {k: v for k, raw in config.items() if k.endswith("_token") and (v := _special(raw)) is not None}
    return TokenizerFiles(
        tokenizer_json, _template(config, found["chat_template.jinja"]), specials.get("eos_token", ""), specials
    )


def cached_hub_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub model if the local cache has it; the API never downloads."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None


def _identity(tokenizer_json: Path, chat_template: str, eos_token: str) -> str:
    # tokenizer.json's digest is cached per file version: a model replaced in place counts anew.
    digest = hashlib.sha256((sha256_of(tokenizer_json) or "").encode())
    digest.update(b"\x00" + chat_template.encode() + b"\x00" + eos_token.encode())
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _load_tokenizer(tokenizer_json: Path, identity: str) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_json))


@lru_cache(maxsize=16)
def _compiled_template(source: str) -> Any:
    """The template compiled as transformers compiles chat templates (sandboxed, trimmed blocks, tojson)."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        from jinja2.exceptions import TemplateError

        raise TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **_: Any) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now(UTC).strftime(fmt)
    return env.from_string(source)


def example_text(example: Example, template: Any, eos_token: str, specials: dict[str, str]) -> str:
    """The text ``trainer.tokenize`` tokenizes for ``example``."""
    if example.messages:
        messages = [{"role": m.role, "content": m.content} for m in example.messages]
        rendered: str = template.render(messages=messages, add_generation_prompt=False, **specials)
        return rendered
    if example.completion is not None:
        return (example.prompt or "") + example.completion + eos_token
    return (example.text or "") + eos_token


def _heuristic_lengths(examples: Sequence[Example]) -> list[int]:
    def size(example: Example) -> int:
        parts: Sequence[Message | str | None] = example.messages or (example.prompt, example.completion, example.text)
        text = "".join(p.content if isinstance(p, Message) else (p or "") for p in parts)
        return max(1, math.ceil(len(text.encode()) / BYTES_PER_TOKEN))

    return [size(example) for example in examples]


def _tokenized_lengths(examples: Sequence[Example], files: TokenizerFiles) -> list[int]:
    tokenizer = _load_tokenizer(files.tokenizer_json, files.identity)
    template = _compiled_template(files.chat_template)
    texts = [example_text(e, template, files.eos_token, files.special_tokens) for e in examples]
    return [len(encoding.ids) for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]


def _cache_entry(settings: Settings, file_sha256: str, identity: str) -> Path:
    key = hashlib.sha256(f"{CACHE_FORMAT}\x00{file_sha256}\x00{identity}".encode()).hexdigest()
    return settings.data_root / "cache" / "token-counts" / f"{key}.json"


def _store(entry: Path, lengths: list[int]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    partial = entry.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"lengths": lengths}), encoding="utf-8")
    os.replace(partial, entry)  # readers see a whole entry or none


@lru_cache(maxsize=8)
def _stored_lengths(entry: Path) -> tuple[int, ...]:
    """A cache entry's lengths, parsed once per process: entries are named by the file's and the tokenizer's
    hashes, so one never changes. A 100,000-example dataset's entry took ~5 ms to parse on every submit.
    Eight datasets at most: ~36 bytes an example stay in memory (3.6 MB for 100,000)."""
    return tuple(json.loads(entry.read_text(encoding="utf-8"))["lengths"])


def _describe(base_model: str) -> str:
    # A model directory by its name only: server paths stay on the server.
    return f"tokenizer.json of {Path(base_model).name if Path(base_model).is_absolute() else base_model}"


def _heuristic(settings: Settings, dataset: Path, file_sha256: str, reason: str) -> TokenCounts:
    # Cached too: without it every submit of a big file for an uncached hub model would re-read the file.
    entry = _cache_entry(settings, file_sha256, HEURISTIC_IDENTITY)
    if entry.is_file():
        return TokenCounts(_stored_lengths(entry), CountedWith.HEURISTIC, reason, from_cache=True)
    lengths = _heuristic_lengths(read_examples(dataset)[1])
    _store(entry, lengths)
    return TokenCounts(tuple(lengths), CountedWith.HEURISTIC, reason, from_cache=False)


def count_tokens(settings: Settings, base_model: str, dataset: Path, file_sha256: str) -> TokenCounts:
    """Tokens of each example of ``dataset`` with ``base_model``'s tokenizer (cached), else by bytes/4."""
    files = tokenizer_files(base_model)
    if isinstance(files, str):
        return _heuristic(settings, dataset, file_sha256, files)
    entry = _cache_entry(settings, file_sha256, files.identity)
    if entry.is_file():
        return TokenCounts(_stored_lengths(entry), CountedWith.TOKENIZER, _describe(base_model), from_cache=True)
    try:
        lengths = _tokenized_lengths(read_examples(dataset)[1], files)
    except Exception as exc:  # a template or tokenizer file the sandbox or tokenizers library rejects
        log.warning("cannot count tokens with the tokenizer of %s: %s", base_model, exc)
        reason = f"the tokenizer of {Path(base_model).name} could not be used here ({type(exc).__name__}: {exc})"
        return _heuristic(settings, dataset, file_sha256, reason)
    _store(entry, lengths)
    return TokenCounts(tuple(lengths), CountedWith.TOKENIZER, _describe(base_model), from_cache=False)
