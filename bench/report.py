"""Turns bench/run's results into results.md, results.json and chart.svg. Standard library only.

Every metric is "lower is better". The best peer of a row is the lowest value among the peers
that the row applies to (static builds only for the size and Docker rows).
"""

import json
import math
import os
from html import escape


class Row:
    def __init__(self, key, label, unit, section, field, static_only=False, target=None):
        self.key, self.label, self.unit = key, label, unit
        self.section, self.field = section, field
        self.static_only, self.target = static_only, target

    def value(self, results, name):
        if self.key == "size":
            return results["size"][name]["bytes"] / 1024
        return (results.get(self.section, {}).get(name) or {}).get(self.field)

    def runs(self, results, name):
        """The per-run values behind the median, for telling a difference from noise."""
        if self.key == "size":
            return [self.value(results, name)]
        entry = results.get(self.section, {}).get(name) or {}
        return [v for v in entry.get("runs", {}).get(self.field, []) if v is not None]


def rows():
    return [
        Row("size", "Binary size, static build", "KiB", "size", "bytes", static_only=True,
            target="< tini-static"),
        Row("startup", "Start-up + teardown overhead over /bin/true", "ms", "startup",
            "overhead_ms"),
        Row("rss", "Resident memory while the program sleeps", "KiB", "idle", "rss_kib"),
        Row("hwm", "Peak resident memory (VmHWM) after the reaping bursts", "KiB", "reaping",
            "hwm_kib"),
        Row("wakeups", "Idle wake-ups (context switches) in 10 s", "", "idle", "wakeups",
            target="0"),
        Row("cpu", "CPU per reaped orphan, utime+stime", "µs", "reaping", "cpu_us"),
        Row("sched", "CPU per reaped orphan, scheduler run time", "µs", "reaping", "sched_us"),
        Row("zombies", "Zombies left after the orphans", "", "reaping", "zombies", target="0"),
        Row("burst", "Time to reap a burst of simultaneous orphan exits", "ms", "reaping",
            "burst_ms"),
        Row("sig50", "Signal forwarding latency p50", "µs", "signals", "p50_us"),
        Row("sig99", "Signal forwarding latency p99", "µs", "signals", "p99_us"),
        Row("sigcpu", "CPU per forwarded signal, scheduler run time", "µs", "signals",
            "cpu_us"),
        Row("stop", "Stop latency: SIGTERM until the init has exited", "ms", "stop", "stop_ms"),
        Row("docker", "docker stop duration", "ms", "docker", "stop_ms", static_only=True),
    ]


def peers_of(results):
    return results.get("peers", ["tini", "tini-static", "dumb-init", "catatonit"])


def fmt(v, digits=3):
    if v is None:
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:,.{decimals}f}"


def evaluate(results, names):
    """Per row: values, best peer, grace's ratio and a verdict on the target.

    Verdicts: "met" (grace ≤ best peer, and the row's own target), "noise" (grace is above the
    best peer but the ranges of their per-run values overlap, so this run cannot tell them
    apart), "missed" (above the best peer in every run), None (not measured).
    """
    out = []
    for row in rows():
        values = {n: row.value(results, n) for n in names}
        counted = {n: v for n, v in values.items()
                   if v is not None and (not row.static_only or results["size"][n]["static"])}
        peers = {n: v for n, v in counted.items() if n in peers_of(results)}
        grace = values.get("grace")
        best = min(peers, key=peers.get) if peers else None
        ratio = verdict = None
        if best is not None and grace is not None:
            b = peers[best]
            ratio = (grace / b) if b else (1.0 if grace == 0 else math.inf)
            if row.target == "0" and grace != 0:
                verdict = "missed"
            elif row.target == "< tini-static" and not grace < values["tini-static"]:
                verdict = "missed"
            elif grace <= b:
                verdict = "met"
            elif min(row.runs(results, "grace")) <= max(row.runs(results, best)):
                verdict = "noise"
            else:
                verdict = "missed"
        out.append({"key": row.key, "label": row.label, "unit": row.unit, "values": values,
                    "runs": {n: row.runs(results, n) for n in names},
                    "counted": sorted(counted), "best_peer": best, "ratio": ratio,
                    "verdict": verdict, "target": row.target, "row": row})
    return out


VERDICT = {"met": "met", "noise": "within noise", "missed": "**missed**", None: "—"}


def cell(results, row, name, v):
    if v is None:
        note = (results.get(row.key) or {}).get(name, {})
        return "skipped" if isinstance(note, dict) and note.get("skipped") else "—"
    text = fmt(v)
    if row.static_only and not results["size"][name]["static"]:
        text += " (dynamic)" if row.key == "size" else ""
    return text


def ratio_text(ratio, grace=None):
    if ratio is None:
        return "—"
    if math.isinf(ratio):
        return "∞ (peer 0)"
    if grace == 0:
        return "0 = 0" if ratio == 1.0 else "×0"
    return f"×{ratio:.2f}"


