"""The kernel's transmit time of a request's last byte: the send stamp that no client delay can move.

A request is stamped as sent in Python before Locust's client call; between that stamp and the moment the
bytes leave, the client can still be preempted by the OS or run Python code (Locust's and geventhttpclient's
request building), which a TTFT measured from the stamp wrongly includes. With `SO_TIMESTAMPING`
(`SOF_TIMESTAMPING_TX_SOFTWARE`, Linux) the kernel records when the packet holding the last byte of each
write went to the device, and queues that time on the socket's error queue (`MSG_ERRQUEUE`).

Every connection geventhttpclient opens is a `TxStampedSocket` (the pool's socket factory is replaced, see
`install_tx_stamps`): after each `sendall` it drains the error queue at once, without waiting, and keeps the
stamp whose id (`SOF_TIMESTAMPING_OPT_ID`: the byte offset of the write's last byte) is that write's. Draining
right after the write matters: a non-empty error queue makes the socket poll as readable with `POLLERR`, and
gevent's wait for the response would spin on it. On loopback and a NIC whose queue is empty the stamp is
taken inside the send call itself, so it is there when `sendall` returns; when it is not (a queued NIC),
that connection stops asking for stamps and its requests keep the Python stamp (`tx_missing`, counted by
the self-check).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from contextvars import ContextVar
from typing import Any

import gevent.socket

from loraxkit.loadtest.sockstamp import enable_kernel_timestamps, kernel_time

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)  # Linux value; Python does not export it
_TX_SOFTWARE = 1 << 1  # stamp when the packet is handed to the device
_SOFTWARE = 1 << 4  # report software stamps
_OPT_ID = 1 << 7  # each stamp carries the offset of the write's last byte
_OPT_TSONLY = 1 << 11  # no copy of the packet on the error queue, only the stamp
_OPT_ID_TCP = 1 << 16  # Linux >= 6.2: the id counts from the next byte written (not from the unacked one)
_OPT_RX_FILTER = 1 << 17  # Linux >= 6.12: no SCM_TIMESTAMPING beside received data (SO_TIMESTAMPNS stays)
_BASE_FLAGS = _TX_SOFTWARE | _SOFTWARE | _OPT_ID | _OPT_TSONLY
# Tried in order: the first the kernel accepts is used.
FLAG_SETS = (_BASE_FLAGS | _OPT_ID_TCP | _OPT_RX_FILTER, _BASE_FLAGS | _OPT_ID_TCP, _BASE_FLAGS)

_TIMESPEC = struct.Struct("qq")
_EXTENDED_ERR = struct.Struct("IBBBBII")  # struct sock_extended_err
_ENOMSG = 42
_ORIGIN_TIMESTAMPING = 4  # SO_EE_ORIGIN_TIMESTAMPING
_RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}  # IP_RECVERR, IPV6_RECVERR
_ANC_SPACE = 512
_RX_ANC_SPACE = socket.CMSG_SPACE(16)  # one struct timespec (SO_TIMESTAMPNS)


def enable_tx_stamps(sock: Any) -> bool:
    """Ask for transmit stamps on a connected TCP socket; False where the kernel refuses (or not Linux)."""
    for flags in FLAG_SETS:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            return True
        except (OSError, AttributeError):
            continue
    return False


def disable_tx_stamps(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, 0)


def parse_tx_stamp(ancdata: list[tuple[int, int, bytes]]) -> tuple[int | None, float | None]:
    """(id, software transmit time) of one error-queue message; None where absent."""
    stamp: float | None = None
    ident: int | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)  # ts[0]: the software stamp
            if sec or nsec:
                stamp = sec + nsec * 1e-9
        elif (level, kind) in _RECVERR and len(data) >= _EXTENDED_ERR.size:
            errno_, origin, _, _, _, _, data_ = _EXTENDED_ERR.unpack_from(data)
            if errno_ == _ENOMSG and origin == _ORIGIN_TIMESTAMPING:
                ident = data_
    return ident, stamp


def drain_tx_stamps(raw: Any) -> list[tuple[int | None, float | None]]:
    """Every stamp waiting on the error queue of `raw` (a non-blocking stdlib socket), without waiting."""
    out = []
    while True:
        try:
            _, ancdata, _, _ = raw.recvmsg(0, _ANC_SPACE, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            return out
        out.append(parse_tx_stamp(ancdata))


class TxStampedSocket(gevent.socket.socket):
    """gevent socket whose `sendall` leaves `tx_stamp`: the kernel's transmit time of the write's last byte
    (and whose `recv` leaves `rx_stamp`, the receive time of what it read).

    `tx_stamp` is None when the kernel gave none for that write (then `tx_missing` is True, and the socket
    asks for no more stamps). The stamping starts at the first write (the id needs a connected socket).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tx_stamp: float | None = None
        self.rx_stamp: float | None = None  # the kernel's receive time of the last recv's bytes
        self.tx_missing = False
        self._tx_on: bool | None = None  # None: not asked yet
        self._tx_bytes = 0  # bytes written since stamping was switched on (the ids count them)

    def recv(self, size: int, flags: int = 0) -> bytes:  # type: ignore[override]
        """gevent's recv, keeping the kernel's receive stamp of the bytes as `rx_stamp`: geventhttpclient
        reads the response headers with it, and token events that came with them are stamped with it."""
        data, ancdata, _, _ = self.recvmsg(size, _RX_ANC_SPACE, flags)
        self.rx_stamp = kernel_time(ancdata)
        return data

    def sendall(self, data: Any, flags: int = 0) -> None:  # type: ignore[override]
        self.tx_stamp = self.rx_stamp = None  # a new request: no stamp of the last response's reads
        if self._tx_on is None:
            self._tx_on = enable_tx_stamps(self)
            enable_kernel_timestamps(self)  # receive stamps from the first response's headers on
        super().sendall(data, flags)
        _sent_on.set(self)
        if not self._tx_on:
            return
        self._tx_bytes += len(data)
        want = (self._tx_bytes - 1) & 0xFFFFFFFF
        for ident, stamp in drain_tx_stamps(self._sock):  # gevent's stdlib socket: never waits
            if ident == want and stamp is not None:
                self.tx_stamp = stamp
        if self.tx_stamp is None:  # not stamped inside the send: stop asking, keep the Python stamp
            self.tx_missing = True
            self._tx_on = False
            disable_tx_stamps(self)


