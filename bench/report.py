#!/usr/bin/env python3
"""Parse load-generator output and build the benchmark table (stdlib only).

  report.py record --results R.jsonl --proxy P --workload W --repeat N
                   --tool wrk|h2load|wsidle --output FILE [--log H2LOAD_LOG]
                   [--user-ticks U --sys-ticks S --clk-tck HZ] [--rss-before KB --rss-after KB]
                   [--keys N] [--offered REQ_PER_S]
      parse one measurement, append it as a JSON line to R.jsonl, print a summary line.
  report.py table --results R.jsonl --meta META.tsv --out latest.md
      print the markdown report (medians over repeats, ratios, targets) and write it.
  report.py svg --results R.jsonl [--meta META.tsv | --md latest.md] --output latest.svg
      write the bar chart of the CPU-per-request ratios (date and machine from META, else from
      the heading of the markdown report next to R.jsonl).
  report.py rate --results R.jsonl --repeat N
      print the offered load for (k): half of mm-edge's (a) req/s in repeat N (exit 1 if none).
"""

import argparse
import json
import re
import statistics
import sys

WORKLOADS = {
    "a": "(a) HTTPS HTTP/1.1 keep-alive, 64 conns",
    "b": "(b) new TLS connection per request",
    "c": "(c) HTTP/2, 16 conns x 16 streams",
    "d": "(d) idle WSS connections",
    "e": "(e) rate limiter on vs off, workload (a)",
    "f": "(f) flood of idle HTTPS connections, then closed",
    "g": "(g) access log / metrics on vs off, workload (a)",
    "h": "(h) idle keep-alive HTTPS connections",
    "i": "(i) workload (a) with 1,000 conns",
    "j": "(j) rate limiter, 1,000,000 keys in 10,000 sessions",
    "k": "(k) fixed load, half of mm-edge's (a) req/s",
    "l": "(l) rate limiter in Redis vs in process, workload (a)",
}
PROXIES = ["nginx", "haproxy", "mm-edge"]
# (workload, reference proxy, max ratio of mm-edge / reference CPU per request); (a) and (c) are
# issue 16's (0.9x nginx on HTTP/1.1 keep-alive, 1.0x HAProxy on HTTP/2).
CPU_TARGETS = {"a": ("nginx", 0.90), "b": ("nginx", 0.90), "c": ("haproxy", 1.0), "i": None}
# (h) issue 16: RSS per idle keep-alive HTTPS connection <= nginx's; (k) p99 at the same load <= nginx's.
IDLE_TARGET = ("nginx", 1.0)
LATENCY_TARGET = ("nginx", 1.0)
# (d) issue 16: at most 8 KB of RSS per idle WSS connection.
WSS_TARGET_KB = 8.0
LIMITER_TARGET_PCT = 3.0
# (g), issue 12: extra CPU per request with the access log on (JSON lines to a file) / metrics on.
ACCESS_LOG_TARGET_PCT = 5.0
METRICS_TARGET_PCT = 2.0
# RSS 60 s after a flood closed, at most this many times the idle RSS before it.
FLOOD_TARGET_X = 2.0
# mm-edge against itself: (label, what, (proxy, workload) measured, (proxy, workload) baseline,
# max extra CPU per request in %). The "j" records carry the number of distinct keys ("keys").
SELF_COMPARISONS = [
    ("e", "limiter on / off", ("mm-edge+limiter", "a"), ("mm-edge", "a"), LIMITER_TARGET_PCT),
    ("g", "access log on / off", ("mm-edge+log", "a"), ("mm-edge", "a"), ACCESS_LOG_TARGET_PCT),
    ("g", "metrics on / off", ("mm-edge+metrics", "a"), ("mm-edge", "a"), METRICS_TARGET_PCT),
    ("i", "1,000 / 64 conns", ("mm-edge", "i"), ("mm-edge", "a"), 10.0),
    ("j", "1,000,000 keys / one IP (e)", ("mm-edge+keys", "j"), ("mm-edge+limiter", "a"), 5.0),
    ("j", "1,000,000 keys / one X-Key", ("mm-edge+keys", "j"), ("mm-edge+key1", "j"), 5.0),
    # issue 15: the shared limit's goal, at most +25% CPU per request over the in-process one.
    ("l", "Redis / in process (e)", ("mm-edge+redis", "l"), ("mm-edge+limiter", "a"), 25.0),
]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value.strip())
    if not m:
        raise ValueError(f"unparseable duration {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", text)
    if not m:
        raise ValueError("wrk output has no 'N requests in' line:\n" + text)
    requests = int(m.group(1))
    seconds = _ms(m.group(2)) / 1e3
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
    p50 = re.search(r"^\s*50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    errors = 0
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = {}
    if se:
        socket_errors = dict(zip(["connect", "read", "write", "timeout"], map(int, se.groups())))
        # With 'Connection: close' wrk counts the server's orderly close as a read error on
        # some versions; only connect/write/timeout are real failures.
        errors += socket_errors["connect"] + socket_errors["write"] + socket_errors["timeout"]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": rps,
        "p50_ms": _ms(p50.group(1)) if p50 else None,
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "errors": errors,
        "socket_errors": socket_errors,
    }


