"""Who may talk to Operator: Twilio's signature, authorized numbers and roles, masking."""

from __future__ import annotations

import hmac
import logging
import re
from functools import lru_cache
from urllib.parse import quote

from flask import Request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from config import ROLES, Settings

logger = logging.getLogger(__name__)

_PHONE = re.compile(r"\+?\d[\d\- ]{6,}\d")


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: PUBLIC_URL + path + raw query, else the (proxy-fixed) request URL.

    Werkzeug's request.url percent-decodes the query string, which would break the signature
    of any URL with an encoded character, so the raw QUERY_STRING is used in both cases.
    """
    query = request.environ.get("QUERY_STRING", "")
    suffix = f"?{query}" if query else ""
    path = quote(request.script_root + request.path, safe="/%:@!$&'()*+,;=-._~")
    if settings.public_url:
        return settings.public_url + path + suffix
    return request.host_url.rstrip("/") + path + suffix


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
    if not signature:
        return False
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    if signature_settings:
        secret = settings.twilio_webhook_shared_key
        if not secret:
            logger.warning("signed with a Twilio SharedKey but TWILIO_WEBHOOK_SHARED_KEY is not set")
            return False
    else:
        secret = settings.twilio_auth_token
    algorithm = get_signature_algorithm(signature_settings)
    return _validator(secret).validate(signed_url(request, settings), request.form, signature, algorithm)


def role_of(settings: Settings, phone: str) -> str | None:
    """The role of an authorized number, None for anyone else."""
    return settings.authorized.get(phone)


def allows(role: str | None, needed: str) -> bool:
    """Roles are ordered viewer < responder < admin."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def mask(phone: str) -> str:
    """+15555550100 -> +1555***0100: enough to tell people apart, not to dial them."""
    phone = (phone or "").strip()
    if len(phone) <= 8:
        return phone[:2] + "***" + phone[-2:] if len(phone) > 4 else "***"
    return phone[:5] + "***" + phone[-4:]


def mask_numbers(text: str) -> str:
    """Mask every phone-number-looking run in free text (log lines, errors)."""
    return _PHONE.sub(lambda m: mask(re.sub(r"[\- ]", "", m.group(0))), text)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison for tokens and passwords."""
    return hmac.compare_digest(given.encode(), expected.encode())
