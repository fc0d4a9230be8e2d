# SPDX-License-Identifier: MIT
"""HTTP routes from Python: rt.http() on loopback, @rt.route for
synchronous and asynchronous routes, response status and headers from
ctx.set_meta(), a bearer-protected route, the health route, errors, and
servers closed with their runtime. Requests go through urllib."""
import json
import urllib.error
import urllib.request

import pytest

import evfn
from helpers import wait_for


def request(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_http_sync_route_answers_with_response_and_meta(rt):
    server = rt.http(health_path="/healthz")
    assert 0 < server.port < 65536

    @rt.route("POST /echo")
    def echo(event, ctx):
        ctx.set_meta("status", "201")
        ctx.set_meta("header.Content-Type", "text/plain")
        return event.data.upper()
    status, headers, body = request(server.port, "POST", "/echo", b"hi")
    assert (status, body) == (201, b"HI")
    assert headers["Content-Type"] == "text/plain"
    status, _, body = request(server.port, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_http_async_route_queues_and_answers_202(rt):
    got = []
    server = rt.http()

    @rt.route("POST /jobs", function="job", async_=True)
    def handler(event):
        got.append(event)
    status, _, body = request(server.port, "POST", "/jobs", b"{}",
                              {"Content-Type": "application/json"})
    assert status == 202
    event_id = json.loads(body)["id"]
    wait_for(lambda: len(got) == 1)
    assert got[0].id == event_id and got[0].json() == {}


def test_http_bearer_and_errors(rt):
    server = rt.http()
    rt.register("secret", lambda e: "ok")
    server.route("GET /secret", "secret", bearer="s3cret")
    status, _, body = request(server.port, "GET", "/secret")
    assert status == 401 and json.loads(body)["error"] == "EVFN_EAUTH"
    status, _, body = request(server.port, "GET", "/secret",
                              headers={"Authorization": "Bearer s3cret"})
    assert (status, body) == (200, b"ok")
    assert request(server.port, "GET", "/nowhere")[0] == 404
    with pytest.raises(evfn.InvalidArgument):
        server.route("FETCH /x", "secret")
    with pytest.raises(evfn.AlreadyExists):
        server.route("GET /secret", "secret")

    @rt.function("boom", attempts=1)
    def boom(event):
        raise evfn.Fail("no can do")
    server.route("POST /boom", "boom")
    status, _, body = request(server.port, "POST", "/boom", b"")
    assert status == 502 and "no can do" in json.loads(body)["message"]


def test_http_route_needs_a_server_and_closes_with_runtime():
    rt = evfn.Runtime(workers=(1, 1)).start()
    with pytest.raises(RuntimeError):
        rt.route("GET /x")
    server = rt.http()
    port = server.port
    rt.close()
    assert server.closed
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    with pytest.raises(evfn.InvalidArgument):
        server.route("GET /y", "f")


def test_http_address_in_use(rt):
    server = rt.http()
    with pytest.raises(evfn.Error) as e:
        rt.http(port=server.port)
    assert e.value.code == evfn.EADDRINUSE
    with server:
        pass
    assert server.closed
