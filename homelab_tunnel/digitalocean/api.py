"""The few DigitalOcean API calls the tool makes (preflight's reads, volume snapshots), via pydo.

pydo is generated code on azure-core: it retries 429 and 5xx on its own, up to
ten times and honouring any Retry-After. Here the retries are bounded (count
and each wait), lists are read page by page to the end, and every failure
becomes one `ApiError` line that says what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from pydo import Client

API_KEYS_PAGE = "https://cloud.digitalocean.com/account/api/tokens"
PER_PAGE = 200  # the API's maximum
MAX_PAGES = 50  # 10,000 items: far beyond any edge; stops a server that never ends


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and how patient to be with it."""

    endpoint: str = "https://api.digitalocean.com"
    retries: int = 3
    backoff: float = 1.0  # seconds; azure-core doubles it per retry after the first
    max_wait: float = 10.0  # longest single wait, even when Retry-After asks for more
    timeout: float = 30.0  # per request


DEFAULT_SETTINGS = ApiSettings()


class ApiError(Exception):
    """An API call failed; `fatal` when no further call can do better (auth, limits, network)."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal


class _BoundedRetry(RetryPolicy[Any, Any]):
    """azure-core's retry policy with a cap on how long one Retry-After may hold us."""

    def __init__(self, *, max_wait: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_wait = max_wait

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        wanted = super().get_retry_after(response)
        return None if wanted is None else min(wanted, self._max_wait)


class DigitalOceanApi:
    """Views of an account as plain API JSON; the only writes are volume snapshots."""

    def __init__(self, token: str, settings: ApiSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self._token = token
        retry = _BoundedRetry(
            max_wait=settings.max_wait,
            retry_total=settings.retries,
            retry_connect=settings.retries,
            retry_read=settings.retries,
            retry_status=settings.retries,
            retry_backoff_factor=settings.backoff,
            retry_backoff_max=settings.max_wait,
        )
        self._client = Client(
            token=token,
            endpoint=settings.endpoint,
            retry_policy=retry,
            connection_timeout=settings.timeout,
            read_timeout=settings.timeout,
        )

    def account(self) -> dict[str, Any]:
        return self._item("the account", "account", lambda: self._client.account.get())

    def ssh_keys(self) -> list[dict[str, Any]]:
        return self._pages(
            "SSH keys",
            "ssh_keys",
            lambda page: self._client.ssh_keys.list(per_page=PER_PAGE, page=page),
        )

    def domain(self, name: str) -> dict[str, Any] | None:
        """The DNS zone, or None when this account has no such zone."""
        response = self._call(f"domain {name}", lambda: self._client.domains.get(name))
        if _is_not_found(response):
            return None
        return self._expect(f"domain {name}", response, "domain")

    def records(self, zone: str) -> list[dict[str, Any]]:
        return self._pages(
            f"DNS records of {zone}",
            "domain_records",
            lambda page: self._client.domains.list_records(zone, per_page=PER_PAGE, page=page),
        )

    def regions(self) -> list[dict[str, Any]]:
        return self._pages(
            "regions",
            "regions",
            lambda page: self._client.regions.list(per_page=PER_PAGE, page=page),
        )

    def volumes(self, name: str, region: str) -> list[dict[str, Any]]:
        return self._pages(
            f"volumes named {name}",
            "volumes",
            lambda page: self._client.volumes.list(
                name=name, region=region, per_page=PER_PAGE, page=page
            ),
        )

    def volume_snapshots(self, volume_id: str) -> list[dict[str, Any]]:
        return self._pages(
            "snapshots of the state volume",
            "snapshots",
            lambda page: self._client.volume_snapshots.list(
                volume_id, per_page=PER_PAGE, page=page
            ),
        )

    def create_volume_snapshot(self, volume_id: str, name: str, tags: list[str]) -> dict[str, Any]:
        return self._item(
            f"snapshot {name}",
            "snapshot",
            lambda: self._client.volume_snapshots.create(volume_id, {"name": name, "tags": tags}),
        )

    def delete_snapshot(self, snapshot_id: str) -> None:
        response = self._call(
            f"deleting snapshot {snapshot_id}",
            lambda: self._client.volume_snapshots.delete_by_id(snapshot_id),
        )
        if _is_not_found(response):
            raise ApiError(f"snapshot {snapshot_id}: {_message(response)}", fatal=False)

    # -- plumbing -----------------------------------------------------------

    def _item(self, what: str, key: str, call: Any) -> dict[str, Any]:
        return self._expect(what, self._call(what, call), key)

    def _pages(self, what: str, key: str, call: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            response = self._call(what, lambda page=page: call(page))
            if _is_not_found(response):
                raise ApiError(f"reading {what}: {_message(response)}", fatal=False)
            batch = response.get(key) if isinstance(response, dict) else None
            if not isinstance(batch, list):
                raise ApiError(f"reading {what}: the API answered without '{key}'", fatal=False)
            items.extend(item for item in batch if isinstance(item, dict))
            if not _has_next_page(response) or not batch:
                return items
        raise ApiError(f"reading {what}: more than {MAX_PAGES} pages; stopped", fatal=False)

    def _expect(self, what: str, response: Any, key: str) -> dict[str, Any]:
        value = response.get(key) if isinstance(response, dict) else None
        if not isinstance(value, dict):
            raise ApiError(f"reading {what}: {_message(response)}", fatal=False)
        return value

    def _call(self, what: str, call: Any) -> Any:
        """The call's answer, or `ApiError`; no message ever carries the token."""
        try:
            return self._unredacted_call(what, call)
        except ApiError as exc:
            raise ApiError(self._redact(exc.message), fatal=exc.fatal) from None

    def _redact(self, text: str) -> str:
        """Defence in depth: a library error may quote the Authorization header."""
        for secret in (self._token, *self._token.split()):
            if len(secret) >= 4:
                text = text.replace(secret, "<DIGITALOCEAN_TOKEN>")
        return text

    def _unredacted_call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except ClientAuthenticationError:
            raise ApiError(
                "DIGITALOCEAN_TOKEN was rejected (401 Unauthorized): it is wrong, expired or "
                f"revoked; create a token at {API_KEYS_PAGE} and export it again",
                fatal=True,
            ) from None
        except HttpResponseError as exc:
            raise self._http_error(what, exc) from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ApiError(
                f"cannot reach the DigitalOcean API at {self.settings.endpoint} "
                f"({_first_line(exc)}); check the network and run preflight again",
                fatal=True,
            ) from None

    def _http_error(self, what: str, exc: HttpResponseError) -> ApiError:
        status = exc.status_code or 0
        if status == 429:
            return ApiError(
                f"rate limited by the DigitalOcean API (429 Too Many Requests) after "
                f"{self.settings.retries} retries; wait a minute and run preflight again",
                fatal=True,
            )
        if status == 403:
            return ApiError(
                f"the token may not read {what} (403 Forbidden); give it read access "
                f"to that resource at {API_KEYS_PAGE}",
                fatal=False,
            )
        detail = _message(_json(exc)) or exc.reason or "no detail"
        return ApiError(f"reading {what}: HTTP {status} ({detail})", fatal=status >= 500)


def _is_not_found(response: Any) -> bool:
    # pydo returns 404 bodies ({"id": "not_found", ...}) instead of raising.
    return isinstance(response, dict) and response.get("id") == "not_found"


def _has_next_page(response: dict[str, Any]) -> bool:
    links = response.get("links")
    pages = links.get("pages") if isinstance(links, dict) else None
    return isinstance(pages, dict) and bool(pages.get("next"))


def _json(exc: HttpResponseError) -> Any:
    try:
        return json.loads(exc.response.text()) if exc.response is not None else None
    except ValueError:
        return None


def _message(response: Any) -> str:
    if isinstance(response, dict) and isinstance(response.get("message"), str):
        return str(response["message"])
    return "unexpected answer"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
