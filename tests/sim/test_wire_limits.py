"""Both sides of every limit `wire.py` mirrors: a value at the limit passes, one just past it is refused with
LoRAX's message. The limits are those of predibase/lorax `router/src/validation.rs` @a7394ba3 (line numbers
below), serde's integer ranges of `GenerateParameters` (lib.rs) and axum's 2 MiB body limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess
from loraxkit.wire import BodyRejection, GenerateParams, Limits, LoraxError

# Limits unlike the defaults (4 stop sequences, best_of 2, 4095 input tokens), so a rule that reads the
# wrong limit or a hard-coded default is caught.
MAX_STOP, MAX_BEST_OF, MAX_INPUT = 3, 3, 100


def _validate(streaming: bool = False, inputs: str = "hi", **params: Any) -> None:
    wire.validate_params(
        inputs,
        GenerateParams(**params),
        streaming=streaming,
        max_best_of=MAX_BEST_OF,
        max_stop_sequences=MAX_STOP,
        max_input_length=MAX_INPUT,
    )


def _refusal(streaming: bool = False, inputs: str = "hi", **params: Any) -> str:
    with pytest.raises(LoraxError) as caught:
        _validate(streaming, inputs, **params)
    assert (caught.value.error_type, caught.value.status) == ("validation", 422)
    assert caught.value.message.startswith("Input validation error: ")
    return caught.value.message.removeprefix("Input validation error: ")


# (rule, parameters at the limit: valid in LoRAX, parameters just past it, LoRAX's message)
LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # validation.rs:256-259 `temperature < 0.0` is refused: 0 (greedy) is valid
    ("temperature", {"temperature": 0.0}, {"temperature": -1e-6}, "`temperature` must be non-negative"),
    # :261-264 `repetition_penalty <= 0.0`
    (
        "repetition_penalty",
        {"repetition_penalty": 1e-6},
        {"repetition_penalty": 0.0},
        "`repetition_penalty` must be strictly positive",
    ),
    # :266-269 / :271-274 `(-2.0..=2.0).contains(..)`: both ends are valid
    (
        "frequency_penalty max",
        {"frequency_penalty": 2.0},
        {"frequency_penalty": 2.0001},
        "`frequency_penalty` must be >= -2.0 and <= 2.0",
    ),
    (
        "frequency_penalty min",
        {"frequency_penalty": -2.0},
        {"frequency_penalty": -2.0001},
        "`frequency_penalty` must be >= -2.0 and <= 2.0",
    ),
    (
        "presence_penalty max",
        {"presence_penalty": 2.0},
        {"presence_penalty": 2.0001},
        "`presence_penalty` must be >= -2.0 and <= 2.0",
    ),
    (
        "presence_penalty min",
        {"presence_penalty": -2.0},
        {"presence_penalty": -2.0001},
        "`presence_penalty` must be >= -2.0 and <= 2.0",
    ),
    # :278-285 `value <= 0.0 || value > 1.0`: top_p 1.0 (many clients' default) is valid
    ("top_p max", {"top_p": 1.0}, {"top_p": 1.0001}, "`top_p` must be > 0.0 and < 1.0"),
    ("top_p min", {"top_p": 1e-6}, {"top_p": 0.0}, "`top_p` must be > 0.0 and < 1.0"),
    # :287-294 `value <= 0.0 || value >= 1.0`: typical_p 1.0 is refused
    ("typical_p max", {"typical_p": 0.9999}, {"typical_p": 1.0}, "`typical_p` must be > 0.0 and < 1.0"),
    ("typical_p min", {"typical_p": 1e-6}, {"typical_p": 0.0}, "`typical_p` must be > 0.0 and < 1.0"),
    # :296-303 / :305-312 `value <= 0`
    ("top_k", {"top_k": 1}, {"top_k": 0}, "`top_k` must be strictly positive"),
    (
        "return_k_alternatives",
        {"return_k_alternatives": 1},
        {"return_k_alternatives": 0},
        "`return_k_alternatives` must be strictly positive",
    ),
    # :314-316 `max_new_tokens == 0`
    (
        "max_new_tokens",
        {"max_new_tokens": 1},
        {"max_new_tokens": 0},
        "`max_new_tokens` must be strictly positive",
    ),
    # :318-323 `stop_sequences.len() > max_stop_sequences`: exactly the maximum is valid
    (
        "stop",
        {"stop": ["a"] * MAX_STOP},
        {"stop": ["a"] * (MAX_STOP + 1)},
        f"`stop` supports up to {MAX_STOP} stop sequences. Given: {MAX_STOP + 1}",
    ),
    # validate_best_of (:414-423) `best_of > max_best_of`: best_of == max_best_of is valid (with sampling)
    (
        "best_of",
        {"best_of": MAX_BEST_OF, "do_sample": True},
        {"best_of": MAX_BEST_OF + 1, "do_sample": True},
        f"`best_of` must be > 0 and <= {MAX_BEST_OF}. Given: {MAX_BEST_OF + 1}",
    ),
    # :252-254 best_of > 1 needs sampling; any one sampling parameter is enough
    (
        "best_of sampling",
        {"best_of": 2, "top_k": 5},
        {"best_of": 2},
        "you must use sampling when `best_of` is > 1",
    ),
    (
        "best_of sampling p",
        {"best_of": 2, "typical_p": 0.5},
        {"best_of": 2, "top_p": None},
        "you must use sampling when `best_of` is > 1",
    ),
    # :326-334 a seed is refused only with best_of > 1
    (
        "seed",
        {"seed": 7, "best_of": 1},
        {"seed": 7, "best_of": 2, "do_sample": True},
        "`seed` must not be set when `best_of` > 1",
    ),
    # :341-349 `value == 0 || value > max_input_length`: truncate == max_input_length is valid
    (
        "truncate max",
        {"truncate": MAX_INPUT},
        {"truncate": MAX_INPUT + 1},
        f"`truncate` must be strictly positive and less than {MAX_INPUT}. Given: {MAX_INPUT + 1}",
    ),
    (
        "truncate min",
        {"truncate": 1},
        {"truncate": 0},
        f"`truncate` must be strictly positive and less than {MAX_INPUT}. Given: 0",
    ),
    # :225-227 adapter_id and merged adapters are exclusive (either alone is valid)
    (
        "adapters",
        {"merged_adapters": {"ids": ["a"], "weights": [1.0]}},
        {"merged_adapters": {"ids": ["a"], "weights": [1.0]}, "adapter_id": "b"},
        "at most one of `adapter_id` or `adapters` may be provided",
    ),
]


@pytest.mark.parametrize(("rule", "at_limit", "past_limit", "message"), LIMITS, ids=[r[0] for r in LIMITS])
def test_a_value_at_the_limit_passes_and_one_past_it_is_refused(
    rule: str, at_limit: dict[str, Any], past_limit: dict[str, Any], message: str
) -> None:
    _validate(**at_limit)
    assert _refusal(**past_limit) == message


def test_inputs_of_one_character_pass_and_empty_inputs_are_refused() -> None:
    _validate(inputs="x")
    assert _refusal(inputs="") == "`inputs` cannot be empty"


def test_streaming_takes_best_of_one_only_and_no_decoder_input_details() -> None:
    _validate(streaming=True, best_of=1)
    _validate(streaming=False, decoder_input_details=True)
    assert (
        _refusal(streaming=True, best_of=2, do_sample=True)
        == "`best_of` != 1 is not supported when streaming tokens"
    )
    assert (
        _refusal(streaming=True, decoder_input_details=True)
        == "`decoder_input_details` == true is not supported when streaming tokens"
    )


def test_best_of_is_refused_outright_when_the_router_allows_one() -> None:
    wire.validate_params("hi", GenerateParams(best_of=1), streaming=False, max_best_of=1,
                         max_stop_sequences=4, max_input_length=10)  # fmt: skip
    with pytest.raises(LoraxError, match="`best_of` != 1 is not allowed for this endpoint"):
        wire.validate_params("hi", GenerateParams(best_of=2, do_sample=True), streaming=False, max_best_of=1,
                             max_stop_sequences=4, max_input_length=10)  # fmt: skip


# validation.rs:130-149: inputs + max_new_tokens <= max_total_tokens, inputs <= max_input_length.
LENGTHS = Limits(max_input_length=90, max_total_tokens=100, max_stop_sequences=4, max_best_of=2)


@pytest.mark.parametrize(
    ("input_length", "max_new_tokens", "effective"),
    [(60, 40, 40), (90, 10, 10), (90, None, 10), (1, None, 99), (89, 11, 11)],
)
def test_lengths_at_the_limit_pass(input_length: int, max_new_tokens: int | None, effective: int) -> None:
    assert wire.validate_lengths(input_length, max_new_tokens, LENGTHS) == effective


@pytest.mark.parametrize(
    ("input_length", "max_new_tokens", "message"),
    [
        (
            60,
            41,
            "`inputs` tokens + `max_new_tokens` must be <= 100. "
            "Given: 60 `inputs` tokens and 41 `max_new_tokens`",
        ),
        (91, 9, "`inputs` must have less than 90 tokens. Given: 91"),
        (91, None, "`inputs` must have less than 90 tokens. Given: 91"),
    ],
)
def test_lengths_past_the_limit_are_refused(
    input_length: int, max_new_tokens: int | None, message: str
) -> None:
    with pytest.raises(LoraxError) as caught:
        wire.validate_lengths(input_length, max_new_tokens, LENGTHS)
    assert caught.value.message == "Input validation error: " + message


def test_an_omitted_max_new_tokens_fills_the_rest_of_the_total() -> None:
    # validation.rs:388 `max_total_tokens - input_length`; the wire keeps at least one token.
    assert wire.validate_lengths(30, None, Limits(max_input_length=4095, max_total_tokens=4096)) == 4066
    assert wire.validate_lengths(4095, None, Limits(max_input_length=4095, max_total_tokens=4096)) == 1


# serde's integer types of GenerateParameters (lib.rs): the range's ends pass, one past is a 422 rejection.
INT_FIELDS = [
    ("max_new_tokens", 0, 2**32 - 1, "u32"),
    ("top_k", -(2**31), 2**31 - 1, "i32"),
    ("return_k_alternatives", -(2**31), 2**31 - 1, "i32"),
    ("seed", 0, 2**64 - 1, "u64"),
    ("truncate", 0, 2**64 - 1, "usize"),
    ("best_of", 0, 2**64 - 1, "usize"),
]


@pytest.mark.parametrize(("key", "low", "high", "kind"), INT_FIELDS, ids=[f[0] for f in INT_FIELDS])
def test_integer_parameters_take_their_whole_range_and_nothing_past_it(
    key: str, low: int, high: int, kind: str
) -> None:
    for value in (low, high):
        assert getattr(wire.parse_generate_params({key: value}), key) == value
    for value in (low - 1, high + 1):
        with pytest.raises(BodyRejection) as caught:
            wire.parse_generate_params({key: value})
        assert caught.value.status == 422
        assert caught.value.message.endswith(
            f"parameters.{key}: invalid value: integer `{value}`, expected {kind}"
        )


def test_the_openai_routes_wrap_a_negative_max_tokens_like_a_u32_cast() -> None:
    # lib.rs `max_tokens.map(|x| x as u32)`: -1 becomes 4294967295, which then fails the length check.
    _, params, _ = wire.parse_completion_body({"model": "m", "prompt": "p", "max_tokens": -1}, "base")
    assert params.max_new_tokens == 2**32 - 1
    _, params, _ = wire.parse_completion_body({"model": "m", "prompt": "p", "max_tokens": 0}, "base")
    assert params.max_new_tokens == 0


def test_chat_temperature_zero_means_greedy_and_any_other_value_samples() -> None:
    def chat(temperature: float | None) -> GenerateParams:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": temperature}
        return wire.parse_chat_body(body, "base")[1]

    assert (chat(0.0).do_sample, chat(0.0).temperature) == (False, None)
    assert (chat(0.01).do_sample, chat(0.01).temperature) == (True, 0.01)
    assert (chat(None).do_sample, chat(None).temperature) == (True, None)


def _padded_body(size: int) -> bytes:
    """A valid /generate JSON body of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = b'{"inputs": "hi", "parameters": {"max_new_tokens": 1}}'
    return body + b" " * (size - len(body))


