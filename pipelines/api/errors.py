"""One error type for every route: a status and the JSON body the Paid SDK parses.

408 and 429 bodies must carry `error` (the SDK parses them as `ErrorResponse`); every body here
does.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, code: str, details: str | None = None, **extra: Any
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.code, self.details, self.extra = (
            status,
            error,
            code,
            details,
            extra,
        )

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out | self.extra


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what} {ident!r} not found", "not_found")


def bad_request(error: str, details: str | None = None) -> ApiError:
    return ApiError(400, error, "bad_request", details)
