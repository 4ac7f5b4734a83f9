"""What the kernel says of a connection waiting in the accept queue (loopback sockets)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from postbox.api.tcp_state import UNKNOWN, connection_state

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_a_request_that_waited_in_the_accept_queue_shows_its_age(listener: socket.socket) -> None:
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    time.sleep(0.3)
    server, _ = listener.accept()
    state = connection_state(server)
    assert 0.25 <= state.age < 2
    assert not state.client_gone
    client.close()
    time.sleep(0.05)
    assert connection_state(server).client_gone
    server.close()


def test_new_data_restarts_the_age(listener: socket.socket) -> None:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    time.sleep(0.3)
    client.sendall(b"x")
    time.sleep(0.02)
    assert connection_state(server).age < 0.25
    client.close()
    server.close()


def test_a_socket_without_tcp_info_is_unknown() -> None:
    left, right = socket.socketpair()
    assert connection_state(left) == UNKNOWN
    left.close()
    right.close()
