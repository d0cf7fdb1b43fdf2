-- POST a JSON body of a fixed size to the URL given on wrk's command line.
-- Usage: wrk ... -s post.lua <url> -- <body_bytes>
-- The body is {"data":"aaa…"} padded to exactly <body_bytes> bytes (at least 16).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local size = tonumber(args[1]) or 16
  if size < 16 then size = 16 end
  -- {"data":""} is 11 bytes of framing around the padding.
  wrk.body = '{"data":"' .. string.rep("a", size - 11) .. '"}'
end
