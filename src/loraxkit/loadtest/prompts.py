"""Prompt sources: synthetic prompts of an exact token length, or a user's ShareGPT-style JSONL file.

Token counts use a real offline tokenizer from mistral-common (`mistral-v1` is the tokenizer of LoRAX's
default model Mistral-7B-Instruct-v0.1 and of the simulator), or a tokenizer file the user points at
(`MistralTokenizer.from_file`: a `tekken.json` or SentencePiece `.model`). Counts exclude BOS/EOS.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

BUILTIN_TOKENIZERS = ("mistral-v1", "mistral-v3", "mistral-tekken")


class PromptSourceError(ValueError):
    """A prompt file or tokenizer that cannot be used; the message names the file/line and the fix."""


class Tokenizer(Protocol):
    def encode(self, text: str, bos: bool, eos: bool) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int
    # Output length the dataset suggests (the reference answer's length), if it has one.
    reference_output_tokens: int | None = None


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Tokenizer:
    """A built-in mistral-common tokenizer by name, or a tokenizer file path."""
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    builders = {
        "mistral-v1": MistralTokenizer.v1,
        "mistral-v3": MistralTokenizer.v3,
        "mistral-tekken": lambda: MistralTokenizer.v3(is_tekken=True),
    }
    if name in builders:
        return builders[name]().instruct_tokenizer.tokenizer
    path = Path(name)
    if not path.is_file():
        raise PromptSourceError(
            f"tokenizer: {name!r} is neither a built-in ({', '.join(BUILTIN_TOKENIZERS)}) nor a file; "
            "point --tokenizer at a mistral-common tokenizer file (tekken.json or a SentencePiece .model)"
        )
    try:
        return MistralTokenizer.from_file(str(path)).instruct_tokenizer.tokenizer
    except Exception as exc:  # mistral-common raises several types for unreadable files
        raise PromptSourceError(f"tokenizer: cannot load {name!r} with mistral-common: {exc}") from exc


def count_tokens(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, bos=False, eos=False))


@functools.lru_cache(maxsize=4)
def _word_list(tokenizer_name: str) -> tuple[str, ...]:
    """Plain lowercase words that the tokenizer keeps as one token each, found once per tokenizer."""
    tok = load_tokenizer(tokenizer_name)
    words: list[str] = []
    n_words = getattr(tok, "n_words", 32000)
    for token_id in range(min(n_words, 40000)):
        word = tok.decode([token_id]).strip()
        plain = 3 <= len(word) <= 10 and word.isascii() and word.isalpha() and word.islower()
        if plain and len(tok.encode(word, bos=False, eos=False)) == 1:
            words.append(word)
        if len(words) >= 3000:
            break
    if len(words) < 100:
        raise PromptSourceError(
            f"tokenizer {tokenizer_name!r}: too few single-token words for synthetic prompts"
        )
    return tuple(sorted(set(words)))


class SyntheticPrompts:
    """Random-word prompts with exactly the requested number of tokens (checked by encoding)."""

    def __init__(self, tokenizer_name: str = "mistral-v1") -> None:
        self.tokenizer_name = tokenizer_name
        self._tok = load_tokenizer(tokenizer_name)
        self._words = _word_list(tokenizer_name)

    def make(self, n_tokens: int, rng: random.Random) -> Prompt:
        words = rng.choices(self._words, k=n_tokens)
        count = count_tokens(self._tok, " ".join(words))
        # Merges across words are rare but possible: trim or pad until the count is exact.
        for _ in range(8):
            if count == n_tokens:
                break
            if count > n_tokens:
                del words[-max(1, count - n_tokens) :]
            else:
                words.extend(rng.choices(self._words, k=n_tokens - count))
            count = count_tokens(self._tok, " ".join(words))
        return Prompt(" ".join(words), count)


class JsonlPrompts:
    """Prompts from a JSONL file, one conversation or prompt per line.

    Accepted line shapes: ShareGPT
    `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}`,
    OpenAI-style `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}`, or
    `{"prompt": ..., "output_tokens": N}`. The first human/user turn is the prompt; the following
    assistant turn's length is the reference output length.
    """

    def __init__(
        self, path: str | Path, tokenizer_name: str = "mistral-v1", max_prompt_tokens: int | None = None
    ) -> None:
        tok = load_tokenizer(tokenizer_name)
        self.path = Path(path)
        if not self.path.is_file():
            raise PromptSourceError(f"prompts file: {str(path)!r} does not exist; give a JSONL file path")
        self.prompts: list[Prompt] = []
        with self.path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.strip():
                    prompt = self._parse(line, lineno, tok)
                    if max_prompt_tokens is None or prompt.tokens <= max_prompt_tokens:
                        self.prompts.append(prompt)
        if not self.prompts:
            raise PromptSourceError(f"prompts file {self.path}: no usable prompt (empty, or all too long)")

    def _parse(self, line: str, lineno: int, tok: Tokenizer) -> Prompt:
        where = f"{self.path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSourceError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise PromptSourceError(f"{where}: each line must be a JSON object")
        prompt, answer = _extract_turns(row, where)
        ref = row.get("output_tokens")
        if ref is None and answer:
            ref = count_tokens(tok, answer)
        return Prompt(prompt, count_tokens(tok, prompt), int(ref) if ref else None)

    def make(self, index: int, rng: random.Random) -> Prompt:
        return self.prompts[rng.randrange(len(self.prompts))]


def _extract_turns(row: dict[str, Any], where: str) -> tuple[str, str | None]:
    if isinstance(row.get("prompt"), str):
        return row["prompt"], None
    turns = row.get("conversations", row.get("messages"))
    if not isinstance(turns, list):
        raise PromptSourceError(f"{where}: expected a 'conversations' (ShareGPT), 'messages' or 'prompt' key")
    prompt: str | None = None
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if not isinstance(text, str):
            continue
        if prompt is None and role in ("human", "user"):
            prompt = text
        elif prompt is not None and role in ("gpt", "assistant", "chatgpt", "bard"):
            return prompt, text
    if prompt is None:
        raise PromptSourceError(f"{where}: no human/user turn with text")
    return prompt, None
