"""The fault server: scripted replies, Retry-After forms, slow and large answers, rate limits,
tokens, arrivals, and a clean start and stop."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from forbear_testing import DEFAULT_REPLY, FaultServer, Reply, serve


@pytest.fixture
def client(fault_server: FaultServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_server.url, timeout=5.0) as client:
        yield client


def test_unscripted_path_answers_the_default(client: httpx.Client) -> None:
    """A path with nothing scripted answers 200 with a small body."""
    response = client.get("/anything")
    assert (response.status_code, response.content) == (200, DEFAULT_REPLY.body)


def test_script_answers_in_order_then_the_default(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """Scripted replies answer the next requests to that path in order, then the default."""
    fault_server.script("/p", [Reply(503, body=b"one"), Reply(502, headers={"X-A": "b"})])
    fault_server.script("/p", [Reply(500)])
    assert fault_server.pending("/p") == 3
    answers = [client.get("/p") for _ in range(4)]
    assert [r.status_code for r in answers] == [503, 502, 500, 200]
    assert answers[0].content == b"one"
    assert answers[1].headers["x-a"] == "b"
    assert fault_server.pending("/p") == 0


def test_script_is_per_path(fault_server: FaultServer, client: httpx.Client) -> None:
    """A script for one path leaves other paths on the default."""
    fault_server.script("/a", [Reply(503)])
    assert client.get("/b").status_code == 200
    assert client.get("/a").status_code == 503


def test_always_answers_every_request(fault_server: FaultServer, client: httpx.Client) -> None:
    """An always-reply answers every request once the script is used up, until cleared."""
    fault_server.script("/p", [Reply(429)])
    fault_server.always("/p", Reply(503))
    assert [client.get("/p").status_code for _ in range(4)] == [429, 503, 503, 503]
    fault_server.always("/p", None)
    assert client.get("/p").status_code == 200


def test_retry_after_seconds(fault_server: FaultServer, client: httpx.Client) -> None:
    """retry_after sends whole seconds as an integer and fractions as they are."""
    fault_server.script("/p", [Reply(503, retry_after=2), Reply(503, retry_after=0.5)])
    assert client.get("/p").headers["retry-after"] == "2"
    assert client.get("/p").headers["retry-after"] == "0.5"


def test_retry_after_date_is_computed_when_the_reply_is_sent(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """retry_after_date is an IMF-fixdate at least that far after the reply's sending time."""
    fault_server.script("/p", [Reply(429, retry_after_date=3.0, delay=0.3)])
    response = client.get("/p")
    received = time.time()
    value = response.headers["retry-after"]
    assert value.endswith(" GMT")
    moment = parsedate_to_datetime(value).timestamp()
    assert received - 0.3 + 3.0 <= moment <= received + 4.0


def test_delay_triggers_a_read_timeout(fault_server: FaultServer, client: httpx.Client) -> None:
    """A delayed reply keeps the headers back long enough for a read timeout."""
    fault_server.script("/slow", [Reply(200, delay=5.0)])
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/slow", timeout=0.2)
    assert time.monotonic() - started < 2.0
    assert len(fault_server.arrivals("/slow")) == 1


