-- The async cycle of PROTOCOL.md §2.4: POST $BASE/async answers 202 {"taskId": …}; a later
-- request polls $BASE/_as_tasks/<taskId> until it gets the result (200), once.
-- Usage: wrk ... -s async.lua <origin> -- <base path /v1/t/<token>>
-- A connection polls the oldest task waiting in its thread's queue, or posts a new call when
-- the queue is empty; a pending poll (202 completed:false) puts the task back at the end.
-- A task still pending after GIVE_UP polls is abandoned and counted as lost (the relay dropped
-- its task_complete). done() prints "CYCLES n" (results fetched), "POSTS n" (tasks started),
-- "PENDING n" (polls that found the task not complete yet) and "LOST n".
local GIVE_UP = 200
local queue = {}
local polls = {}
local base = ""
local threads = {}
cycles = 0
posts = 0
pending = 0
lost = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  base = args[1]
end

function request()
  local id = table.remove(queue, 1)
  if id then
    return wrk.format("GET", base .. "/_as_tasks/" .. id)
  end
  return wrk.format("POST", base .. "/async", {["Content-Type"] = "application/json"}, '{"n":1}')
end

function response(status, headers, body)
  if status == 202 then
    local id = string.match(body, '"taskId":"([^"]+)"')
    if id then
      if string.find(body, '"completed":false', 1, true) then
        pending = pending + 1
        polls[id] = (polls[id] or 0) + 1
        if polls[id] >= GIVE_UP then
          polls[id] = nil
          lost = lost + 1
          return
        end
      else
        posts = posts + 1
      end
      table.insert(queue, id)
    end
  elseif status == 200 then
    cycles = cycles + 1
  end
end

function done(summary, latency, requests)
  local totals = {cycles = 0, posts = 0, pending = 0, lost = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  io.write(string.format("CYCLES %d\nPOSTS %d\nPENDING %d\nLOST %d\n",
    totals.cycles, totals.posts, totals.pending, totals.lost))
end
