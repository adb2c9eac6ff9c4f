"""A small client of Prometheus's HTTP API (v1): instant and range queries, active alerts.

Errors name the URL and what Prometheus said, so a wrong `--prometheus-url` or a bad query reads clearly.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

# The standard library's client, not httpx: this module also runs inside Locust, whose gevent patching
# removes select.epoll, and httpcore's optional `import trio` then fails wherever trio is installed.


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused the query."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value)


class PromAPI:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _fetch(self, path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """(HTTP status, body); a status >= 400 is returned, not raised (Prometheus explains it in JSON)."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url} ({exc})") from None

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        status, raw = self._fetch(path, params)
        try:
            body = json.loads(raw)
        except ValueError:
            raise PrometheusError(
                f"{self.url}{path} answered HTTP {status} without JSON: is it a Prometheus server?"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(
                f"{self.url}{path} {params or ''}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def ready(self) -> bool:
        try:
            return self._fetch("/-/ready")[0] == 200
        except PrometheusError:
            return False

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr!r} is a {data['resultType']}, not an instant vector")
        return [Series(r["metric"], [(float(r["value"][0]), float(r["value"][1]))]) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return [Series(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with their labels, state and activeAt."""
        return list(self._get("/api/v1/alerts")["alerts"])