def test_large_body_is_streamed_with_its_length(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """body_size streams exactly that many bytes and announces them in Content-Length."""
    size = 3 * 2**20 + 17
    fault_server.script("/big", [Reply(503, body_size=size, chunk_size=100_000)])
    with client.stream("GET", "/big") as response:
        assert response.headers["content-length"] == str(size)
        received = sum(len(chunk) for chunk in response.iter_raw())
    assert received == size


def test_large_body_can_be_abandoned(fault_server: FaultServer, client: httpx.Client) -> None:
    """A client closing a 20 MB answer early leaves the server answering the next request."""
    fault_server.script("/big", [Reply(503, body_size=20 * 2**20)])
    with client.stream("GET", "/big") as response:
        next(response.iter_raw())
    assert client.get("/after").status_code == 200


def test_gzip_bomb_is_small_on_the_wire_and_huge_decoded(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """gzip_bomb sends Content-Encoding: gzip, about a thousandth of its decoded size."""
    size = 50 * 2**20
    fault_server.script("/bomb", [Reply(503, gzip_bomb=size)])
    with client.stream("GET", "/bomb") as response:
        wire = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert len(wire) < size // 500
    assert len(zlib.decompress(wire, wbits=31)) == size
    assert gzip.decompress(wire)[:16] == bytes(16)


def test_rate_limit_answers_429_with_retry_after(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """A limited path lets 1 + burst requests through, then answers 429 with Retry-After."""
    fault_server.limit("/limited", rate=0.5, burst=2)
    answers = [client.get("/limited") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[3].headers["retry-after"] == "2"
    assert client.get("/other").status_code == 200


def test_rate_limit_refills(fault_server: FaultServer, client: httpx.Client) -> None:
    """The bucket refills at its rate: after 1/rate seconds one more request passes."""
    fault_server.limit("/limited", rate=2.0)
    assert client.get("/limited").status_code == 200
    assert client.get("/limited").status_code == 429
    time.sleep(0.5)
    assert client.get("/limited").status_code == 200


def test_rate_limit_by_prefix_shares_one_bucket(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """A prefix limit covers every path under it with one bucket."""
    fault_server.limit("/api/", rate=0.1, prefix=True)
    assert client.get("/api/a").status_code == 200
    assert client.get("/api/b").status_code == 429
    assert client.get("/apix").status_code == 200


def test_rate_limit_changes_while_running(fault_server: FaultServer, client: httpx.Client) -> None:
    """set_rate changes a running limit's rate: a slow bucket made fast lets requests through."""
    fault_server.limit("/changing", rate=0.1)
    assert client.get("/changing").status_code == 200
    refused = client.get("/changing")
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "10")
    assert fault_server.set_rate("/changing", 1000.0) == 1
    time.sleep(0.01)
    assert client.get("/changing").status_code == 200
    assert fault_server.set_rate("/elsewhere", 1.0) == 0


def test_overload_limit_answers_503(fault_server: FaultServer, client: httpx.Client) -> None:
    """A limit with status=503 sheds load with 503 and Retry-After."""
    fault_server.limit("/busy", rate=0.5, status=503)
    assert client.get("/busy").status_code == 200
    answer = client.get("/busy")
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "2")
    with pytest.raises(ValueError):
        fault_server.limit("/busy", rate=1.0, status=500)


def test_limit_per_api_key(fault_server: FaultServer, client: httpx.Client) -> None:
    """With per=, each value of the query parameter has a bucket of its own, before scripts."""
    fault_server.limit("/keyed/", rate=0.1, prefix=True, per="api_key")
    fault_server.always("/keyed/a", Reply(200, body=b"scripted"))
    assert client.get("/keyed/a", params={"api_key": "alice"}).content == b"scripted"
    assert client.get("/keyed/a", params={"api_key": "alice"}).status_code == 429
    assert client.get("/keyed/b", params={"api_key": "bob"}).status_code == 200
    assert client.get("/keyed/b", params={"api_key": "bob"}).status_code == 429
    assert fault_server.set_rate("/keyed/", 1000.0) == 1
    time.sleep(0.01)
    assert client.get("/keyed/a", params={"api_key": "alice"}).status_code == 200


@pytest.mark.parametrize("announce", [False, True])
def test_fixed_window_reset_in_epoch_seconds(
    fault_server: FaultServer, client: httpx.Client, announce: bool
) -> None:
    """A spent window answers 429 with GitHub's headers: the reset in whole Unix seconds."""
    fault_server.window("/window", limit=2, window=60.0, announce=announce)
    answers = [client.get("/window") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    refused = answers[2].headers
    assert refused["x-ratelimit-limit"] == "2"
    assert refused["x-ratelimit-remaining"] == "0"
    reset = int(refused["x-ratelimit-reset"])
    assert reset % 60 == 0 and 0 < reset - time.time() <= 60
    assert "retry-after" not in refused
    if announce:
        assert [r.headers["x-ratelimit-remaining"] for r in answers[:2]] == ["1", "0"]
        assert answers[0].headers["x-ratelimit-reset"] == str(reset)
    else:
        assert "x-ratelimit-remaining" not in answers[0].headers


def test_concurrency_limit_refuses_beyond_n_in_flight(fault_server: FaultServer) -> None:
    """Two in flight at most: a third at once gets 429; once they end, a place is free."""
    fault_server.concurrency("/capped", limit=2, delay=0.3)
    url = fault_server.url + "/capped"
    statuses: list[int] = []

    def fetch() -> None:
        statuses.append(httpx.get(url, timeout=5.0).status_code)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5.0
    while len(fault_server.arrivals("/capped")) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # both admitted (they are answered 0.3 s after arriving)
    third = httpx.get(url, timeout=5.0)
    assert (third.status_code, third.headers["retry-after"]) == (429, "1")
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    assert httpx.get(url, timeout=5.0).status_code == 200


def test_token_required(fault_server: FaultServer, client: httpx.Client) -> None:
    """A token path answers 401 without a valid bearer token and 200 with one."""
    fault_server.require_token("/secure")
    assert client.get("/secure").status_code == 401
    assert client.get("/secure", headers={"Authorization": "Bearer nope"}).status_code == 401
    token = fault_server.issue_token()
    assert client.get("/secure", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert fault_server.tokens_issued == 1


def test_issue_token_expires_the_previous_one_unless_told_not_to(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """A new token expires the old one by default; expire_previous=False keeps both valid."""
    fault_server.require_token("/api/", prefix=True)

    def status(token: str) -> int:
        return client.get("/api/x", headers={"Authorization": f"Bearer {token}"}).status_code

    first = fault_server.issue_token()
    second = fault_server.issue_token()
    assert (status(first), status(second)) == (401, 200)
    third = fault_server.issue_token(expire_previous=False)
    assert (status(second), status(third)) == (200, 200)
    fault_server.expire_tokens()
    assert status(third) == 401
    assert fault_server.tokens_issued == 3


def test_token_endpoint_issues_over_http(fault_server: FaultServer, client: httpx.Client) -> None:
    """A token endpoint hands out valid tokens as JSON and can be scripted to fail."""
    fault_server.require_token("/secure")
    fault_server.token_endpoint("/token")
    fault_server.script("/token", [Reply(503)])
    assert client.post("/token").status_code == 503
    issued = client.post("/token").json()
    assert issued["token_type"] == "Bearer"
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    assert client.get("/secure", headers=headers).status_code == 200
    client.post("/token")
    assert client.get("/secure", headers=headers).status_code == 401
    assert fault_server.tokens_issued == 2


def test_script_comes_before_the_token_check(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """A scripted reply answers even a request with a valid token."""
    fault_server.require_token("/secure")
    fault_server.script("/secure", [Reply(503)])
    token = fault_server.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/secure", headers=headers).status_code == 503
    assert client.get("/secure", headers=headers).status_code == 200


def test_arrivals_record_the_request_and_the_answer(
    fault_server: FaultServer, client: httpx.Client
) -> None:
    """Each arrival keeps method, path, query, headers, body, clocks, status and Retry-After."""
    fault_server.script("/rec", [Reply(429, retry_after=3)])
    before = time.monotonic()
    client.post("/rec?a=1&b=2", content=b"payload", headers={"Idempotency-Key": "k-1"})
    client.put("/rec", content=iter([b"gen-", b"erated"]))
    client.get("/elsewhere")
    first, second = fault_server.arrivals("/rec")
    assert (first.method, first.path, first.query) == ("POST", "/rec", "a=1&b=2")
    assert first.body == b"payload"
    assert first.header("Idempotency-Key") == "k-1"
    assert (first.status, first.retry_after) == (429, "3")
    assert before <= first.time <= second.time <= time.monotonic()
    assert abs(first.wall - time.time()) < 5
    assert (second.method, second.body, second.status, second.retry_after) == (
        "PUT",
        b"gen-erated",
        200,
        None,
    )
    assert len(fault_server.arrivals()) == 3


def test_arrival_repr_hides_secrets(fault_server: FaultServer, client: httpx.Client) -> None:
    """An arrival's repr never shows Authorization or X-API-Key values."""
    client.get("/s", headers={"Authorization": "Bearer sekrit-token", "X-API-Key": "sekrit-key"})
    text = repr(fault_server.arrivals("/s"))
    assert "sekrit" not in text
    assert "<redacted>" in text


def test_reset_clears_everything(fault_server: FaultServer, client: httpx.Client) -> None:
    """reset drops scripts, always-replies, limits, token rules, tokens and arrivals."""
    fault_server.script("/a", [Reply(503)])
    fault_server.always("/b", Reply(503))
    fault_server.limit("/c", rate=0.1)
    fault_server.require_token("/d")
    fault_server.issue_token()
    client.get("/c")
    fault_server.reset()
    assert fault_server.arrivals() == []
    assert fault_server.tokens_issued == 0
    assert [client.get(p).status_code for p in ("/a", "/b", "/c", "/c", "/d")] == [200] * 5


def test_scripting_is_thread_safe(fault_server: FaultServer) -> None:
    """Concurrent clients each consume exactly one scripted reply."""
    fault_server.script("/p", [Reply(503)] * 40)
    statuses: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        with httpx.Client(timeout=5.0) as client:
            for _ in range(10):
                status = client.get(fault_server.url + "/p").status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses).count(503) == 40
    assert statuses.count(200) == 40


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_in_process_async(anyio_backend: str) -> None:
    """In-process, scripted replies, delays and streaming work on asyncio and trio."""
    server = FaultServer()
    server.script("/p", [Reply(503, retry_after=1, delay=0.01), Reply(200, body_size=1000)])
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/p")
        second = await client.get("/p")
    assert (first.status_code, first.headers["retry-after"]) == (503, "1")
    assert (second.status_code, len(second.content)) == (200, 1000)
    assert [a.status for a in server.arrivals("/p")] == [503, 200]


def test_serve_starts_fast_and_stops_clean() -> None:
    """serve binds 127.0.0.1, answers at once, and leaves no thread behind."""
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    with serve() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/x").status_code == 200
        assert time.monotonic() - started < 2.0
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(RuntimeError, match="not served"):
        _ = server.url


def test_stop_is_prompt_with_a_slow_reply_and_an_open_connection() -> None:
    """Stopping does not wait for a long delay or an idle keep-alive connection."""
    with serve() as server:
        server.always("/slow", Reply(200, delay=30.0))
        client = httpx.Client(timeout=0.2)
        client.get(server.url + "/fast")
        with pytest.raises(httpx.ReadTimeout):
            client.get(server.url + "/slow")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.0
    client.close()


def test_serving_twice_at_once_is_refused() -> None:
    """One service is served at one address at a time."""
    server = FaultServer()
    with serve(server), pytest.raises(RuntimeError, match="already served"), serve(server):
        pass


def test_reply_validates_its_fields() -> None:
    """Out-of-range values are refused when the reply is built."""
    with pytest.raises(ValueError, match="status"):
        Reply(99)
    with pytest.raises(ValueError, match="delay"):
        Reply(200, delay=-1)
    with pytest.raises(ValueError, match="not both"):
        Reply(200, body_size=1, gzip_bomb=1)
