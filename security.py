"""Who may talk to Operator: Twilio's signature and form, /metrics readers, numbers and roles, masking."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import threading
import time
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from flask import Request, current_app
from prometheus_client import Counter
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from werkzeug.middleware.proxy_fix import ProxyFix

from config import ROLES, Settings

logger = logging.getLogger(__name__)

# A phone number however it is written: seven digits or more, after an optional + or bracket,
# each from the last by at most three of space, dot, dash (any Unicode dash or minus), slash,
# underscore or bracket ("1.555.555.0101", "+1 (555) 555-0101", "555 - 555 - 0101"). Each repeat
# must take a digit, so matching is linear.
_PHONE = re.compile(r"\+?\(?\+?\d(?:[\s.\-/()_\u2010-\u2015\u2212\u00b7]{0,3}\d){6,}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_PLAIN_NAME = re.compile(r"[A-Z][A-Za-z]{0,39}")


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: PUBLIC_URL + path + raw query; "" when PUBLIC_URL is not set.

    Never built from Host or X-Forwarded-* headers: whoever sends a request chooses those, so a
    request signed for another app on the same Twilio account (same Auth Token) would pass.
    Werkzeug's request.url percent-decodes the query string, which would break the signature of
    any URL with an encoded character, so the raw QUERY_STRING is used.
    """
    if not settings.public_url:
        return ""
    query = request.environ.get("QUERY_STRING", "")
    suffix = f"?{query}" if query else ""
    return settings.public_url + quote(request.path, safe="/%:@!$&'()*+,;=-._~") + suffix


@lru_cache(maxsize=4)
def _validator(secret: str) -> RequestValidator:
    return RequestValidator(secret)


def is_from_twilio(request: Request, settings: Settings) -> bool:
    """True when the request carries a valid X-Twilio-Signature for its URL and form.

    Twilio signs with the Auth Token (HMAC-SHA1) unless a webhook rule names a SharedKey, in
    which case X-Twilio-Webhooks-Signature-Settings carries the algorithm and the SharedKey's
    secret signs.
    """
    signature = request.headers.get(SIGNATURE_HEADER, "")
    url = signed_url(request, settings)
    if not signature or not url:
        return False
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if signature_settings:
        secret = settings.twilio_webhook_shared_key
        if not secret:
            return False
    else:
        secret = settings.twilio_auth_token
    algorithm = get_signature_algorithm(signature_settings)
    validator = _validator(secret)
    # Twilio signs the URL as configured, which is ours: one HMAC settles a genuine request.
    # validate() always computes two (the URL with and without its default port), so it only
    # hears what the first did not match (and names an algorithm it does not know).
    try:
        if same_secret(validator.compute_signature(url, request.form, algorithm), signature):
            return True
    except ValueError:
        pass
    return validator.validate(url, request.form, signature, algorithm)