def markdown(results, names, table):
    m = results["machine"]
    plan = results["plan"]
    lines = [
        "# grace vs tini, tini-static, dumb-init, catatonit",
        "",
        f"Measured {m['date']} by `bench/run` ({results['seconds']} s of measuring) on "
        f"{m['cores']} cores of {m['cpu']}, Linux {m['kernel']}, Debian {m['debian']}; "
        f"load average {m['loadavg'][0]} at the start"
        + (f"; run under `nice -n {m['nice']}`." if m.get("nice") else "."),
        f"grace {m['grace_version'].split()[-1]} ({m['grace_source']}; static musl build, "
        f"{m['rustc']}); "
        + ", ".join(f"{p} {v}" for p, v in m["packages"].items()) + " (Debian packages).",
        "",
        "Each init runs as PID 1 of a fresh PID namespace (`unshare --pid --fork --kill-child "
        "--mount-proc`). All rows: lower is better; medians unless the row says otherwise. "
        "*Ratio* is grace over the best peer of the row (bold). See README.md for the method.",
        "",
        "| metric | " + " | ".join(names) + " | grace / best peer | target |",
        "|---|" + "---:|" * len(names) + "---:|---|",
    ]
    for t in table:
        row = t["row"]
        unit = f" ({t['unit']})" if t["unit"] else ""
        cells = []
        for n in names:
            c = cell(results, row, n, t["values"][n])
            cells.append(f"**{c}**" if n == t["best_peer"] else c)
        target = VERDICT[t["verdict"]]
        if t["target"] and t["verdict"] is not None:
            target += f" (target {t['target']})"
        lines.append(f"| {t['label']}{unit} | " + " | ".join(cells)
                     + f" | {ratio_text(t['ratio'], t['values'].get('grace'))} | {target} |")
    dyn = [n for n in names if not results["size"][n]["static"]]
    extra = [n for n in names if n != "grace" and n not in peers_of(results)]
    if extra:
        lines += ["", f"Extra columns {', '.join(extra)}: variants of grace measured with "
                      "`--also`; never counted as a peer."]
    lines += [
        "",
        "Notes:",
        f"- {', '.join(dyn)}: Debian ships no static build, so the size row shows the dynamic "
        "binary alone (it also needs the C library, about 2 MB) and leaves it out of the best "
        "peer; they are also left out of the Docker row, whose images are `FROM scratch`.",
        f"- Orphans: {plan['orphans']} per run, released in bursts of {plan['burst']} that exit "
        "at the same moment; \"time to reap a burst\" is the median burst.",
        f"- Signals: {results['signals']['grace']['n']} SIGUSR1 per init "
        f"({plan['runs']} runs × {plan['signals']}). dumb-init forwards to the program's "
        "process group (its default setsid mode); the others to the program's PID. dumb-init "
        "also runs the program in a session of its own"
        + (f", which with `kernel.sched_autogroup_enabled = {m['sched_autogroup']}` "
           "puts it in a scheduling group of its own: that, not dumb-init's code, is its lead "
           "on the signal rows (bench/proposals/README.md)."
           if m.get("sched_autogroup") == "1" else "."),
        f"- Start-up baseline: `unshare … /bin/true` alone takes "
        f"{fmt(results['startup']['baseline_ms'])} ms; the row is the difference of medians "
        f"over {results['startup']['grace']['n']} runs each.",
        "- tini wakes once a second by design (`sigtimedwait` with a 1 s timeout).",
        f"- *within noise*: grace's median is above the best peer's, but the ranges of their "
        f"per-run values ({plan['runs']} runs) overlap, so this run cannot tell them apart. "
        "*missed*: grace is above the best peer in every run.",
    ]
    others = results.get("others_cpu", {})
    if others:
        busy = [k for k, v in others.items() if v > 0.1]
        lines.append("- Other processes' share of the CPUs while each group of rows was measured: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in others.items()) + ". "
                     + (f"**Above 10% for {', '.join(busy)}: those rows are skewed by other "
                        "work on the machine.**" if busy else "All under 10%.")
                     + " (Docker containers are not the harness's descendants, so in the docker "
                       "group the engine's own work counts as other.)")
    docker = results.get("docker", {})
    if "skipped" in docker:
        lines.append(f"- Docker row skipped: {docker['skipped']}.")
    return "\n".join(lines) + "\n"


# --- chart ------------------------------------------------------------------------------------

GRACE_COLOUR, PEER_COLOUR, BEST_COLOUR, NA_COLOUR = "#d9480f", "#adb5bd", "#495057", "#e9ecef"
CANDIDATE_COLOUR = "#4dabf7"  # --also binaries: variants of grace, not peers


