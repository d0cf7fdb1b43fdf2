"""The ten-line agent-socket app: a counter an AI can change. Run: python examples/counter.py"""

import os

from agent_socket import App

app = App("counter", description="A counter the AI can change.")
count = 0


@app.tool("/increment")
async def increment(by: int = 1) -> dict[str, int]:
    """Add `by` to the counter and return the new count."""
    global count
    count += by
    return {"count": count}


@app.tool("/count", method="GET")
async def read_count() -> dict[str, int]:
    """Return the current count."""
    return {"count": count}


if __name__ == "__main__":
    app.run(os.environ.get("AGENT_SOCKET_URL", "http://127.0.0.1:8787"))
