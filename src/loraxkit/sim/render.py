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

    def token_chunk(self, kind: str, token_id: int) -> bytes:
        """The framed SSE chunk of one intermediate token event (cached per kind and token id)."""
        cache = self.chunk_caches[kind]
        data = cache.get(token_id)
        if data is None:
            data = cache[token_id] = chunk(self._token_event(kind, token_id))
        return data

    def _token_event(self, kind: str, token_id: int) -> bytes:
        text = self.vocab.token_text(token_id)
        if kind == COMPLETION:
            return wire.sse_event(wire.completion_chunk(text))
        if kind == CHAT:
            return wire.sse_event(wire.chat_chunk(text))
        return wire.sse_event(wire.stream_response(self.token(token_id)))

    def token(self, token_id: int) -> dict[str, Any]:
        return wire.token_json(
            token_id,
            self.vocab.token_text(token_id),
            logprob(token_id),
            special=token_id == self.vocab.eos_id,
        )

    def prefill_tokens(self, ids: list[int] | None) -> list[dict[str, Any]]:
        # LoRAX's first prefill token has no logprob (NaN, serialized as null).
        return [
            {"id": t, "text": self.vocab.piece(t), "logprob": None if i == 0 else logprob(t)}
            for i, t in enumerate(ids or [])
        ]

    def generated_text(self, seq: Sequence, job: Job) -> str:
        ids = seq.token_ids
        if ids and ids[-1] == self.vocab.eos_id:
            ids = ids[:-1]  # LoRAX leaves the EOS token out of generated_text
        texts = self.vocab.texts
        text = "".join([texts[t] for t in ids])
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
            final = wire.sse_event(wire.stream_response(self.token(last_id), text, details))
        elif job.kind == COMPLETION:
            final = wire.sse_event(
                wire.completion_chunk(last_text, seq.finish_reason, seq.input_length, generated)
            )
            final += wire.DONE_EVENT
        else:
            final = wire.sse_event(wire.chat_chunk(last_text, seq.finish_reason, seq.input_length, generated))
            final += wire.DONE_EVENT
        return chunk(final)

    def full_response(self, job: Job, seq: Sequence, now: float) -> Any:
        """The JSON body of a non-streaming response."""
        text = self.generated_text(seq, job)
        generated = len(seq.token_ids)
        if job.kind == COMPLETION:
            return wire.completion_response(text, seq.finish_reason, seq.input_length, generated)
        if job.kind == CHAT:
            return wire.chat_response(
                text,
                seq.finish_reason,
                seq.input_length,
                generated,
                self.model_id,
                int(now),
                self.system_fingerprint,
            )
        details = None
        if job.params.details or job.params.decoder_input_details:
            details = wire.generate_details(
                seq.finish_reason,
                seq.input_length,
                [self.token(t) for t in seq.token_ids],
                job.seed,
                prefill=self.prefill_tokens(job.prompt_ids) if job.params.decoder_input_details else None,
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