# The signature covers the URL followed by every name and value glued together with no
# separator, so the same signed bytes can be re-split into other fields (`MessageSidSM...=`, a
# value swallowing the next name) or repeated ones (`Body=a&Body=b` signs like `Body=aBodyb`).
# Only forms shaped as Twilio sends them are accepted: known names, one value each, and strict
# shapes for the values a re-split would have to change. Names are generous (Twilio adds fields
# for WhatsApp, RCS and add-ons); a refused legitimate field is logged by name, so it can be added.
_COMMON = frozenset(
    {
        "AccountSid",
        "ApiVersion",
        "Body",
        "ChannelInstallSid",
        "ChannelMetadata",
        "ChannelPrefix",
        "ChannelToAddress",
        "From",
        "MessageSid",
        "MessagingServiceSid",
        "NumMedia",
        "NumSegments",
        "SmsMessageSid",
        "SmsSid",
        "SmsStatus",
        "StructuredMessage",
        "To",
    }
)
INBOUND_FIELDS = _COMMON | {
    "AddOns",
    "Address",
    "ButtonPayload",
    "ButtonText",
    "ButtonType",
    "Forwarded",
    "FrequentlyForwarded",
    "FromCity",
    "FromCountry",
    "FromState",
    "FromZip",
    "Label",
    "Latitude",
    "ListId",
    "ListTitle",
    "Longitude",
    "MessageType",
    "OptOutType",
    "OriginalRepliedMessageSender",
    "OriginalRepliedMessageSid",
    "ProfileName",
    "ReferralBody",
    "ReferralCtwaClid",
    "ReferralHeadline",
    "ReferralMediaContentType",
    "ReferralMediaId",
    "ReferralMediaUrl",
    "ReferralNumMedia",
    "ReferralSourceId",
    "ReferralSourceType",
    "ReferralSourceUrl",
    "ToCity",
    "ToCountry",
    "ToState",
    "ToZip",
    "WaId",
}
STATUS_FIELDS = _COMMON | {
    "ChannelStatusCode",
    "ChannelStatusMessage",
    "ErrorCode",
    "ErrorMessage",
    "EventType",
    "MessageStatus",
    "RawDlrDoneDate",
}
# Twilio Voice's documented webhook parameters: the call request (answer URL), Gather's action,
# and the call status callback, with the caller's and callee's geography fields.
_GEO = ("City", "State", "Zip", "Country")
VOICE_FIELDS = frozenset(
    {
        "AccountSid",
        "AnsweredBy",
        "ApiVersion",
        "ApplicationSid",
        "CallDuration",
        "CallSid",
        "CallStatus",
        "CallToken",
        "CallbackSource",
        "Called",
        "Caller",
        "CallerName",
        "Confidence",
        "Digits",
        "Direction",
        "Duration",
        "ErrorCode",
        "ErrorMessage",
        "FinishedOnKey",
        "ForwardedFrom",
        "From",
        "MachineDetectionDuration",
        "ParentCallSid",
        "RecordingDuration",
        "RecordingSid",
        "RecordingUrl",
        "SequenceNumber",
        "SipResponseCode",
        "SpeechResult",
        "StirPassportToken",
        "StirVerstat",
        "Timestamp",
        "To",
    }
    | {f"{who}{geo}" for who in ("Called", "Caller", "From", "To") for geo in _GEO}
)
# MediaUrl0..MediaUrl9 and their content types (Twilio attaches at most 10).
_NUMBERED = re.compile(r"(?:MediaUrl|MediaContentType)\d{1,2}")
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_SHAPES = {
    "AccountSid": re.compile(r"AC[0-9a-fA-F]{32}"),
    "MessagingServiceSid": re.compile(r"MG[0-9a-fA-F]{32}"),
    "ApiVersion": re.compile(r"\d{4}-\d{2}-\d{2}"),
    # Numbers, channel addresses (whatsapp:+1...) and, on status reports, alphanumeric sender ids.
    "From": re.compile(r"[^\x00-\x1f\x7f]{1,64}"),
    "To": re.compile(r"[^\x00-\x1f\x7f]{1,64}"),
    "NumMedia": re.compile(r"\d{1,3}"),
    "NumSegments": re.compile(r"\d{1,3}"),
    "ReferralNumMedia": re.compile(r"\d{1,3}"),
    "SmsStatus": re.compile(r"[a-z_-]{1,32}"),
    "MessageStatus": re.compile(r"[a-z_-]{1,32}"),
    "ErrorCode": re.compile(r"\d{0,6}"),
    "CallSid": CALL_SID,
    "ParentCallSid": CALL_SID,
    "CallStatus": re.compile(r"[a-z-]{1,32}"),
    "Direction": re.compile(r"[a-z-]{1,32}"),
    "AnsweredBy": re.compile(r"[a-z_]{1,32}"),
    "Digits": re.compile(r"[0-9*#]{0,32}"),
    "FinishedOnKey": re.compile(r"[0-9*#]?"),
    "CallDuration": re.compile(r"\d{1,6}"),
    "Duration": re.compile(r"\d{1,6}"),
    "SequenceNumber": re.compile(r"\d{1,6}"),
    "SipResponseCode": re.compile(r"\d{3}"),
    "MachineDetectionDuration": re.compile(r"\d{1,6}"),
    "Called": re.compile(r"[^\x00-\x1f\x7f]{0,64}"),
    "Caller": re.compile(r"[^\x00-\x1f\x7f]{0,64}"),
}
_SIDS = ("MessageSid", "SmsMessageSid", "SmsSid")


