"""What every part of the fake shares: a parsed request, an answer, API errors, pages.

Error bodies are the API's: `{"id": ..., "message": ..., "request_id": ...}`
(DigitalOcean API reference, "Errors"); godo builds its error text from
`message` and `request_id`, and the provider matches some messages by text.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

# Every timestamp the fake writes: RFC 3339, as godo's time.Time fields need.
NOW = "2026-01-01T00:00:00Z"

NOT_FOUND = {
    "id": "not_found",
    "message": "The resource you were accessing could not be found.",
}
UNAUTHORIZED = {"id": "Unauthorized", "message": "Unable to authenticate you"}
RATE_LIMITED = {"id": "too_many_requests", "message": "API Rate limit exceeded."}
FORBIDDEN = {"id": "Forbidden", "message": "You are not authorized to perform this operation"}


@dataclass(frozen=True)
class Request:
    """One API call after /v2: `parts` are the path segments, `body` the JSON object sent."""

    method: str
    parts: tuple[str, ...]
    query: dict[str, list[str]]
    body: dict[str, Any]

    def param(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None

    def item(self, index: int) -> str:
        """The path segment at `index`, or 404 when the path is shorter."""
        if len(self.parts) <= index:
            raise not_found()
        return self.parts[index]


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def ok(body: dict[str, Any], status: int = 200) -> Answer:
    """A JSON answer holding a copy, so later changes to the state never leak into it."""
    return Answer(status, copy.deepcopy(body))


NO_CONTENT = Answer(204, None)


class ApiError(Exception):
    def __init__(self, status: int, ident: str, message: str) -> None:
        super().__init__(message)
        self.status, self.ident, self.message = status, ident, message

    def answer(self) -> Answer:
        return Answer(
            self.status,
            {"id": self.ident, "message": self.message, "request_id": str(uuid.uuid4())},
        )


def not_found() -> ApiError:
    return ApiError(404, NOT_FOUND["id"], NOT_FOUND["message"])


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "unprocessable_entity", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def page(request: Request, path: str, key: str, items: list[dict[str, Any]]) -> Answer:
    """One page of a list: `links.pages` only when there is another page, `meta.total` always.

    godo treats a missing `links.pages.next` as the last page.
    """
    per_page = int(request.param("per_page") or 20)
    number = int(request.param("page") or 1)
    last = max(1, -(-len(items) // per_page))
    body: dict[str, Any] = {
        key: items[(number - 1) * per_page : number * per_page],
        "links": {},
        "meta": {"total": len(items)},
    }
    pages: dict[str, str] = {}
    link = f"https://api.digitalocean.com{path}?page={{}}&per_page={per_page}"
    if number > 1:
        pages |= {"first": link.format(1), "prev": link.format(number - 1)}
    if number < last:
        pages |= {"next": link.format(number + 1), "last": link.format(last)}
    if pages:
        body["links"] = {"pages": pages}
    return ok(body)