def parse_h2load(text: str, log_path: str | None) -> dict:
    m = re.search(r"finished in ([\d.]+\w+), ([\d.]+) req/s", text)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if not m or not r:
        raise ValueError("h2load output not understood:\n" + text)
    done, failed, errored, timeout = int(r.group(3)), int(r.group(5)), int(r.group(6)), int(r.group(7))
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    non2xx = sum(int(x) for x in codes.groups()[1:]) if codes else 0
    p50 = p99 = None
    if log_path:
        # h2load --log-file: "<start us since epoch>\t<status>\t<duration us>" per request.
        durations = []
        with open(log_path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    durations.append(int(parts[2]))
        if durations:
            durations.sort()
            p50 = durations[min(len(durations) - 1, int(len(durations) * 0.50))] / 1e3
            p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))] / 1e3
    return {
        "requests": done,
        "seconds": _ms(m.group(1)) / 1e3,
        "rps": float(m.group(2)),
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": failed + errored + timeout + non2xx,
    }


def parse_wsidle(text: str) -> dict:
    m = re.search(r"OPEN (\d+) FAILED (\d+) FIRST_ERROR (.*)", text)
    if not m:
        raise ValueError("ws_idle output not understood:\n" + text)
    return {"conns": int(m.group(1)), "errors": int(m.group(2)), "first_error": m.group(3).strip()}