def test_a_body_of_exactly_2_mib_is_read_and_one_byte_more_is_refused(sim: SimulatorProcess) -> None:
    # axum's DefaultBodyLimit: 2 MiB; a longer body is answered 413 before any parsing.
    headers = {"content-type": "application/json"}
    ok = httpx.post(sim.base_url + "/generate", content=_padded_body(wire.MAX_BODY_BYTES), headers=headers)
    assert ok.status_code == 200, ok.text
    assert wire.MAX_BODY_BYTES == 2 * 1024 * 1024
    big = httpx.post(
        sim.base_url + "/generate", content=_padded_body(wire.MAX_BODY_BYTES + 1), headers=headers
    )
    assert (big.status_code, big.text) == (413, "Failed to buffer the request body: length limit exceeded")


# server.rs:1736-1748 `impl From<InferError> for (StatusCode, ...)` with infer.rs:1733-1745 `error_type()`,
# plus the health check (server.rs:604-609) and /tokenize without a fast tokenizer (server.rs:2072-2077).
LORAX_ERROR_STATUS = {
    "generation": 424,
    "overloaded": 429,
    "validation": 422,
    "incomplete_generation": 500,
    "template_error": 422,
    "embedding_failure": 500,
    "classification_failure": 500,
    "tool_error": 422,
    "missing_template_variable": 422,
    "healthcheck": 503,
    "no fast tokenizer": 404,
}


@pytest.mark.parametrize(("error_type", "status"), sorted(LORAX_ERROR_STATUS.items()))
def test_every_lorax_error_type_has_loraxs_status(error_type: str, status: int) -> None:
    assert wire.LoraxError(error_type, "x").status == status
    assert wire.ERROR_STATUS[error_type] == status


def test_an_unknown_error_type_is_a_500() -> None:
    assert wire.LoraxError("something_new", "x").status == 500
