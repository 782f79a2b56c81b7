"""``python -m generator.models``: list, show, promote and roll back local models.

Examples::

    python -m generator.models list
    python -m generator.models show --site 'jac.levels:design_level#1a2b3c4d' --version v0002
    python -m generator.models promote v0002 --site ...
    python -m generator.models rollback --site ... --json

``--site`` may be left out when only one call site has models.  Exit status:
0 done, 1 refused (unknown version, checksum mismatch, nothing to roll back),
2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from generator.errors import GeneratorError
from generator.local.registry import Manifest, Registry, RegistryError

_HEADLINE = ("validity", "validity_lower95", "agreement", "quantized_validity", "controllability", "diversity", "novelty")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m generator.models", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--site", help="call-site id (default: the only site with models)")
    common.add_argument("--data-dir", help="data directory (default: $FORGE_HOME or the platform data dir)")
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="every version per call site, with its state")
    s = sub.add_parser("show", parents=[common], help="one version's manifest (default: the current one)")
    s.add_argument("--version", help="version name such as v0002")
    s.add_argument("--verify", action="store_true", help="also check the artefact checksums")
    pr = sub.add_parser("promote", parents=[common], help="serve VERSION for the site")
    pr.add_argument("version", help="version name such as v0002")
    sub.add_parser("rollback", parents=[common], help="retire the current version, serve the previous one")
    return p


def _list_site(reg: Registry, site: str) -> dict[str, Any]:
    """One site's entry of ``list``: what exists, even when the serving pointer or a manifest is broken."""
    entry: dict[str, Any] = {"site": site, "current": None, "serving": None, "versions": []}
    try:
        entry["serving"] = reg.serving_pointer(site)
        cur = reg.current(site)
        entry["current"] = cur.version if cur else None
    except GeneratorError as exc:  # an unreadable SERVING.json: still list the versions
        entry["error"] = str(exc)
    try:
        entry["versions"] = [m.to_dict() for m in reg.versions(site)]
    except GeneratorError as exc:
        entry["error"] = str(exc)
    return entry


def _pick_site(reg: Registry, site: str | None) -> str:
    if site:
        return site
    sites = reg.sites()
    if len(sites) == 1:
        return sites[0]
    if not sites:
        raise RegistryError(f"no models in {reg.root}; train one with `python -m generator.train`")
    raise RegistryError("several call sites have models; pick one with --site: " + ", ".join(sites))


def _headline(m: Manifest) -> str:
    parts = []
    for key in _HEADLINE:
        v = m.metrics.get(key)
        if isinstance(v, dict):
            v = v.get("joint", v.get("rate"))
            v = v.get("rate") if isinstance(v, dict) else v
        if isinstance(v, (int, float)):
            parts.append(f"{key}={v:.3f}")
    return " ".join(parts)


def _print_manifest(m: Manifest) -> None:
    print(f"{m.site} {m.version} [{m.state}]")
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created))
    print(f"  base {m.base or '?'}  preset {m.preset or '?'}  parent {m.parent or '-'}  created {created}")
    print(f"  dataset {m.dataset_hash or '?'} ({m.dataset_size} train, {m.heldout_size} held out)"
          f"  code {m.code_revision or '?'}")
    if m.metrics:
        print(f"  {_headline(m)}")
    ranges = m.metrics.get("spec_ranges") if m.metrics else None
    if isinstance(ranges, dict) and ranges:  # routing serves the version only inside these (D35)
        print("  serves specs with " + ", ".join(f"{k} {v[0]}-{v[1]}" for k, v in ranges.items()
                                                 if isinstance(v, list) and len(v) == 2))
    for rel, digest in m.files.items():
        print(f"  {digest[:12]}  {rel}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: dict[str, Any]
    try:
        reg = Registry.in_data_dir(args.data_dir)
        if args.command == "list":
            sites = [args.site] if args.site else reg.sites()
            out = {"models_dir": str(reg.root), "sites": []}
            for site in sites:
                out["sites"].append(_list_site(reg, site))
            if not args.json:
                if not sites:
                    print(f"no models in {reg.root}; train one with `python -m generator.train`")
                for entry in out["sites"]:
                    print(f"{entry['site']}  (serving: {entry['current'] or 'no local model'})")
                    pointer = entry.get("serving") or {}
                    if pointer.get("dangling"):
                        instead = pointer["fallback"] or "the teacher (no earlier valid version)"
                        print(f"  warning: SERVING.json names {pointer['pointer']}, which is missing; "
                              f"{instead} serves instead (promote a version to fix the pointer)")
                    if entry.get("error"):
                        print(f"  error: {entry['error']}")
                    for m in entry["versions"]:
                        print(f"  {m['version']:<6} {m['state']:<9} base={m['base'] or '?':<10} "
                              f"{_headline(Manifest(**m))}")
        else:
            site = _pick_site(reg, args.site)
            if args.command == "show":
                if args.version:
                    m = reg.verify(site, args.version) if args.verify else reg.get(site, args.version)
                else:
                    m = reg.current(site) or reg.latest(site)
                    if m is None:
                        raise RegistryError(f"{site}: no versions")
                    if args.verify:
                        reg.verify(site, m.version)
                out = {"site": site, "manifest": m.to_dict(), "verified": bool(args.verify)}
                if not args.json:
                    _print_manifest(m)
                    if args.verify:
                        print("  checksums ok")
            elif args.command == "promote":
                m = reg.promote(site, args.version)
                out = {"site": site, "current": m.version, "manifest": m.to_dict()}
                if not args.json:
                    print(f"{site}: now serving {m.version}")
            else:  # rollback
                m = reg.rollback(site)
                out = {"site": site, "current": m.version if m else None, "manifest": m.to_dict() if m else None}
                if not args.json:
                    print(f"{site}: now serving {m.version if m else 'no local model (teacher/procedural)'}")
    except GeneratorError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