def cmd_record(a) -> None:
    with open(a.output) as f:
        text = f.read()
    if a.tool == "wrk":
        rec = parse_wrk(text)
    elif a.tool == "h2load":
        rec = parse_h2load(text, a.log)
    else:
        rec = parse_wsidle(text)
    # One key's records apart: (j) with one X-Key is "mm-edge+key1", with many "mm-edge+keys".
    proxy = "mm-edge+key1" if a.proxy == "mm-edge+keys" and a.keys == 1 else a.proxy
    rec.update(proxy=proxy, workload=a.workload, repeat=a.repeat)
    if a.keys is not None:
        rec["keys"] = a.keys
    if a.offered is not None:
        rec["offered_rps"] = a.offered
    if a.tool in ("wrk", "h2load"):
        user, sys_ = a.user_ticks, a.sys_ticks
        if user is None and sys_ is None:  # older callers: the sum only
            user, sys_ = a.cpu_ticks, None
        per_s = 1e6 / a.clk_tck
        cpu_us = ((user or 0) + (sys_ or 0)) * per_s
        n = rec["requests"]
        rec["cpu_us_total"] = cpu_us
        rec["cpu_us_per_req"] = cpu_us / n if n else None
        if sys_ is not None:
            rec["cpu_user_us_per_req"] = user * per_s / n if n else None
            rec["cpu_sys_us_per_req"] = sys_ * per_s / n if n else None
        summary = (f"{rec['requests']} req, {rec['rps']:.0f} req/s"
                   + (f" (offered {a.offered:.0f})" if a.offered is not None else "")
                   + (f", p50 {fmt(rec['p50_ms'], 2)} ms" if rec.get("p50_ms") is not None else "")
                   + f", p99 {fmt(rec['p99_ms'], 2)} ms, CPU {fmt(rec['cpu_us_per_req'], 1)} us/req"
                   f" (user {fmt(rec.get('cpu_user_us_per_req'), 1)} + sys "
                   f"{fmt(rec.get('cpu_sys_us_per_req'), 1)}), errors {rec['errors']}")
    elif a.workload == "f":
        rec["rss_before_kb"] = a.rss_before
        rec["rss_peak_kb"] = a.rss_peak
        rec["rss_after_kb"] = a.rss_after
        rec["after_x_idle"] = a.rss_after / a.rss_before if a.rss_before else None
        summary = (f"{rec['conns']} idle HTTPS open ({rec['errors']} failed), RSS idle {a.rss_before} KB, "
                   f"flood {a.rss_peak} KB, 60 s after {a.rss_after} KB "
                   f"({fmt(rec['after_x_idle'], 2)}x idle)")
    else:
        rec["rss_before_kb"] = a.rss_before
        rec["rss_after_kb"] = a.rss_after
        rec["kb_per_conn"] = (a.rss_after - a.rss_before) / rec["conns"] if rec["conns"] else None
        kind = "HTTPS" if a.workload == "h" else "WSS"
        summary = (f"{rec['conns']} idle {kind} open ({rec['errors']} failed), RSS {a.rss_before} -> "
                   f"{a.rss_after} KB, {fmt(rec['kb_per_conn'], 1)} KB/conn")
        if rec["errors"]:
            summary += f"; first error: {rec['first_error']}"
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"    {proxy:<8} ({a.workload}) repeat {a.repeat}: {summary}")


def fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if digits == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt_mb(kb) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_records(path: str) -> tuple[list, dict]:
    """The JSON lines of `path`, and by[(proxy, workload)][repeat] = record."""
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    by: dict = {}
    for r in recs:
        by.setdefault((r["proxy"], r["workload"]), {})[r["repeat"]] = r
    return recs, by


def load_meta(path: str) -> dict:
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    return meta


def median_of(by, proxy, wl, key):
    """Median over repeats of `key` in the records of (proxy, wl)."""
    rs = by.get((proxy, wl))
    return median([r.get(key) for r in rs.values()]) if rs else None


def ratio(by, wl, key, num, den, num_wl=None):
    """Median over repeats of the per-repeat ratio num/den (same repeat = same conditions)."""
    n, d = by.get((num, num_wl or wl)), by.get((den, wl))
    if not n or not d:
        return None
    vals = []
    for rep in sorted(set(n) & set(d)):
        x, y = n[rep].get(key), d[rep].get(key)
        if x is not None and y:
            vals.append(x / y)
    return median(vals)


def self_ratios(by, num, den, key="cpu_us_per_req") -> list:
    """Per-repeat ratios of record (proxy, workload) `num` to `den`."""
    n, d = by.get(num, {}), by.get(den, {})
    return [n[k][key] / d[k][key] for k in sorted(set(n) & set(d))
            if n[k].get(key) and d[k].get(key)]


