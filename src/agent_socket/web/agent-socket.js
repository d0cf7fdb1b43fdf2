/**
 * agent-socket browser SDK — one dependency-free ES module, no build step.
 *
 * Served by the relay at `/sdk/agent-socket.js`. It is the app side of the wire contract
 * (PROTOCOL.md §3–§5): a page declares tools, connects one WebSocket to the relay, mints links
 * (agent URLs) and answers the tool calls the relay forwards. It keeps itself connected:
 *
 * - heartbeat: exactly `{"type":"ping","id":"as_hb"}` every 25 s; the socket counts as dead after
 *   50 s without any frame from the relay (§3.5);
 * - reconnect: 1 s doubling to 30 s, ±25 % jitter; always resume first
 *   (`/v1/_ws?session=<id>` + `resume`), and register a fresh session only when the relay closes
 *   with 4401 (resume refused) or 4410 (replaced); after a fresh session the links minted before
 *   are minted again (same labels) and `onSessionChanged` reports the new ones (§4);
 * - the session id, resume secret and minted links live in `sessionStorage`, so reloading the
 *   page resumes the same session and every link keeps working.
 *
 * It also ships the "Connect with AI" button: `mountConnectButton(element, options)` or the
 * `<agent-socket-connect>` custom element.
 *
 * Docs: docs/browser-sdk.md.
 */

export const VERSION = "0.1.0";

/** The heartbeat frame, byte for byte (§3.5), and the relay's answer to it. */
export const HEARTBEAT_PING = '{"type":"ping","id":"as_hb"}';
export const HEARTBEAT_PONG = '{"type":"pong","id":"as_hb"}';

/** Timings (ms). Every one can be overridden through `connect()` options (tests shorten them). */
export const DEFAULT_TIMINGS = Object.freeze({
  heartbeatMs: 25_000, // send the heartbeat this often
  deadAfterMs: 50_000, // no frame from the relay for this long: the socket is dead
  backoffInitialMs: 1_000, // first reconnect delay
  backoffMaxMs: 30_000, // reconnect delays double up to this
  backoffJitter: 0.25, // each delay is spread by ±25 %
  handshakeTimeoutMs: 15_000, // no register_reply this long after opening: retry
  requestTimeoutMs: 15_000, // mint/revoke/list/update_tools without a reply this long: reject
  offlineAfterMs: 10_000, // reconnecting for this long: report "offline"
});

const CONTRACT_MARKER = "<!-- as:contract-v1 -->";
const MAX_FRAME_CHARS = 4 * 1024 * 1024; // §6, counted as JavaScript counts string length
const SESSION_ID_RE = /^[0-9A-HJKMNP-TV-Z]{8}$/;
const TOKEN_RE = /^as_([0-9A-HJKMNP-TV-Z]{8})_([A-Za-z0-9_-]{22})$/;
const RESUME_SECRET_RE = /^[A-Za-z0-9_-]{43}$/;
const TASK_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TOOL_PATH_RE = /^\/[a-zA-Z0-9_\-/.]+$/;
/** Close codes after which resuming is pointless and a fresh session is registered (§4, §5). */
/** The relay is shutting down: reconnect, preferably to another relay. */
const RELAY_RESTARTING = 1012;
const FRESH_SESSION_CODES = new Set([4401, 4410]);
const REPLY_KEYS = new Set(["status", "body", "headers", "taskId"]);
const REPLY_MARK = Symbol("agent-socket.reply");

