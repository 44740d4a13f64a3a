-- wrk script: cycles through pre-signed webhook requests (requests.lua),
-- each connection taking its own slice so no MessageSid is sent twice.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  dofile(args[1])
  i = id
  step = counter
end

function request()
  local r = requests[(i % #requests) + 1]
  i = i + step
  return wrk.format("POST", "/webhooks/whatsapp",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = r[2] }, r[1])
end
