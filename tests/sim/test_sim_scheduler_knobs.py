"""Each scheduler knob set on its own and its effect measured through the API, the trace and /metrics,
against the rule in LoRAX's router (predibase/lorax @a7394ba3: infer.rs `batching_task`, scheduler.rs
`next_batch`, queue.rs `update_adapters`/`next_entry`, loader.rs, block_allocator.rs).

Every expectation is an order or a count of steps read from the trace (`token_steps`: the simulated GPU
step each token ended), never a wall-clock duration with an upper bound: these hold on a busy machine."""

from __future__ import annotations

import json

import httpx
import pytest
from sim_helpers import metric, read_replies, send_now, sim_state, wait_trace

from loraxkit.sim.process import SimulatorProcess

QUIET = ("--profile", "synthetic", "--prefill-ms", "1", "--log-level", "WARNING")


def _body(prompt: str, new: int, adapter: str | None = None) -> bytes:
    params: dict[str, object] = {"max_new_tokens": new}
    if adapter:
        params["adapter_id"] = adapter
    return json.dumps({"inputs": prompt, "parameters": params}).encode()


def _by_id(records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["request_id"]): r for r in records}


def _f(record: dict[str, object], key: str) -> float:
    value = record[key]
    assert isinstance(value, float)
    return value


def test_adapter_load_time_on_first_use_and_one_download_at_a_time() -> None:
    load_ms = 300
    with SimulatorProcess(*QUIET, "--decode-ms", "2", "--adapter-load-ms", str(load_ms), trace=True) as proc:
        ids = ["a0", "a1", "b0", "b1"]
        bodies = [
            _body("p", 4, "org/a"),
            _body("q", 4, "org/a"),
            _body("p", 4, "org/b"),
            _body("q", 4, "org/b"),
        ]
        replies = read_replies(send_now(proc.port, bodies, ids))
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        # x-queue-time (server.rs:808-811: response.start - response.queued) holds the download wait
        queue_ms = {
            i: int(r.split(b"x-queue-time: ")[1].split(b"\r\n")[0]) for i, r in zip(ids, replies, strict=True)
        }
        warm = httpx.post(
            proc.base_url + "/generate",
            content=_body("r", 2, "org/a"),
            headers={"content-type": "application/json", "x-request-id": "a-warm"},
        )
        assert warm.status_code == 200
        state = sim_state(proc.base_url)
        records = _by_id(wait_trace(proc.trace_path, request_ids={*ids, "a-warm"}))
    first = min(_f(r, "arrival") for r in records.values())
    # the first use of an adapter waits for its download; loader.rs:118-282 runs the downloads one after
    # the other (queued as each adapter's queue is created, scheduler.rs:231-244): the second adapter to
    # download is ready a whole load time after the first
    starts = sorted(min(_f(records[f"{a}{i}"], "admitted") for i in range(2)) - first for a in "ab")
    assert starts[0] >= load_ms / 1000 - 0.002 and starts[1] >= 2 * load_ms / 1000 - 0.002
    assert sorted(queue_ms.values())[0] >= load_ms - 2 and sorted(queue_ms.values())[2] >= 2 * load_ms - 2
    # a second use is warm: no new download
    assert state["adapter_downloads"] == 2


def test_max_active_adapters_makes_the_next_adapter_wait_for_an_idle_one() -> None:
    with SimulatorProcess(
        *QUIET, "--decode-ms", "3", "--adapter-load-ms", "20", "--max-active-adapters", "2", trace=True
    ) as proc:
        ids = [f"{a}{i}" for a in "abc" for i in range(3)]
        bodies = [_body(f"x{i}", 30, f"org/{i[0]}") for i in ids]
        replies = read_replies(send_now(proc.port, bodies, ids))
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        state = sim_state(proc.base_url)
        records = _by_id(wait_trace(proc.trace_path, request_ids=set(ids)))

    def ends(adapter: str) -> float:
        return max(_f(records[f"{adapter}{i}"], "end") for i in range(3))

    # queue.rs:326-346: an active adapter leaves only when its queue is empty and none of its requests runs,
    # so c (third, pending) starts only after a or b has finished all its requests
    c_start = min(_f(records[f"c{i}"], "admitted") for i in range(3))
    assert c_start >= min(ends("a"), ends("b"))
    assert state["adapter_loads"] == 3 and state["adapter_evictions"] >= 1
    assert len(state["active_adapters"]) <= 2  # type: ignore[arg-type]