def form_problem(request: Request, allowed: frozenset[str], required: tuple[str, ...] = ()) -> str:
    """Why this signed form is not one Twilio sends ("" when it is).

    A form of Voice fields (VOICE_FIELDS) must carry a CallSid; any other, a MessageSid.
    """
    if request.mimetype != "application/x-www-form-urlencoded":
        return "not a form"
    form = request.form
    for name, values in form.lists():
        numbered = "CallSid" not in allowed and _NUMBERED.fullmatch(name)
        if name not in allowed and not numbered:
            # Only a plain name is logged: a re-split one carries pieces of values.
            return f"unknown field {name}" if _PLAIN_NAME.fullmatch(name) else "unknown field"
        if len(values) > 1:
            return f"repeated field {name}"
        shape = _SHAPES.get(name)
        if shape is not None and not shape.fullmatch(values[0]):
            return f"malformed {name}"
    if "CallSid" in allowed:
        if not CALL_SID.fullmatch(form.get("CallSid", "")):
            return "missing or malformed CallSid"
        missing = [name for name in required if not form.get(name)]
        return f"missing {', '.join(missing)}" if missing else ""
    sids = {form[name] for name in _SIDS if name in form}
    if len(sids) != 1 or not MESSAGE_SID.fullmatch(next(iter(sids))):
        return "missing or malformed MessageSid" if len(sids) < 2 else "MessageSid and SmsSid differ"
    missing = [name for name in required if not form.get(name)]
    return f"missing {', '.join(missing)}" if missing else ""


def message_sid(request: Request) -> str:
    """The MessageSid of a form that passed `form_problem`."""
    form = request.form
    return next(form[name] for name in _SIDS if name in form)


SIGNATURE_REJECTIONS = Counter(
    "operator_signature_rejections_total", "Requests refused for a missing or wrong signature"
)
MALFORMED = Counter(
    "operator_malformed_requests_total",
    "Signed requests refused for a form Twilio does not send (unknown or repeated field, bad MessageSid)",
)
# Refused requests are counted in the metrics; the log gets one line per door and source each
# REFUSAL_LOG_EVERY seconds, then one line with how many more there were: a line per request would
# let a flood rotate the real audit lines out of the log. Each door names at most
# REFUSAL_LOG_SOURCES sources apart an interval; the others share one line.
REFUSAL_LOG_EVERY = 60.0
REFUSAL_LOG_SOURCES = 20
_OTHERS = "other sources"


class RefusalLog:
    """Warning lines for refused requests, throttled per door (route) and source.

    Kept in process memory on purpose: a count shared through the store or Redis would cost a
    write for every refused request, the very cost a flood must not impose. With N processes, a
    source gets at most N lines an interval; its state is a few counters per door and source.
    """

    def __init__(self, every: float = REFUSAL_LOG_EVERY, sources: int = REFUSAL_LOG_SOURCES):
        self.every, self.sources = every, sources
        self.lock = threading.Lock()
        self.ends_at = 0.0
        # (door, source) -> refusals not written since its line, this interval
        self.unlogged: dict[tuple[str, str], int] = {}
        self.named: dict[str, int] = {}  # door -> sources named apart this interval

    def warn(self, door: str, source: str, message: str, *args: object) -> bool:
        """Log `message` unless this door and source (or too many others) had a line this interval;
        True when the line was written."""
        lines: list[tuple[str, tuple[object, ...]]] = []
        written = False
        with self.lock:
            now = time.monotonic()
            if now >= self.ends_at:
                for (d, src), count in self.unlogged.items():
                    if count:
                        lines.append(
                            ("refused %d more on %s from %s in the last %d s", (count, d, src, self.every))
                        )
                self.unlogged.clear()
                self.named.clear()
                self.ends_at = now + self.every
            key = (door, source)
            if key not in self.unlogged and self.named.get(door, 0) >= self.sources:
                key = (door, _OTHERS)
                if key not in self.unlogged:
                    self.unlogged[key] = 0
                    message = "refused %s from more than %d sources: the others share one line an interval"
                    lines.append((message, (door, self.sources)))
                else:
                    self.unlogged[key] += 1
            elif key in self.unlogged:
                self.unlogged[key] += 1
            else:
                self.unlogged[key] = 0
                self.named[door] = self.named.get(door, 0) + 1
                lines.append((message, args))
                written = True
        for line, values in lines:
            logger.warning(line, *values)
        return written


def log_refusal(request: Request, reason: str, *args: object) -> bool:
    """Log a refused request (throttled, see RefusalLog) as "refused <door> from <source>: <reason>".

    The door is the route (its pattern, so /heartbeat/<name> is one door), the source the client
    address (its /64 for IPv6). True when the line was written.
    """
    door = request.url_rule.rule if request.url_rule is not None else request.path[:64]
    source = source_of(request.remote_addr)
    log: RefusalLog = current_app.extensions.setdefault("operator.refusal_log", RefusalLog())
    return log.warn(door, source, "refused %s from %s: " + reason, door, source, *args)


