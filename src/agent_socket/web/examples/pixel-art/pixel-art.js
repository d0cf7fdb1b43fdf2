// Pixel-art canvas: a 32×32 grid an AI paints on through agent-socket.
//
// Tools: POST /set_pixel, /set_pixels (≤ 1024), /fill_rect, /clear; GET /get_grid. Each handler
// validates its input itself (the relay does not) and answers 400 {"error": {"code", "message"}}
// with code bad_input | out_of_range | too_many | empty_rect. The grid is kept in localStorage,
// so a reload shows the same picture; the connection survives a reload through sessionStorage.
import { mountConnectButton, errorReply } from "../../sdk/agent-socket.js";

const SIZE = 32;
const MAX_BATCH = SIZE * SIZE;
const BACKGROUND = "#ffffff";
const STORAGE_KEY = "agent-socket-example/pixel-art/grid/v1";
const COLOR_RE = /^#[0-9a-fA-F]{6}$/;

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const flash = document.getElementById("flash");
const logList = document.getElementById("log");

// ---- the grid --------------------------------------------------------------------------------

let grid = loadGrid();

function loadGrid() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (Array.isArray(saved) && saved.length === SIZE * SIZE && saved.every((c) => COLOR_RE.test(c))) {
      return saved.map((c) => c.toLowerCase());
    }
  } catch {
    /* a broken entry: start blank */
  }
  return new Array(SIZE * SIZE).fill(BACKGROUND);
}

function saveGrid() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(grid));
  } catch {
    /* storage full or disabled: the picture just won't survive a reload */
  }
}

function paint(x, y, color) {
  grid[y * SIZE + x] = color;
  ctx.fillStyle = color;
  ctx.fillRect(x, y, 1, 1);
}

function drawAll() {
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) {
    ctx.fillStyle = grid[y * SIZE + x];
    ctx.fillRect(x, y, 1, 1);
  }
}

/** Outline the area an action touched for a moment, so the user sees where the AI worked. */
function highlight(x, y, w, h) {
  const unit = 100 / SIZE;
  flash.style.left = `${x * unit}%`;
  flash.style.top = `${y * unit}%`;
  flash.style.width = `${w * unit}%`;
  flash.style.height = `${h * unit}%`;
  flash.classList.remove("on");
  void flash.offsetWidth; // restart the animation
  flash.classList.add("on");
}

function log(text, kind = "ok") {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, " ", text);
  logList.prepend(item);
  while (logList.children.length > 60) logList.lastElementChild.remove();
}

// ---- input validation ------------------------------------------------------------------------

class BadInput extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function objectBody(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new BadInput("bad_input", "the body must be a JSON object");
  }
  return body;
}