def cmd_table(a) -> None:
    recs, by = load_records(a.results)
    meta = load_meta(a.meta)

    def med(proxy, wl, key):
        return median_of(by, proxy, wl, key)

    proxies = [p for p in PROXIES if any(k[0] == p for k in by)]
    have_mm = "mm-edge" in proxies
    out = []
    out.append(f"## mm-edge benchmark, {meta.get('date', '?')}")
    out.append("")
    out.append(f"- Machine: {meta['host'] + ', ' if meta.get('host') else ''}{meta.get('nproc', '?')} CPUs, "
               f"{meta.get('cpu', '?')}, "
               f"Linux {meta.get('kernel', '?')}; proxy pinned to CPU {meta.get('proxy_cpu', '1')}, "
               f"load generator and backend to CPU {meta.get('load_cpu', '0')}")
    out.append(f"- Versions: {meta.get('versions', '?')}")
    counts = f"{meta.get('ws_conns', '?')} idle WSS connections"
    if by.get(("mm-edge", "h")) or by.get(("nginx", "h")) or by.get(("haproxy", "h")):
        counts += f"; (h) {meta.get('idle_conns', '?')} idle HTTPS connections"
    if any(k[1] == "i" for k in by):
        counts += f"; (i) {meta.get('conns_i', '?')} wrk connections"
    if any(k[1] == "j" for k in by):
        counts += f"; (j) {meta.get('keys', '?')} X-Key values"
    out.append(f"- Run: median of {meta.get('repeats', '?')} repeat(s) x {meta.get('seconds', '?')} s "
               f"per workload; {counts}; "
               f"body {meta.get('body_bytes', '?')} B JSON at /api/v4/posts"
               + (" (quick mode: smoke test only, not for the record)" if meta.get("quick") == "1" else ""))
    if meta.get("notes"):
        out.append(f"- Notes: {meta['notes']}")
    out.append("")
    out.append("| workload | metric | " + " | ".join(proxies)
               + (" | mm-edge/nginx | mm-edge/haproxy | target | met |" if have_mm else " |"))
    out.append("|---|---|" + "---:|" * len(proxies) + ("---:|---:|---|---|" if have_mm else ""))

    def errs(proxy, wl):
        """Errors recorded over all repeats (non-2xx answers would flatter CPU per request)."""
        return sum(r.get("errors", 0) or 0 for r in by.get((proxy, wl), {}).values())

    def row(wl, label, key, digits, target=None):
        if not any(med(p, wl, key) is not None for p in proxies if by.get((p, wl))):
            return
        cells = [fmt(med(p, wl, key), digits) + (f" (**{errs(p, wl)} errors**)" if errs(p, wl) else "")
                 for p in proxies]
        line = f"| {WORKLOADS[wl]} | {label} | " + " | ".join(cells)
        if have_mm:
            rn = ratio(by, wl, key, "mm-edge", "nginx")
            rh = ratio(by, wl, key, "mm-edge", "haproxy")
            tgt, met = "", ""
            if target:
                ref, limit = target
                r = rn if ref == "nginx" else rh
                tgt = f"<= {limit:.2f}x {ref}"
                met = "-" if r is None else ("yes" if r <= limit else "**no**")
                if errs("mm-edge", wl) or errs(ref, wl):
                    met = "**not valid: the run had errors**"
            line += (f" | {fmt(rn, 2)}x | {fmt(rh, 2)}x | {tgt} | {met}"
                     .replace("-x", "-"))
        out.append(line + " |")

    def user_sys_row(wl):
        """utime and stime per request, separately (medians over repeats)."""
        if not any(med(p, wl, "cpu_sys_us_per_req") is not None for p in proxies):
            return
        cells = [f"{fmt(med(p, wl, 'cpu_user_us_per_req'), 1)} / {fmt(med(p, wl, 'cpu_sys_us_per_req'), 1)}"
                 for p in proxies]
        out.append(f"| {WORKLOADS[wl]} | CPU us/req user / sys | " + " | ".join(cells)
                   + (" | | | | |" if have_mm else " |"))

    for wl in ("a", "b", "c", "i"):
        row(wl, "CPU us/req", "cpu_us_per_req", 1, CPU_TARGETS[wl])
        user_sys_row(wl)
        row(wl, "req/s", "rps", 0)
        row(wl, "p99 ms", "p99_ms", 2)
    if any(by.get((p, "d")) for p in proxies):
        cells = [fmt(med(p, "d", "kb_per_conn"), 1) for p in proxies]
        line = f"| {WORKLOADS['d']} | KB/conn | " + " | ".join(cells)
        if have_mm:
            mm = med("mm-edge", "d", "kb_per_conn")
            rn = ratio(by, "d", "kb_per_conn", "mm-edge", "nginx")
            rh = ratio(by, "d", "kb_per_conn", "mm-edge", "haproxy")
            met = "-" if mm is None else ("yes" if mm <= WSS_TARGET_KB else "**no**")
            line += (f" | {fmt(rn, 2)}x | {fmt(rh, 2)}x | <= {WSS_TARGET_KB:.0f} KB/conn | {met}"
                     .replace("-x", "-"))
        out.append(line + " |")
    if any(by.get((p, "f")) for p in proxies):
        cells = [f"{fmt_mb(med(p, 'f', 'rss_before_kb'))} / {fmt_mb(med(p, 'f', 'rss_peak_kb'))} / "
                 f"{fmt_mb(med(p, 'f', 'rss_after_kb'))}" for p in proxies]
        line = f"| {WORKLOADS['f']} | RSS MB idle / flood / 60 s after | " + " | ".join(cells)
        if have_mm:
            x = med("mm-edge", "f", "after_x_idle")
            met = "-" if x is None else ("yes" if x <= FLOOD_TARGET_X else "**no**")
            line += (f" | | | after <= {FLOOD_TARGET_X:.0f}x idle (measured {fmt(x, 2)}x) | {met}")
        out.append(line + " |")
    row("h", "KB/conn", "kb_per_conn", 1, IDLE_TARGET)
    if any(by.get((p, "k")) for p in proxies):
        offered = med("mm-edge", "k", "offered_rps") or next(
            (med(p, "k", "offered_rps") for p in proxies if by.get((p, "k"))), None)
        row("k", f"req/s (offered {fmt(offered, 0)})", "rps", 0)
        row("k", "p50 ms", "p50_ms", 2)
        row("k", "p99 ms", "p99_ms", 2, LATENCY_TARGET)

    def extra_row(wl: str, what: str, num: tuple, den: tuple, target: float) -> None:
        """mm-edge `num` (proxy, workload) against `den`: extra CPU per request."""
        if not (by.get(num) and by.get(den)):
            return
        on = med(*num, "cpu_us_per_req")
        off = med(*den, "cpu_us_per_req")
        r = ratio(by, den[1], "cpu_us_per_req", num[0], den[0], num[1])
        extra = None if r is None else (r - 1) * 100
        met = "-" if extra is None else ("yes" if extra <= target else "**no**")
        extras = [(x - 1) * 100 for x in self_ratios(by, num, den)]
        if len(extras) > 1 and max(extras) - min(extras) > target:
            # The repeats disagree by more than the target: the verdict is noise.
            met = f"undecided: repeats spread {min(extras):+.1f}% .. {max(extras):+.1f}%"
        if errs(*num) or errs(*den):
            met = "**not valid: the run had errors**"
        blanks = " | ".join("" for _ in proxies[:-1])
        pct = "-" if extra is None else f"{extra:+.1f}%"
        out.append(f"| {WORKLOADS[wl]} | CPU us/req {what} | {blanks} | {fmt(on, 1)} / {fmt(off, 1)} "
                   f"| | | <= {target:.0f}% extra (measured {pct}) | {met} |")

    def scale_row(what: str, target: float) -> None:
        """(i) against (a), every proxy against itself: does the cost grow with the connections?"""
        vals = {p: ratio(by, "a", "cpu_us_per_req", p, p, "i") for p in proxies}
        if all(v is None for v in vals.values()):
            return
        line = (f"| {WORKLOADS['i']} | CPU us/req {what} | "
                + " | ".join("-" if vals[p] is None else f"{vals[p]:.2f}x" for p in proxies))
        if have_mm:
            r = vals.get("mm-edge")
            met = "-" if r is None else ("yes" if (r - 1) * 100 <= target else "**no**")
            if errs("mm-edge", "i") or errs("mm-edge", "a"):
                met = "**not valid: the run had errors**"
            line += f" | | | mm-edge <= {1 + target / 100:.2f}x its (a) | {met}"
        out.append(line + " |")

    for wl, what, num, den, target in SELF_COMPARISONS:
        if wl == "i":
            scale_row(what, target)
        else:
            extra_row(wl, what, num, den, target)
    if by.get(("mm-edge+redis", "l")) and by.get(("mm-edge+limiter", "a")):
        # (l) latency, for information: the Redis round trip is on every request's path.
        blanks = " | ".join("" for _ in proxies[:-1])
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            on, off = med("mm-edge+redis", "l", key), med("mm-edge+limiter", "a", key)
            out.append(f"| {WORKLOADS['l']} | {label} ms Redis / in process | {blanks} | "
                       f"{fmt(on, 2)} / {fmt(off, 2)} | | | (for information) | |")
    out.append("")
    out.append("CPU us/req = the proxy's utime+stime (all its processes, from /proc/PID/stat) during the "
               "run / completed requests. Ratios are the median of the per-repeat ratios "
               "(each repeat runs all proxies back to back), so they can differ slightly from the "
               "ratio of the medians shown.")

    # Per-repeat detail: spread and errors, so noise is visible.
    out.append("")
    out.append("<details><summary>per-repeat figures</summary>")
    out.append("")
    out.append("| proxy | workload | repeat | CPU us/req | user | sys | req/s | p50 ms | p99 ms | KB/conn | errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    variants = ["mm-edge+limiter", "mm-edge+key1", "mm-edge+keys", "mm-edge+log", "mm-edge+metrics",
                "mm-edge+redis"]
    order = {p: i for i, p in enumerate(PROXIES + variants)}
    for r in sorted(recs, key=lambda r: (r["workload"], order.get(r["proxy"], 9), r["repeat"])):
        out.append(f"| {r['proxy']} | {r['workload']} | {r['repeat']} | {fmt(r.get('cpu_us_per_req'), 1)} | "
                   f"{fmt(r.get('cpu_user_us_per_req'), 1)} | {fmt(r.get('cpu_sys_us_per_req'), 1)} | "
                   f"{fmt(r.get('rps'), 0)} | {fmt(r.get('p50_ms'), 2)} | {fmt(r.get('p99_ms'), 2)} | "
                   f"{fmt(r.get('kb_per_conn'), 1)} | {r.get('errors', 0)} |")
    out.append("")
    out.append("</details>")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(a.out, "w") as f:
        f.write(text)


