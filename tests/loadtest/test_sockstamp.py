"""Kernel receive stamps: the stamp is when the bytes arrived, not when the client got to reading them."""

from __future__ import annotations

import socket
import time
from importlib.metadata import version

import pytest
from geventhttpclient.response import HTTPResponse

from loraxkit.loadtest.sockstamp import (
    SUPPORTED,
    GeventHttpClientChanged,
    check_geventhttpclient,
    enable_kernel_timestamps,
    keep_kernel_timestamps_on,
    kernel_time,
)

READ_LATE_S = 0.2


def test_kernel_stamp_is_the_arrival_time_not_the_read_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        with client, peer:
            assert enable_kernel_timestamps(client)
            time.sleep(0.1)  # Linux switches stamping on asynchronously for the first socket that asks
            before = time.time()
            peer.sendall(b'data: {"token": 1}\n\n')
            after = time.time()
            time.sleep(READ_LATE_S)  # a busy client reads late
            data, ancdata, _, _ = client.recvmsg(4096, socket.CMSG_SPACE(16))
            read_at = time.time()
    stamp = kernel_time(ancdata)
    assert data.startswith(b"data:")
    assert stamp is not None
    assert before - 0.001 <= stamp <= after + 0.001
    assert read_at - stamp >= READ_LATE_S * 0.9


def test_with_the_keeper_open_a_new_connection_is_stamped_at_once() -> None:
    keeper = keep_kernel_timestamps_on()  # the harness opens it at start, long before the first request
    try:
        time.sleep(0.1)
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
            with client, peer:
                assert enable_kernel_timestamps(client)
                peer.sendall(b"data: {}\n\n")  # right away: no wait for the switch-on
                _, ancdata, _, _ = client.recvmsg(4096, socket.CMSG_SPACE(16))
        assert kernel_time(ancdata) is not None
    finally:
        keeper.close()


def test_no_control_message_means_no_kernel_stamp() -> None:
    assert kernel_time([]) is None


def test_start_up_check_passes_with_the_installed_geventhttpclient() -> None:
    check_geventhttpclient()


def test_start_up_check_names_the_version_when_the_internals_change(monkeypatch: pytest.MonkeyPatch) -> None:
    # A release that keeps the body somewhere else than `_body_buffer`: the reader would never see a line.
    def moved_body(self: HTTPResponse, buf: bytearray) -> None:
        self.__dict__.setdefault("_chunks", []).append(bytes(buf))

    monkeypatch.setattr(HTTPResponse, "_on_body", moved_body)
    with pytest.raises(GeventHttpClientChanged) as err:
        check_geventhttpclient(timeout=0.5)
    message = str(err.value)
    assert f"geventhttpclient {version('geventhttpclient')}" in message
    assert SUPPORTED in message and "_body_buffer" in message
