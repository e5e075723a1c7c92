#!/usr/bin/env python3
"""Parse load-generator output and build the benchmark table (stdlib only).

  report.py record --results R.jsonl --proxy P --workload W --repeat N
                   --tool wrk|h2load|wsidle --output FILE [--log H2LOAD_LOG]
                   [--cpu-ticks T --clk-tck HZ] [--rss-before KB --rss-after KB]
      parse one measurement, append it as a JSON line to R.jsonl, print a summary line.
  report.py table --results R.jsonl --meta META.tsv --out latest.md
      print the markdown report (medians over repeats, ratios, targets) and write it.
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
}
PROXIES = ["nginx", "haproxy", "mm-edge"]
# (workload, reference proxy, max ratio of mm-edge / reference CPU per request)
CPU_TARGETS = {"a": ("nginx", 0.75), "b": ("nginx", 0.90), "c": ("haproxy", 1.0)}
WSS_TARGET_KB = 10.0
LIMITER_TARGET_PCT = 3.0
# (g), issue 12: extra CPU per request with the access log on (JSON lines to a file) / metrics on.
ACCESS_LOG_TARGET_PCT = 5.0
METRICS_TARGET_PCT = 2.0
# RSS 60 s after a flood closed, at most this many times the idle RSS before it.
FLOOD_TARGET_X = 2.0

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
    p99 = None
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
            p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))] / 1e3
    return {
        "requests": done,
        "seconds": _ms(m.group(1)) / 1e3,
        "rps": float(m.group(2)),
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
    rec.update(proxy=a.proxy, workload=a.workload, repeat=a.repeat)
    if a.tool in ("wrk", "h2load"):
        cpu_us = a.cpu_ticks / a.clk_tck * 1e6
        rec["cpu_us_total"] = cpu_us
        rec["cpu_us_per_req"] = cpu_us / rec["requests"] if rec["requests"] else None
        summary = (f"{rec['requests']} req, {rec['rps']:.0f} req/s, "
                   f"p99 {fmt(rec['p99_ms'], 2)} ms, CPU {fmt(rec['cpu_us_per_req'], 1)} us/req, "
                   f"errors {rec['errors']}")
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
        summary = (f"{rec['conns']} idle WSS open ({rec['errors']} failed), RSS {a.rss_before} -> "
                   f"{a.rss_after} KB, {fmt(rec['kb_per_conn'], 1)} KB/conn")
        if rec["errors"]:
            summary += f"; first error: {rec['first_error']}"
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"    {a.proxy:<8} ({a.workload}) repeat {a.repeat}: {summary}")


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


def cmd_table(a) -> None:
    recs = []
    with open(a.results) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    meta = {}
    with open(a.meta) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v

    # by[(proxy, workload)][repeat] = record
    by: dict = {}
    for r in recs:
        by.setdefault((r["proxy"], r["workload"]), {})[r["repeat"]] = r

    def med(proxy, wl, key):
        rs = by.get((proxy, wl))
        return median([r.get(key) for r in rs.values()]) if rs else None

    def ratio(wl, key, num, den, num_wl=None):
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

    proxies = [p for p in PROXIES if any(k[0] == p for k in by)]
    have_mm = "mm-edge" in proxies
    out = []
    out.append(f"## mm-edge benchmark, {meta.get('date', '?')}")
    out.append("")
    out.append(f"- Machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu', '?')}, "
               f"Linux {meta.get('kernel', '?')}; proxy pinned to CPU {meta.get('proxy_cpu', '1')}, "
               f"load generator and backend to CPU {meta.get('load_cpu', '0')}")
    out.append(f"- Versions: {meta.get('versions', '?')}")
    out.append(f"- Run: median of {meta.get('repeats', '?')} repeat(s) x {meta.get('seconds', '?')} s "
               f"per workload; {meta.get('ws_conns', '?')} idle WSS connections; "
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
        if not any(by.get((p, wl)) for p in proxies):
            return
        cells = [fmt(med(p, wl, key), digits) + (f" (**{errs(p, wl)} errors**)" if errs(p, wl) else "")
                 for p in proxies]
        line = f"| {WORKLOADS[wl]} | {label} | " + " | ".join(cells)
        if have_mm:
            rn = ratio(wl, key, "mm-edge", "nginx")
            rh = ratio(wl, key, "mm-edge", "haproxy")
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

    for wl in ("a", "b", "c"):
        row(wl, "CPU us/req", "cpu_us_per_req", 1, CPU_TARGETS[wl])
        row(wl, "req/s", "rps", 0)
        row(wl, "p99 ms", "p99_ms", 2)
    if any(by.get((p, "d")) for p in proxies):
        cells = [fmt(med(p, "d", "kb_per_conn"), 1) for p in proxies]
        line = f"| {WORKLOADS['d']} | KB/conn | " + " | ".join(cells)
        if have_mm:
            mm = med("mm-edge", "d", "kb_per_conn")
            rn = ratio("d", "kb_per_conn", "mm-edge", "nginx")
            rh = ratio("d", "kb_per_conn", "mm-edge", "haproxy")
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
    def extra_row(variant: str, label: str, what: str, target: float) -> None:
        """mm-edge `variant` (workload a) against mm-edge (a): extra CPU per request."""
        if not (by.get((variant, "a")) and by.get(("mm-edge", "a"))):
            return
        on = med(variant, "a", "cpu_us_per_req")
        off = med("mm-edge", "a", "cpu_us_per_req")
        r = ratio("a", "cpu_us_per_req", variant, "mm-edge")
        extra = None if r is None else (r - 1) * 100
        met = "-" if extra is None else ("yes" if extra <= target else "**no**")
        n, d = by.get((variant, "a")), by.get(("mm-edge", "a"))
        extras = [(n[k]["cpu_us_per_req"] / d[k]["cpu_us_per_req"] - 1) * 100
                  for k in sorted(set(n) & set(d))
                  if n[k].get("cpu_us_per_req") and d[k].get("cpu_us_per_req")]
        if len(extras) > 1 and max(extras) - min(extras) > target:
            # The repeats disagree by more than the target: the verdict is noise.
            met = f"undecided: repeats spread {min(extras):+.1f}% .. {max(extras):+.1f}%"
        if errs(variant, "a") or errs("mm-edge", "a"):
            met = "**not valid: the run had errors**"
        blanks = " | ".join("" for _ in proxies[:-1])
        pct = "-" if extra is None else f"{extra:+.1f}%"
        out.append(f"| {label} | CPU us/req {what} on / off | {blanks} | {fmt(on, 1)} / {fmt(off, 1)} "
                   f"| | | <= {target:.0f}% extra (measured {pct}) | {met} |")

    extra_row("mm-edge+limiter", WORKLOADS["e"], "limiter", LIMITER_TARGET_PCT)
    extra_row("mm-edge+log", WORKLOADS["g"], "access log", ACCESS_LOG_TARGET_PCT)
    extra_row("mm-edge+metrics", WORKLOADS["g"], "metrics", METRICS_TARGET_PCT)
    out.append("")
    out.append("CPU us/req = the proxy's utime+stime (all its processes, from /proc/PID/stat) during the "
               "run / completed requests. Ratios are the median of the per-repeat ratios "
               "(each repeat runs all proxies back to back), so they can differ slightly from the "
               "ratio of the medians shown.")

    # Per-repeat detail: spread and errors, so noise is visible.
    out.append("")
    out.append("<details><summary>per-repeat figures</summary>")
    out.append("")
    out.append("| proxy | workload | repeat | CPU us/req | req/s | p99 ms | KB/conn | errors |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    order = {p: i for i, p in enumerate(PROXIES + ["mm-edge+limiter", "mm-edge+log", "mm-edge+metrics"])}
    for r in sorted(recs, key=lambda r: (r["workload"], order.get(r["proxy"], 9), r["repeat"])):
        out.append(f"| {r['proxy']} | {r['workload']} | {r['repeat']} | {fmt(r.get('cpu_us_per_req'), 1)} | "
                   f"{fmt(r.get('rps'), 0)} | {fmt(r.get('p99_ms'), 2)} | {fmt(r.get('kb_per_conn'), 1)} | "
                   f"{r.get('errors', 0)} |")
    out.append("")
    out.append("</details>")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(a.out, "w") as f:
        f.write(text)


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
    r.add_argument("--cpu-ticks", type=int, default=0)
    r.add_argument("--clk-tck", type=int, default=100)
    r.add_argument("--rss-before", type=int, default=0)
    r.add_argument("--rss-after", type=int, default=0)
    r.add_argument("--rss-peak", type=int, default=0)
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    t.add_argument("--meta", required=True)
    t.add_argument("--out", required=True)
    a = ap.parse_args()
    cmd_record(a) if a.cmd == "record" else cmd_table(a)


if __name__ == "__main__":
    main()