def cmd_rate(a) -> None:
    """Offered load for (k): half of mm-edge's (a) req/s in this repeat."""
    _, by = load_records(a.results)
    rec = by.get(("mm-edge", "a"), {}).get(a.repeat)
    if not rec or not rec.get("rps"):
        sys.exit("report.py rate: no (a) figure of mm-edge in this repeat")
    print(int(rec["rps"] / 2))


# ---------------------------------------------------------------- the chart (SVG, stdlib only)
SVG_SHORT = {"a": "(a) keep-alive, 64 conns", "b": "(b) new TLS conn per request",
             "c": "(c) HTTP/2, 16 x 16 streams", "i": "(i) keep-alive, 1,000 conns"}
SVG_SERIES = [("mm-edge / nginx", "#3b6fb6"), ("mm-edge / HAProxy", "#e0892b"),
              ("mm-edge / mm-edge (on / off etc.)", "#4c9a52")]


def chart_groups(by) -> list:
    """[(label, [(series index, ratio)], target ratio or None)] for every CPU-per-request ratio."""
    groups = []
    for wl in ("a", "b", "c", "i"):
        bars = [(i, ratio(by, wl, "cpu_us_per_req", "mm-edge", ref))
                for i, ref in enumerate(("nginx", "haproxy"))]
        bars = [(i, r) for i, r in bars if r is not None]
        if bars:
            target = CPU_TARGETS.get(wl)
            groups.append((SVG_SHORT[wl], bars, target[1] if target else None,
                           f"{target[0]}" if target else ""))
    for wl, what, num, den, pct in SELF_COMPARISONS:
        r = ratio(by, den[1], "cpu_us_per_req", num[0], den[0], num[1])
        if r is not None:
            groups.append((f"({wl}) {what}", [(2, r)], 1 + pct / 100, ""))
    return groups