@pytest.mark.parametrize(("cycle_s", "b_between_a"), [("0.05", True), ("100", False)])
def test_adapter_cycle_time_swaps_a_busy_adapter_out_between_its_requests(
    cycle_s: str, b_between_a: bool
) -> None:
    # one adapter slot; a KV budget of 4 blocks (block_allocator.rs) that holds one 3-block request at a time
    with SimulatorProcess(
        *QUIET,
        "--decode-ms",
        "3",
        "--adapter-load-ms",
        "10",
        "--max-active-adapters",
        "1",
        "--adapter-cycle-time",
        cycle_s,
        "--max-input-length",
        "30",
        "--max-total-tokens",
        "60",
        "--max-batch-total-tokens",
        "80",
        trace=True,
    ) as proc:
        ids = [f"a{i}" for i in range(4)] + ["b0", "b1"]
        bodies = [_body(f"a {i}", 40, "org/a") for i in range(4)] + [
            _body(f"b {i}", 40, "org/b") for i in range(2)
        ]
        replies = read_replies(send_now(proc.port, bodies, ids))
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        records = _by_id(wait_trace(proc.trace_path, request_ids=set(ids)))
    a_last = max(_f(records[f"a{i}"], "admitted") for i in range(4))
    b_first = min(_f(records[f"b{i}"], "admitted") for i in range(2))
    # queue.rs:349-363: the front active adapter, once past the cycle time and not running, goes back to
    # pending so that b gets a turn; with a long cycle, b waits until a's queue is empty (queue.rs:326-346)
    assert (b_first < a_last) is b_between_a


@pytest.mark.parametrize(("budget", "capped"), [(112, True), (400, False)])
def test_max_batch_total_tokens_caps_concurrency_by_kv_blocks(budget: int, capped: bool) -> None:
    # each request holds ceil((~4 prompt + 40 new - 1) / 16) = 3 blocks; 112 tokens = 7 blocks, one reserved:
    # two at a time; 400 tokens = 24 usable blocks: all eight could run together
    with SimulatorProcess(
        *QUIET,
        "--decode-ms",
        "5",
        "--max-input-length",
        "30",
        "--max-total-tokens",
        "60",
        "--max-batch-total-tokens",
        str(budget),
        trace=True,
    ) as proc:
        ids = [f"k{i}" for i in range(8)]
        replies = read_replies(send_now(proc.port, [_body(f"kv {i}", 40) for i in range(8)], ids))
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        text = httpx.get(proc.base_url + "/metrics").text
        records = list(_by_id(wait_trace(proc.trace_path, request_ids=set(ids))).values())
    # concurrency on the simulated timeline: requests whose token steps overlap
    spans = [(min(r["token_steps"]), max(r["token_steps"])) for r in records]  # type: ignore[type-var]
    peak = max(sum(1 for s, e in spans if s <= t <= e) for t, _ in spans)
    batches = metric(text, "lorax_batch_next_size_count")
    assert metric(text, "lorax_batch_next_size_sum") == 8
    if capped:
        assert peak == 2
        # /metrics: every new batch held at most two (scheduler.rs:523 lorax_batch_next_size)
        assert metric(text, 'lorax_batch_next_size_bucket{le="2"}') == batches
    else:
        assert peak > 2  # the arrivals may spread over a few steps on a busy machine, so not always all 8