/** An error with a protocol code (`too_many_tokens`, `disconnected`, `timeout`, …). */
export class AgentSocketError extends Error {
  constructor(code, message, extra = undefined) {
    super(message || code);
    this.name = "AgentSocketError";
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

/**
 * Throw from a handler to answer `{"error": {"code", "message", "details"?}}` with `status`
 * (default 400). Any other thrown error becomes `500 handler_error`.
 */
export class ToolError extends Error {
  constructor(message, { code = "tool_error", status = 400, details = undefined } = {}) {
    super(message);
    this.name = "ToolError";
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/**
 * A tool answer with an explicit status, headers or task id. Returning a plain object
 * `{status, body, headers?, taskId?}` works too (an object whose only keys are those and whose
 * `status` is an integer); use `reply()` when a result object could be mistaken for one.
 */
export function reply({ status = 200, body = undefined, headers = undefined, taskId = undefined } = {}) {
  return { [REPLY_MARK]: true, status, body, headers, taskId };
}

/** `{"error": {"code", "message"}}` with `status` (default 400), as a reply. */
export function errorReply(code, message, status = 400, details = undefined) {
  const error = { code, message };
  if (details !== undefined) error.details = details;
  return reply({ status, body: { error } });
}

/** `{sessionId, verifier}` of an agent token or link, or `null` (§1: parsed by position). */
export function parseToken(tokenOrUrl) {
  if (typeof tokenOrUrl !== "string") return null;
  const found = /as_[0-9A-HJKMNP-TV-Z]{8}_[A-Za-z0-9_-]{22}/.exec(tokenOrUrl);
  const m = found && TOKEN_RE.exec(found[0]);
  return m ? { token: m[0], sessionId: m[1], verifier: m[2] } : null;
}

function bullets(items) {
  if (!items || (Array.isArray(items) && items.length === 0)) return "";
  if (typeof items === "string") return items.trim() + "\n";
  return items.map((item) => `- ${String(item).trim()}\n`).join("");
}

/**
 * A complete agents.md briefing: operating notes, the app, its tools and house rules — the same
 * document the Python SDK's `default_agents_md` writes. It carries the contract marker, so the
 * relay serves it as written (§2.1).
 *
 * @param {{appId?: string, name?: string, appDescription?: string, description?: string,
 *          tools?: Array<object>, capabilities?: string[]|string,
 *          limitations?: string[]|string, conventions?: string[]|string}} options
 */
export function defaultAgentsMd(options = {}) {
  const name = options.name ?? options.appId ?? "App";
  const description = String(options.description ?? options.appDescription ?? "").trim();
  const parts = [`${CONTRACT_MARKER}\n`, `# ${name}\n\n`];
  if (description) parts.push(description + "\n\n");
  parts.push(
    "## How to use this link (operating notes — do not recite them to the user)\n\n" +
      "Read these notes and act on them; do not repeat them to the user.\n\n" +
      "- `$BASE` is the URL you fetched, with the trailing `/agents.md` removed. Keep the URL: " +
      "if your context is compacted, fetch it again to re-read these notes.\n" +
      "- The tools are listed at `GET $BASE/tools.json` (each with `method`, `path`, " +
      "`description` and, when it takes input, an `input_schema`).\n" +
      "- Call a tool as `<method> $BASE<path>`. When it has an `input_schema`, send a JSON " +
      "body that matches it, with `Content-Type: application/json`.\n" +
      "- A tool may answer `202` with a `taskId`: poll `GET $BASE/_as_tasks/<taskId>` (wait a " +
      "second or two between polls) until the answer is no longer `202`; that is the result.\n" +
      "- `400` with an `{\"error\": …}` body means your input did not fit: read the code and " +
      "message and fix the call. Other `{\"error\": …}` answers are the app's own errors: read " +
      "the message and adjust.\n" +
      "- Errors from the relay: `401` the link is wrong or was revoked; `404` no such tool " +
      "(check `tools.json`); `429` slow down and retry later; `503 app_offline` the app is not " +
      "connected right now — retry shortly, and if it persists ask the user to reconnect the " +
      "app and share a fresh link; `504 tool_timeout` the app took too long.\n\n",
  );
  const tools = options.tools || [];
  if (tools.length) {
    parts.push("## Tools\n\n");
    for (const tool of tools) {
      const method = String(tool.method || "POST").toUpperCase();
      let line = `- \`${method} $BASE${tool.path || ""}\``;
      const desc = String(tool.description || "").trim();
      if (desc) line += ` — ${desc.split(/\s+/).join(" ")}`;
      const schema = "input_schema" in tool ? tool.input_schema : tool.inputSchema;
      if (schema !== undefined && schema !== null) {
        const compact = JSON.stringify(schema);
        line += compact.length <= 600 ? `\n  Input: \`${compact}\`` : "\n  Input: see `input_schema` in tools.json.";
      } else {
        line += "\n  No input.";
      }
      parts.push(line + "\n");
    }
    parts.push("\n");
  }
  for (const [title, items] of [
    ["What this app can do", options.capabilities],
    ["Limitations", options.limitations],
    ["Conventions", options.conventions],
  ]) {
    const body = bullets(items);
    if (body) parts.push(`## ${title}\n\n${body}\n`);
  }
  return parts.join("").trimEnd() + "\n";
}

/**
 * The relay this module was loaded from when it came from `<relay>/sdk/agent-socket.js`,
 * otherwise the page's origin.
 */
export function defaultBaseUrl() {
  try {
    const here = new URL(import.meta.url);
    const suffix = "/sdk/agent-socket.js";
    if ((here.protocol === "http:" || here.protocol === "https:") && here.pathname.endsWith(suffix)) {
      return here.origin + here.pathname.slice(0, -suffix.length);
    }
  } catch {
    /* not loaded from a URL we understand */
  }
  const origin = globalThis.location && globalThis.location.origin;
  if (origin && origin !== "null") return origin;
  throw new TypeError("agent-socket: pass baseUrl (the relay's URL)");
}

function cleanBaseUrl(baseUrl) {
  const url = new URL(baseUrl || defaultBaseUrl(), globalThis.location ? globalThis.location.href : undefined);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`agent-socket: baseUrl must be http(s), not ${url.protocol}`);
  }
  return (url.origin + url.pathname).replace(/\/+$/, "");
}

function defaultStorage() {
  try {
    return globalThis.sessionStorage || null;
  } catch {
    return null; // sandboxed iframe, storage disabled
  }
}

function storageKeyFor(baseUrl, appId) {
  return `agent-socket/v1/${baseUrl}/${appId}`;
}

function readStored(storage, key) {
  if (!storage) return null;
  try {
    const data = JSON.parse(storage.getItem(key) || "null");
    if (!data || typeof data !== "object") return null;
    const valid = SESSION_ID_RE.test(data.sessionId) && RESUME_SECRET_RE.test(data.resumeSecret);
    const tokens = Array.isArray(data.tokens)
      ? data.tokens.filter((t) => t && typeof t.url === "string" && TOKEN_RE.test(t.token))
      : [];
    const pendingRevokes = Array.isArray(data.pendingRevokes)
      ? data.pendingRevokes.filter((t) => TOKEN_RE.test(t))
      : [];
    return {
      sessionId: valid ? data.sessionId : null,
      resumeSecret: valid ? data.resumeSecret : null,
      tokens: tokens.map((t) => ({ token: t.token, url: t.url, label: String(t.label ?? "") })),
      pendingRevokes,
    };
  } catch {
    return null;
  }
}

/**
 * True when this tab holds a session for `{appId, baseUrl}` (from an earlier `connect()`), so a
 * page can reconnect right away after a reload.
 */
export function hasStoredSession({ appId, baseUrl = undefined, storage = undefined, storageKey = undefined } = {}) {
  const store = storage === undefined ? defaultStorage() : storage;
  const base = cleanBaseUrl(baseUrl);
  const data = readStored(store, storageKey || storageKeyFor(base, appId));
  return Boolean(data && (data.sessionId || data.tokens.length));
}

function normalizeTools(tools) {
  if (!Array.isArray(tools)) throw new TypeError("agent-socket: tools must be an array");
  const wire = [];
  const routes = new Map();
  for (const tool of tools) {
    if (!tool || typeof tool !== "object") throw new TypeError("agent-socket: each tool must be an object");
    const method = String(tool.method || "POST").toUpperCase();
    const path = tool.path;
    if (typeof path !== "string" || !TOOL_PATH_RE.test(path)) {
      throw new TypeError(`agent-socket: tool path ${JSON.stringify(path)} must match ^/[a-zA-Z0-9_\\-/.]+$`);
    }
    const lower = path.toLowerCase();
    if (
      lower === "/agents.md" || lower.startsWith("/agents.md/") ||
      lower === "/tools.json" || lower.startsWith("/tools.json/") || path.startsWith("/_as_")
    ) {
      throw new TypeError(`agent-socket: tool path ${path} is reserved for the relay`);
    }
    if (typeof tool.handler !== "function") {
      throw new TypeError(`agent-socket: tool ${method} ${path} needs a handler function`);
    }
    const key = `${method} ${path}`;
    if (routes.has(key)) throw new TypeError(`agent-socket: duplicate tool ${key}`);
    const entry = { method, path, description: String(tool.description ?? "") };
    if ("input_schema" in tool) entry.input_schema = tool.input_schema;
    else if ("inputSchema" in tool) entry.input_schema = tool.inputSchema;
    wire.push(entry);
    routes.set(key, tool.handler);
  }
  return { wire, routes };
}

function isJsonType(contentType) {
  const type = String(contentType || "").split(";")[0].trim().toLowerCase();
  return type === "application/json" || type.endsWith("+json");
}

function errorBody(code, message, details) {
  const error = { code, message };
  if (details !== undefined) error.details = details;
  return { error };
}

/** The reply fields for what a handler returned (§2.3, §2.4). */
function replyFields(result) {
  let status = 200;
  let body = result;
  let headers;
  let taskId;
  const looksLikeReply =
    result !== null &&
    typeof result === "object" &&
    !Array.isArray(result) &&
    (result[REPLY_MARK] === true ||
      (Number.isInteger(result.status) && Object.keys(result).every((k) => REPLY_KEYS.has(k))));
  if (looksLikeReply) {
    ({ status, body, headers, taskId } = result);
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new TypeError(`handler returned status ${JSON.stringify(status)}; it must be an integer 200-599`);
    }
  }
  const fields = { status };
  if (body !== undefined) fields.body = body;
  if (headers && typeof headers === "object") fields.headers = { ...headers };
  if (taskId !== undefined && taskId !== null && taskId !== "") {
    if (status !== 202) throw new TypeError("a taskId needs status 202");
    if (typeof taskId !== "string" || !TASK_ID_RE.test(taskId)) {
      throw new TypeError("taskId must match ^[A-Za-z0-9_-]{1,64}$");
    }
    fields.taskId = taskId;
  }
  return fields;
}

/**
 * Call `fn` every `ms`. A hidden tab's timers are throttled (Chrome: to once a minute after five
 * minutes), which would starve the heartbeat and get the app closed for silence; a worker's
 * timers are not, so the ticker runs in a tiny worker when the page allows one (a CSP without
 * `blob:` workers falls back to setInterval).
 */
function startTicker(fn, ms) {
  let interval = null;
  let worker = null;
  const fallback = () => {
    if (worker) worker.terminate();
    worker = null;
    if (interval === null) interval = setInterval(fn, ms);
  };
  try {
    if (typeof Worker === "function" && typeof Blob === "function" && globalThis.URL && URL.createObjectURL) {
      const url = URL.createObjectURL(new Blob([`setInterval(() => postMessage(0), ${Number(ms)});`],
        { type: "text/javascript" }));
      try {
        worker = new Worker(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      worker.onmessage = () => fn();
      worker.onerror = fallback;
    } else {
      fallback();
    }
  } catch {
    fallback();
  }
  return () => {
    if (worker) worker.terminate();
    worker = null;
    if (interval !== null) clearInterval(interval);
    interval = null;
  };
}

function toWsUrl(baseUrl) {
  return baseUrl.replace(/^http/, "ws") + "/v1/_ws";
}

/**
 * Connect a page to the relay. Resolves with a live {@link AgentSocketSession} once the relay has
 * accepted the registration (or the resume of this tab's stored session). Rejects when the first
 * connection fails or the relay refuses the registration (bad appId, reserved path, …).
 *
 * @param {object} options
 * @param {string} options.appId  label `^[A-Za-z0-9_.-]{1,64}$`
 * @param {string} [options.appDescription]
 * @param {string} [options.agentsMd]  the briefing; default `defaultAgentsMd(options)`
 * @param {Array<{method?: string, path: string, description?: string, input_schema?: object,
 *                handler: Function}>} options.tools
 * @param {string|string[]} [options.baseUrl]  the relay; default: where this module was loaded
 *   from, else the page's origin. An array lists several relays of one cluster, tried in turn.
 * @param {Function} [options.onSessionChanged] `({sessionId, previousSessionId, tokens, replaced})`
 * @param {Function} [options.onReconnect] `({sessionId, resumed, downtimeMs})`
 * @param {Function} [options.onStatus] `(status)` — connecting | connected | reconnecting | offline | closed
 * @param {Storage|null} [options.storage] default `sessionStorage`; `null` keeps nothing
 * Timings (ms): heartbeatMs, deadAfterMs, backoffInitialMs, backoffMaxMs, backoffJitter,
 * handshakeTimeoutMs, requestTimeoutMs, offlineAfterMs (see DEFAULT_TIMINGS).
 */
export async function connect(options) {
  const session = new AgentSocketSession(options);
  await session.ready;
  return session;
}

/**
 * One app session on the relay. Create it with {@link connect}. It is an EventTarget too:
 * events `status`, `sessionchanged`, `reconnect`, `toolcall` (detail in `event.detail`).
 */
export class AgentSocketSession extends EventTarget {
  /** The relay in use (http(s) origin): what replaces `__BASE__` in minted links. */
  get baseUrl() {
    return this.#relays[this.#relayIndex];
  }

  #opts;
  #timing;
  #WebSocket;
  #storage;
  #storageKey;
  #relays;
  #relayIndex = 0;
  #tools;
  #routes;
  #agentsMd;
  #appDescription;
  #sessionId = null;
  #secret = null;
  #tokens = [];
  #pendingRevokes = [];
  #outbox = []; // frames to send once live again (task_complete)
  #conn = null;
  #status = "connecting";
  #everLive = false;
  #hadStored = false; // this tab was connected before (a reload): keep trying like a reconnect
  #closed = false;
  #attempt = 0;
  #freshRetry = false;
  #reconnectTimer = null;
  #offlineTimer = null;
  #downSince = null;
  #seq = 0;
  #pending = new Map();
  #waiters = [];
  #startResolve;
  #startReject;
  #onlineListener = null;

  /** @type {Promise<AgentSocketSession>} resolves when first live (see connect()). */
  ready;
  onSessionChanged = null;
  onReconnect = null;
  onStatus = null;
  onError = null;

  constructor(options = {}) {
    super();
    if (!options || typeof options !== "object") throw new TypeError("agent-socket: connect() needs options");
    const { appId } = options;
    if (typeof appId !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(appId)) {
      throw new TypeError("agent-socket: appId must match ^[A-Za-z0-9_.-]{1,64}$");
    }
    this.#opts = options;
    this.#timing = { ...DEFAULT_TIMINGS };
    for (const key of Object.keys(DEFAULT_TIMINGS)) {
      if (typeof options[key] === "number" && options[key] >= 0) this.#timing[key] = options[key];
    }
    this.#WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this.#WebSocket !== "function") throw new TypeError("agent-socket: no WebSocket available");
    this.appId = appId;
    // Several relays of one cluster may be given: the session moves to the next one when a
    // relay cannot be reached or is restarting (close 1012), so no load balancer is needed.
    const bases = Array.isArray(options.baseUrl) ? options.baseUrl : [options.baseUrl];
    this.#relays = bases.map(cleanBaseUrl);
    this.#appDescription = typeof options.appDescription === "string" ? options.appDescription : "";
    const { wire, routes } = normalizeTools(options.tools || []);
    this.#tools = wire;
    this.#routes = routes;
    this.#agentsMd =
      typeof options.agentsMd === "string"
        ? options.agentsMd
        : defaultAgentsMd({ appId, appDescription: this.#appDescription, tools: wire });
    this.onSessionChanged = options.onSessionChanged || null;
    this.onReconnect = options.onReconnect || null;
    this.onStatus = options.onStatus || null;
    this.onError = options.onError || null;
    this.#storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.#storageKey = options.storageKey || storageKeyFor(this.baseUrl, appId);
    const stored = readStored(this.#storage, this.#storageKey);
    if (stored) {
      this.#hadStored = Boolean(stored.sessionId || stored.tokens.length);
      this.#sessionId = stored.sessionId;
      this.#secret = stored.resumeSecret;
      this.#tokens = stored.tokens;
      this.#pendingRevokes = stored.pendingRevokes;
    }
    this.ready = new Promise((resolve, reject) => {
      this.#startResolve = resolve;
      this.#startReject = reject;
    });
    this.ready.catch(() => {}); // a rejection is reported through connect(); don't warn twice
    if (globalThis.addEventListener) {
      this.#onlineListener = () => this.#retryNow();
      globalThis.addEventListener("online", this.#onlineListener);
    }
    this.#open();
  }

  /** `connecting` | `connected` | `reconnecting` | `offline` | `closed`. */
  get status() {
    return this.#status;
  }

  /** The relay's session id (public; it is part of every link). */
  get sessionId() {
    return this.#sessionId;
  }

  /** The links minted by this page that are still live: `[{token, url, label}]`. */
  get tokens() {
    return this.#tokens.map((t) => ({ ...t }));
  }

  /** The registered tools as sent to the relay (without handlers). */
  get tools() {
    return this.#tools.map((t) => ({ ...t }));
  }

  /**
   * Mint a link for an agent. Resolves `{token, url, label, expiresAt}`; `url` is the complete
   * agents.md URL to paste into an AI chat. Rejects with code `too_many_tokens` past 50 links.
   */
  async mintAgentToken({ label = "" } = {}) {
    const frame = await this.#request("mint_agent_token", { label: String(label ?? "") });
    if (!frame.ok) throw this.#frameError(frame, "mint failed");
    const entry = { token: frame.token, url: this.#fixUrl(frame.url, frame.token), label: frame.label ?? String(label) };
    this.#tokens.push(entry);
    this.#save();
    return { ...entry, expiresAt: frame.expiresAt ?? null };
  }

  /**
   * Revoke a link: it stops working at once. While the page is offline the revocation is queued
   * and sent with the next resume (`revokeTokens`). Resolves `true` when the relay (or the queue)
   * took it, `false` when the token was not live in this session.
   */
  async revokeAgentToken(tokenOrUrl) {
    const parsed = parseToken(typeof tokenOrUrl === "object" && tokenOrUrl ? tokenOrUrl.token : tokenOrUrl);
    if (!parsed) throw new TypeError("agent-socket: not an agent token");
    const token = parsed.token;
    this.#tokens = this.#tokens.filter((t) => t.token !== token);
    if (this.#status !== "connected") {
      if (parsed.sessionId !== this.#sessionId) return false;
      if (!this.#pendingRevokes.includes(token)) this.#pendingRevokes.push(token);
      this.#save();
      return true;
    }
    this.#save();
    const frame = await this.#request("revoke_agent_token", { token });
    return frame.ok === true;
  }

  /** The session's live links as the relay knows them: `[{token, url, label, mintedAt}]`. */
  async listAgentTokens() {
    const frame = await this.#request("list_agent_tokens", {});
    if (frame.ok === false) throw this.#frameError(frame, "list failed");
    return (frame.tokens || []).map((t) => ({ ...t, url: this.#fixUrl(t.url, t.token) }));
  }

  /**
   * Replace the tool list (and, when given, agents.md). Calls in flight are unaffected. While
   * offline the new registration is kept and sent with the next resume.
   */
  async updateTools(tools, { agentsMd = undefined } = {}) {
    const { wire, routes } = normalizeTools(tools);
    if (agentsMd !== undefined && typeof agentsMd !== "string") throw new TypeError("agentsMd must be a string");
    if (this.#status === "connected") {
      const fields = { tools: wire };
      if (agentsMd !== undefined) fields.agentsMd = agentsMd;
      const frame = await this.#request("update_tools", fields);
      if (!frame.ok) throw this.#frameError(frame, "update_tools refused");
    }
    this.#tools = wire;
    this.#routes = routes;
    if (agentsMd !== undefined) this.#agentsMd = agentsMd;
  }

  /**
   * Finish an async call (a handler answered `{status: 202, taskId}`): the agent polling
   * `_as_tasks/<taskId>` gets this status and body. Sent after the resume when offline.
   */
  completeTask(taskId, result = {}) {
    if (typeof taskId !== "string" || !TASK_ID_RE.test(taskId)) throw new TypeError("bad taskId");
    let fields;
    if (result instanceof ToolError) {
      fields = { status: result.status, body: errorBody(result.code, result.message, result.details) };
    } else {
      const r = result && typeof result === "object" ? result : {};
      fields = replyFields(reply({ status: r.status ?? 200, body: r.body, headers: r.headers }));
    }
    const frame = JSON.stringify({ type: "task_complete", taskId, ...fields });
    if (!(this.#status === "connected" && this.#sendRaw(this.#conn, frame))) this.#outbox.push(frame);
  }

  /**
   * End the session for good: every link stops working (close 1000, or `end` on a resume socket
   * when offline). The stored resume secret is forgotten. Reloading the page does NOT need this —
   * just leave; the session is held and resumed.
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#offlineTimer);
    if (this.#onlineListener && globalThis.removeEventListener) {
      globalThis.removeEventListener("online", this.#onlineListener);
    }
    const conn = this.#conn;
    this.#conn = null;
    const endedLive = conn && conn.registered && conn.ws.readyState === 1;
    if (conn) this.#shutConn(conn, endedLive ? 1000 : 4000, endedLive ? "session ended" : "closing");
    if (!endedLive && this.#sessionId && this.#secret) await this.#endHeld(this.#sessionId, this.#secret);
    this.#failPending(new AgentSocketError("closed", "session closed"));
    this.#sessionId = null;
    this.#secret = null;
    this.#tokens = [];
    this.#pendingRevokes = [];
    this.#outbox = [];
    if (this.#storage) {
      try {
        this.#storage.removeItem(this.#storageKey);
      } catch {
        /* ignore */
      }
    }
    this.#setStatus("closed");
    this.#startReject(new AgentSocketError("closed", "session closed before it connected"));
  }

  // ---- connection -------------------------------------------------------------------------

  #open() {
    if (this.#closed) return;
    const resume = Boolean(this.#sessionId && this.#secret);
    const url = resume ? `${toWsUrl(this.baseUrl)}?session=${encodeURIComponent(this.#sessionId)}` : toWsUrl(this.baseUrl);
    const conn = {
      ws: null, resume, registered: false, resumeFailed: false, fatal: null,
      lastRecv: Date.now(), lastPing: 0, stopTicker: () => {}, handshakeTimer: null,
    };
    this.#conn = conn;
    try {
      conn.ws = new this.#WebSocket(url);
    } catch (err) {
      conn.ws = { readyState: 3, close() {}, send() {} };
      setTimeout(() => this.#lost(conn, 1006, String(err && err.message)), 0);
      return;
    }
    conn.ws.binaryType = "arraybuffer";
    conn.ws.onopen = () => {
      if (this.#conn !== conn) return;
      conn.lastRecv = Date.now();
      conn.lastPing = Date.now();
      const reg = {
        appId: this.appId,
        agentsMd: this.#agentsMd,
        appDescription: this.#appDescription,
        tools: this.#tools,
      };
      const first = resume
        ? { type: "resume", sessionId: this.#sessionId, secret: this.#secret, ...reg,
            revokeTokens: this.#pendingRevokes.slice(0, 50) }
        : { type: "register", ...reg };
      this.#sendRaw(conn, JSON.stringify(first));
      const tick = Math.max(20, Math.min(1000, this.#timing.heartbeatMs / 4, this.#timing.deadAfterMs / 4));
      conn.stopTicker = startTicker(() => this.#tick(conn), tick);
    };
    conn.ws.onmessage = (event) => this.#onMessage(conn, event.data);
    conn.ws.onclose = (event) => this.#lost(conn, event.code, event.reason);
    conn.ws.onerror = () => {}; // a close event always follows
    conn.handshakeTimer = setTimeout(() => this.#drop(conn, "handshake timeout"), this.#timing.handshakeTimeoutMs);
  }

  #tick(conn) {
    if (this.#conn !== conn) return;
    const now = Date.now();
    if (now - conn.lastRecv >= this.#timing.deadAfterMs) {
      this.#drop(conn, "heartbeat timeout");
      return;
    }
    if (now - conn.lastPing >= this.#timing.heartbeatMs) {
      conn.lastPing = now;
      this.#sendRaw(conn, HEARTBEAT_PING);
    }
  }

  #sendRaw(conn, text) {
    if (!conn || !conn.ws || conn.ws.readyState !== 1) return false;
    try {
      conn.ws.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Stop listening to a socket and close it (code 1000 ends the session; others hold it). */
  #shutConn(conn, code, reason) {
    conn.stopTicker();
    clearTimeout(conn.handshakeTimer);
    const ws = conn.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, reason);
    } catch {
      /* already gone */
    }
  }

  /** Give up on a socket that went silent: close it (holding the session) and reconnect. */
  #drop(conn, reason) {
    if (this.#conn !== conn) return;
    this.#shutConn(conn, 4000, reason);
    this.#lost(conn, 1006, reason);
  }

  #onMessage(conn, data) {
    if (this.#conn !== conn) return;
    conn.lastRecv = Date.now();
    if (data === HEARTBEAT_PONG) return;
    if (typeof data !== "string") {
      try {
        data = new TextDecoder().decode(data);
      } catch {
        return;
      }
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object" || Array.isArray(frame)) return;
    switch (frame.type) {
      case "register_reply":
        this.#onRegisterReply(conn, frame);
        return;
      case "tool_call":
        if (conn.registered) this.#onToolCall(conn, frame);
        return;
      case "ping":
        this.#sendRaw(conn, JSON.stringify({ type: "pong", id: frame.id }));
        return;
      default:
        if (typeof frame.type === "string" && frame.type.endsWith("_reply") && this.#pending.has(frame.id)) {
          const waiter = this.#pending.get(frame.id);
          if (waiter.type !== frame.type) return;
          this.#pending.delete(frame.id);
          clearTimeout(waiter.timer);
          waiter.resolve(frame);
        }
    }
  }

  #onRegisterReply(conn, frame) {
    if (conn.registered) return;
    clearTimeout(conn.handshakeTimer);
    if (!frame.ok) {
      const code = frame.error && frame.error.code;
      if (code === "resume_failed") conn.resumeFailed = true; // close 4401 follows
      else conn.fatal = this.#frameError(frame, "registration refused");
      return;
    }
    conn.registered = true;
    const resumed = conn.resume && frame.resumed === true && frame.sessionId === this.#sessionId;
    const oldFromTokens = this.#tokens.length ? parseToken(this.#tokens[0].token) : null;
    const previousSessionId = resumed ? null : this.#lastSessionId || (oldFromTokens && oldFromTokens.sessionId);
    this.#sessionId = frame.sessionId;
    this.#secret = frame.resumeSecret;
    this.#lastSessionId = frame.sessionId;
    this.#pendingRevokes = [];
    let oldTokens = [];
    if (!resumed) {
      oldTokens = this.#tokens;
      this.#tokens = [];
      this.#outbox = []; // tasks died with the old session
    }
    this.#save();
    void this.#goLive(conn, resumed, oldTokens, previousSessionId);
  }

  #lastSessionId = null;

  async #goLive(conn, resumed, oldTokens, previousSessionId) {
    const wasLive = this.#everLive;
    const downtimeMs = this.#downSince ? Date.now() - this.#downSince : 0;
    this.#everLive = true;
    this.#attempt = 0;
    this.#freshRetry = false;
    this.#downSince = null;
    clearTimeout(this.#offlineTimer);
    this.#setStatus("connected");
    const outbox = this.#outbox;
    this.#outbox = [];
    for (const text of outbox) if (!this.#sendRaw(conn, text)) this.#outbox.push(text);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
    if (!resumed && oldTokens.length) {
      // A fresh session: the old links are dead. Mint replacements with the same labels.
      const replaced = [];
      for (const old of oldTokens) {
        try {
          const minted = await this.mintAgentToken({ label: old.label });
          replaced.push({ old: { ...old }, new: { token: minted.token, url: minted.url, label: minted.label } });
        } catch (err) {
          this.#report(err);
        }
      }
      this.#emit("sessionchanged", "onSessionChanged", {
        sessionId: this.#sessionId, previousSessionId, tokens: this.tokens, replaced,
      });
    }
    if (wasLive) this.#emit("reconnect", "onReconnect", { sessionId: this.#sessionId, resumed, downtimeMs });
    this.#startResolve(this);
  }

  #lost(conn, code, reason) {
    if (this.#conn !== conn) return;
    this.#conn = null;
    conn.stopTicker();
    clearTimeout(conn.handshakeTimer);
    if (conn.ws) conn.ws.onopen = conn.ws.onmessage = conn.ws.onclose = conn.ws.onerror = null;
    this.#failPending(new AgentSocketError("disconnected", "the connection to the relay dropped"), true);
    if (this.#closed) return;
    if (conn.fatal) {
      this.#fatal(conn.fatal);
      return;
    }
    const fresh = FRESH_SESSION_CODES.has(code) || conn.resumeFailed;
    if ((!conn.registered || code === RELAY_RESTARTING) && this.#relays.length > 1) {
      this.#relayIndex = (this.#relayIndex + 1) % this.#relays.length;
    }
    if (fresh && this.#sessionId) {
      // The relay will not resume this session (ended, expired, or taken over by another tab
      // holding the same secret): register a fresh one and re-mint the links.
      this.#lastSessionId = this.#sessionId;
      this.#sessionId = null;
      this.#secret = null;
      this.#pendingRevokes = [];
      this.#save();
    }
    if (!this.#everLive && !fresh && !this.#hadStored && this.#relayIndex === 0) {
      // (with several relays: only once each has been tried)
      // The very first connection failed: report it instead of retrying silently forever.
      this.#fatal(new AgentSocketError("connect_failed",
        `could not connect to the relay at ${this.baseUrl} (close ${code}${reason ? ": " + reason : ""})`));
      return;
    }
    if (this.#downSince === null) {
      this.#downSince = Date.now();
      clearTimeout(this.#offlineTimer);
      this.#offlineTimer = setTimeout(() => {
        if (!this.#closed && this.#status === "reconnecting") this.#setStatus("offline");
      }, this.#timing.offlineAfterMs);
    }
    const offline = globalThis.navigator && globalThis.navigator.onLine === false;
    if (this.#everLive || this.#hadStored) {
      this.#setStatus(offline || this.#status === "offline" ? "offline" : "reconnecting");
    }
    let delay;
    if (fresh && !this.#freshRetry) {
      this.#freshRetry = true; // register at once, but never loop without a pause
      delay = 0;
    } else {
      delay = this.#backoff(this.#attempt++);
    }
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#open(), delay);
  }

  #backoff(attempt) {
    const { backoffInitialMs, backoffMaxMs, backoffJitter } = this.#timing;
    const nominal = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(attempt, 32));
    return Math.max(0, nominal * (1 + backoffJitter * (2 * Math.random() - 1)));
  }

  #retryNow() {
    if (this.#closed || this.#conn || !(this.#everLive || this.#hadStored)) return;
    clearTimeout(this.#reconnectTimer);
    this.#open();
  }

  #fatal(err) {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#offlineTimer);
    this.#failPending(err);
    this.#setStatus("closed");
    this.#report(err);
    this.#startReject(err);
  }

  #failPending(err, keepWaiters = false) {
    for (const [id, waiter] of this.#pending) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
      this.#pending.delete(id);
    }
    if (!keepWaiters) for (const waiter of this.#waiters.splice(0)) waiter.reject(err);
  }

  async #endHeld(sessionId, secret) {
    const WS = this.#WebSocket;
    await new Promise((resolve) => {
      let ws;
      const done = () => {
        clearTimeout(timer);
        try {
          ws.close();
        } catch {
          /* ignore */
        }
        resolve();
      };
      const timer = setTimeout(done, 5000);
      try {
        ws = new WS(`${toWsUrl(this.baseUrl)}?session=${encodeURIComponent(sessionId)}`);
      } catch {
        clearTimeout(timer);
        resolve();
        return;
      }
      ws.onopen = () => ws.send(JSON.stringify({ type: "end", sessionId, secret }));
      ws.onmessage = (event) => {
        if (typeof event.data === "string" && event.data.includes("end_reply")) done();
      };
      ws.onclose = done;
      ws.onerror = () => {};
    });
  }

  // ---- requests ---------------------------------------------------------------------------

  #whenLive() {
    if (this.#closed) return Promise.reject(new AgentSocketError("closed", "session closed"));
    if (this.#status === "connected" && this.#conn && this.#conn.registered) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { resolve: () => { clearTimeout(timer); resolve(); }, reject: (e) => { clearTimeout(timer); reject(e); } };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new AgentSocketError("offline", "not connected to the relay"));
      }, this.#timing.requestTimeoutMs);
      this.#waiters.push(waiter);
    });
  }

  async #request(type, fields) {
    await this.#whenLive();
    const conn = this.#conn;
    const id = `as_r${++this.#seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new AgentSocketError("timeout", `no ${type}_reply from the relay`));
      }, this.#timing.requestTimeoutMs);
      this.#pending.set(id, { type: `${type}_reply`, resolve, reject, timer });
      if (!this.#sendRaw(conn, JSON.stringify({ ...fields, type, id }))) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new AgentSocketError("disconnected", "the connection to the relay dropped"));
      }
    });
  }

  // ---- tool calls -------------------------------------------------------------------------

  async #onToolCall(conn, frame) {
    const started = Date.now();
    const method = String(frame.method || "").toUpperCase();
    const path = String(frame.path || "");
    const headers = frame.headers && typeof frame.headers === "object" ? frame.headers : {};
    const rawBody = typeof frame.body === "string" ? frame.body : "";
    const handler = this.#routes.get(`${method} ${path}`);
    let fields;
    if (!handler) {
      fields = { status: 404, body: errorBody("not_found", `no tool ${method} ${path}`) };
    } else {
      let body = null;
      let badJson = false;
      if (rawBody.trim()) {
        const ctype = headers["content-type"];
        try {
          body = JSON.parse(rawBody);
        } catch {
          // Declared JSON that does not parse is bad input; anything else reaches the handler raw.
          badJson = Boolean(ctype) && isJsonType(ctype);
          body = rawBody;
        }
      }
      if (badJson) {
        fields = { status: 400, body: errorBody("bad_input", "the request body is not valid JSON") };
      } else {
        try {
          const result = await handler({ method, path, body, rawBody, headers, session: this });
          fields = replyFields(result);
        } catch (err) {
          if (err instanceof ToolError) {
            fields = { status: err.status, body: errorBody(err.code, err.message, err.details) };
          } else {
            fields = { status: 500, body: errorBody("handler_error", String((err && err.message) || err)) };
            this.#report(err);
          }
        }
      }
    }
    let text;
    try {
      text = JSON.stringify({ type: "tool_reply", id: frame.id, ...fields });
    } catch (err) {
      text = JSON.stringify({ type: "tool_reply", id: frame.id, status: 500,
        body: errorBody("handler_error", `the result is not JSON-serialisable: ${err.message}`) });
    }
    if (text.length > MAX_FRAME_CHARS - 1024) {
      // Over 4 Mi chars the relay would end the whole session (close 1009); refuse this one call.
      fields = { status: 500, body: errorBody("handler_error", "the result is too large (4 MiB frame limit)") };
      text = JSON.stringify({ type: "tool_reply", id: frame.id, ...fields });
    }
    // Reply on the socket the call came in on; if it dropped, the relay already answered 503.
    if (this.#conn === conn) this.#sendRaw(conn, text);
    this.#emit("toolcall", null, { method, path, status: fields.status, ms: Date.now() - started });
  }

  // ---- helpers ------------------------------------------------------------------------------

  #fixUrl(url, token) {
    if (typeof url === "string" && url.startsWith("__BASE__")) return this.baseUrl + url.slice("__BASE__".length);
    if (typeof url === "string" && url) return url;
    return `${this.baseUrl}/v1/t/${token}/agents.md`;
  }

  #frameError(frame, fallback) {
    const error = (frame && frame.error) || {};
    return new AgentSocketError(error.code || "error", error.message || fallback);
  }

  #save() {
    if (!this.#storage) return;
    try {
      if (!this.#sessionId && !this.#tokens.length) {
        this.#storage.removeItem(this.#storageKey);
        return;
      }
      this.#storage.setItem(this.#storageKey, JSON.stringify({
        sessionId: this.#sessionId,
        resumeSecret: this.#secret,
        tokens: this.#tokens,
        pendingRevokes: this.#pendingRevokes,
      }));
    } catch {
      /* storage full or disabled: the session still works, it just won't survive a reload */
    }
  }

  #setStatus(status) {
    if (this.#status === status) return;
    this.#status = status;
    this.#emit("status", "onStatus", status);
  }

  #emit(type, callbackName, detail) {
    if (callbackName && typeof this[callbackName] === "function") {
      try {
        this[callbackName](detail);
      } catch (err) {
        this.#report(err);
      }
    }
    try {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err) {
    if (typeof this.onError === "function") {
      try {
        this.onError(err);
        return;
      } catch {
        /* fall through to the console */
      }
    }
    if (globalThis.console) console.error("agent-socket:", err);
  }
}

// ---- the "Connect with AI" button ---------------------------------------------------------

const BUTTON_CSS = `
:host { display: inline-block; font: inherit; color: inherit; vertical-align: middle;
  --_accent: var(--as-accent, #4338ca); --_accent-text: var(--as-accent-text, #ffffff);
  --_radius: var(--as-radius, 8px); --_bg: var(--as-dialog-bg, #ffffff);
  --_fg: var(--as-dialog-fg, #111827); --_muted: var(--as-muted, #4b5563);
  --_border: var(--as-border, #d1d5db); --_font: var(--as-font, inherit); }
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
button { font: inherit; cursor: pointer; }
button:focus-visible, input:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
.btn { display: inline-flex; align-items: center; gap: .5em; padding: .55em 1.05em; font-family: var(--_font);
  font-weight: 600; line-height: 1.2; border-radius: var(--_radius); border: 1px solid transparent;
  background: var(--_accent); color: var(--_accent-text); }
.btn:hover { filter: brightness(1.08); }
.btn[aria-busy="true"] { cursor: progress; opacity: .85; }
.dot { width: .6em; height: .6em; border-radius: 50%; flex: none; background: #9ca3af; }
[data-status="connected"] .dot, .dot[data-status="connected"] { background: #16a34a; }
[data-status="connecting"] .dot, [data-status="reconnecting"] .dot,
.dot[data-status="connecting"], .dot[data-status="reconnecting"] { background: #d97706; }
[data-status="offline"] .dot, .dot[data-status="offline"] { background: #dc2626; }
.btn[data-status="idle"] .dot, .btn[data-status="closed"] .dot { display: none; }
dialog { width: min(34rem, calc(100vw - 2rem)); border: 1px solid var(--_border); border-radius: calc(var(--_radius) * 1.5);
  padding: 1.25rem 1.25rem 1rem; background: var(--_bg); color: var(--_fg); font-family: var(--_font);
  box-shadow: 0 20px 50px rgba(0,0,0,.25); }
dialog::backdrop { background: rgba(17, 24, 39, .45); }
h2 { margin: 0 0 .5rem; font-size: 1.2em; }
p { margin: .5rem 0; line-height: 1.45; }
.hint { color: var(--_muted); }
label { display: block; font-weight: 600; margin: .75rem 0 .3rem; font-size: .92em; }
.row { display: flex; gap: .5rem; }
input { flex: 1; min-width: 0; padding: .5em .6em; font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  border: 1px solid var(--_border); border-radius: var(--_radius); background: transparent; color: inherit; }
.copy, .primary { padding: .5em 1em; border-radius: var(--_radius); border: 1px solid transparent;
  background: var(--_accent); color: var(--_accent-text); font-weight: 600; }
.secondary { padding: .45em .9em; border-radius: var(--_radius); border: 1px solid var(--_border);
  background: transparent; color: inherit; }
.status { display: flex; align-items: center; gap: .5em; font-size: .92em; }
.note { padding: .5em .7em; border-radius: var(--_radius); background: #fef3c7; color: #78350f; font-size: .92em; }
.error { padding: .5em .7em; border-radius: var(--_radius); background: #fee2e2; color: #7f1d1d; font-size: .92em; }
.actions { display: flex; justify-content: flex-end; gap: .5rem; margin-top: 1rem; flex-wrap: wrap; }
[hidden] { display: none !important; }
`;

const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected — your AI can use this page now.",
  reconnecting: "Connection lost — reconnecting…",
  offline: "Offline — will reconnect when the relay is reachable.",
  closed: "Disconnected. Links from this page no longer work.",
};

const BUTTON_DEFAULTS = {
  buttonText: "Connect with AI",
  title: "Connect with AI",
  instructions: "Copy this link and paste it into your AI chat (ChatGPT, Claude, …), then tell it what to do.",
  linkLabel: "Link for your AI",
  label: "browser",
  autoResume: true,
  showDisconnect: true,
};

const HTMLElementBase = typeof HTMLElement === "undefined" ? class {} : HTMLElement;

/**
 * `<agent-socket-connect>`: a "Connect with AI" button and its dialog. Give it options with
 * `element.configure({appId, tools, …})` (or use {@link mountConnectButton}). Attributes
 * `app-id`, `base-url`, `label` and `button-text` are read when no option says otherwise.
 */
export class AgentSocketConnectElement extends HTMLElementBase {
  #options = null;
  #session = null;
  #connecting = null;
  #token = null;
  #root;
  #els = {};
  #returnFocus = null;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open" });
    this.#root.innerHTML = `
<style>${BUTTON_CSS}</style>
<button type="button" class="btn" part="button" aria-haspopup="dialog" data-status="idle">
  <span class="dot" aria-hidden="true"></span><span class="btn-text"></span>
</button>
<dialog part="dialog" aria-labelledby="as-title" aria-describedby="as-hint">
  <h2 id="as-title"></h2>
  <p id="as-hint" class="hint"></p>
  <div class="error" role="alert" hidden></div>
  <div class="link-block">
    <label for="as-link"></label>
    <div class="row">
      <input id="as-link" class="link" part="link" type="text" readonly spellcheck="false" autocomplete="off">
      <button type="button" class="copy" part="copy">Copy</button>
    </div>
  </div>
  <p class="note" role="alert" hidden></p>
  <p class="status" role="status" aria-live="polite"><span class="dot" aria-hidden="true"></span><span class="status-text"></span></p>
  <div class="actions">
    <button type="button" class="secondary retry" hidden>Try again</button>
    <button type="button" class="secondary disconnect">Disconnect</button>
    <button type="button" class="primary close">Close</button>
  </div>
</dialog>`;
    const q = (sel) => this.#root.querySelector(sel);
    this.#els = {
      button: q(".btn"), buttonText: q(".btn-text"), dialog: q("dialog"), title: q("#as-title"),
      hint: q("#as-hint"), error: q(".error"), linkBlock: q(".link-block"), linkLabel: q("label"),
      link: q(".link"), copy: q(".copy"), note: q(".note"), status: q(".status"),
      statusDot: q(".status .dot"), statusText: q(".status-text"), retry: q(".retry"),
      disconnect: q(".disconnect"), close: q(".close"),
    };
    const e = this.#els;
    e.button.addEventListener("click", () => this.open());
    e.copy.addEventListener("click", () => this.#copy());
    e.close.addEventListener("click", () => this.closeDialog());
    e.retry.addEventListener("click", () => this.open());
    e.disconnect.addEventListener("click", () => this.disconnect());
    e.link.addEventListener("focus", () => e.link.select());
    e.dialog.addEventListener("close", () => this.#restoreFocus());
    e.dialog.addEventListener("cancel", () => this.#restoreFocus());
    // Click on the backdrop closes the dialog.
    e.dialog.addEventListener("click", (event) => {
      if (event.target === e.dialog) {
        const r = e.dialog.getBoundingClientRect();
        const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
        if (!inside) this.closeDialog();
      }
    });
    e.dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.closeDialog();
      }
    });
    this.#render();
  }

  connectedCallback() {
    this.#render();
    this.#maybeResume();
  }

  /** Set the options (connect() options plus the button options in docs/browser-sdk.md). */
  configure(options) {
    this.#options = { ...options };
    this.#render();
    if (this.isConnected) this.#maybeResume();
    return this;
  }

  set options(value) {
    this.configure(value);
  }

  get options() {
    return this.#options;
  }

  /** The live session, or null before the first click (or auto-resume). */
  get session() {
    return this.#session;
  }

  /** The link currently shown, or null. */
  get link() {
    return this.#token ? this.#token.url : null;
  }

  #opt(name) {
    const o = this.#options || {};
    if (o[name] !== undefined) return o[name];
    const attr = { appId: "app-id", baseUrl: "base-url", label: "label", buttonText: "button-text" }[name];
    if (attr && this.hasAttribute(attr)) return this.getAttribute(attr);
    return BUTTON_DEFAULTS[name];
  }

  #connectOptions() {
    const o = { ...(this.#options || {}) };
    if (o.appId === undefined) o.appId = this.#opt("appId");
    if (o.baseUrl === undefined && this.hasAttribute("base-url")) o.baseUrl = this.getAttribute("base-url");
    return o;
  }

  #maybeResume() {
    if (this.#session || this.#connecting || !this.#options || this.#options.session) return;
    if (!this.#opt("autoResume")) return;
    const o = this.#connectOptions();
    let stored = false;
    try {
      stored = hasStoredSession(o);
    } catch {
      stored = false;
    }
    if (stored) this.#ensureSession().catch(() => {});
  }

  async #ensureSession() {
    if (this.#session && this.#session.status !== "closed") return this.#session;
    if (this.#connecting) return this.#connecting;
    this.#connecting = (async () => {
      const o = this.#options || {};
      let session;
      this.#setBusy(true);
      this.#renderStatus("connecting");
      try {
        if (o.session) session = typeof o.session === "function" ? await o.session() : await o.session;
        else session = await connect(this.#connectOptions());
        this.#attach(session);
        const label = String(this.#opt("label"));
        this.#token = session.tokens.find((t) => t.label === label) || null;
        if (!this.#token) this.#token = await session.mintAgentToken({ label });
        this.#showError(null);
        if (typeof o.onConnected === "function") o.onConnected(session, this.#token);
        this.dispatchEvent(new CustomEvent("agent-socket-connected", { detail: { session, link: this.#token.url } }));
        return session;
      } finally {
        this.#setBusy(false);
        this.#connecting = null;
        this.#render();
      }
    })();
    return this.#connecting;
  }

  #attach(session) {
    this.#session = session;
    session.addEventListener("status", () => this.#render());
    session.addEventListener("sessionchanged", (event) => {
      const { replaced } = event.detail;
      const mine = replaced.find((r) => this.#token && r.old.token === this.#token.token);
      const label = String(this.#opt("label"));
      this.#token = mine ? mine.new : session.tokens.find((t) => t.label === label) || this.#token;
      const e = this.#els;
      e.note.textContent = "The link changed (the connection was reset). Copy the new link and paste it into your AI chat.";
      e.note.hidden = false;
      this.#render();
      this.dispatchEvent(new CustomEvent("agent-socket-link-changed", { detail: { link: this.link } }));
    });
  }

  /** Connect if needed, mint a link, and open the dialog. */
  async open() {
    const e = this.#els;
    this.#returnFocus = this.#root.activeElement || document.activeElement;
    if (!e.dialog.open) {
      try {
        e.dialog.showModal();
      } catch {
        e.dialog.setAttribute("open", "");
      }
    }
    this.#render();
    try {
      await this.#ensureSession();
      this.#render();
      e.link.focus();
      e.link.select();
    } catch (err) {
      this.#showError(`Could not connect: ${(err && err.message) || err}`);
      e.retry.focus();
    }
  }

  closeDialog() {
    const e = this.#els;
    if (e.dialog.open) e.dialog.close();
    this.#restoreFocus();
  }

  /** End the session: every link from this page stops working. */
  async disconnect() {
    const session = this.#session;
    this.#session = null;
    this.#token = null;
    if (session) await session.close();
    this.#els.note.hidden = true;
    this.#render();
  }

  #restoreFocus() {
    const target = this.#returnFocus && this.#returnFocus.isConnected ? this.#returnFocus : this.#els.button;
    this.#returnFocus = null;
    if (target && typeof target.focus === "function") target.focus();
  }

  async #copy() {
    const e = this.#els;
    const text = e.link.value;
    if (!text) return;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      e.link.focus();
      e.link.select();
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
    }
    e.copy.textContent = ok ? "Copied" : "Press Ctrl+C";
    setTimeout(() => {
      e.copy.textContent = "Copy";
    }, 2000);
  }

  #setBusy(busy) {
    this.#els.button.setAttribute("aria-busy", busy ? "true" : "false");
  }

  #showError(message) {
    const e = this.#els;
    e.error.textContent = message || "";
    e.error.hidden = !message;
    e.retry.hidden = !message;
  }

  #renderStatus(status) {
    const e = this.#els;
    e.button.dataset.status = status;
    e.statusDot.dataset.status = status;
    e.statusText.textContent = STATUS_TEXT[status] || status;
    const btnText = String(this.#opt("buttonText"));
    e.buttonText.textContent = btnText;
    const extra = status === "idle" ? "" : ` (${status})`;
    e.button.setAttribute("aria-label", btnText + extra);
  }

  #render() {
    if (!this.#els.button) return;
    const e = this.#els;
    const session = this.#session;
    const status = session ? session.status : this.#connecting ? "connecting" : "idle";
    this.#renderStatus(status);
    e.title.textContent = String(this.#opt("title"));
    e.hint.textContent = String(this.#opt("instructions"));
    e.linkLabel.textContent = String(this.#opt("linkLabel"));
    e.link.value = this.#token ? this.#token.url : "";
    e.linkBlock.hidden = !this.#token;
    e.copy.disabled = !this.#token;
    e.disconnect.hidden = !session || status === "closed" || !this.#opt("showDisconnect");
  }
}

if (typeof customElements !== "undefined" && !customElements.get("agent-socket-connect")) {
  customElements.define("agent-socket-connect", AgentSocketConnectElement);
}

/**
 * Put a "Connect with AI" button into `target` (an element or a CSS selector). `options` are the
 * connect() options (appId, tools, agentsMd, baseUrl, …) plus the button options documented in
 * docs/browser-sdk.md. Returns the `<agent-socket-connect>` element.
 */
export function mountConnectButton(target, options) {
  const parent = typeof target === "string" ? document.querySelector(target) : target;
  if (!parent) throw new TypeError("agent-socket: mountConnectButton needs an element");
  const element = document.createElement("agent-socket-connect");
  element.configure(options || {});
  parent.appendChild(element);
  return element;
}