def chart_meta(a) -> tuple[str, str]:
    """(date, machine) of the run: from META.tsv, else from the markdown report's heading."""
    if a.meta:
        m = load_meta(a.meta)
        machine = ", ".join(x for x in (m.get("host"), f"{m.get('nproc', '?')} CPUs", m.get("cpu")) if x)
        runs = f"median of {m.get('repeats', '?')} repeat(s) x {m.get('seconds', '?')} s"
        if m.get("quick") == "1":
            runs += ", quick mode (smoke test)"
        return m.get("date", "?"), f"{machine}; {runs}"
    md = a.md or re.sub(r"\.jsonl$", "", a.results) + ".md"
    date, machine, runs = "?", "?", ""
    try:
        with open(md) as f:
            for line in f:
                if line.startswith("## mm-edge benchmark, "):
                    date = line.split(", ", 1)[1].strip()
                elif line.startswith("- Machine: "):
                    machine = line[len("- Machine: "):].split(";")[0].strip()
                    machine = re.sub(r", Linux \S+$", "", machine)
                elif line.startswith("- Run: "):
                    runs = line[len("- Run: "):].split(" per workload")[0].strip()
    except OSError:
        pass
    return date, f"{machine}; {runs}" if runs else machine


def wrap(label: str, width: int = 17) -> list:
    words, lines = label.split(), [""]
    for w in words:
        if lines[-1] and len(lines[-1]) + 1 + len(w) > width:
            lines.append(w)
        else:
            lines[-1] = f"{lines[-1]} {w}".strip()
    return lines