def _join_step(proc: SimulatorProcess, newcomers: int) -> tuple[int, int, float, float]:
    """A batch of 4 long streams runs; `newcomers` short requests arrive together as soon as its first token
    is out. Returns, counted in the running request's decode steps after the running batch's last prefill
    (when infer.rs resets waiting_tokens to 1): how many were done when the newcomers arrived, how many when
    they were prefilled; and how much lorax_batch_concat{wait_exceeded} and {backpressure} grew."""
    before = httpx.get(proc.base_url + "/metrics").text
    running = [f"r{i}" for i in range(4)]
    socks = send_now(proc.port, [_body(f"run {i}", 60) for i in range(4)], running, path="/generate_stream")
    for sock in socks:  # every running request has its first token: the running batch is complete
        seen = b""
        while b"data:" not in seen:
            seen += sock.recv(65536)
    late = [f"n{i}" for i in range(newcomers)]
    sent = read_replies(send_now(proc.port, [_body(f"new {i}", 3) for i in range(newcomers)], late))
    assert all(r.startswith(b"HTTP/1.1 200") for r in sent)
    read_replies(socks)
    after = httpx.get(proc.base_url + "/metrics").text
    records = _by_id(wait_trace(proc.trace_path, request_ids={*running, *late}))
    steps = records["r0"]["token_steps"]
    assert isinstance(steps, list)
    last_join = max(records[r]["token_steps"][0] for r in running)  # type: ignore[index]
    arrival = min(_f(records[n], "arrival") for n in late)
    joined = {records[n]["token_steps"][0] for n in late}  # type: ignore[index]
    assert len(joined) == 1  # the newcomers were prefilled together
    (join,) = joined
    decodes = [s for s in steps if s > last_join]

    def grew(reason: str) -> float:
        series = f'lorax_batch_concat{{reason="{reason}"}}'
        return metric(after, series) - metric(before, series)

    return (
        sum(1 for s in decodes if s < arrival),
        sum(1 for s in decodes if s < join),
        grew("wait_exceeded"),
        grew("backpressure"),
    )


@pytest.mark.parametrize("max_waiting", [6, 12])
def test_max_waiting_tokens_sets_how_many_steps_a_small_batch_waits(max_waiting: int) -> None:
    # 3 newcomers < floor(4 running x 1.2) = 4: they wait until no one joined for max_waiting_tokens steps
    # (infer.rs:1107-1112): waiting_tokens is 1 after the running batch's prefill and +1 per decode step,
    # so they are prefilled after max_waiting_tokens - 1 decode steps
    with SimulatorProcess(
        *QUIET, "--decode-ms", "30", "--max-waiting-tokens", str(max_waiting), trace=True
    ) as proc:
        arrived, joined, wait_exceeded, _ = _join_step(proc, newcomers=3)
    assert arrived < max_waiting - 1  # they arrived early enough for the rule to be what held them
    assert joined == max_waiting - 1
    assert wait_exceeded == 1  # infer.rs:1139-1149 counts the reason once per joining batch


@pytest.mark.parametrize(("ratio", "joins_at_once"), [("0.5", True), ("1.2", False)])
def test_waiting_served_ratio_decides_whether_newcomers_join_at_once(ratio: str, joins_at_once: bool) -> None:
    # 3 newcomers against floor(4 x ratio): 2 (they join at the next step) or 4 (they wait max_waiting_tokens)
    with SimulatorProcess(
        *QUIET, "--decode-ms", "30", "--max-waiting-tokens", "12", "--waiting-served-ratio", ratio, trace=True
    ) as proc:
        arrived, joined, wait_exceeded, backpressure = _join_step(proc, newcomers=3)
    assert arrived < 11
    if joins_at_once:
        assert joined <= arrived + 1 and wait_exceeded == 0 and backpressure >= 1
    else:
        assert joined == 11 and wait_exceeded == 1
