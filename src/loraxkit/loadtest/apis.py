"""Request bodies for the four LoRAX APIs the harness drives.

The adapter goes where LoRAX reads it: `parameters.adapter_id` on the native API, `model` on the OpenAI API
(where the base model is `""` or the base model id). Lengths use LoRAX's field names (`max_new_tokens`,
`ignore_eos_token`; the OpenAI `ignore_eos` is silently ignored by LoRAX).
"""

from __future__ import annotations

import json
from typing import Any

from loraxkit import wire
from loraxkit.loadtest.workload import PlannedRequest

STREAMING = frozenset({wire.ROUTE_GENERATE_STREAM, wire.ROUTE_COMPLETIONS, wire.ROUTE_CHAT})
SUPPORTED_ROUTES = (wire.ROUTE_GENERATE_STREAM, wire.ROUTE_GENERATE, wire.ROUTE_CHAT, wire.ROUTE_COMPLETIONS)


def request_body(route: str, req: PlannedRequest, base_model_id: str = "") -> dict[str, Any]:
    """The JSON body for `req` on `route`."""
    if route in (wire.ROUTE_GENERATE_STREAM, wire.ROUTE_GENERATE):
        params: dict[str, Any] = {
            "max_new_tokens": req.max_new_tokens,
            "ignore_eos_token": req.ignore_eos,
            "details": True,
        }
        if req.adapter:
            params["adapter_id"] = req.adapter
        return {"inputs": req.prompt.text, "parameters": params}
    body: dict[str, Any] = {
        "model": req.adapter or base_model_id,
        "max_tokens": req.max_new_tokens,
        "ignore_eos_token": req.ignore_eos,
        "stream": True,
    }
    if route == wire.ROUTE_CHAT:
        body["messages"] = [{"role": "user", "content": req.prompt.text}]
    elif route == wire.ROUTE_COMPLETIONS:
        body["prompt"] = req.prompt.text
    else:
        raise ValueError(f"route {route!r} is not one of {', '.join(SUPPORTED_ROUTES)}")
    return body


def encode_body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
