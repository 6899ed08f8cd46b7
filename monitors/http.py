"""One requests.Session per monitor with explicit timeouts, and HTTP failures in a user's words."""

from __future__ import annotations

import logging
from typing import Any

import requests

from conversation import composer
from monitors.base_monitor import MonitorError

logger = logging.getLogger(__name__)

# Connecting to a healthy backend on a LAN takes milliseconds; a long connect means it is gone.
MAX_CONNECT_TIMEOUT = 2.0


class HttpClient:
    """Pooled HTTP to one backend; every call raises MonitorError with a short reason on failure."""

    def __init__(self, base_url: str, timeout: float, headers: dict[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(MAX_CONNECT_TIMEOUT, timeout), timeout)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "operator-sms", **(headers or {})})

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The response, whatever its status; raise MonitorError when there is none."""
        url = path if path.startswith("http") else self.base_url + path
        try:
            return self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.exceptions.InvalidURL:
            raise MonitorError(f"bad URL {self.base_url}", permanent=True) from None
        except requests.exceptions.ConnectTimeout:
            raise MonitorError(f"timeout connecting after {self.timeout[0]:g}s") from None
        except requests.exceptions.Timeout:
            raise MonitorError(f"timeout after {self.timeout[1]:g}s") from None
        except requests.exceptions.SSLError:
            raise MonitorError("TLS handshake failed", permanent=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise MonitorError(_connection_reason(exc)) from None
        except requests.RequestException as exc:
            raise MonitorError(f"request failed ({exc.__class__.__name__})") from None

    def json(self, response: requests.Response) -> Any:
        """The JSON body, or a MonitorError saying what came back instead."""
        try:
            return response.json()
        except ValueError:
            raise MonitorError(f"not JSON (HTTP {response.status_code})") from None

    def json_or_none(self, response: requests.Response) -> Any:
        """The JSON body, or None (error bodies are often HTML or text)."""
        try:
            return response.json()
        except ValueError:
            return None

    def close(self) -> None:
        self.session.close()


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return "bad URL: host not found"
    if "Connection refused" in text:
        return "unreachable: connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by server"
    return "unreachable"


def auth_refused(status: int) -> MonitorError:
    return MonitorError(f"auth refused (HTTP {status})", permanent=True)


def clip(text: str, length: int = 80) -> str:
    """One line, at most `length` characters."""
    return composer.shorten(" ".join(str(text).split()), length)
