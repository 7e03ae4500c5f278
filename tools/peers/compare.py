"""Side-by-side table of wharf-bench JSON results (run by tools/peers.sh).

Usage: compare.py RESULT.json...  (the one labelled "wharf" is compared with the others)

Several files with the same server label (tools/peers.sh with ROUNDS=N writes one per round)
are pooled: the median is taken over the runs of all of them, in the order given.

For each workload and headline metric: every server's median (for memory per idle session,
the first run's value), the best peer's name, and the ratio Wharf / best peer. Whether higher or lower is better is per metric; the last column
says whether Wharf is at least as good as the best peer ("ok") or not ("behind").
"""

import json
import math
import statistics
import sys

# (workload, metric, higher_is_better)
ROWS = [
    ("raw_retr", "mb_per_s", None),  # the ceiling: a noise indicator, not a contest
    ("retr", "mb_per_s", True),
    ("retr", "server_cpu_s_per_gib", False),
    ("retr", "client_cpu_pct", None),
    ("raw_stor", "mb_per_s", None),
    ("stor", "mb_per_s", True),
    ("stor", "server_cpu_s_per_gib", False),
    ("stor", "client_cpu_pct", None),
    ("ftps_retr", "mb_per_s", True),
    ("ftps_retr", "server_cpu_s_per_gib", False),
    ("ftps_retr", "client_cpu_pct", None),
    ("ftps_stor", "mb_per_s", True),
    ("ftps_stor", "server_cpu_s_per_gib", False),
    ("ftps_stor", "client_cpu_pct", None),
    ("small_stor", "files_per_s", True),
    ("small_stor", "server_cpu_ms_per_file", False),
    ("small_retr", "files_per_s", True),
    ("small_retr", "server_cpu_ms_per_file", False),
    ("login_storm", "sessions_per_s", True),
    ("login_storm", "total_s", False),
    ("login_storm", "p50_ms", False),
    ("login_storm", "p99_ms", False),
    ("login_storm", "failures", False),
    ("login_storm", "server_cpu_ms_per_login", False),
    ("idle_sessions", "opened", True),
    ("idle_sessions", "failed", False),
    ("idle_sessions", "pss_kib_per_session", False),
    ("idle_sessions", "rss_kib_per_session", False),
]


# Memory growth per idle session is taken from the first run, against a server that has not
# grown before (idle_sessions runs first); later runs may reuse memory the first one left.
FIRST_RUN = {("idle_sessions", "pss_kib_per_session"), ("idle_sessions", "rss_kib_per_session")}


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 100 or v == int(v):
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def load(paths):
    """[(server, {(workload, metric): value}, {workload: error})], one per server label."""
    runs, errors, order = {}, {}, []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        server = doc.get("server", path)
        if server not in runs:
            order.append(server)
            runs[server], errors[server] = {}, {}
        for w in doc.get("workloads", []):
            if w.get("error"):
                errors[server][w["name"]] = w["error"]
            for name, m in w.get("metrics", {}).items():
                got = [v for v in m.get("runs") or [] if v is not None]
                if not got and m.get("median") is not None:
                    got = [m["median"]]
                runs[server].setdefault((w["name"], name), []).extend(got)
    servers = []
    for server in order:
        values = {}
        for key, vs in runs[server].items():
            if vs:
                values[key] = vs[0] if key in FIRST_RUN else statistics.median(vs)
        servers.append((server, values, errors[server]))
    return servers


def main(paths):
    servers = load(paths)
    names = [s[0] for s in servers]
    wharf = next((s for s in servers if s[0] == "wharf"), None)
    peers = [s for s in servers if s[0] != "wharf"]
    width = max([10] + [len(n) for n in names])
    head = f"{'workload':<14} {'metric':<24}" + "".join(f" {n:>{width}}" for n in names)
    head += f" {'best peer':>{width}} {'wharf/best':>10}  verdict"
    print(head)
    print("-" * len(head))
    for workload, metric, higher in ROWS:
        cells = [s[1].get((workload, metric)) for s in servers]
        if all(c is None for c in cells):
            continue
        line = f"{workload:<14} {metric:<24}" + "".join(f" {fmt(c):>{width}}" for c in cells)
        best_name, ratio, verdict = "-", None, ""
        peer_vals = [(s[0], s[1].get((workload, metric))) for s in peers]
        peer_vals = [(n, v) for n, v in peer_vals if v is not None]
        w = wharf[1].get((workload, metric)) if wharf else None
        if higher is not None and peer_vals:
            pick = max if higher else min
            best_name, best = pick(peer_vals, key=lambda nv: nv[1])
            if w is not None:
                if best:
                    ratio = w / best
                # Within 1% counts as a tie: the CPU figures come in 10 ms ticks.
                tie = abs(w - best) <= 0.01 * max(abs(best), abs(w))
                ok = w >= best if higher else w <= best
                verdict = "tie" if tie else ("ok" if ok else "behind")
        line += f" {best_name:>{width}} {fmt(ratio):>10}  {verdict}"
        print(line)
    for name, _, errors in servers:
        for workload, err in errors.items():
            print(f"{name}: {workload}: {err}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
