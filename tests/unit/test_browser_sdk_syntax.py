"""The browser SDK and the demo pages' scripts are valid ES modules (checked with Node).

No build step exists, so a syntax error would only show up in a user's browser; ``node --check``
catches it here. The SDK must also load outside a browser (no DOM at import time) and import
nothing: it is one dependency-free module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "agent_socket" / "web"
SDK = WEB / "agent-socket.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed (apt-get install nodejs)"
)

INLINE_MODULE_RE = re.compile(r'<script type="module">(.*?)</script>', re.DOTALL)


def module_sources() -> list[tuple[str, str]]:
    sources = [(str(p.relative_to(WEB)), p.read_text()) for p in sorted(WEB.rglob("*.js"))]
    for page in sorted(WEB.rglob("*.html")):
        for i, script in enumerate(INLINE_MODULE_RE.findall(page.read_text())):
            sources.append((f"{page.relative_to(WEB)}#module{i}", script))
    return sources


def node_check(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.mjs"
    path.write_text(source)
    return subprocess.run(
        [NODE or "node", "--check", str(path)], capture_output=True, text=True, timeout=30
    )


def test_scripts_exist() -> None:
    names = [name for name, _ in module_sources()]
    assert "agent-socket.js" in names
    assert "examples/pixel-art/pixel-art.js" in names
    assert "examples/counter/index.html#module0" in names


@pytest.mark.parametrize(("name", "source"), module_sources(), ids=lambda v: str(v)[:60])
def test_es_module_syntax(name: str, source: str, tmp_path: Path) -> None:
    result = node_check(source, tmp_path)
    assert result.returncode == 0, f"{name}:\n{result.stderr}"


def test_a_syntax_error_is_caught(tmp_path: Path) -> None:
    assert node_check("export const x = ;", tmp_path).returncode != 0


def test_sdk_is_dependency_free_and_loads_without_a_dom() -> None:
    text = SDK.read_text()
    assert not re.search(r"^\s*import\b", text, re.MULTILINE), "the SDK must not import anything"
    assert "import(" not in text
    script = (
        f"const m = await import({json.dumps(SDK.as_uri())});"
        "console.log(JSON.stringify({exports: Object.keys(m).sort(),"
        " md: m.defaultAgentsMd({appId: 'demo', appDescription: 'A demo.',"
        "   tools: [{method: 'post', path: '/go', description: 'Go.',"
        "            input_schema: {type: 'object'}}]}),"
        " ping: m.HEARTBEAT_PING, timings: m.DEFAULT_TIMINGS}));"
    )
    result = subprocess.run(
        [NODE or "node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for name in ("connect", "defaultAgentsMd", "mountConnectButton", "AgentSocketSession",
                 "ToolError", "reply"):  # fmt: skip
        assert name in out["exports"], name
    assert out["ping"] == '{"type":"ping","id":"as_hb"}'
    assert out["timings"]["heartbeatMs"] == 25_000
    assert out["timings"]["deadAfterMs"] == 50_000
    assert out["timings"]["backoffInitialMs"] == 1_000
    assert out["timings"]["backoffMaxMs"] == 30_000
    assert out["timings"]["backoffJitter"] == 0.25
    md = out["md"]
    assert md.startswith("<!-- as:contract-v1 -->\n# demo\n\nA demo.")
    assert "do not recite" in md and "$BASE/tools.json" in md
    assert '- `POST $BASE/go` — Go.\n  Input: `{"type":"object"}`' in md
