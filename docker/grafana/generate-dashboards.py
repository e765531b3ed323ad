#!/usr/bin/env python3
"""Writes FileGrid's Grafana dashboards (docker/grafana/dashboards/*.json).

The dashboards are plain Grafana JSON, provisioned by docker/grafana/provisioning. They are
generated here so that panel layout and the datasource reference live in one place and every
panel stays a readable one-liner. After editing, run:

    docker/grafana/generate-dashboards.py          # rewrite the JSON files
    docker/grafana/generate-dashboards.py --check  # fail if the JSON files are out of date

Only metrics that FileGrid's processes export may appear in a query; the compose end-to-end
suite checks every panel's PromQL against live /metrics scrapes.
"""

import argparse
import json
import sys
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "filegrid-prometheus"}
RATE = "$__rate_interval"


def target(expr, legend="", ref="A", instant=False):
    t = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(kind, title, targets, w, h, unit="short", description="", **options):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": w, "h": h},
        "targets": [target(*t) if isinstance(t, tuple) else t for t in targets],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
    }
    for i, t in enumerate(p["targets"]):
        t["refId"] = chr(ord("A") + i)
    return p


def stat(title, expr, unit="short", legend="", description="", text_mode="value", w=4, h=4):
    return panel(
        "stat",
        title,
        [(expr, legend)],
        w,
        h,
        unit,
        description,
        reduceOptions={"calcs": ["lastNotNull"], "fields": "", "values": False},
        textMode=text_mode,
        colorMode="value",
        graphMode="none",
    )


def series(title, targets, unit="short", description="", w=12, h=8):
    return panel(
        "timeseries",
        title,
        targets,
        w,
        h,
        unit,
        description,
        legend={"displayMode": "list", "placement": "bottom", "showLegend": True},
        tooltip={"mode": "multi", "sort": "desc"},
    )


def gauge(title, expr, unit="percentunit", description="", w=4, h=4):
    return panel(
        "gauge",
        title,
        [(expr, "")],
        w,
        h,
        unit,
        description,
        reduceOptions={"calcs": ["lastNotNull"], "fields": "", "values": False},
    )


def quantile(q, metric, by):
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))"