def render_svg(groups: list, date: str, machine: str) -> str:
    from xml.sax.saxutils import escape

    group_w, bar_w, left, right, top, bottom = 120, 30, 64, 24, 92, 80
    width = left + max(1, len(groups)) * group_w + right
    width = max(width, 760)
    plot_h = 300
    height = top + plot_h + bottom
    values = [r for _, bars, _, _ in groups for _, r in bars] + [t for _, _, t, _ in groups if t] + [1.0]
    step = 0.25 if max(values) <= 2.2 else 0.5 if max(values) <= 4.5 else 1.0
    ymax = step * (int(max(values) * 1.12 / step) + 1)

    def y(v: float) -> float:
        return top + plot_h - v / ymax * plot_h

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
         f'<text x="{left}" y="24" font-size="16" font-weight="bold">mm-edge CPU time per request, '
         f'as a ratio (lower is better)</text>',
         f'<text x="{left}" y="44" fill="#444">{escape(date)} · {escape(machine)}</text>']
    # legend
    lx = left
    for name, color in SVG_SERIES:
        o.append(f'<rect x="{lx}" y="56" width="12" height="12" fill="{color}"/>')
        o.append(f'<text x="{lx + 17}" y="66">{escape(name)}</text>')
        lx += 28 + 6.9 * len(name)
    o.append(f'<line x1="{lx}" y1="62" x2="{lx + 26}" y2="62" stroke="#c0392b" stroke-width="2" '
             f'stroke-dasharray="6 4"/><text x="{lx + 31}" y="66">target</text>')
    lx += 86
    o.append(f'<line x1="{lx}" y1="62" x2="{lx + 26}" y2="62" stroke="#222" stroke-width="1.5"/>'
             f'<text x="{lx + 31}" y="66">1.0 = parity</text>')
    # axis, grid
    x_end = width - right
    v = 0.0
    while v <= ymax + 1e-9:
        o.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{x_end}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#444">{v:.2f}x</text>')
        v += step
    o.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>')
    if not groups:
        o.append(f'<text x="{width / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" fill="#888">'
                 f'no CPU figures of mm-edge in these results</text>')
    for gi, (label, bars, target, ref) in enumerate(groups):
        gx = left + gi * group_w
        bx = gx + (group_w - bar_w * len(bars)) / 2
        for k, (series, r) in enumerate(bars):
            x = bx + k * bar_w
            o.append(f'<rect x="{x + 2:.1f}" y="{y(r):.1f}" width="{bar_w - 4}" height="{y(0) - y(r):.1f}" '
                     f'fill="{SVG_SERIES[series][1]}"><title>{escape(label)}: {escape(SVG_SERIES[series][0])} '
                     f'{r:.3f}</title></rect>')
            o.append(f'<text x="{x + bar_w / 2:.1f}" y="{y(r) - 4:.1f}" text-anchor="middle" '
                     f'font-size="11" stroke="#fff" stroke-width="3" paint-order="stroke">{r:.2f}</text>')
        lines = wrap(label)
        for li, line in enumerate(lines):
            o.append(f'<text x="{gx + group_w / 2:.1f}" y="{top + plot_h + 18 + li * 14}" '
                     f'text-anchor="middle" font-size="11">{escape(line)}</text>')
        if target:
            o.append(f'<line x1="{gx + 10}" y1="{y(target):.1f}" x2="{gx + group_w - 10}" y2="{y(target):.1f}" '
                     f'stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>')
            o.append(f'<text x="{gx + group_w / 2:.1f}" y="{top + plot_h + 18 + len(lines) * 14}" '
                     f'text-anchor="middle" font-size="10" fill="#c0392b">target \u2264 {target:.2f}x'
                     f'{" " + escape(ref) if ref else ""}</text>')
    o.append(f'<line x1="{left}" y1="{y(1.0):.1f}" x2="{x_end}" y2="{y(1.0):.1f}" stroke="#222" '
             f'stroke-width="1.5"/>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def cmd_svg(a) -> None:
    _, by = load_records(a.results)
    date, machine = chart_meta(a)
    with open(a.output, "w") as f:
        f.write(render_svg(chart_groups(by), date, machine))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--results", required=True)
    r.add_argument("--proxy", required=True)
    r.add_argument("--workload", required=True)
    r.add_argument("--repeat", type=int, required=True)
    r.add_argument("--tool", choices=["wrk", "h2load", "wsidle"], required=True)
    r.add_argument("--output", required=True)
    r.add_argument("--log")
    r.add_argument("--cpu-ticks", type=int, default=0, help="utime+stime (when not given apart)")
    r.add_argument("--user-ticks", type=int)
    r.add_argument("--sys-ticks", type=int)
    r.add_argument("--keys", type=int, help="(j): distinct X-Key values sent")
    r.add_argument("--offered", type=float, help="(k): offered load, requests per second")
    r.add_argument("--clk-tck", type=int, default=100)
    r.add_argument("--rss-before", type=int, default=0)
    r.add_argument("--rss-after", type=int, default=0)
    r.add_argument("--rss-peak", type=int, default=0)
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    t.add_argument("--meta", required=True)
    t.add_argument("--out", required=True)
    g = sub.add_parser("svg")
    g.add_argument("--results", required=True)
    g.add_argument("--meta", help="meta.tsv of the run (else --md)")
    g.add_argument("--md", help="markdown report with the date and machine (default: RESULTS .md)")
    g.add_argument("--output", required=True)
    q = sub.add_parser("rate")
    q.add_argument("--results", required=True)
    q.add_argument("--repeat", type=int, required=True)
    a = ap.parse_args()
    {"record": cmd_record, "table": cmd_table, "svg": cmd_svg, "rate": cmd_rate}[a.cmd](a)


if __name__ == "__main__":
    main()
