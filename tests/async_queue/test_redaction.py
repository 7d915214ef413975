import pytest
from django.core.exceptions import ImproperlyConfigured

from async_queue.redaction import REDACTED, compile_pattern, is_secret, redact, redact_text

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAq1w2x\nZm9vYmFyYmF6cXV4\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_passwd",
        "client_secret",
        "API_KEY",
        "apiKey",
        "csrftoken",
        "X-Session-Id",
        "Authorization",
        "auth",
        "auth_header",
        "authToken",
        "X-Auth",
        "private_key",
        "privateKey",
        "ssh-private-key",
        "credentials",
        "aws_credential",
        "dsn",
        "SENTRY_DSN",
        "db_pass",
        "pwd",
        "jwt",
        "passphrase",
    ],
)
def test_secret_key_names(key):
    assert is_secret(key)


@pytest.mark.parametrize(
    "key", ["author", "authors", "oauth_provider", "passenger", "compass", "keyword", "db_url", 3]
)
def test_ordinary_key_names(key):
    assert not is_secret(key)


def test_extra_key_words(settings):
    settings.ASYNC_QUEUE = {"REDACT_KEYS": ["iban", "socialSecurity"]}
    assert is_secret("customer_iban")
    assert is_secret("IBAN")
    assert is_secret("social_security_number")
    assert not is_secret("ibanez")  # whole words only


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "could not connect to postgres://app:s3cr3t@db.example.com:5432/app",
            f"could not connect to postgres://app:{REDACTED}@db.example.com:5432/app",
        ),
        ("redis://:pw@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        ("https://u:p@ss@host/x", f"https://u:{REDACTED}@host/x"),
        ("https://example.com:8080/path?q=1", "https://example.com:8080/path?q=1"),
        ("mail ann@example.com", "mail ann@example.com"),
        (
            f"key: {PEM}\nafter",
            f"key: -----BEGIN RSA PRIVATE KEY-----{REDACTED}-----END RSA PRIVATE KEY-----\nafter",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk (cut short",
            f"-----BEGIN OPENSSH PRIVATE KEY-----{REDACTED}",
        ),
        ("-----BEGIN CERTIFICATE-----\nMIIB", "-----BEGIN CERTIFICATE-----\nMIIB"),
        (
            "host=db user=app password=pw123 dbname=x",
            f"host=db user=app password={REDACTED} dbname=x",
        ),
        ("GET /x?access_token=abc&page=2", f"GET /x?access_token={REDACTED}&page=2"),
        ("author=ann page=2", "author=ann page=2"),
        (
            "bad config {'password': 'hunter2', 'user': 'ann', \"api_key\": \"k-1\"}",
            f"bad config {{'password': '{REDACTED}', 'user': 'ann', \"api_key\": \"{REDACTED}\"}}",
        ),
        ("Authorization: Bearer abc.def.ghi", f"Authorization: Bearer {REDACTED}"),
        ("if token == other:", "if token == other:"),
    ],
)
def test_credentials_in_text(text, expected):
    assert redact_text(text) == expected


def test_extra_patterns(settings):
    settings.ASYNC_QUEUE = {"REDACT_PATTERNS": [r"sk_live_\w{8,}", r"pin (?P<secret>\d{4})"]}
    assert redact_text("charged with sk_live_abcdef123456.") == f"charged with {REDACTED}."
    assert redact_text("pin 1234 ok") == f"pin {REDACTED} ok"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (42, "must be a regular expression string"),
        ("[unclosed", "is not a valid regular expression"),
        ("a*", "matches the empty string"),
    ],
)
def test_bad_patterns_are_refused_by_name(pattern, problem):
    with pytest.raises(ImproperlyConfigured, match=problem) as caught:
        compile_pattern(pattern, 3)
    assert "REDACT_PATTERNS'][3]" in str(caught.value)


def test_redact_copies_with_keys_and_values_redacted():
    value = {
        "author": "ann",
        "credentials": {"user": "u", "anything": "x"},
        "db": ["postgres://u:pw@h/db", 3, None],
        "private_key": PEM,
    }
    assert redact(value) == {
        "author": "ann",
        "credentials": REDACTED,
        "db": [f"postgres://u:{REDACTED}@h/db", 3, None],
        "private_key": REDACTED,
    }
    assert value["db"][0] == "postgres://u:pw@h/db"  # a copy: the original is untouched


def test_redact_walks_any_depth_without_recursion():
    depth = 100_000
    value: list = []
    inner = value
    for _ in range(depth):
        inner.append({"password": "x", "next": []})
        inner = inner[0]["next"]
    copy = redact(value)
    levels = 0
    while copy:
        assert copy[0]["password"] == REDACTED
        copy = copy[0]["next"]
        levels += 1
    assert levels == depth
