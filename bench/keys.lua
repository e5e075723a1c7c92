-- wrk script for workload (j): each request carries an X-Key header, the values 1..N in turn
-- (N = the first argument after "--", default 1000000), so a limiter keyed by X-Key sees N
-- distinct clients. Usage: wrk -s bench/keys.lua URL -- N
local n, i = 1000000, 0

function init(args)
  n = tonumber(args[1]) or n
end

function request()
  i = i % n + 1
  return wrk.format(nil, nil, { ["X-Key"] = tostring(i) })
end