def chart(results, names, table):
    """Small multiples: one panel per metric, one bar per init, bars scaled to the panel's
    largest value, a dashed line at the best peer, grace's ratio in the panel's corner."""
    cols, bar_h, gap = 3, 13, 4
    label_w, value_w = max(78, 12 + 6.5 * max(len(n) for n in names)), 70
    pw = int(252 + label_w)
    ph = 34 + len(names) * (bar_h + gap) + 8
    n_rows = math.ceil(len(table) / cols)
    width, head = cols * pw + 20, 64
    height = head + n_rows * ph + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
           f'font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="16" font-weight="bold">grace vs other container '
           f'inits — lower is better</text>',
           f'<text x="10" y="38" fill="#495057">Each init is PID 1 of a fresh PID namespace. '
           f'Bars: scaled to the largest value of the panel. Dashed line: the best peer. '
           f'×: grace / best peer,</text>',
           f'<text x="10" y="52" fill="#495057">green: at or below the best peer; orange: above '
           f'it within run-to-run noise; red: above it in every run. '
           f'{escape(results["machine"]["date"])}, {results["machine"]["cores"]} cores. '
           f'Method: bench/README.md</text>']
    for k, t in enumerate(table):
        x0 = 10 + (k % cols) * pw
        y0 = head + (k // cols) * ph
        out += panel(results, names, t, x0, y0, pw - 14, ph - 8, bar_h, gap, label_w, value_w)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def panel(results, names, t, x0, y0, w, h, bar_h, gap, label_w, value_w):
    row = t["row"]
    unit = f" ({t['unit']})" if t["unit"] else ""
    colour = {"met": "#2b8a3e", "noise": "#e67700", "missed": "#c92a2a",
              None: "#495057"}[t["verdict"]]
    out = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#f8f9fa" rx="4"/>',
           f'<text x="{x0 + 6}" y="{y0 + 15}" font-weight="bold">'
           f'{escape(short_label(t["label"]) + unit)}</text>',
           f'<text x="{x0 + w - 6}" y="{y0 + 15}" text-anchor="end" font-weight="bold" '
           f'fill="{colour}">{escape(ratio_text(t["ratio"], t["values"].get("grace")))}</text>']
    values = t["values"]
    shown = [v for v in values.values() if v is not None]
    top = max(shown) if shown and max(shown) > 0 else 1
    span = w - label_w - value_w - 6
    bx = x0 + label_w
    labels = []  # drawn last, over the best-peer line
    for i, n in enumerate(names):
        y = y0 + 26 + i * (bar_h + gap)
        v = values[n]
        counted = n in t["counted"]
        fill = (GRACE_COLOUR if n == "grace" else BEST_COLOUR if n == t["best_peer"]
                else NA_COLOUR if not counted
                else PEER_COLOUR if n in peers_of(results) else CANDIDATE_COLOUR)
        out.append(f'<text x="{bx - 4}" y="{y + bar_h - 3}" text-anchor="end">{n}</text>')
        if v is None:
            labels.append(f'<text x="{bx + 2}" y="{y + bar_h - 3}" fill="#868e96">'
                          f'{escape(cell(results, row, n, v))}</text>')
            continue
        bw = max(1.0, span * v / top) if v > 0 else 0
        out.append(f'<rect x="{bx}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{fill}"/>')
        note = "" if counted else (" dynamic" if row.key == "size" else " n/a")
        labels.append(f'<text x="{bx + bw + 3:.1f}" y="{y + bar_h - 3}" stroke="#f8f9fa" '
                      f'stroke-width="3" paint-order="stroke">{fmt(v)}{note}</text>')
    if t["best_peer"] is not None:
        best = values[t["best_peer"]]
        lx = bx + span * best / top
        y_top, y_bot = y0 + 22, y0 + 26 + len(names) * (bar_h + gap)
        out.append(f'<line x1="{lx:.1f}" y1="{y_top}" x2="{lx:.1f}" y2="{y_bot}" '
                   f'stroke="#212529" stroke-dasharray="3,2"/>')
    return out + labels


def short_label(label):
    return {
        "Start-up + teardown overhead over /bin/true": "Start-up + teardown overhead",
        "Resident memory while the program sleeps": "RSS while idle",
        "Peak resident memory (VmHWM) after the reaping bursts": "Peak RSS, reaping",
        "Idle wake-ups (context switches) in 10 s": "Idle wake-ups in 10 s",
        "CPU per reaped orphan, utime+stime": "CPU / orphan, utime+stime",
        "CPU per reaped orphan, scheduler run time": "CPU / orphan, sched. run time",
        "Zombies left after the orphans": "Zombies left",
        "Time to reap a burst of simultaneous orphan exits": "Burst fully reaped",
        "Signal forwarding latency p50": "Signal forwarding p50",
        "Signal forwarding latency p99": "Signal forwarding p99",
        "CPU per forwarded signal, scheduler run time": "CPU / forwarded signal",
        "Stop latency: SIGTERM until the init has exited": "Stop latency",
        "Binary size, static build": "Static binary size",
    }.get(label, label)


def write(results, names, directory):
    table = evaluate(results, names)
    results["table"] = [{k: (None if isinstance(v, float) and math.isinf(v) else v)
                         for k, v in t.items() if k != "row"} for t in table]
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(markdown(results, names, table))
    with open(os.path.join(directory, "chart.svg"), "w") as f:
        f.write(chart(results, names, table))


if __name__ == "__main__":
    # Re-renders results.md and chart.svg (and the JSON's table) from a results.json, without
    # measuring again: python3 bench/report.py bench/results.json
    import sys

    path = sys.argv[1]
    with open(path) as f:
        data = json.load(f)
    write(data, list(data["size"]), os.path.dirname(os.path.abspath(path)))
