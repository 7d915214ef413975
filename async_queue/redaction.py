"""What pages never show: credentials in a job's JSON, its errors and tracebacks.

Two kinds of evidence, both applied wherever the dashboard, the admin or powercrud
show a job:

- **Key names.** The value under a secret-looking key is replaced by ``REDACTED``,
  whatever it is (a string, a dict, a list). Long markers (``password``, ``token``,
  ``secret``, ...) match anywhere in a key (``db_passwd``, ``X-Session-Id``,
  ``csrftoken``); short ones (``auth``, ``dsn``, ``pwd``, ...) only as a whole word,
  so ``auth_header`` and ``authToken`` are secret but ``author`` is not. A key's
  words are split at ``_``, ``-``, ``.``, spaces and camelCase humps.
  ``ASYNC_QUEUE["REDACT_KEYS"]`` adds whole-word markers.
- **Values.** In any string (values, keys, error messages, tracebacks):
  the password of a URL (``scheme://user:password@host``), PEM private key blocks,
  ``password=...``-style pairs, quoted ``'password': '...'`` pairs (a dict's repr
  in an exception message) and ``Bearer``/``Basic`` credentials.
  ``ASYNC_QUEUE["REDACT_PATTERNS"]`` adds regular expressions: each match is
  replaced, or only its ``secret`` group when it has one.

Everything here is iterative: a value nested as deep as a row can hold is
walked without recursion.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .conf import queue_settings

REDACTED = "••••••"

# Matched anywhere in the normalized key: long enough not to occur by accident.
SECRET_MARKERS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "credential",
    "private_key",
    "privatekey",
)
# Matched only as whole words of the key: short, so "author" must not be "auth".
SECRET_WORDS = ("auth", "pwd", "pass", "dsn", "jwt", "otp")

_HUMP = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def normalize_key(key: object) -> str:
    """``key`` as lowercase words joined by ``_`` (``"X-Auth.Token"`` -> ``"x_auth_token"``)."""
    return _SEPARATORS.sub("_", _HUMP.sub(r"\1_\2", str(key)).lower()).strip("_")


@functools.lru_cache(maxsize=16)
def _word_pattern(extra: tuple[str, ...]) -> re.Pattern[str]:
    words = [*SECRET_WORDS, *(normalize_key(word) for word in extra)]
    alternatives = "|".join(re.escape(word) for word in sorted(set(words)) if word)
    return re.compile(rf"(?:^|_)(?:{alternatives})(?:_|$)")


def is_secret(key: object) -> bool:
    """Whether the value under ``key`` must not be shown (see the module docstring)."""
    normalized = normalize_key(key)
    if any(marker in normalized for marker in SECRET_MARKERS):
        return True
    return _word_pattern(tuple(queue_settings.REDACT_KEYS)).search(normalized) is not None


# -- values -----------------------------------------------------------------------------

_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/?#@:]*:)(?P<secret>[^\s/?#]*)(?=@)", re.IGNORECASE
)
_PEM = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*-----)"
    r"(?:.*?(?P<end>-----END [A-Z0-9 ]*-----)|.*\Z)",
    re.DOTALL,
)
# ``name=value`` (query strings, DSNs, keyword arguments in messages): the callback
# decides by the name, so the key markers (and REDACT_KEYS) apply.
_PAIR = re.compile(
    r"(?<![A-Za-z0-9_])(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,60})(?P<eq>\s*=\s*)"
    r"(?P<secret>[^\s&;,'\"=]+)"
)
# ``'name': 'value'`` (a dict's repr or JSON inside a message). Values are bounded so
# that an unterminated quote costs a bounded scan, not one to the end of the text.
_QUOTED_PAIR = re.compile(
    r"(?P<key>(?P<q>['\"])(?P<name>[^'\"\n]{1,100})(?P=q)\s*:\s*)"
    r"(?:'(?P<single>(?:\\.|[^\\'\n]){0,4096})'|\"(?P<double>(?:\\.|[^\\\"\n]){0,4096})\")"
)
_BEARER = re.compile(r"\b(?P<head>(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{6,})")


def _replace_secret(match: re.Match[str]) -> str:
    """The match with its ``secret`` group (or all of it, without one) replaced."""
    if "secret" not in match.re.groupindex or match.group("secret") is None:
        return REDACTED
    start, end = match.span("secret")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + REDACTED + whole[end - offset :]


def _pem(match: re.Match[str]) -> str:
    return f"{match.group('begin')}{REDACTED}{match.group('end') or ''}"


def _pair(match: re.Match[str]) -> str:
    if not is_secret(match.group("name")):
        return match.group(0)
    return f"{match.group('name')}{match.group('eq')}{REDACTED}"


def _quoted_pair(match: re.Match[str]) -> str:
    if not is_secret(match.group("name")):
        return match.group(0)
    quote = "'" if match.group("single") is not None else '"'
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


# (a cheap test whether the pattern can match, the pattern, its replacement)
_BUILT_IN: tuple[tuple[Callable[[str], bool], re.Pattern[str], Callable[..., str]], ...] = (
    (lambda text: "-----BEGIN" in text, _PEM, _pem),
    (lambda text: "://" in text, _URL_PASSWORD, _replace_secret),
    (lambda text: "=" in text, _PAIR, _pair),
    (lambda text: ":" in text, _QUOTED_PAIR, _quoted_pair),
    (lambda text: "Bearer" in text or "Basic" in text, _BEARER, _replace_secret),
)


def compile_pattern(pattern: object, index: int = 0) -> re.Pattern[str]:
    """``REDACT_PATTERNS[index]`` compiled; a bad one raises ``ImproperlyConfigured``."""
    where = f"ASYNC_QUEUE['REDACT_PATTERNS'][{index}]"
    if not isinstance(pattern, str):
        raise ImproperlyConfigured(
            f"{where} must be a regular expression string, not {type(pattern).__name__}."
        )
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ImproperlyConfigured(
            f"{where} {pattern!r} is not a valid regular expression: {exc}."
        ) from None
    if regex.search("") is not None:
        raise ImproperlyConfigured(
            f"{where} {pattern!r} matches the empty string, so it would redact between every "
            "character: make it match the secret itself."
        )
    return regex


@functools.lru_cache(maxsize=16)
def _extra_patterns(patterns: tuple[object, ...]) -> list[re.Pattern[str]]:
    return [compile_pattern(pattern, index) for index, pattern in enumerate(patterns)]


def redact_text(text: str) -> str:
    """``text`` with credentials found in it replaced by ``REDACTED``."""
    for applies, pattern, replace in _BUILT_IN:
        if applies(text):
            text = pattern.sub(replace, text)
    for pattern in _extra_patterns(tuple(queue_settings.REDACT_PATTERNS)):
        text = pattern.sub(_replace_secret, text)
    return text


def redact_key(key: Any) -> Any:
    return redact_text(key) if isinstance(key, str) else key


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON) with secrets replaced, at any depth (no recursion).

    Values under secret-looking keys become ``REDACTED``; strings (keys included)
    have the credentials found in them replaced.
    """
    if isinstance(value, str):
        return redact_text(value)
    if not isinstance(value, dict | list | tuple):
        return value
    root: list[Any] = [None]
    # (container to fill, where in it, the value to copy there)
    pending: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while pending:
        target, slot, item = pending.pop()
        if isinstance(item, dict):
            copy: Any = {}
            for key, child in item.items():
                if is_secret(key):
                    copy[redact_key(key)] = REDACTED
                else:
                    copy[redact_key(key)] = None
                    pending.append((copy, redact_key(key), child))
        elif isinstance(item, list | tuple):
            copy = [None] * len(item)
            pending.extend((copy, index, child) for index, child in enumerate(item))
        elif isinstance(item, str):
            copy = redact_text(item)
        else:
            copy = item
        target[slot] = copy
    return root[0]
