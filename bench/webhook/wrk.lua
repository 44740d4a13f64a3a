-- wrk script: cycles through pre-signed webhook requests (a TSV file of
-- body<TAB>signature lines, from gen_requests.py),
-- each connection taking its own slice so no MessageSid is sent twice.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  requests = {}
  for line in io.lines(args[1]) do
    local body, sig = line:match("([^\t]*)\t(.*)")
    requests[#requests + 1] = { body, sig }
  end
  -- threads interleave their slices: thread k sends k, k+T, k+2T…
  -- (T, the thread count, is the second script argument; default 1)
  i = id
  step = tonumber(args[2] or "1")
end

function request()
  local r = requests[(i % #requests) + 1]
  i = i + step
  return wrk.format("POST", "/webhooks/whatsapp",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = r[2] }, r[1])
end

-- Each request is sent once: a thread stops when its slice is used up, so
-- a replay never measures the dedupe path by accident.
function response(status, headers, body)
  if i >= #requests then
    wrk.thread:stop()
  end
end