def dashboard(uid, title, description, panels):
    """Lays panels out left to right, wrapping at Grafana's 24-column width."""
    x = y = row_height = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        p["gridPos"].update({"x": x, "y": y})
        p["id"] = i
        x += w
        row_height = max(row_height, h)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["filegrid"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "links": [
            {"type": "dashboards", "tags": ["filegrid"], "asDropdown": True, "title": "FileGrid"}
        ],
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def overview():
    return dashboard(
        "filegrid-overview",
        "FileGrid / Grid overview",
        "Who leads, which servers are up, how full the grid is.",
        [
            stat("Leader", "max by (instance) (filegrid_is_leader) == 1", legend="{{instance}}",
                 text_mode="name", description="The head that currently leads.", w=6),
            stat("Epoch", "max(filegrid_epoch)",
                 description="Fencing token, bumped by every new leader."),
            stat("Heads connected", 'sum(filegrid_zk_connected{job="filegrid-head"})',
                 description="Heads with a live ZooKeeper session."),
            stat("Heads healthy", "max(filegrid_heads_healthy)",
                 description="Heads the monitor found healthy in its last round."),
            stat("Cluster servers live", "max(filegrid_cluster_servers_live)",
                 description="Cluster servers heartbeating the leader.", w=6),
            stat("Files", "max(filegrid_files)"),
            stat("Under-replicated chunks", "max(filegrid_under_replicated_chunks)"),
            stat("Capacity", "sum(filegrid_disk_capacity_bytes)", unit="bytes"),
            stat("Used", "sum(filegrid_disk_used_bytes)", unit="bytes"),
            gauge("Capacity used", "sum(filegrid_disk_used_bytes) / sum(filegrid_disk_capacity_bytes)"),
            stat("Chunks stored", "sum(filegrid_chunks_stored)"),
            series("Storage capacity", [
                ("sum(filegrid_disk_capacity_bytes)", "capacity"),
                ("sum(filegrid_disk_used_bytes)", "used"),
                ("sum(filegrid_disk_free_bytes)", "free"),
            ], unit="bytes"),
            series("Head requests", [
                (f"sum by (code) (rate(filegrid_http_requests_total[{RATE}]))", "{{code}}"),
            ], unit="reqps"),
            series("Resident memory", [
                ("process_resident_memory_bytes", "{{job}} {{instance}}"),
            ], unit="bytes", w=8),
            series("CPU", [
                (f"rate(process_cpu_seconds_total[{RATE}])", "{{job}} {{instance}}"),
            ], unit="percentunit", w=8),
            series("Open file descriptors", [
                ("process_open_fds", "{{job}} {{instance}}"),
            ], w=8),
        ],
    )


def election():
    return dashboard(
        "filegrid-election",
        "FileGrid / Election and health",
        "Leadership, ZooKeeper sessions, heartbeats and the monitor's health checks.",
        [
            stat("Leader changes (1h)", "sum(increase(filegrid_leader_changes_total[1h]))", w=6),
            stat("Elections (1h)", "sum(increase(filegrid_elections_total[1h]))", w=6),
            stat("Forced failovers (1h)", "sum(increase(filegrid_forced_failovers_total[1h]))",
                 description="Hung leaders the monitor excluded.", w=6),
            stat("ZooKeeper session expirations (1h)",
                 "sum(increase(filegrid_zk_session_expirations_total[1h]))", w=6),
            series("Leader", [("filegrid_is_leader", "{{instance}}")],
                   description="1 on the head that leads."),
            series("Epoch", [("max(filegrid_epoch)", "epoch")]),
            series("ZooKeeper connected", [("filegrid_zk_connected", "{{job}} {{instance}}")]),
            series("Heads healthy / known", [
                ("max(filegrid_heads_healthy)", "healthy"),
                ("max(filegrid_heads_known)", "known"),
            ]),
            series("Health check latency", [
                (quantile(0.5, "filegrid_health_check_seconds", "server_id"), "p50 {{server_id}}"),
                (quantile(0.99, "filegrid_health_check_seconds", "server_id"), "p99 {{server_id}}"),
            ], unit="s"),
            series("Health check failures", [
                (f"sum by (server_id) (rate(filegrid_health_check_failures_total[{RATE}]))",
                 "{{server_id}}"),
            ], unit="ops"),
            series("Heartbeats received", [
                (f"sum by (instance) (rate(heartbeat_messages_received_total[{RATE}]))",
                 "{{instance}}"),
                (f"sum by (instance) (rate(heartbeat_errors_total[{RATE}]))", "errors {{instance}}"),
            ], unit="ops"),
            series("Heartbeat connections and processing time", [
                ("sum by (instance) (heartbeat_active_connections)", "connections {{instance}}"),
                (quantile(0.99, "heartbeat_processing_time_seconds", "instance"), "p99 {{instance}}"),
            ]),
            series("Leader changes and elections", [
                (f"sum(increase(filegrid_leader_changes_total[{RATE}]))", "leader changes"),
                (f"sum(increase(filegrid_elections_total[{RATE}]))", "elections"),
            ], w=24),
        ],
    )


def storage():
    return dashboard(
        "filegrid-storage",
        "FileGrid / Storage",
        "Chunks on the cluster servers, replication and integrity.",
        [
            stat("Chunks stored", "sum(filegrid_chunks_stored)", w=6),
            stat("Chunk bytes stored", "sum(filegrid_chunk_bytes_stored)", unit="bytes", w=6),
            stat("Under-replicated chunks", "max(filegrid_under_replicated_chunks)", w=6),
            stat("Checksum failures (24h)", "sum(increase(filegrid_checksum_failures_total[24h]))", w=6),
            series("Chunks per cluster server", [("filegrid_chunks_stored", "{{instance}}")]),
            series("Bytes per cluster server", [("filegrid_chunk_bytes_stored", "{{instance}}")],
                   unit="bytes"),
            series("Under-replicated chunks and repairs", [
                ("max(filegrid_under_replicated_chunks)", "under-replicated"),
                (f"sum(increase(filegrid_repairs_total[{RATE}]))", "repairs"),
                (f"sum(increase(filegrid_orphans_deleted_total[{RATE}]))", "orphans deleted"),
            ]),
            series("Checksum failures", [
                (f"sum by (instance) (increase(filegrid_checksum_failures_total[{RATE}]))",
                 "{{instance}}"),
            ]),
            series("Scrub progress", [("filegrid_scrub_progress_ratio", "{{instance}}")],
                   unit="percentunit"),
            series("Scrub rate", [
                (f"rate(filegrid_scrub_bytes_verified_total[{RATE}])", "{{instance}}"),
            ], unit="Bps"),
            series("Disk free", [("filegrid_disk_free_bytes", "{{instance}}")], unit="bytes"),
            series("Disk used of capacity", [
                ("filegrid_disk_used_bytes / filegrid_disk_capacity_bytes", "{{instance}}"),
            ], unit="percentunit"),
        ],
    )


def data_path():
    return dashboard(
        "filegrid-data-path",
        "FileGrid / Data path",
        "Throughput and latency of the head API and the cluster servers' chunk API.",
        [
            series("Head API throughput", [
                (f"sum(rate(filegrid_http_bytes_in_total[{RATE}]))", "in"),
                (f"sum(rate(filegrid_http_bytes_out_total[{RATE}]))", "out"),
            ], unit="Bps"),
            series("Head API requests", [
                (f"sum by (route, method, code) (rate(filegrid_http_requests_total[{RATE}]))",
                 "{{method}} {{route}} {{code}}"),
            ], unit="reqps"),
            series("Head API latency", [
                (quantile(0.5, "filegrid_http_request_seconds", "route"), "p50 {{route}}"),
                (quantile(0.99, "filegrid_http_request_seconds", "route"), "p99 {{route}}"),
            ], unit="s", w=24),
            series("Chunk throughput", [
                (f"sum(rate(filegrid_chunk_bytes_in_total[{RATE}]))", "in"),
                (f"sum(rate(filegrid_chunk_bytes_out_total[{RATE}]))", "out"),
            ], unit="Bps"),
            series("Chunk requests", [
                (f"sum by (op, code) (rate(filegrid_chunk_requests_total[{RATE}]))", "{{op}} {{code}}"),
            ], unit="reqps"),
            series("Chunk request latency", [
                (quantile(0.5, "filegrid_chunk_request_seconds", "op"), "p50 {{op}}"),
                (quantile(0.99, "filegrid_chunk_request_seconds", "op"), "p99 {{op}}"),
            ], unit="s", w=24),
            series("Head read cache", [
                (f"sum by (instance) (rate(filegrid_read_cache_hits_total[{RATE}]))", "hits {{instance}}"),
                (f"sum by (instance) (rate(filegrid_read_cache_misses_total[{RATE}]))", "misses {{instance}}"),
            ], unit="ops"),
            series("Head read cache memory", [
                ("filegrid_read_cache_bytes", "{{instance}}"),
            ], unit="bytes"),
        ],
    )


DASHBOARDS = {
    "filegrid-overview.json": overview,
    "filegrid-election.json": election,
    "filegrid-storage.json": storage,
    "filegrid-data-path.json": data_path,
}


def render(build):
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON files are stale")
    args = parser.parse_args()
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARD_DIR / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run docker/grafana/generate-dashboards.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
