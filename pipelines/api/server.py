"""Run the API under uvicorn with a deadline for reading each request.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but a client that sends part of
a request's headers and then nothing holds its connection forever. Here the headers of every
request must be complete within `HEADER_TIMEOUT_S` of the connection opening (or of the previous
response); otherwise the server answers 408 with the JSON error shape and closes the connection.
The body has its own deadline (`READ_TIMEOUT_S`, pipelines/api/http.py).
"""

from __future__ import annotations

import asyncio
import os

import msgspec
import uvicorn

HEADER_TIMEOUT_S = float(os.environ.get("TALLY_HEADER_TIMEOUT", "10"))
MAX_HEADER_BYTES = 64 * 1024  # h11: the largest incomplete request head
KEEP_ALIVE_S = 5

_TIMEOUT_BODY = msgspec.json.encode(
    {
        "error": f"the request headers did not arrive within {HEADER_TIMEOUT_S:g} s",
        "code": "request_timeout",
    }
)
_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\nconnection: close\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


def _with_header_deadline(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    class Protocol(base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _known: object = None

        def connection_made(self, transport):  # noqa: ANN001
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._arm()  # bytes of a new request: its headers are now on the clock
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._known:
                self._known = self.cycle  # the headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc):  # noqa: ANN001
            self._disarm()
            super().connection_lost(exc)

        def _too_slow(self) -> None:
            self._deadline = None
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being handled: its body has its own deadline
            if not self.transport.is_closing():
                self.transport.write(_TIMEOUT)
                self.transport.close()

    Protocol.__name__ = f"Timed{base.__name__}"
    return Protocol


def protocol_class() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return _with_header_deadline(HttpToolsProtocol)
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return _with_header_deadline(H11Protocol)


def serve(app, host: str, port: int) -> None:  # noqa: ANN001
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=protocol_class(),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