function integer(obj, name, where = "") {
  const value = obj[name];
  if (!Number.isInteger(value)) {
    throw new BadInput("bad_input", `${where}${name} must be an integer, got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return value;
}

function coordinate(obj, name, where = "") {
  const value = integer(obj, name, where);
  if (value < 0 || value >= SIZE) {
    throw new BadInput("out_of_range", `${where}${name}=${value} is outside the canvas (0–${SIZE - 1})`);
  }
  return value;
}

function color(obj, name, where = "") {
  const value = obj[name];
  if (typeof value !== "string" || !COLOR_RE.test(value)) {
    throw new BadInput("bad_input", `${where}${name} must be a color "#rrggbb", got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return value.toLowerCase();
}

/** Wrap a handler: validation errors become 400 {"error": {code, message}} and are logged. */
function tool(name, fn) {
  return (call) => {
    try {
      return fn(call);
    } catch (err) {
      if (!(err instanceof BadInput)) throw err;
      log(`${name} refused (${err.code}): ${err.message}`, "err");
      return errorReply(err.code, err.message, 400);
    }
  };
}

// ---- tools -----------------------------------------------------------------------------------

const COLOR_SCHEMA = { type: "string", pattern: "^#[0-9a-fA-F]{6}$", description: 'hex color "#rrggbb", e.g. "#ff8800"' };
const COORD = (axis) => ({ type: "integer", minimum: 0, maximum: SIZE - 1, description: `${axis} (0–${SIZE - 1})` });
const PIXEL_SCHEMA = {
  type: "object",
  properties: { x: COORD("column, 0 = left"), y: COORD("row, 0 = top"), color: COLOR_SCHEMA },
  required: ["x", "y", "color"],
};

const tools = [
  {
    method: "POST",
    path: "/set_pixel",
    description: "Set one pixel. For many pixels use /set_pixels; for areas use /fill_rect.",
    input_schema: PIXEL_SCHEMA,
    handler: tool("set_pixel", ({ body }) => {
      const b = objectBody(body);
      const x = coordinate(b, "x");
      const y = coordinate(b, "y");
      const c = color(b, "color");
      paint(x, y, c);
      saveGrid();
      highlight(x, y, 1, 1);
      log(`set_pixel (${x}, ${y}) ${c}`);
      return { ok: true, x, y, color: c };
    }),
  },
  {
    method: "POST",
    path: "/set_pixels",
    description: `Set up to ${MAX_BATCH} pixels in one call (all or none: one bad pixel refuses the whole batch).`,
    input_schema: {
      type: "object",
      properties: { pixels: { type: "array", minItems: 1, maxItems: MAX_BATCH, items: PIXEL_SCHEMA } },
      required: ["pixels"],
    },
    handler: tool("set_pixels", ({ body }) => {
      const b = objectBody(body);
      const list = b.pixels;
      if (!Array.isArray(list)) throw new BadInput("bad_input", "pixels must be an array of {x, y, color}");
      if (list.length > MAX_BATCH) throw new BadInput("too_many", `${list.length} pixels; at most ${MAX_BATCH} per call`);
      if (list.length === 0) throw new BadInput("bad_input", "pixels is empty");
      const checked = list.map((p, i) => {
        const where = `pixels[${i}].`;
        if (p === null || typeof p !== "object" || Array.isArray(p)) {
          throw new BadInput("bad_input", `pixels[${i}] must be an object {x, y, color}`);
        }
        return [coordinate(p, "x", where), coordinate(p, "y", where), color(p, "color", where)];
      });
      let minX = SIZE, minY = SIZE, maxX = 0, maxY = 0;
      for (const [x, y, c] of checked) {
        paint(x, y, c);
        minX = Math.min(minX, x); minY = Math.min(minY, y);
        maxX = Math.max(maxX, x); maxY = Math.max(maxY, y);
      }
      saveGrid();
      highlight(minX, minY, maxX - minX + 1, maxY - minY + 1);
      log(`set_pixels ×${checked.length}`);
      return { ok: true, count: checked.length };
    }),
  },
  {
    method: "POST",
    path: "/fill_rect",
    description: "Fill a rectangle with one color: x, y = top-left corner, width × height pixels. Use it for every area.",
    input_schema: {
      type: "object",
      properties: {
        x: COORD("left column"),
        y: COORD("top row"),
        width: { type: "integer", minimum: 1, maximum: SIZE, description: "pixels to the right, x + width ≤ 32" },
        height: { type: "integer", minimum: 1, maximum: SIZE, description: "pixels down, y + height ≤ 32" },
        color: COLOR_SCHEMA,
      },
      required: ["x", "y", "width", "height", "color"],
    },
    handler: tool("fill_rect", ({ body }) => {
      const b = objectBody(body);
      const x = coordinate(b, "x");
      const y = coordinate(b, "y");
      const width = integer(b, "width");
      const height = integer(b, "height");
      const c = color(b, "color");
      if (width <= 0 || height <= 0) throw new BadInput("empty_rect", `the rectangle is empty (${width}×${height})`);
      if (x + width > SIZE || y + height > SIZE) {
        throw new BadInput("out_of_range", `the rectangle (${x}, ${y}) ${width}×${height} goes past the ${SIZE}×${SIZE} canvas`);
      }
      for (let yy = y; yy < y + height; yy++) for (let xx = x; xx < x + width; xx++) paint(xx, yy, c);
      saveGrid();
      highlight(x, y, width, height);
      log(`fill_rect (${x}, ${y}) ${width}×${height} ${c}`);
      return { ok: true, filled: width * height };
    }),
  },
  {
    method: "POST",
    path: "/clear",
    description: `Paint the whole canvas one color (default white ${BACKGROUND}). The body may be empty.`,
    input_schema: { type: "object", properties: { color: COLOR_SCHEMA } },
    handler: tool("clear", ({ body }) => {
      let c = BACKGROUND;
      if (body !== null && body !== "") {
        const b = objectBody(body);
        if (b.color !== undefined) c = color(b, "color");
      }
      grid.fill(c);
      drawAll();
      saveGrid();
      highlight(0, 0, SIZE, SIZE);
      log(`clear ${c}`);
      return { ok: true, color: c };
    }),
  },
  {
    method: "GET",
    path: "/get_grid",
    description: 'The whole canvas: {"width": 32, "height": 32, "rows": [32 rows of 32 "#rrggbb" colors]}; rows[y][x].',
    input_schema: { type: "object", properties: {} },
    handler: tool("get_grid", () => {
      log("get_grid");
      const rows = [];
      for (let y = 0; y < SIZE; y++) rows.push(grid.slice(y * SIZE, (y + 1) * SIZE));
      return { width: SIZE, height: SIZE, rows };
    }),
  },
];

const agentsMd = `# Pixel-art canvas

A ${SIZE}×${SIZE} pixel canvas open in the user's browser. The user watches every change as it
happens, so paint deliberately.

- Coordinates: \`x\` is the column (0 = left … ${SIZE - 1} = right), \`y\` the row (0 = top …
  ${SIZE - 1} = bottom).
- Colors are strings \`"#rrggbb"\` (six hex digits), e.g. \`"#1e90ff"\`. Nothing else is accepted.

## How to paint well

1. **Plan first.** Before any call, decide the picture, its palette and where each part goes on
   the ${SIZE}×${SIZE} grid. If the canvas may already hold something, read it with
   \`GET /get_grid\`.
2. **Use \`/fill_rect\` for areas**: backgrounds, sky, ground, blocks and bars are one call each.
   Start with the large areas, then add detail on top.
3. **Batch the details**: send many pixels in one \`/set_pixels\` call (up to ${MAX_BATCH} per
   call) instead of many \`/set_pixel\` calls. Keep \`/set_pixel\` for single touch-ups.
4. **Check your work** with \`GET /get_grid\` and fix what is off. \`/clear\` starts over.

## Tools

- \`POST /set_pixel\` \`{"x", "y", "color"}\`
- \`POST /set_pixels\` \`{"pixels": [{"x", "y", "color"}, …]}\` — 1 to ${MAX_BATCH} pixels, all or none
- \`POST /fill_rect\` \`{"x", "y", "width", "height", "color"}\` — top-left corner and size;
  \`x + width ≤ ${SIZE}\`, \`y + height ≤ ${SIZE}\`
- \`POST /clear\` \`{"color"?}\` — default white
- \`GET /get_grid\` — \`{"width", "height", "rows"}\`, \`rows[y][x]\` is a color

## Errors

Bad input is answered \`400\` with \`{"error": {"code", "message"}}\`; nothing is painted. Codes:
\`bad_input\` (wrong type, missing field, bad color), \`out_of_range\` (outside the canvas),
\`too_many\` (over ${MAX_BATCH} pixels), \`empty_rect\` (width or height below 1). Read the message
and fix the call.
`;

// ---- page ------------------------------------------------------------------------------------

drawAll();
document.getElementById("clear-local").addEventListener("click", () => {
  grid.fill(BACKGROUND);
  drawAll();
  saveGrid();
  log("cleared by you", "you");
});

const button = mountConnectButton(document.getElementById("connect"), {
  appId: "pixel-art",
  appDescription: `A ${SIZE}×${SIZE} pixel-art canvas in the user's browser that you can paint on.`,
  agentsMd,
  tools,
  label: "pixel-art",
});

button.addEventListener("agent-socket-connected", () => log("connected — waiting for the AI", "you"));
button.addEventListener("agent-socket-link-changed", () => log("the link changed — share the new one", "err"));

// For tests and curious users: the grid as the page holds it.
window.pixelArt = { SIZE, grid: () => grid.slice(), button };
