"""The browser SDK's API and its connection rules, run in a real Chromium.

`connect()` is imported from the relay's `/sdk/agent-socket.js` by a page on the relay's origin.
The API tests talk to the real relay; the reconnect-rules test swaps in a scripted WebSocket (the
`WebSocket` option) so that heartbeat, dead-socket detection, backoff with jitter and the
resume/fresh-session decisions can be timed exactly without waiting 25 s.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2

from tests.browser.conftest import wait_until
from tests.browser.helpers import base_of, session_id_of
from tests.conftest import RelayProcess

HEARTBEAT = '{"type":"ping","id":"as_hb"}'

SETUP_JS = """async () => {
  const sdk = await import('/sdk/agent-socket.js');
  window.sdk = sdk;
  window.completed = [];
  const tools = [
    {method: 'POST', path: '/plain', description: 'returns a value',
     input_schema: {type: 'object'}, handler: ({body}) => ({got: body})},
    {method: 'POST', path: '/status', handler: () => ({status: 201, body: {made: true}})},
    {method: 'GET', path: '/boom', handler: () => { throw new Error('kaput'); }},
    {method: 'POST', path: '/refuse', handler: () => {
        throw new sdk.ToolError('not now', {code: 'busy', status: 409}); }},
    {method: 'POST', path: '/echo', handler: ({method, path, body, rawBody, headers}) =>
        ({method, path, body, rawBody, headers})},
    {method: 'GET', path: '/csv', handler: () =>
        ({status: 200, body: 'a,b\\n1,2\\n', headers: {'content-type': 'text/csv'}})},
    {method: 'POST', path: '/slow', handler: ({session}) => {
        setTimeout(() => session.completeTask('t1', {status: 200, body: {done: true}}), 300);
        return {status: 202, taskId: 't1'}; }},
    {method: 'POST', path: '/wait',
     handler: () => new Promise((r) => setTimeout(() => r('late'), 200))},
  ];
  const session = await sdk.connect({appId: 'sdk-test', appDescription: 'SDK test page', tools,
                                     heartbeatMs: 200});
  window.session = session;
  const first = await session.mintAgentToken({label: 'first'});
  const second = await session.mintAgentToken({label: 'second'});
  return {first: first.url, second: second.url, expiresAt: first.expiresAt,
          sessionId: session.sessionId, baseUrl: session.baseUrl};
}"""


def test_api_against_the_relay(
    page: Any, browser_relay: RelayProcess, agent: httpx2.Client
) -> None:
    page.goto(f"{browser_relay.http}/examples/")
    info = page.evaluate(SETUP_JS)
    assert info["baseUrl"] == browser_relay.http  # defaults to where the SDK came from
    assert info["expiresAt"] is None
    link, second = info["first"], info["second"]
    assert session_id_of(link) == session_id_of(second) == info["sessionId"]
    base = base_of(link)

    # defaultAgentsMd: the contract marker, operating notes and every tool.
    doc = agent.get(link).text
    assert doc.startswith("<!-- as:contract-v1 -->\n# sdk-test")
    assert "SDK test page" in doc and "tools.json" in doc and "POST $BASE/plain" in doc
    listing = agent.get(f"{base}/tools.json").json()
    assert listing["app"] == {"id": "sdk-test", "name": "sdk-test", "description": "SDK test page"}
    by_path = {t["path"]: t for t in listing["tools"]}
    assert by_path["/plain"]["input_schema"] == {"type": "object"}
    assert "input_schema" not in by_path["/status"]

    # Handler results (§2.3): value → 200 JSON; {status, body}; throw → 500 handler_error.
    assert agent.post(f"{base}/plain", json={"a": 1}).json() == {"got": {"a": 1}}
    resp = agent.post(f"{base}/status")
    assert (resp.status_code, resp.json()) == (201, {"made": True})
    resp = agent.get(f"{base}/boom")
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "handler_error", "message": "kaput"}}
    resp = agent.post(f"{base}/refuse")
    assert resp.status_code == 409
    assert resp.json()["error"] == {"code": "busy", "message": "not now"}
    resp = agent.get(f"{base}/csv")
    assert resp.headers["content-type"].startswith("text/csv") and resp.text == "a,b\n1,2\n"
    assert agent.post(f"{base}/wait").json() == "late"
    echo = agent.post(
        f"{base}/echo", json={"k": [1, 2]}, headers={"x-trace": "abc", "cookie": "no"}
    ).json()
    assert echo["method"] == "POST" and echo["path"] == "/echo" and echo["body"] == {"k": [1, 2]}
    assert echo["rawBody"] == '{"k":[1,2]}'
    assert echo["headers"]["x-trace"] == "abc" and "cookie" not in echo["headers"]
    raw = agent.post(f"{base}/echo", content=b"plain words", headers={"content-type": "text/plain"})
    assert raw.json()["body"] == "plain words"

    # Async: 202 + taskId now, completeTask later (§2.4).
    resp = agent.post(f"{base}/slow")
    assert (resp.status_code, resp.json()) == (202, {"taskId": "t1"})

    def task_done() -> Any:
        poll = agent.get(f"{base}/_as_tasks/t1")
        return poll.json() if poll.status_code == 200 else None

    assert wait_until(task_done, timeout=10) == {"done": True}

    # Heartbeat against the real relay: with nothing else happening, frames keep arriving.
    sid = info["sessionId"]
    before = agent.get(f"{browser_relay.http}/_debug/state/{sid}").json()["lastFrameAt"]
    time.sleep(0.8)
    after = agent.get(f"{browser_relay.http}/_debug/state/{sid}").json()["lastFrameAt"]
    assert after > before

    # Tokens: list, revoke (the link stops at once), and the resume secret kept per tab.
    tokens = page.evaluate("() => session.listAgentTokens()")
    assert {(t["label"], t["url"]) for t in tokens} == {("first", link), ("second", second)}
    assert page.evaluate(f"() => session.revokeAgentToken('{second.split('/')[-2]}')") is True
    resp = agent.post(f"{base_of(second)}/plain", json={})
    assert (resp.status_code, resp.json()["error"]["code"]) == (401, "token_invalid")
    assert [t["label"] for t in page.evaluate("() => session.tokens")] == ["first"]
    stored = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem(`agent-socket/v1/${session.baseUrl}/sdk-test`))"
    )
    assert stored["sessionId"] == sid and len(stored["resumeSecret"]) == 43
    assert [t["token"] for t in stored["tokens"]] == [link.split("/")[-2]]

    # updateTools: the new list (and agents.md) is what agents see.
    page.evaluate(
        """() => session.updateTools([{method: 'POST', path: '/new', description: 'fresh',
            handler: () => 'new tool'}], {agentsMd: '# Updated'})"""
    )
    assert [t["path"] for t in agent.get(f"{base}/tools.json").json()["tools"]] == ["/new"]
    assert agent.post(f"{base}/new").json() == "new tool"
    assert "# Updated" in agent.get(link).text
    assert agent.post(f"{base}/plain", json={}).status_code == 404

    # close(): the session ends, every link answers 503 and the stored secret is gone.
    page.evaluate("() => session.close()")
    assert page.evaluate("() => session.status") == "closed"
    resp = agent.post(f"{base}/new")
    assert (resp.status_code, resp.json()["error"]["code"]) == (503, "app_offline")
    assert page.evaluate("() => sessionStorage.length") == 0


def test_connect_rejects_a_bad_registration(page: Any, browser_relay: RelayProcess) -> None:
    page.goto(f"{browser_relay.http}/examples/")
    result = page.evaluate(
        """async () => {
            const sdk = await import('/sdk/agent-socket.js');
            const out = {};
            try { await sdk.connect({appId: 'bad', agentsMd: 'x'.repeat(70000), storage: null,
                                     tools: []}); }
            catch (e) { out.big = e.code; }
            try { await sdk.connect({appId: 'bad', tools: [{path: '/tools.json', handler() {}}]}); }
            catch (e) { out.reserved = e.name; }
            try { await sdk.connect({appId: 'x', baseUrl: 'http://127.0.0.1:9', storage: null}); }
            catch (e) { out.unreachable = e.code; }
            return out;
        }"""
    )
    assert result == {
        "big": "agents_md_too_large",
        "reserved": "TypeError",
        "unreachable": "connect_failed",
    }


def test_several_relays_are_tried_in_turn(page: Any, browser_relay: RelayProcess) -> None:
    """A cluster without a load balancer: an unreachable relay first, the live one second."""
    page.goto(f"{browser_relay.http}/examples/")
    result = page.evaluate(
        """async (live) => {
            const sdk = await import('/sdk/agent-socket.js');
            const session = await sdk.connect({
                appId: 'rotating', storage: null, baseUrl: ['http://127.0.0.1:9', live],
                tools: [{path: '/ping', handler: () => 'pong'}],
                backoffInitialMs: 50,
            });
            const minted = await session.mintAgentToken({label: 'x'});
            const out = {base: session.baseUrl, url: minted.url};
            await session.close();
            return out;
        }""",
        browser_relay.http,
    )
    assert result["base"] == browser_relay.http
    assert result["url"].startswith(f"{browser_relay.http}/v1/t/")


RULES_JS = """async () => {
  const sdk = await import('/sdk/agent-socket.js');
  const sockets = [];
  const secret = 'S'.repeat(43);
  const tok = (sid, c) => `as_${sid}_${c.repeat(22)}`;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const waitFor = async (pred, ms = 8000) => {
    const t = performance.now();
    while (!pred()) {
      if (performance.now() - t > ms) throw new Error('timed out');
      await sleep(2);
    }
  };
  class FakeWS {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0;
                       this.at = performance.now(); sockets.push(this); }
    send(text) { this.sent.push(text); }
    close(code) { if (this.readyState !== 3) { this.readyState = 3; this.closedWith = code;
                                              this.closedAt = performance.now(); } }
    open() { this.readyState = 1; this.onopen({}); }
    recv(obj) { this.lastRecv = performance.now(); this.onmessage({data: JSON.stringify(obj)}); }
    drop(code) { this.readyState = 3; this.closedAt = performance.now();
                 this.onclose({code, reason: ''}); }
    first() { return JSON.parse(this.sent[0]); }
  }
  async function answerMint(ws, sid, c) {
    await waitFor(() => ws.sent.some((t) => t.includes('mint_agent_token')));
    const frame = JSON.parse(ws.sent.find((t) => t.includes('mint_agent_token')));
    ws.recv({type: 'mint_agent_token_reply', id: frame.id, ok: true, token: tok(sid, c),
             url: `__BASE__/v1/t/${tok(sid, c)}/agents.md`, label: frame.label, expiresAt: null});
  }
  const events = [];
  const pending = sdk.connect({appId: 'rules', baseUrl: 'http://relay.test', storage: null,
    WebSocket: FakeWS, tools: [{path: '/x', handler: () => 1}],
    heartbeatMs: 100, deadAfterMs: 800, backoffInitialMs: 200, backoffMaxMs: 1000,
    onSessionChanged: (d) => events.push({
      changed: d.sessionId, previous: d.previousSessionId,
      replaced: d.replaced.map((r) => [r.old.token, r.new.token])}),
    onReconnect: (d) => events.push({reconnect: d.sessionId, resumed: d.resumed})});
  await waitFor(() => sockets.length === 1);
  const s0 = sockets[0];
  s0.open();
  s0.recv({type: 'register_reply', ok: true, sessionId: 'AAAAAAAA', resumeSecret: secret});
  const session = await pending;
  const mint = session.mintAgentToken({label: 'L'});
  await answerMint(s0, 'AAAAAAAA', 'a');
  const minted = await mint;
  // Silence: pings go out every 100 ms; after 800 ms without a frame the socket is dropped.
  await waitFor(() => sockets.length === 2);
  const s1 = sockets[1];
  s1.open();
  s1.recv({type: 'register_reply', ok: true, sessionId: 'AAAAAAAA', resumeSecret: secret,
           resumed: true});
  s1.recv({type: 'pong', id: 'as_hb'});
  await sleep(20);
  s1.drop(1006);                       // → retry after 200 ms ± 25 %
  await waitFor(() => sockets.length === 3);
  sockets[2].open(); sockets[2].drop(1006);   // → 400 ms ± 25 %
  await waitFor(() => sockets.length === 4);
  sockets[3].drop(1006);                      // → 800 ms ± 25 %
  await waitFor(() => sockets.length === 5);
  const s4 = sockets[4];
  s4.open();
  s4.recv({type: 'register_reply', ok: false, error: {code: 'resume_failed'}});
  s4.drop(4401);                              // → a fresh session at once
  await waitFor(() => sockets.length === 6);
  const s5 = sockets[5];
  s5.open();
  s5.recv({type: 'register_reply', ok: true, sessionId: 'BBBBBBBB', resumeSecret: secret});
  await answerMint(s5, 'BBBBBBBB', 'b');
  await waitFor(() => events.some((e) => e.changed === 'BBBBBBBB'));
  s5.drop(4410);                              // replaced by another tab → fresh again
  await waitFor(() => sockets.length === 7);
  const s6 = sockets[6];
  s6.open();
  s6.recv({type: 'register_reply', ok: true, sessionId: 'CCCCCCCC', resumeSecret: secret});
  await answerMint(s6, 'CCCCCCCC', 'c');
  await waitFor(() => events.some((e) => e.changed === 'CCCCCCCC'));
  const out = {
    minted: minted.url,
    urls: sockets.map((s) => s.url),
    firstTypes: sockets.map((s) => s.sent.length ? JSON.parse(s.sent[0]).type : null),
    resumeFrame: s1.first(),
    pings: s0.sent.filter((t) => t.includes('as_hb')),
    s0Frames: s0.sent.length,
    deadAfter: s0.closedAt - s0.lastRecv,
    s0Close: s0.closedWith,
    gaps: sockets.slice(1).map((s, i) => s.at - (sockets[i].closedAt ?? sockets[i].at)),
    events, tokens: session.tokens.map((t) => t.token), status: session.status,
  };
  await session.close();
  return out;
}"""


def test_reconnect_rules(page: Any, browser_relay: RelayProcess) -> None:
    """Heartbeat, dead-socket detection, backoff with jitter, resume first, fresh on 4401/4410."""
    page.goto(f"{browser_relay.http}/examples/")
    out = page.evaluate(RULES_JS)
    assert out["minted"] == f"http://relay.test/v1/t/as_AAAAAAAA_{'a' * 22}/agents.md"
    # Heartbeat: exactly the contract's text, on the configured interval.
    assert out["pings"] and set(out["pings"]) == {HEARTBEAT}
    assert len(out["pings"]) >= 3
    # Dead after deadAfterMs of silence (a 100 ms ticker, plus slack for a loaded machine).
    assert 800 <= out["deadAfter"] < 800 + 100 + 400
    assert out["s0Close"] == 4000  # not 1000: the relay holds the session
    # Resume first, on /v1/_ws?session=<id>, carrying the registration and the secret.
    urls = out["urls"]
    assert urls[0] == "ws://relay.test/v1/_ws"
    assert urls[1:5] == ["ws://relay.test/v1/_ws?session=AAAAAAAA"] * 4
    resume = out["resumeFrame"]
    assert resume["type"] == "resume" and resume["sessionId"] == "AAAAAAAA"
    assert resume["secret"] == "S" * 43 and resume["appId"] == "rules"
    assert resume["tools"] == [{"method": "POST", "path": "/x", "description": ""}]
    assert out["firstTypes"][:5] == ["register", "resume", "resume", None, "resume"]
    # Backoff: 200 ms doubling, each within ±25 % (upper bound with slack for timers).
    gaps = out["gaps"]
    for gap, nominal in zip(gaps[1:4], (200, 400, 800), strict=True):
        assert nominal * 0.75 - 5 <= gap <= nominal * 1.25 + 300, (gaps, nominal)
    # Fresh session only after 4401 / 4410, registered at once, links re-minted.
    assert urls[5] == urls[6] == "ws://relay.test/v1/_ws"
    assert out["firstTypes"][5:] == ["register", "register"]
    assert gaps[4] < 150 and gaps[5] < 150, gaps
    changed = [e for e in out["events"] if "changed" in e]
    assert changed == [
        {"changed": "BBBBBBBB", "previous": "AAAAAAAA",
         "replaced": [[f"as_AAAAAAAA_{'a' * 22}", f"as_BBBBBBBB_{'b' * 22}"]]},
        {"changed": "CCCCCCCC", "previous": "BBBBBBBB",
         "replaced": [[f"as_BBBBBBBB_{'b' * 22}", f"as_CCCCCCCC_{'c' * 22}"]]},
    ]  # fmt: skip
    reconnects = [e for e in out["events"] if "reconnect" in e]
    assert reconnects[0] == {"reconnect": "AAAAAAAA", "resumed": True}
    assert reconnects[-1] == {"reconnect": "CCCCCCCC", "resumed": False}
    assert out["tokens"] == [f"as_CCCCCCCC_{'c' * 22}"]
    assert out["status"] == "connected"


def test_counter_page(page: Any, browser_relay: RelayProcess, agent: httpx2.Client) -> None:
    page.goto(f"{browser_relay.http}/examples/counter/")
    page.get_by_role("button", name="Connect with AI").click()
    link = page.get_by_label("Link for your AI")
    wait_until(lambda: link.input_value())
    base = base_of(link.input_value())
    tools = agent.get(f"{base}/tools.json").json()["tools"]
    assert [(t["method"], t["path"]) for t in tools] == [("POST", "/increment")]
    assert agent.post(f"{base}/increment", json={"by": 2}).json() == {"count": 2}
    assert agent.post(f"{base}/increment").json() == {"count": 3}
    assert page.locator("#count").inner_text() == "3"
    bad = agent.post(f"{base}/increment", json={"by": "lots"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_input")
    assert session_id_of(link.input_value())


BUTTON_STATUS_JS = """async () => {
  const sdk = await import('/sdk/agent-socket.js');
  const sockets = [];
  class FakeWS {
    constructor(url) { this.url = url; this.sent = []; this.readyState = 0; sockets.push(this); }
    send(text) { this.sent.push(text); }
    close() { this.readyState = 3; }
  }
  const waitFor = async (pred) => {
    const t = performance.now();
    while (!pred()) {
      if (performance.now() - t > 8000) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const text = () => document.querySelector('agent-socket-connect')
      .shadowRoot.querySelector('.status-text').textContent;
  const el = sdk.mountConnectButton(document.body, {appId: 'status', baseUrl: 'http://relay.test',
      storage: null, WebSocket: FakeWS, tools: [], offlineAfterMs: 300, backoffInitialMs: 50,
      backoffMaxMs: 100});
  const opening = el.open();
  await waitFor(() => sockets.length === 1);
  const s0 = sockets[0];
  s0.readyState = 1; s0.onopen({});
  s0.onmessage({data: JSON.stringify({type: 'register_reply', ok: true, sessionId: 'AAAAAAAA',
                                      resumeSecret: 'S'.repeat(43)})});
  await waitFor(() => s0.sent.some((t) => t.includes('mint_agent_token')));
  const mint = JSON.parse(s0.sent.find((t) => t.includes('mint_agent_token')));
  const token = 'as_AAAAAAAA_' + 'a'.repeat(22);
  s0.onmessage({data: JSON.stringify({type: 'mint_agent_token_reply', id: mint.id, ok: true,
      token, url: `__BASE__/v1/t/${token}/agents.md`, label: mint.label, expiresAt: null})});
  await opening;
  const seen = [text()];
  s0.readyState = 3; s0.onclose({code: 1006, reason: ''});
  seen.push(text());
  // Every retry fails: after offlineAfterMs the status says offline.
  const failing = setInterval(() => {
    for (const s of sockets) if (s.readyState === 0 && s.onclose) {
      s.readyState = 3; s.onclose({code: 1006, reason: ''}); }
  }, 10);
  await waitFor(() => text().startsWith('Offline'));
  seen.push(text());
  clearInterval(failing);
  seen.push(el.shadowRoot.querySelector('.btn').getAttribute('aria-label'));
  seen.push(el.shadowRoot.querySelector('.link').value);
  return seen;
}"""


def test_button_shows_reconnecting_and_offline(page: Any, browser_relay: RelayProcess) -> None:
    page.goto(f"{browser_relay.http}/examples/")
    connected, reconnecting, offline, label, link = page.evaluate(BUTTON_STATUS_JS)
    assert connected.startswith("Connected")
    assert reconnecting.startswith("Connection lost — reconnecting")
    assert offline.startswith("Offline")
    assert label == "Connect with AI (offline)"
    assert link == f"http://relay.test/v1/t/as_AAAAAAAA_{'a' * 22}/agents.md"