def refusal(request: Request, settings: Settings, allowed: frozenset[str], required: tuple[str, ...]) -> int:
    """0 for a signed Twilio form; else the status to answer (403 unsigned, 400 malformed), counted.

    Nothing of a refused request is stored: a flood of them must cost a counter, not a row.
    """
    if not is_from_twilio(request, settings):
        SIGNATURE_REJECTIONS.inc()
        reason = "a missing or wrong signature" if settings.public_url else "no PUBLIC_URL to check against"
        log_refusal(request, "%s", reason)
        return 403
    problem = form_problem(request, allowed, required)
    if problem:
        MALFORMED.inc()
        log_refusal(request, "a signed form Twilio does not send (%s)", problem)
        return 400
    return 0


def may_read_metrics(request: Request, settings: Settings) -> bool:
    """/metrics is for a scraper on this host, or one holding METRICS_TOKEN.

    A request that came through a proxy (any forwarding header) is not local, even from 127.0.0.1:
    a reverse proxy on this host would otherwise make every visitor local.
    """
    if settings.metrics_token:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and same_secret(token.strip(), settings.metrics_token):
            return True
    if any(name in request.headers for name in _FORWARDING):
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped and mapped.is_loopback))


_FORWARDING = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")
_FORWARDING_ENVIRON = tuple("HTTP_" + name.upper().replace("-", "_") for name in _FORWARDING)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _within(text: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    address = _ip(text)
    return address is not None and any(address in network for network in networks)


class ForwardedFor:
    """The client address as PROXY_HOPS proxies forward it, believed only from PROXY_ADDRESSES when set.

    ProxyFix believes the last PROXY_HOPS entries of X-Forwarded-For from whoever sends them, so a
    caller that reaches the service directly can claim any address it likes. With the proxies
    named, anyone else's forwarding headers are dropped: its own address is its address.
    """

    def __init__(self, app: Any, hops: int, proxies: tuple[str, ...]):
        self.app = app
        # Only the client address: the signed URL is PUBLIC_URL, never a forwarded host or prefix.
        self.fixed = ProxyFix(app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)
        self.proxies = [ipaddress.ip_network(p) for p in proxies]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.proxies or _within(environ.get("REMOTE_ADDR"), self.proxies):
            return self.fixed(environ, start_response)
        for name in _FORWARDING_ENVIRON:
            environ.pop(name, None)
        return self.app(environ, start_response)


def connected_from(request: Request) -> str:
    """The address that opened the connection (a proxy, or the client itself), whatever it forwarded."""
    original = request.environ.get("werkzeug.proxy_fix.orig") or {}
    return str(original.get("REMOTE_ADDR") or request.remote_addr or "")


def is_named_proxy(address: str, settings: Settings) -> bool:
    """True for an address in PROXY_ADDRESSES (none is when that is empty)."""
    networks = [ipaddress.ip_network(p) for p in settings.proxy_addresses]
    return bool(networks) and _within(address, networks)


def source_of(address: str | None) -> str:
    """Who an address stands for, for limits and logs: an IPv6 address's /64 (one host or
    household holds all of it), an IPv4 address itself (an IPv4-mapped one as IPv4)."""
    found = _ip(address)
    if found is None:
        return "unknown"
    if found.version == 6:
        return str(ipaddress.ip_network(f"{found}/64", strict=False))
    return str(found)


def role_of(settings: Settings, phone: str) -> str | None:
    """The role of an authorized number, None for anyone else."""
    return settings.authorized.get(phone)


def allows(role: str | None, needed: str) -> bool:
    """Roles are ordered viewer < responder < admin."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def mask(phone: str) -> str:
    """+15555550100 -> +1555***0100: enough to tell people apart, not to dial them.

    At least three digits are always hidden (5555550100 -> 555***0100).
    """
    phone = (phone or "").strip()
    if len(phone) <= 8:
        return phone[:2] + "***" + phone[-2:] if len(phone) > 4 else "***"
    return phone[: 5 if phone.startswith("+") else 3] + "***" + phone[-4:]


def _masked(found: re.Match[str]) -> str:
    written = found.group(0)
    if _IPV4.fullmatch(written) and all(int(part) <= 255 for part in written.split(".")):
        return written  # an IPv4 address (a refusal's source), not a number to hide
    plus = "+" if written.lstrip("(").startswith("+") else ""
    return mask(plus + re.sub(r"\D", "", written))


def mask_numbers(text: str) -> str:
    """Mask every phone-number-looking run in free text (log lines, errors, what a viewer sees)."""
    return _PHONE.sub(_masked, text)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison for tokens and passwords."""
    return hmac.compare_digest(given.encode(), expected.encode())
