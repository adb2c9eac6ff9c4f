"""The native (/generate) request side of the wire format, in-process and table-driven: LoRAX's error types
with their statuses and texts, axum's body rejections, serde's type check of every kind of field (the wrong
type, null, a missing key), the defaults of `GenerateParameters`, the simulator's `--lenient` mapping, the
response-format and merge checks, the adapter-source rule and the adapter-count rule. Expected values come
from predibase/lorax @a7394ba3 (file:line cited beside each table), serde's own message format, or, for the
lenient mapping (not LoRAX's), docs/simulator.md's table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from loraxkit import wire
from loraxkit.wire import BodyRejection, GenerateParams, LoraxError

PREFIX = "Failed to deserialize the JSON body into the target type: "


def _body_refusal(body: Any, *, lenient: bool = False) -> BodyRejection:
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_body(body, lenient=lenient)
    return caught.value


def _data_refusal(body: Any, *, lenient: bool = False) -> str:
    """serde's message (after axum's prefix) for a body that parses as JSON but not as the target type."""
    rejection = _body_refusal(body, lenient=lenient)
    assert rejection.status == 422  # axum 0.7.7 JsonDataError: UNPROCESSABLE_ENTITY
    assert str(rejection) == rejection.message
    assert rejection.message.startswith(PREFIX)
    return rejection.message.removeprefix(PREFIX)


def _params(parameters: Any, *, lenient: bool = False) -> GenerateParams:
    return wire.parse_generate_body({"inputs": "x", "parameters": parameters}, lenient=lenient)[1]


# ---------------------------------------------------------------- LoRAX's errors and axum's rejections
# (error, error_type, status, message): infer.rs:1710-1729 `#[error(...)]` texts, server.rs:1736-1758 statuses
# @a7394ba3 (GenerationError 424 FAILED_DEPENDENCY, Overloaded 429, Validation/Template/Tool 422)
ERRORS: list[tuple[Callable[[], LoraxError], str, int, str]] = [
    (lambda: wire.validation_error("d"), "validation", 422, "Input validation error: d"),
    (lambda: wire.generation_error("d"), "generation", 424, "Request failed during generation: d"),
    (wire.overloaded_error, "overloaded", 429, "Model is overloaded"),
    (lambda: wire.template_error("d"), "template_error", 422, "Failed applying chat template to inputs: d"),
    (lambda: wire.tool_error("d"), "tool_error", 422, "Tool error: d"),
]


@pytest.mark.parametrize(("make", "error_type", "status", "message"), ERRORS, ids=[e[1] for e in ERRORS])
def test_each_lorax_error_has_its_type_status_and_text(
    make: Callable[[], LoraxError], error_type: str, status: int, message: str
) -> None:
    error = make()  # made in the test, so the mutation runner's per-test coverage sees the constructor
    assert (error.error_type, error.status, error.message) == (error_type, status, message)
    assert (str(error), error.args) == (message, (message,))
    assert error.body() == {"error": message, "error_type": error_type}


# axum 0.7.7 extract/rejection.rs: JsonSyntaxError 400, JsonDataError 422, MissingJsonContentType 415,
# the body limit's LengthLimitError 413, each a plain-text body of the rejection's text
REJECTIONS: list[tuple[Callable[[], BodyRejection], int, str]] = [
    (lambda: wire.json_syntax_rejection("d"), 400, "Failed to parse the request body as JSON: d"),
    (lambda: wire.json_data_rejection("d"), 422, PREFIX + "d"),
    (lambda: wire.MISSING_JSON_CONTENT_TYPE, 415, "Expected request with `Content-Type: application/json`"),
    (lambda: wire.BODY_TOO_LARGE, 413, "Failed to buffer the request body: length limit exceeded"),
]


@pytest.mark.parametrize(("make", "status", "message"), REJECTIONS, ids=[str(r[1]) for r in REJECTIONS])
def test_each_body_rejection_has_axums_status_and_text(
    make: Callable[[], BodyRejection], status: int, message: str
) -> None:
    rejection = make()
    assert (rejection.status, rejection.message, str(rejection)) == (status, message, message)


# ---------------------------------------------------------------- GenerateRequest: the body and `inputs`
# lib.rs:329-340 @a7394ba3 `GenerateRequest { inputs: String, #[serde(default)] parameters }`; serde's texts:
# `invalid type: <unexpected>, expected <what the visitor wants>`, `missing field `x``, null shown as "null"
BODIES = [
    ("x", 'invalid type: string "x", expected struct GenerateRequest'),
    (5, "invalid type: integer `5`, expected struct GenerateRequest"),
    (None, "invalid type: null, expected struct GenerateRequest"),
    ({}, "missing field `inputs`"),
    ({"parameters": {}}, "missing field `inputs`"),
    ({"inputs": 5}, "inputs: invalid type: integer `5`, expected a string"),
    ({"inputs": ["x"]}, "inputs: invalid type: sequence, expected a string"),
    ({"inputs": None}, "inputs: invalid type: null, expected a string"),
    (
        {"inputs": "x", "parameters": "p"},
        'parameters: invalid type: string "p", expected struct GenerateParameters',
    ),
    (
        {"inputs": "x", "parameters": 1.5},
        "parameters: invalid type: floating point `1.5`, expected struct GenerateParameters",
    ),
    (
        {"inputs": "x", "parameters": True},
        "parameters: invalid type: boolean `true`, expected struct GenerateParameters",
    ),
]


@pytest.mark.parametrize(("body", "message"), BODIES, ids=[b[1] for b in BODIES])
def test_a_generate_body_of_the_wrong_shape_is_refused_with_serdes_text(body: Any, message: str) -> None:
    assert _data_refusal(body) == message
    assert _data_refusal(body, lenient=True) == message  # --lenient maps only its table's cases


def test_a_well_formed_body_gives_its_inputs_and_the_default_stream() -> None:
    assert wire.parse_generate_body({"inputs": "", "parameters": {}})[0::2] == ("", False)
    assert wire.parse_generate_body({"inputs": "hi", "stream": True})[0::2] == ("hi", True)


def test_parameters_parsed_directly_are_checked_the_same_and_not_leniently_by_default() -> None:
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_params("p", path="q")
    assert caught.value.message == PREFIX + 'q: invalid type: string "p", expected struct GenerateParameters'
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_params({"stop": "x"})  # lenient is opt-in
    assert caught.value.message == PREFIX + 'parameters.stop: invalid type: string "x", expected a sequence'
    assert wire.parse_generate_params({"stop": "x"}, lenient=True).stop == ["x"]
    assert wire.parse_generate_params(None) == GenerateParams()


# ---------------------------------------------------------------- GenerateParameters: defaults and kinds
def test_the_defaults_of_a_missing_parameters_key_are_loraxs() -> None:
    # lib.rs:300-327 @a7394ba3 `default_parameters()`: every flag false, every option None, no stop sequence
    params = wire.parse_generate_body({"inputs": "x"})[1]
    flags = (
        "do_sample",
        "ignore_eos_token",
        "watermark",
        "details",
        "decoder_input_details",
        "apply_chat_template",
    )
    assert {f: getattr(params, f) for f in flags} == dict.fromkeys(flags, False)
    options = ("adapter_id", "adapter_source", "merged_adapters", "api_token", "best_of", "temperature",
               "repetition_penalty", "frequency_penalty", "presence_penalty", "top_k", "top_p", "typical_p",
               "max_new_tokens", "return_full_text", "truncate", "return_k_alternatives", "seed",
               "response_format")  # fmt: skip
    assert {o: getattr(params, o) for o in options} == dict.fromkeys(options)
    assert params.stop == []
    assert _params({}) == params


# (parameters accepted, their parsed values, parameters refused, serde's text): lib.rs:165-298 @a7394ba3 field
# types (Option<f32>, Option<i32>, Option<u32>, Option<usize>, Option<u64>, bool, Vec<String>, Option<String>)
KINDS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    (
        {"temperature": 1},
        {"temperature": True},
        "parameters.temperature: invalid type: boolean `true`, expected f32",
    ),
    ({"top_p": 0.5}, {"top_p": "0.5"}, 'parameters.top_p: invalid type: string "0.5", expected f32'),
    ({"best_of": 1}, {"best_of": True}, "parameters.best_of: invalid type: boolean `true`, expected usize"),
    ({"top_k": -1}, {"top_k": 1.5}, "parameters.top_k: invalid type: floating point `1.5`, expected i32"),
    ({"seed": 2}, {"seed": 2.5}, "parameters.seed: invalid type: floating point `2.5`, expected u64"),
    (
        {"max_new_tokens": 8},
        {"max_new_tokens": "8"},
        'parameters.max_new_tokens: invalid type: string "8", expected u32',
    ),
    ({"truncate": 3}, {"truncate": [3]}, "parameters.truncate: invalid type: sequence, expected usize"),
    (
        {"return_k_alternatives": 2},
        {"return_k_alternatives": {}},
        "parameters.return_k_alternatives: invalid type: map, expected i32",
    ),
    ({"details": True}, {"details": 1}, "parameters.details: invalid type: integer `1`, expected a boolean"),
    (
        {"do_sample": False},
        {"do_sample": "false"},
        'parameters.do_sample: invalid type: string "false", expected a boolean',
    ),
    (
        {"adapter_id": "a"},
        {"adapter_id": 5},
        "parameters.adapter_id: invalid type: integer `5`, expected a string",
    ),
    (
        {"stop": ["a", "b"]},
        {"stop": 1.5},
        "parameters.stop: invalid type: floating point `1.5`, expected a sequence",
    ),
    ({"stop": []}, {"stop": None}, "parameters.stop: invalid type: null, expected a sequence"),
    (
        {"watermark": True},
        {"watermark": None},
        "parameters.watermark: invalid type: null, expected a boolean",
    ),
]


@pytest.mark.parametrize(("accepted", "refused", "message"), KINDS, ids=[k[2].split(":")[0] for k in KINDS])
def test_a_parameter_of_its_type_is_kept_and_one_of_another_type_is_refused(
    accepted: dict[str, Any], refused: dict[str, Any], message: str
) -> None:
    ((key, value),) = accepted.items()
    assert getattr(_params(accepted), key) == value
    assert _data_refusal({"inputs": "x", "parameters": refused}) == message


@pytest.mark.parametrize("stop", [["a", 1], ["a", None], [["a"]]], ids=str)
def test_a_stop_list_with_anything_but_strings_is_refused(stop: list[Any]) -> None:
    # `stop: Vec<String>` (lib.rs:270 @a7394ba3): each element must be a string. serde names the element
    # (`parameters.stop[1]: ... expected a string`); only the refusal and the field are asserted here.
    assert _data_refusal({"inputs": "x", "parameters": {"stop": stop}}).startswith("parameters.stop")


def test_a_null_optional_parameter_is_none_like_a_missing_one() -> None:
    # `Option<T>` with `#[serde(default)]`: null and a missing key are both None
    nulls = {"temperature": None, "best_of": None, "adapter_id": None, "merged_adapters": None,
             "response_format": None, "return_full_text": None}  # fmt: skip
    assert _params(nulls) == _params({})


# ---------------------------------------------------------------- --lenient (the simulator's own mapping)
# docs/simulator.md "Leniency switch": (parameters, what --lenient reads, what plain LoRAX does: the parsed
# value, or serde's refusal text)
LENIENT: list[tuple[str, dict[str, Any], Any, Any]] = [
    ("stop", {"stop": None}, [], "parameters.stop: invalid type: null, expected a sequence"),
    ("stop", {"stop": "x"}, ["x"], 'parameters.stop: invalid type: string "x", expected a sequence'),
    ("stop", {"stop": ["x", "y"]}, ["x", "y"], ["x", "y"]),
    ("stop", {}, [], []),
    ("ignore_eos_token", {"ignore_eos": True}, True, False),  # LoRAX ignores the unknown key
    ("ignore_eos_token", {"ignore_eos": True, "ignore_eos_token": False}, False, False),
    ("ignore_eos_token", {"ignore_eos": False, "ignore_eos_token": True}, True, True),
    ("ignore_eos_token", {"ignore_eos_token": True}, True, True),
    ("details", {"details": None}, False, "parameters.details: invalid type: null, expected a boolean"),
    ("details", {"details": True}, True, True),
    (
        "do_sample",
        {"do_sample": None, "details": True},
        False,
        "parameters.do_sample: invalid type: null, expected a boolean",
    ),
    (
        "apply_chat_template",
        {"apply_chat_template": None},
        False,
        "parameters.apply_chat_template: invalid type: null, expected a boolean",
    ),
    ("temperature", {"temperature": None}, None, None),
]


@pytest.mark.parametrize(("key", "parameters", "lenient", "strict"), LENIENT, ids=lambda v: str(v)[:40])
def test_lenient_maps_what_clients_mean_and_plain_parsing_stays_loraxs(
    key: str, parameters: dict[str, Any], lenient: Any, strict: Any
) -> None:
    assert getattr(_params(parameters, lenient=True), key) == lenient
    if isinstance(strict, str):
        assert _data_refusal({"inputs": "x", "parameters": parameters}) == strict
    else:
        assert getattr(_params(parameters), key) == strict


def test_lenient_leaves_a_set_boolean_alone_and_the_callers_dict_unchanged() -> None:
    raw = {"details": True, "do_sample": True, "stop": None, "ignore_eos": True}
    params = _params(raw, lenient=True)
    assert (params.details, params.do_sample, params.stop, params.ignore_eos_token) == (True, True, [], True)
    assert raw == {"details": True, "do_sample": True, "stop": None, "ignore_eos": True}


# ---------------------------------------------------------------- response_format (lib.rs:526-553 @a7394ba3)
FORMATS = [
    ({"type": "JsonObject"}, {"type": "json_object", "schema": wire.default_json_schema()}),
    (
        {"type": "json_schema", "schema": {"type": "string"}},
        {"type": "json_schema", "schema": {"type": "string"}},
    ),
    ({"type": "Text", "schema": None}, {"type": "text", "schema": None}),
]


@pytest.mark.parametrize(("given", "parsed"), FORMATS, ids=[f[0]["type"] for f in FORMATS])
def test_a_response_format_is_read_by_its_variant_or_alias_with_the_default_schema(
    given: dict[str, Any], parsed: dict[str, Any]
) -> None:
    assert _params({"response_format": given}).response_format == parsed


def test_a_response_format_needs_a_known_type() -> None:
    def refusal(response_format: dict[str, Any]) -> str:
        return _data_refusal({"inputs": "x", "parameters": {"response_format": response_format}})

    # serde: a struct's required field missing; an enum's unknown variant (the expected list follows)
    assert refusal({"schema": {}}) == "parameters.response_format: missing field `type`"
    assert refusal({"type": "xml"}).startswith(
        "parameters.response_format.type: unknown variant `xml`, expected "
    )
    # A non-string `type` is refused and named. (serde_json's deserialize_enum calls anything but a string or
    # map a syntax error, "expected value", which axum answers 400: only the refusal is asserted.)
    with pytest.raises(BodyRejection, match=r"parameters\.response_format\.type: "):
        _params({"response_format": {"type": []}})


# ---------------------------------------------------------------- merged_adapters (lib.rs:83-99 @a7394ba3)
def test_a_merges_density_is_a_number_never_null() -> None:
    # `#[serde(default)] density: f32`: missing is 0.0; null is refused like any f32
    assert _params({"merged_adapters": {"ids": ["a"], "density": 0.5}}).merged_adapters == {
        "ids": ["a"],
        "density": 0.5,
    }
    assert _params({"merged_adapters": {"ids": ["a"]}}).merged_adapters == {"ids": ["a"]}
    body = {"inputs": "x", "parameters": {"merged_adapters": {"ids": ["a"], "density": None}}}
    assert _data_refusal(body) == "parameters.merged_adapters.density: invalid type: null, expected f32"
    body["parameters"]["merged_adapters"]["density"] = "0.5"
    assert (
        _data_refusal(body) == 'parameters.merged_adapters.density: invalid type: string "0.5", expected f32'
    )


# ---------------------------------------------------------------- adapter source (client.rs:251-270)
@pytest.mark.parametrize("source", ["hub", "HUB", "s3", "S3", "Local", "pbase", "PBase"])
def test_an_adapter_source_of_the_proto_enum_in_any_case_is_accepted(source: str) -> None:
    # proto/generate.proto:375-384: HUB, S3, LOCAL, PBASE, looked up after `to_uppercase()`
    assert wire.adapter_source_error(source, "a") is None


@pytest.mark.parametrize("source", ["gcs", "hubs", "", "huggingface"])
def test_any_other_adapter_source_fails_the_download_as_a_generation_error(source: str) -> None:
    # ClientError::Generation "Server error: {0}" (client/src/lib.rs:29) inside InferError::GenerationError
    error = wire.adapter_source_error(source, "a,b")
    assert error is not None
    assert (error.error_type, error.status) == ("generation", 424)
    assert error.message == (
        "Request failed during generation: "
        f"Server error: Invalid source '{source}' when downloading adapter 'a,b'"
    )


# ---------------------------------------------------------------- sampling (tokens.py:313-335 @a7394ba3)
def test_do_sample_alone_samples() -> None:
    # flash_causal_lm.py:2044 reports `seed if do_sample else None`: do_sample with no warper still samples
    assert wire.samples(GenerateParams(do_sample=True)) is True
    assert wire.samples(GenerateParams()) is False


# ---------------------------------------------------------------- adapters in validate_params
def _validate(**params: Any) -> None:
    wire.validate_params("hi", GenerateParams(**params), streaming=False, max_best_of=2, max_stop_sequences=4,
                         max_input_length=10)  # fmt: skip


def _validation_refusal(**params: Any) -> str:
    with pytest.raises(LoraxError) as caught:
        _validate(**params)
    assert (caught.value.error_type, caught.value.status) == ("validation", 422)
    return caught.value.message.removeprefix("Input validation error: ")


# validation.rs:226-243 @a7394ba3: adapter_id or adapters, not both; adapters: >= 1 id and one weight per id
ADAPTERS: list[tuple[dict[str, Any], str | None]] = [
    ({"adapter_id": "a"}, None),
    ({"merged_adapters": {"ids": ["a"], "weights": [1.0]}}, None),
    ({"merged_adapters": {"ids": ["a", "b"], "weights": [0.5, 0.5]}}, None),
    (
        {"merged_adapters": {"ids": ["a", "b"], "weights": [1.0]}},
        "number of adapter IDs must match number of adapter weights",
    ),
    (
        {"merged_adapters": {"ids": ["a"], "weights": [1.0, 2.0]}},
        "number of adapter IDs must match number of adapter weights",
    ),
    ({"merged_adapters": {"ids": ["a"]}}, "number of adapter IDs must match number of adapter weights"),
    (
        {"merged_adapters": {"ids": [], "weights": []}},
        "at least one adapter ID must be provided when setting `adapters`",
    ),
    (
        {"adapter_id": "a", "merged_adapters": {"ids": ["a"], "weights": [1.0]}},
        "at most one of `adapter_id` or `adapters` may be provided",
    ),
]


@pytest.mark.parametrize(("params", "message"), ADAPTERS, ids=lambda v: str(v)[:50])
def test_adapter_parameters_one_id_or_a_merge_with_one_weight_per_id(
    params: dict[str, Any], message: str | None
) -> None:
    if message is None:
        _validate(**params)
    else:
        assert _validation_refusal(**params) == message
