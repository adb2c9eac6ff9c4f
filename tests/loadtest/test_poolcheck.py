"""The pooled-connection check runs without a greenlet switch (which delayed every request's send)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import gevent
import gevent.select
import pytest
from geventhttpclient.connectionpool import ConnectionPool

from loraxkit.loadtest.poolcheck import install_pool_check, is_socket_alive


def _switched_during(check: Callable[[], object]) -> bool:
    ran = []
    other = gevent.spawn(ran.append, True)  # runs only if the current greenlet yields
    check()
    switched = bool(ran)
    other.kill()
    return switched


def test_idle_connection_is_alive_and_checked_without_a_switch() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert _switched_during(lambda: gevent.select.select([a], [], [], 0.0))  # what Locust's select does
        results = []
        assert not _switched_during(lambda: results.append(is_socket_alive(None, a)))
        assert results == [True]
        b.close()  # the peer went away: readable (EOF) means not reusable
        assert is_socket_alive(None, a) is False
    assert is_socket_alive(None, a) is False  # closed: fileno -1


def test_install_replaces_geventhttpclients_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ConnectionPool, "_is_socket_alive", ConnectionPool._is_socket_alive)  # restored after
    install_pool_check()
    assert ConnectionPool._is_socket_alive is is_socket_alive
    monkeypatch.delattr(ConnectionPool, "_is_socket_alive")
    with pytest.raises(AttributeError, match="_is_socket_alive"):
        install_pool_check()
