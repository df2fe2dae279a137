"""The webhook's pure parts: the signature, the backoff, the settings' rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from experiments.webhooks import RetryPolicy, WebhookSpec, sign


def test_the_signature_matches_a_published_hmac_sha256_example() -> None:
    # GitHub's documented test values for webhook signatures (the same HMAC-SHA256 scheme)
    signature = sign("It's a Secret to Everybody", b"Hello, World!")
    assert signature == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@given(
    retry=st.integers(min_value=1, max_value=12),
    first=st.floats(min_value=0, max_value=1, exclude_max=True),
    second=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_each_wait_is_longer_than_the_one_before_until_the_cap(
    retry: int, first: float, second: float
) -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=1e9, jitter=0.25)
    now, then = policy.delay_seconds(retry, first), policy.delay_seconds(retry + 1, second)
    assert then > now
    full = 2.0 ** (retry - 1)
    assert 0.75 * full <= now <= full


def test_the_wait_is_capped_and_a_retry_after_lengthens_it_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=10.0, jitter=0.0)
    assert [policy.delay_seconds(n, 0.5) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay_seconds(1, 0.0, retry_after=5.0) == 5.0
    assert policy.delay_seconds(1, 0.0, retry_after=3600.0) == 10.0
    assert policy.delay_seconds(3, 0.0, retry_after=0.5) == 4.0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1, got 0"),
        ({"jitter": 0.5}, "jitter must be in [0, 0.5), got 0.5"),
        ({"base_seconds": 0}, "base_seconds must be > 0"),
        ({"base_seconds": 2.0, "cap_seconds": 1.0}, "cap_seconds >= base_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds must be > 0"),
    ],
)
def test_a_bad_retry_policy_is_refused_by_name(options: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace(")", r"\)")):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/abacus",
        "http://127.0.0.1:8080/hook?token=abc",
        "https://[::1]:9000/x",
        "https://xn--bcher-kva.example/",
    ],
)
def test_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    assert WebhookSpec(url=url).url == url


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mailto:ops@example.com", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https:///path", "no host"),
        ("https://h.example:0x50/", "not a valid URL"),
        ("https://h.example/\x00", "control characters"),
    ],
)
def test_other_urls_are_refused_with_the_rule(url: str, needle: str) -> None:
    with pytest.raises(ValidationError, match="url") as caught:
        WebhookSpec(url=url)
    assert needle in str(caught.value)