# The connection the current greenlet (a Locust user) last wrote a request on. geventhttpclient releases the
# socket from a response that was complete with its headers (a short stream read late), so the response no
# longer names it; the user still needs its stamps and identity.
_sent_on: ContextVar[TxStampedSocket | None] = ContextVar("loraxkit_sent_on", default=None)


def forget_sent_socket() -> None:
    """Before a request: no socket until it is written."""
    _sent_on.set(None)


def sent_socket() -> TxStampedSocket | None:
    """The socket this greenlet's request was written on since `forget_sent_socket()`, if any."""
    return _sent_on.get()


def tx_stamp_of(sock: Any) -> float | None:
    """The transmit stamp of the last write on a connection, if it is a TxStampedSocket that got one."""
    return getattr(sock, "tx_stamp", None)


class TxStampsUnavailable(RuntimeError):
    """geventhttpclient's socket factory moved: the pool cannot make TxStampedSockets."""


def install_tx_stamps() -> None:
    """Make geventhttpclient's pool open TxStampedSockets (process-wide, idempotent).

    `ConnectionPool._create_tcp_socket` is the pool's documented "tcp socket factory" hook; a private
    name, so its absence stops the run at start-up (harness.check_stream_reader) instead of silently
    measuring from the Python stamp.
    """
    from geventhttpclient.connectionpool import ConnectionPool

    if not callable(getattr(ConnectionPool, "_create_tcp_socket", None)):
        raise TxStampsUnavailable("geventhttpclient's ConnectionPool has no _create_tcp_socket any more")
    ConnectionPool._create_tcp_socket = _create_tcp_socket  # type: ignore[method-assign]


def _create_tcp_socket(self: Any, family: int, socktype: int, protocol: int) -> TxStampedSocket:
    return TxStampedSocket(family, socktype, protocol)


def check_tx_stamps() -> bool:
    """Write over a loopback TCP connection with a TxStampedSocket: True when the kernel stamped the write;
    False where it gives no transmit stamps (not Linux). Raises TxStampsUnavailable when gevent's socket no
    longer has the stdlib socket (`_sock`) the drain reads from."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client = TxStampedSocket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client.settimeout(5.0)
        client.connect(listener.getsockname())
        if not hasattr(client, "_sock"):
            raise TxStampsUnavailable("gevent's socket no longer wraps a stdlib socket as `_sock`")
        client.sendall(b"probe")
        return client.tx_stamp is not None
    finally:
        client.close()
        listener.close()
