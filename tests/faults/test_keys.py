"""Row 10: advisory lock keys. The same ``(model, pk)`` gives the same key in every process
whatever its ``PYTHONHASHSEED``, the same pk in two models gives two keys, and random keys
do not collide.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid

from django.apps import apps

from async_queue.locks import lock_id, lock_key, lock_plan
from tests.conftest import ROOT, child_env
from tests.faultapp.models import LedgerCounter, Slot
from tests.faults.conftest import report, size

PKS = [1, 2, 7, 42, 1000, 2**31, 2**63 - 1]
SEEDS = ["0", "1", "4242", "random"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_"
CHILD = """
import json, sys
import django
django.setup()
from async_queue.locks import lock_id, lock_key, lock_plan
from tests.faultapp.models import LedgerCounter, Slot
pks = json.loads(sys.argv[1])
print(json.dumps({
    "slot": [lock_id(lock_key((Slot, pk))) for pk in pks],
    "counter": [lock_id(lock_key((LedgerCounter, pk))) for pk in pks],
    "plan": lock_plan([lock_key((Slot, pk)) for pk in pks]),
    "hash": hash("faultapp.slot:1"),
}))
"""


def keys_in_a_new_process(seed: str) -> dict:
    env = {**child_env(), "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(PKS)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_the_same_object_has_the_same_key_in_every_process():
    """Row 10: processes with different ``PYTHONHASHSEED`` (their ``hash()`` differs) agree
    on every lock id and lock plan, and with this process.
    """
    here = {
        "slot": [lock_id(lock_key((Slot, pk))) for pk in PKS],
        "counter": [lock_id(lock_key((LedgerCounter, pk))) for pk in PKS],
        "plan": [list(step) for step in lock_plan([lock_key((Slot, pk)) for pk in PKS])],
    }
    children = {seed: keys_in_a_new_process(seed) for seed in SEEDS}
    assert len({child.pop("hash") for child in children.values()}) > 1  # the seeds took effect
    for child in children.values():
        assert child == here
    # A pk given as text is the same object, so the same key.
    assert lock_id(lock_key((Slot, "42"))) == lock_id(lock_key((Slot, 42)))
    report(10, "key hashing: processes", seeds=SEEDS, keys_compared=len(PKS) * 2, mismatches=0)


def test_the_same_pk_in_two_models_gives_two_keys():
    """Row 10: ``faultapp.slot:N`` and ``faultapp.ledgercounter:N`` never share a lock id."""
    pks = range(1, size(10_000, 100_000) + 1)
    slots = {lock_id(lock_key((Slot, pk))) for pk in pks}
    counters = {lock_id(lock_key((LedgerCounter, pk))) for pk in pks}
    assert len(slots) == len(counters) == len(pks)
    assert not slots & counters
    assert lock_id("faultapp.slot:*") != lock_id("faultapp.ledgercounter:*")
    report(10, "key hashing: two models", pks=len(pks), shared_ids=0)


def random_keys(count: int, rng: random.Random) -> set[str]:
    """Distinct keys shaped like real ones: model keys with int, uuid and text pks, and strings."""
    labels = [model._meta.label_lower for model in apps.get_models()]
    keys: set[str] = set()
    while len(keys) < count:
        kind = rng.random()
        if kind < 0.6:
            pk: object = rng.randrange(1, 2**63)
        elif kind < 0.8:
            pk = uuid.UUID(int=rng.getrandbits(128))
        else:
            pk = "".join(rng.choices(ALPHABET, k=rng.randint(1, 40)))
        keys.add(f"{rng.choice(labels)}:{pk}" if kind < 0.95 else f"feed-{pk}")
    return keys


def test_random_keys_do_not_collide():
    """Row 10: 10^6 distinct keys (CI: 10^5) map to as many distinct 64-bit lock ids."""
    count = size(100_000, 1_000_000)
    keys = random_keys(count, random.Random(10))
    started = time.monotonic()
    ids = {lock_id(key) for key in keys}
    elapsed = time.monotonic() - started
    assert len(ids) == count
    assert all(-(2**63) <= value < 2**63 for value in ids)  # PostgreSQL's bigint
    report(10, "key hashing: collisions", keys=count, collisions=0, seconds=round(elapsed, 2))
