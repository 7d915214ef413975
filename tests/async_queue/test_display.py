import json
import re

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from async_queue.display import call_summary, show_json, show_line, show_text
from async_queue.fields import UnreadableJSON
from async_queue.redaction import REDACTED, redact

VALUES = [
    None,
    0,
    1.5,
    "é <b>",
    [],
    {},
    [1, [2, [3, []]], {}],
    {"a": {"b": [1, {"password": "x", "c": None}]}, "z": True, 5: "int key"},
    {"url": "postgres://u:pw@h/db", "nested": [{"token": ["a", "b"]}]},
]


@pytest.mark.parametrize("value", VALUES)
def test_small_values_read_as_json_dumps_of_the_redacted_value(value):
    expected = json.dumps(redact(value), indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
    assert show_json(value) == expected
    one_line = json.dumps(redact(value), separators=(", ", ": "), ensure_ascii=False)
    assert show_json(value, indent=None) == one_line


def note_bytes(text: str) -> int:
    match = re.search(r"… \[(more than )?([\d,]+) more bytes not shown\]$", text)
    assert match, text[-200:]
    return int(match.group(2).replace(",", ""))


def test_a_big_string_is_cut_with_a_note_of_what_is_left_out(settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 1000}
    value = {"blob": "x" * 10_000_000}
    shown = show_json(value)
    body = shown.rpartition("\n")[0]
    assert len(body.encode()) == 1000
    compact = len(json.dumps(value, separators=(",", ":")))
    shown_compact = len(body.replace("\n", "").replace("  ", "").replace('": ', '":'))
    assert note_bytes(shown) == compact - shown_compact


def test_a_credential_across_the_cut_is_redacted_before_the_cut(settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 1000}
    for offset in range(960, 1010, 3):
        text = "a" * offset + " postgres://user:hunter2-long-password@db/x " + "b" * 50_000
        assert "hunter" not in show_json([text])
        assert "hunter" not in show_text(text)
        assert "hunter" not in show_line(text, offset + 20)


def test_many_keys_are_cut_and_counted(settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 4096}
    value = {f"key{index}": index for index in range(200_000)}
    shown = show_json(value)
    assert len(shown.encode()) < 4096 + 100
    assert note_bytes(shown) > 3_000_000


def test_values_deeper_than_any_recursion_limit(settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 4096}
    value: list = []
    inner = value
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    shown = show_json(value)
    assert shown.startswith("[\n  [\n    [")
    assert len(shown.encode()) < 4096 + 100
    assert "more than" in shown  # too deep for the C encoder to size: counted in steps
    assert show_json(value, indent=None).startswith("[[[[")
    assert call_summary("m.fn", [value], {}).startswith("fn([[[[")


def test_an_unreadable_value_shows_its_note():
    note = UnreadableJSON("[unreadable: JSON nested too deeply to decode (200,000 characters)]")
    assert show_json(note) == str(note)
    assert call_summary("m.fn", note, {}) == f"fn({note})"


def test_text_is_redacted_and_cut(settings):
    settings.ASYNC_QUEUE = {"SHOW_MAX_BYTES": 100}
    assert show_text("x postgres://u:pw@h/db") == f"x postgres://u:{REDACTED}@h/db"
    shown = show_text("é" * 1000)
    assert shown.startswith("é" * 50)
    assert shown.endswith("… [1,900 more bytes not shown]")
    assert show_line("token=abc " + "y" * 10_000, 20) == f"token={REDACTED} yyyyyy…"


def test_call_summary_is_redacted_and_short():
    summary = call_summary(
        "app.tasks.send",
        [{"to": "ann"}, "postgres://u:pw@h/db"],
        {"password": "x", "count": 3},
    )
    assert summary == (
        f'send({{"to": "ann"}}, "postgres://u:{REDACTED}@h/db", password="{REDACTED}", count=3)'
    )
    long = call_summary("app.tasks.send", ["x" * 1_000_000, [1] * 100_000], {"k": "v"})
    assert len(long) == 120
    assert call_summary("app.tasks.send", [], {}) == "send()"
    assert call_summary("app.tasks.send", "not a list", [1]) == 'send("not a list", **[1])'
