"""Tenants cannot reach each other's idempotency keys, and a tenant is a plain name."""

from __future__ import annotations

import time

import pytest

from runq.errors import InvalidJobError
from runq.runs import keys
from runq.runs.job import Job, JobSpec
from runq.runs.store import JobStore


def _create(store: JobStore, tenant: str | None, key: str, text: str) -> str | None:
    # Unvalidated on purpose: the key names must not collide even for a spec that no
    # producer would let through (a record written by some other client).
    job = Job.new(JobSpec(input=text, tenant=tenant))
    return store.create(job, [], lease_until=time.time() + 60, idempotency_key=key)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("acme:x", "k"), ("acme", "x:k")),  # a colon in the tenant or in the key
        (("default", "k"), (None, "k")),  # a tenant called `default`, and no tenant
        (("7.acme", "k"), ("acme", "k")),  # a tenant that spells another's prefix
        (("", "k"), (None, "k")),
    ],
)
def test_colliding_idempotency_keys_stay_separate(
    store: JobStore, first: tuple[str | None, str], second: tuple[str | None, str]
) -> None:
    assert keys.idempotency(*first) != keys.idempotency(*second)
    one = _create(store, first[0], first[1], "the first tenant's question")
    # Another spec under the colliding pair: a shared key would refuse it as a conflict
    # (or, with the same spec, answer with the first tenant's job).
    other = _create(store, second[0], second[1], "the second tenant's question")
    assert one is not None and other is not None and one != other
    assert store.find_by_idempotency_key(*first) == one
    assert store.find_by_idempotency_key(*second) == other


def test_the_same_spec_under_colliding_pairs_gets_two_jobs(store: JobStore) -> None:
    one = _create(store, "default", "order-42", "same question")
    other = _create(store, None, "order-42", "same question")
    assert one != other


@pytest.mark.parametrize(
    "tenant", ["acme:x", "", "a b", "x" * 65, "tenant/../other", "ümlaut", "a\nb", 7]
)
def test_a_bad_tenant_is_refused_naming_the_rule(tenant: object) -> None:
    with pytest.raises(InvalidJobError) as refused:
        JobSpec(input="hi", tenant=tenant).validate()  # type: ignore[arg-type]
    assert refused.value.option == "tenant"
    assert "1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'" in str(refused.value)


@pytest.mark.parametrize("tenant", ["acme", "a", "team-1.eu_west", "x" * 64, None])
def test_plain_tenants_are_accepted(tenant: str | None) -> None:
    assert JobSpec(input="hi", tenant=tenant).validate().tenant == tenant
