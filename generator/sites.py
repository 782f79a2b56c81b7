"""``python -m generator.sites``: every call site at a glance.

Per call site (each ``by llm()`` function, and the facade's level site): how
many calls, the share judged valid, who serves it (routing state and the
backend of the latest served call), the share served locally, median latency,
tokens, cost, the cost saved by local serving, and the HTTP error rate behind
its calls (failed requests / requests, the client's own retries included);
and, for a site judged by agreement (``[judge]`` in forge.toml), how often its
student's answers were the teacher's answer to the same call: shadow answers
of the routed version and spot-checked served answers (``agree``; the JSON
has Wilson bounds and agreement per field).

    python -m generator.sites
    python -m generator.sites --json
    python -m generator.sites --export calls.jsonl --site 'jac.levels:design_level#...'
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import msgspec

from generator.errors import GeneratorError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.sites",
        description="Per call site: calls, valid share, who serves it, local share, latency p50, tokens, cost.",
    )
    p.add_argument("--data-dir", default=None, help="data directory (default: $FORGE_HOME or the platform dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--export", metavar="FILE", default=None,
                   help="also write the calls (with validity and fun score) as JSON lines to FILE")
    p.add_argument("--site", default=None, help="with --export: only this call site")
    return p


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _serving(s: Any) -> str:
    if s.state:
        version = f" {s.version}" if s.version else ""
        return f"{s.state}{version} ({s.served_by or '-'})"
    return s.served_by or "-"


def http_stats(store: Any) -> dict[str, dict[str, Any]]:
    """Per site, the HTTP requests behind its calls (``CallRecord.transport``, see generator.capture.transport).

    ``requests`` sent, ``failed`` ones (a status of 400 or more, a timeout, a
    dropped connection) and their ``faults`` by kind, ``retries`` the client
    made after a failure, ``reasks`` requests re-asking after unparsable output, ``error_rate`` = failed / requests (the provider's
    real error rate, retries included), ``calls_with_faults``.
    """
    out: dict[str, dict[str, Any]] = {}
    for call in store.iter_calls():
        t = call.record.transport
        if not t:
            continue
        s = out.setdefault(call.record.site, {"requests": 0, "retries": 0, "reasks": 0, "failed": 0, "faults": {},
                                              "calls_with_faults": 0})
        s["requests"] += int(t.get("requests", 0))
        s["retries"] += int(t.get("retries", 0))
        s["reasks"] += int(t.get("reasks", 0))
        faults = t.get("faults") or {}
        for kind, n in faults.items():
            s["faults"][kind] = s["faults"].get(kind, 0) + int(n)
            s["failed"] += int(n)
        s["calls_with_faults"] += bool(faults)
    for s in out.values():
        s["error_rate"] = s["failed"] / s["requests"] if s["requests"] else None
        s["faults"] = dict(sorted(s["faults"].items()))
    return out


def _http_cell(h: dict[str, Any] | None) -> str:
    if not h or not h["requests"]:
        return "-"
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(h["faults"].items(), key=lambda kv: -kv[1])[:3])
    return f"{_pct(h['error_rate'])} of {h['requests']}" + (f" ({kinds})" if kinds else "")


def agreement_by_site(store: Any, stats: list[Any], data_dir: Any = None) -> dict[str, dict[str, Any]]:
    """Per site with student answers to compare: agreement of the routed (else latest) version."""
    from generator.store.callsite import LEVEL_SITE
    from generator.evaluate.agreement import JudgeConfig, site_agreement

    config = JudgeConfig.load(data_dir)
    out: dict[str, dict[str, Any]] = {}
    for s in stats:
        if s.site == LEVEL_SITE:
            continue
        records = [c.record for c in store.iter_calls(s.site)]
        if not any(r.backend == "student" for r in records):
            continue
        ev = site_agreement(records, config=config)
        if not ev.spec.compares:
            out[s.site] = {"judge": ev.spec.to_dict()}
            continue
        version = s.version or max([*ev.shadow, *ev.spot, *ev.skipped] or [None], key=lambda v: v or "")
        shadow, spot = ev.stats("shadow", version), ev.stats("spot", version)
        out[s.site] = {"judge": ev.spec.to_dict(), "version": version, "shadow": shadow.to_dict(),
                       "spot_checks": spot.to_dict(), "skipped": ev.skipped.get(version, 0)}
    return out


def _agree_cell(a: dict[str, Any] | None) -> str:
    if not a or "shadow" not in a:
        return "-" if not a else "n/a"
    parts = [f"{100 * a[k]['rate']:.0f}% of {a[k]['n']}" + (" spot" if k == "spot_checks" else "")
             for k in ("shadow", "spot_checks") if a[k]["n"]]
    return ", ".join(parts) or "0 judged"


def _table(stats: list[Any], http: dict[str, dict[str, Any]] | None = None,
           agreement: dict[str, dict[str, Any]] | None = None) -> str:
    http, agreement = http or {}, agreement or {}
    headers = ("site", "calls", "valid", "serving", "local", "agree", "p50 ms", "tokens", "cost $", "saved $",
               "http err")
    rows = [
        (
            s.site,
            str(s.calls),
            _pct(s.valid_share),
            _serving(s),
            _pct(s.local_share) if s.calls else "-",
            _agree_cell(agreement.get(s.site)),
            "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.0f}",
            str(s.prompt_tokens + s.completion_tokens),
            f"{s.cost_usd:.4f}",
            f"{s.cost_saved_usd:.4f}",
            _http_cell(http.get(s.site)),
        )
        for s in stats
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    left = (0, 3, len(headers) - 1)
    lines = ["  ".join(h.ljust(w) if i in left else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from generator.paths import DB_NAME, data_dir
    from generator.store import Store

    try:
        db = data_dir(args.data_dir, create=False) / DB_NAME
        from generator.store import configured_url

        if not db.is_file() and not args.export and configured_url(args.data_dir) is None:  # a look creates nothing
            if args.json:
                print(json.dumps({"store": str(db), "sites": []}))
            else:
                print(f"no calls recorded yet ({db} does not exist); try `python -m generator.generate`")
            return 0
        with Store.open(db) as store:
            stats = store.site_stats()
            http = http_stats(store)
            agreement = agreement_by_site(store, stats, args.data_dir)
            exported = store.export_jsonl(args.export, args.site) if args.export else None
            path = str(store.path)
    except GeneratorError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        doc: dict[str, Any] = {"store": path, "sites": [{**msgspec.to_builtins(s), "http": http.get(s.site),
                                                          "agreement": agreement.get(s.site)} for s in stats]}
        if exported is not None:
            doc["exported"] = {"file": args.export, "calls": exported}
        print(json.dumps(doc))
        return 0
    if not stats:
        print(f"no calls recorded yet in {path}; try `python -m generator.generate`")
    else:
        print(_table(stats, http, agreement))
        print(f"\nstore: {path}")
    if exported is not None:
        print(f"exported {exported} calls to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
