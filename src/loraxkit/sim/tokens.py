"""Real Mistral-7B v0.1 tokens (LoRAX's default model) from mistral-common, which ships the tokenizer.

Prompt lengths, `/tokenize`, validation limits and the generated tokens all use this vocabulary. Generated
text is a deterministic function of (simulator seed, adapter, prompt): a client can recompute it (see
`expected_token_ids`) and so check that its request reached the adapter it asked for.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from loraxkit.wire import ChatMessageIn, template_error

# Natural (EOS-terminated) answer length when a request gives no max_new_tokens: LoRAX would otherwise
# generate up to max_total_tokens - input_length, which a real model rarely does.
NATURAL_MIN_TOKENS = 32
NATURAL_MAX_TOKENS = 256


@dataclass(frozen=True)
class TokenSpan:
    id: int
    text: str
    start: int
    stop: int


class Vocabulary:
    """Mistral-7B v0.1's SentencePiece tokenizer plus the word tokens generated text is drawn from."""

    def __init__(self) -> None:
        self._mistral = MistralTokenizer.v1()
        self._tok = self._mistral.instruct_tokenizer.tokenizer
        self.bos_id: int = self._tok.bos_id
        self.eos_id: int = self._tok.eos_id
        # Streamed text of every token, precomputed: the per-token path is a list index, not a tokenizer call.
        self.texts: list[str] = [self._tok.id_to_piece(i).replace("▁", " ") for i in range(self._tok.n_words)]
        self.texts[self.eos_id] = "</s>"

    @cached_property
    def word_ids(self) -> list[int]:
        """Whole-word tokens (`▁` + ASCII letters): text made of them re-tokenizes to the same count
        (once its leading space is stripped), so clients that count tokens themselves agree."""
        ids = []
        for i in range(self._tok.n_words):
            piece = self._tok.id_to_piece(i)
            if piece.startswith("▁") and len(piece) > 2 and piece[1:].isascii() and piece[1:].isalpha():
                ids.append(i)
        return ids

    def piece(self, token_id: int) -> str:
        return self._tok.id_to_piece(token_id)

    def token_text(self, token_id: int) -> str:
        """The text LoRAX streams for a token (`▁` decoded to a space)."""
        return self.texts[token_id]

    def count(self, text: str, add_special_tokens: bool = True) -> int:
        return len(self.encode(text, add_special_tokens))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, bos=add_special_tokens, eos=False)

    def truncate_left(self, ids: list[int], truncate: int) -> list[int]:
        return ids[-truncate:] if len(ids) > truncate else ids

    def spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        """`/tokenize`: ids, pieces and character offsets into `text` (like HF fast tokenizers)."""
        return [TokenSpan(*span) for span in self._iter_spans(text, add_special_tokens)]

    def spans_json(self, text: str, add_special_tokens: bool = True) -> bytes:
        """`/tokenize`'s response body, `[{"id","text","start","stop"}, ...]`, built in small pieces: a huge
        prompt (2 MB = 580k tokens) is tokenized on a worker thread, and one `json.dumps` (or one big
        str join + encode) of the whole list would hold the GIL, and so the event loop, for 0.2-0.5 s."""
        quoted = self._quoted_pieces
        chunks: list[bytes] = []
        batch: list[bytes] = []
        for i, _, start, stop in self._iter_spans(text, add_special_tokens):
            batch.append(b'{"id":%d,"text":%b,"start":%d,"stop":%d}' % (i, quoted[i], start, stop))
            if len(batch) == 4096:
                chunks.append(b",".join(batch))
                batch = []
        chunks.append(b",".join(batch))
        return b"[" + b",".join(c for c in chunks if c) + b"]"

    @cached_property
    def _quoted_pieces(self) -> list[bytes]:
        dump = json.dumps
        return [dump(self._tok.id_to_piece(i), ensure_ascii=False).encode() for i in range(self._tok.n_words)]

    def _iter_spans(self, text: str, add_special_tokens: bool) -> Iterator[tuple[int, str, int, int]]:
        ids = self.encode(text, add_special_tokens)
        pos = 0
        pending = b""
        first_text_token = True
        for token_id in ids:
            piece = self._tok.id_to_piece(token_id)
            if token_id == self.bos_id:
                yield token_id, piece, 0, 0
                continue
            start = pos
            if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
                pending += bytes([int(piece[3:5], 16)])
                try:
                    pos += len(pending.decode("utf-8"))
                    pending = b""
                except UnicodeDecodeError:
                    pass
            else:
                surface = piece.replace("▁", " ")
                if first_text_token and surface.startswith(" ") and not text.startswith(" "):
                    surface = surface[1:]  # SentencePiece's dummy prefix is not in the input
                pos += len(surface)
            first_text_token = False
            yield token_id, piece, start, min(pos, len(text))

    def chat_prompt_ids(self, messages: list[ChatMessageIn]) -> list[int]:
        """The chat template of Mistral-7B-Instruct v0.1 via mistral-common (bad roles → template_error)."""
        converted = []
        for m in messages:
            if m.role == "system":
                converted.append(SystemMessage(content=m.content))
            elif m.role == "user":
                converted.append(UserMessage(content=m.content))
            elif m.role == "assistant":
                converted.append(AssistantMessage(content=m.content))
            else:
                raise template_error(
                    f"role `{m.role}` is not supported by this chat template (use system, user or assistant)"
                )
        try:
            return list(
                self._mistral.encode_chat_completion(ChatCompletionRequest(messages=converted)).tokens
            )
        except Exception as exc:  # mistral-common raises several exception types for bad conversations
            raise template_error(str(exc)) from exc


def output_seed(sim_seed: int, adapter_id: str | None, prompt: str, variant: int = 0) -> int:
    """The seed of one answer. `variant` numbers the sequences of a best-of request (0 = the plain answer)."""
    key = f"{sim_seed}\x00{adapter_id or ''}\x00{prompt}" + (f"\x00{variant}" if variant else "")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def natural_length(sim_seed: int, adapter_id: str | None, prompt: str, variant: int = 0) -> int:
    rng = random.Random(output_seed(sim_seed, adapter_id, prompt, variant) ^ 0x5EED)
    return rng.randint(NATURAL_MIN_TOKENS, NATURAL_MAX_TOKENS)


def expected_token_ids(
    vocab: Vocabulary, sim_seed: int, adapter_id: str | None, prompt: str, count: int, variant: int = 0
) -> list[int]:
    """The first `count` tokens the simulator generates for (adapter, prompt) under `sim_seed`; `variant`
    is the sequence's number in a best-of request (0 otherwise)."""
    rng = random.Random(output_seed(sim_seed, adapter_id, prompt, variant))
    return rng.choices(vocab.word_ids, k=count)
