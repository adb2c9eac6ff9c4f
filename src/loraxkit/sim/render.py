"""Response bytes and JSON for a generation: per-token SSE chunks (built once per token id and route kind,
then reused), a stream's final event, whole responses and the `x-*` timing headers of `/generate`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loraxkit import wire
from loraxkit.sim.engine import Sequence
from loraxkit.sim.http import chunk
from loraxkit.sim.tokens import Vocabulary

if TYPE_CHECKING:
    from loraxkit.sim.app import Job

# Output kinds: how a sequence's tokens are framed.
NATIVE, COMPAT_LIST, COMPLETION, CHAT, STARTUP = "native", "compat", "completion", "chat", "startup"
# `/info` version: the router's CARGO_PKG_VERSION, which LoRAX never bumped (0.1.0 in the v0.12.1 image too)
VERSION = "0.1.0"


def logprob(token_id: int) -> float:
    # A stable, plausible log-probability per token (not a model output).
    return -round(((token_id * 2654435761) % 1000) / 400.0, 4)


class Renderer:
    def __init__(self, vocab: Vocabulary, model_id: str, docker_label: str | None = None) -> None:
        self.vocab = vocab
        self.model_id = model_id
        # server.rs: format!("{}-{}", info.version, info.docker_label.unwrap_or("native"))
        self.system_fingerprint = f"{VERSION}-{docker_label or 'native'}"
        self.chunk_caches: dict[str, dict[int, bytes]] = {
            NATIVE: {},
            COMPAT_LIST: {},
            COMPLETION: {},
            CHAT: {},
        }

    def token_chunk(self, kind: str, token_id: int, alternatives: int = 0) -> bytes:
        """The framed SSE chunk of one intermediate token event (cached per kind and token id; with
        `alternatives` the caller keeps its own cache)."""
        if alternatives:
            return chunk(self._token_event(kind, token_id, alternatives))
        cache = self.chunk_caches[kind]
        data = cache.get(token_id)
        if data is None:
            data = cache[token_id] = chunk(self._token_event(kind, token_id))
        return data

    def _token_event(self, kind: str, token_id: int, alternatives: int = 0) -> bytes:
        text = self.vocab.token_text(token_id)
        if kind == COMPLETION:
            return wire.sse_event(wire.completion_chunk(text))
        if kind == CHAT:
            return wire.sse_event(wire.chat_chunk(text))
        return wire.sse_event(wire.stream_response(self.token(token_id, alternatives)))

    def token(self, token_id: int, alternatives: int = 0) -> dict[str, Any]:
        return wire.token_json(
            token_id,
            self.vocab.token_text(token_id),
            logprob(token_id),
            special=token_id == self.vocab.eos_id,
            alternative_tokens=self.alternative_tokens(token_id, alternatives) if alternatives else None,
        )

    def alternative_tokens(self, token_id: int, k: int) -> list[dict[str, Any]]:
        """`return_k_alternatives`: the k most likely tokens, most likely first (the shard sorts the step's
        log-softmax, flash_causal_lm.py:1701-1704 and 1980-2000 @a7394ba3); the greedy choice is the first.
        The others are stable stand-ins with lower logprobs."""
        words = self.vocab.word_ids
        top = logprob(token_id)
        out = [{"id": token_id, "text": self.vocab.token_text(token_id), "logprob": top}]
        for j in range(1, k):
            alt = words[(token_id * 7919 + j * 104729) % len(words)]
            out.append({"id": alt, "text": self.vocab.token_text(alt), "logprob": round(top - 0.35 * j, 4)})
        return out

    def prefill_tokens(self, ids: list[int] | None) -> list[dict[str, Any]]:
        # LoRAX's first prefill token has no logprob (NaN, serialized as null).
        return [
            {"id": t, "text": self.vocab.piece(t), "logprob": None if i == 0 else logprob(t)}
            for i, t in enumerate(ids or [])
        ]

    def generated_text(self, seq: Sequence, job: Job) -> str:
        eos = self.vocab.eos_id
        texts = self.vocab.texts
        # LoRAX decodes with skip_special_tokens: EOS never shows in generated_text
        text = "".join([texts[t] for t in seq.token_ids if t != eos])
        if job.params.return_full_text:
            text = job.inputs + text
        return text

    def final_chunk(self, job: Job, seq: Sequence) -> bytes:
        """The stream's last event (+ `[DONE]` on OpenAI routes), chunk-framed. Everything in it is known at
        admission, so it is built then, outside the token loop."""
        generated = len(seq.token_ids)
        last_id = seq.token_ids[-1]
        last_text = self.vocab.token_text(last_id)
        if job.kind == NATIVE:
            details = None
            if job.params.details:
                details = wire.stream_details(seq.finish_reason, seq.input_length, generated, job.seed)
            text = self.generated_text(seq, job)
            final = wire.sse_event(wire.stream_response(self.token(last_id, job.alternatives), text, details))
        elif job.kind == COMPLETION:
            final = wire.sse_event(
                wire.completion_chunk(last_text, seq.finish_reason, seq.input_length, generated)
            )
            final += wire.DONE_EVENT
        else:
            final = wire.sse_event(wire.chat_chunk(last_text, seq.finish_reason, seq.input_length, generated))
            final += wire.DONE_EVENT
        return chunk(final)

    def full_response(self, job: Job, seq: Sequence, now: float, others: list[Sequence] | None = None) -> Any:
        """The JSON body of a non-streaming response. `others` are the other sequences of a best-of request
        (`seq` is the best), in the order LoRAX lists them."""
        text = self.generated_text(seq, job)
        generated = len(seq.token_ids)
        if job.kind == COMPLETION:
            return wire.completion_response(text, seq.finish_reason, seq.input_length, generated)
        if job.kind == CHAT:
            texts = [text] + [self.generated_text(o, job) for o in others or []]
            # server.rs:323-397: with tools, each text is parsed into a tool call (or no_tool's content)
            choices = [wire.tool_calls_from_text(t) if job.using_tools else (None, t) for t in texts]
            return wire.chat_response(
                text,
                seq.finish_reason,
                seq.input_length,
                generated,
                self.model_id,
                int(now),
                self.system_fingerprint,
                choices=choices,
            )
        details = None
        if job.params.details or job.params.decoder_input_details:
            prefill = self.prefill_tokens(job.prompt_ids) if job.params.decoder_input_details else None
            best_of = None
            if others is not None:
                best_of = [
                    wire.best_of_sequence(
                        self.generated_text(o, job),
                        o.finish_reason,
                        [self.token(t, job.alternatives) for t in o.token_ids],
                        job.seed_of(o),
                        prefill,
                    )
                    for o in others
                ]
            details = wire.generate_details(
                seq.finish_reason,
                seq.input_length,
                [self.token(t, job.alternatives) for t in seq.token_ids],
                job.seed_of(seq),
                prefill=prefill,
                best_of_sequences=best_of,
            )
        response = wire.generate_response(text, details)
        return [response] if job.kind == COMPAT_LIST else response


def timing_headers(seq: Sequence, now: float) -> dict[str, str]:
    """`/generate`'s `x-*` headers, integer milliseconds, computed as server.rs `generate()` does."""
    admitted = seq.admitted or seq.queued
    first = seq.token_times[0] if seq.token_times else now
    n = max(len(seq.token_ids), 1)
    total, validation = now - seq.arrival, seq.queued - seq.arrival
    queue, inference, ttft = admitted - seq.queued, now - admitted, first - admitted
    prompt, generated = seq.input_length, len(seq.token_ids)

    def ms(seconds: float) -> str:
        return str(max(int(seconds * 1000), 0))

    return {
        wire.H_COMPUTE_TIME: ms(total),
        wire.H_TOTAL_TIME: ms(total),
        wire.H_VALIDATION_TIME: ms(validation),
        wire.H_QUEUE_TIME: ms(queue),
        wire.H_INFERENCE_TIME: ms(inference),
        wire.H_TIME_PER_TOKEN: ms(inference / n),
        wire.H_TIME_TO_FIRST_TOKEN: ms(ttft),
        wire.H_TIME_PER_OUTPUT_TOKEN: ms((inference - ttft) / max(n - 1, 1)),
        wire.H_PROMPT_TOKENS: str(prompt),
        wire.H_GENERATED_TOKENS: str(generated),
        wire.H_SKIPPED_TOKENS: "0",
        wire.H_TOTAL_TOKENS: str(prompt + generated),
    }
