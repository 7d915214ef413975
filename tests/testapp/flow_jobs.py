"""Jobs with concurrency limits and rates, for the flow-control tests."""

from async_queue import job


def account_key(account: int, **kwargs: object) -> str:
    return f"account:{account}"


@job(concurrency=1, concurrency_key="tenant:{tenant}")
def one_per_tenant(tenant: int) -> int:
    return tenant


@job(concurrency=2, concurrency_key=account_key)
def two_per_account(account: int, note: str = "") -> int:
    return account


@job(concurrency=1)
def one_at_a_time() -> str:
    return "ran"


@job(rate="2/h")
def twice_an_hour(n: int = 0) -> int:
    return n


@job(rate="1/h", rate_key="feed:{0}")
def hourly_per_feed(feed: str) -> str:
    return feed


@job(queue="throttled")
def in_throttled_queue(n: int = 0) -> int:
    return n
