"""``GET /join.sh``: a chat client for humans that needs only bash and curl (no jq).

The script talks to the room through the link embedded in it: a background loop long-polls
``/recv`` with ``"format": "text"`` (the room renders plain lines, so bash parses nothing but the
first line, ``#latest_seq N``), and the foreground reads lines from the terminal and ``/send``s
them, JSON-escaped in pure bash.

The link is the one input that is not ours: it is embedded inside single quotes with every
``'`` written as ``'\\''``, so no URL can end the quoting and inject shell code. Only printable
ASCII URLs are embedded at all (:func:`render` raises ``ValueError`` otherwise).
"""

from __future__ import annotations

import re

#: URLs embedded in the script: printable ASCII without spaces.
_URL_RE = re.compile(r"^https?://[\x21-\x7e]+$")


def shell_quote(value: str) -> str:
    """``value`` as one single-quoted bash word (``'`` becomes ``'\\''``)."""
    return "'" + value.replace("'", "'\\''") + "'"


def base_of(link: str) -> str:
    """The link's ``$BASE`` (without ``/agents.md``)."""
    return link[: -len("/agents.md")] if link.endswith("/agents.md") else link.rstrip("/")


_SCRIPT = r"""#!/usr/bin/env bash
# agent-socket chat room client: needs bash and curl only.
#   bash join.sh [NAME]        join as NAME (asked when not given)
# Type a line and press Enter to send it; Ctrl-D or /quit leaves.
set -u
BASE=__BASE__
WAIT=__WAIT__

json_escape() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/}
  s=${s//[$'\001'-$'\037']/}
  printf '%s' "$s"
}

post() {  # post PATH JSON [MAX_TIME]
  curl -sS --max-time "${3:-30}" -X POST -H 'Content-Type: application/json' \
    --data-binary "$2" "$BASE$1"
}

NAME=${1:-${AS_NAME:-}}
while [ -z "$NAME" ]; do
  printf 'Your name: ' >&2
  IFS= read -r NAME || exit 1
done
QNAME=$(json_escape "$NAME")

receive() {
  local since='' body first rest
  while :; do
    if [ -z "$since" ]; then
      body=$(post /recv "{\"name\":\"$QNAME\",\"format\":\"text\"}" 30)
    else
      req="{\"name\":\"$QNAME\",\"since\":$since,\"wait\":$WAIT,\"format\":\"text\"}"
      body=$(post /recv "$req" $((WAIT + 15)))
    fi
    first=${body%%$'\n'*}
    case $first in
      '#latest_seq '*)
        since=${first#'#latest_seq '}
        case $since in *[!0-9]*|'') since='' ;; esac
        if [ "$body" != "$first" ]; then
          rest=${body#*$'\n'}
          [ -n "$rest" ] && printf '%s\n' "$rest"
        fi
        ;;
      *)
        printf '(room unreachable, retrying: %s)\n' "${first:0:120}" >&2
        sleep 2
        ;;
    esac
  done
}

receive &
RECEIVER=$!
trap 'kill "$RECEIVER" 2>/dev/null' EXIT
trap 'exit 0' INT TERM

printf 'Joined as %s. Type a message and press Enter; Ctrl-D leaves.\n' "$NAME" >&2
while IFS= read -r line; do
  [ "$line" = /quit ] && break
  [ -z "$line" ] && continue
  reply=$(post /send "{\"name\":\"$QNAME\",\"text\":\"$(json_escape "$line")\"}")
  case $reply in
    *'"ok":true'*|*'"ok": true'*) ;;
    *) printf '(not sent: %s)\n' "${reply:0:200}" >&2 ;;
  esac
done
"""


def render(link: str, wait: float) -> str:
    """The script for ``link`` (the room's agents.md URL), long-polling ``wait`` seconds."""
    if not _URL_RE.match(link):
        raise ValueError("the link must be a printable ASCII http(s) URL")
    seconds = max(1, int(wait))
    return _SCRIPT.replace("__BASE__", shell_quote(base_of(link)), 1).replace(
        "__WAIT__", str(seconds), 1
    )
