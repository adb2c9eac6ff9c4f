"""Kernel transmit stamps: a request is timed from when its last byte left, whatever the client did before."""

from __future__ import annotations

import select
import socket
import time

import pytest

from loraxkit.loadtest.txstamp import (
    TxStampedSocket,
    TxStampsUnavailable,
    check_tx_stamps,
    install_tx_stamps,
    tx_stamp_of,
)


@pytest.fixture
def connected() -> tuple[TxStampedSocket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = TxStampedSocket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(5.0)
    client.connect(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    yield client, peer
    client.close()
    peer.close()


def test_each_write_gets_the_kernels_stamp_of_its_last_byte(connected) -> None:
    client, peer = connected
    stamps = []
    for size in (120, 70_000, 1):  # the large write spans many segments: the stamp is the last one's
        before = time.time()
        client.sendall(b"x" * size)
        after = time.time()
        stamp = tx_stamp_of(client)
        assert stamp is not None and not client.tx_missing
        assert before <= stamp <= after  # inside this very write, not an earlier one's stamp
        stamps.append(stamp)
        got = 0
        while got < size:
            got += len(peer.recv(1 << 20))
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_the_error_queue_is_drained_after_each_write(connected) -> None:
    # A stamp left queued would make the socket poll readable (POLLERR) and gevent's wait for the
    # response spin on it.
    client, _ = connected
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    poller = select.poll()
    poller.register(client.fileno(), select.POLLIN | select.POLLERR)
    assert poller.poll(0) == []


def test_a_stamp_of_another_write_is_never_taken_for_the_request(connected) -> None:
    # A write the socket did not count (here: straight to the stdlib socket) leaves its stamp queued and
    # shifts the byte ids: the next request finds no stamp with its own id, claims none, keeps the Python
    # stamp (tx_missing) and stops asking, and the queue is left empty.
    client, _ = connected
    client.sendall(b"first")
    client._sock.send(b"not counted")
    client.sendall(b"request")
    assert client.tx_stamp is None and client.tx_missing
    client.sendall(b"next")
    assert client.tx_stamp is None
    poller = select.poll()
    poller.register(client.fileno(), select.POLLIN | select.POLLERR)
    assert poller.poll(0) == []


def test_the_pool_opens_stamped_sockets_and_a_moved_factory_stops_the_run(monkeypatch) -> None:
    from geventhttpclient.connectionpool import ConnectionPool

    assert check_tx_stamps()
    factory = ConnectionPool._create_tcp_socket
    monkeypatch.setattr(ConnectionPool, "_create_tcp_socket", factory)  # restored after the test
    install_tx_stamps()
    sock = ConnectionPool._create_tcp_socket(None, socket.AF_INET, socket.SOCK_STREAM, 0)
    try:
        assert isinstance(sock, TxStampedSocket)
    finally:
        sock.close()
    monkeypatch.delattr(ConnectionPool, "_create_tcp_socket")
    with pytest.raises(TxStampsUnavailable, match="_create_tcp_socket"):
        install_tx_stamps()


def test_a_socket_without_transmit_stamps_keeps_the_python_stamp() -> None:
    # A Unix socket pair takes no TCP byte ids: the write goes out, no stamp is claimed.
    a, b = socket.socketpair()
    client = TxStampedSocket(fileno=a.detach())
    try:
        client.sendall(b"hello")
        assert b.recv(16) == b"hello"
        assert client.tx_stamp is None
    finally:
        client.close()
        b.close()


def test_the_socket_a_greenlet_last_wrote_on_is_kept_for_it_alone(connected) -> None:
    # A response complete with its headers is released by geventhttpclient at once: the user still finds
    # the connection (its stamps, its name) through sent_socket().
    import gevent

    from loraxkit.loadtest.txstamp import forget_sent_socket, sent_socket

    client, _ = connected

    def user(write: bool) -> object:
        forget_sent_socket()
        if write:
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        return sent_socket()

    assert gevent.spawn(user, True).get() is client
    assert gevent.spawn(user, False).get() is None  # another user, no write: not the first one's socket
    forget_sent_socket()
    assert sent_socket() is None
