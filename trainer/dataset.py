"""From the store's recorded calls to training pairs for one call site.

:func:`build_dataset` keeps only outputs that passed validation, removes exact
copies and near-duplicates (levels closer than a share of differing tiles,
via :func:`generator.evaluate.metrics.near_duplicates`), holds out whole specs for
evaluation (no spec is in both splits), and oversamples levels that players
enjoyed where a fun score exists.  Each example is written in the compact
per-site form of :mod:`generator.local.codec` (``args -> result``), not
byllm's long prompt.

:meth:`Dataset.export` writes ``train.jsonl`` / ``eval.jsonl`` that
``datasets.load_dataset("json", data_files=...)`` reads; :func:`load_exported`
reads them back (a resumed run trains on exactly the same data).

:func:`bootstrap` fills the store without an API key: procedural-teacher
levels made through the facade, so they are captured like any other call.
A student trained on them imitates the procedural generator.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generator.local.codec import CodecError, encode_example, encode_prompt, is_level_site, spec_from_args
from generator.evaluate.metrics import as_level, near_duplicates
from trainer.config import DatasetConfig
from trainer.errors import DatasetError

__all__ = ["Example", "Dataset", "spec_key", "build_dataset", "examples_from_calls", "load_exported"]

log = logging.getLogger(__name__)

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
META_FILE = "dataset_info.json"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_key(site: str, args: dict[str, Any]) -> str:
    """Canonical JSON of what a call asks for (see :attr:`Example.spec_key`)."""
    if is_level_site(site):
        try:
            return _canonical(spec_from_args(args))
        except CodecError:
            pass
    return _canonical(args)


@dataclass
class Example:
    """One training pair: the call's arguments and its valid result, in the compact text form."""

    call_id: str
    site: str
    args: dict[str, Any]
    result: dict[str, Any]
    prompt: str  #: what the student is given
    text: str  #: prompt + completion (the trainer appends EOS)
    fun: float | None = None
    repeat: int = 1  #: times it appears in the training stream (fun oversampling)

    @property
    def spec_key(self) -> str:
        """What the call asked for; calls with the same key never straddle the split.

        For levels that is the spec alone (the facade records the seed beside
        it: a seed changes the answer, not the question); for other sites the
        call's arguments.
        """
        return spec_key(self.site, self.args)

    @property
    def completion(self) -> str:
        return self.text[len(self.prompt):]

    def to_row(self) -> dict[str, Any]:
        # Nested args/results are JSON strings so every row has the same flat
        # columns whatever the site's schema (arrow needs one schema per file).
        return {
            "text": self.text,
            "prompt": self.prompt,
            "completion": self.completion,
            "site": self.site,
            "call_id": self.call_id,
            "args_json": _canonical(self.args),
            "result_json": _canonical(self.result),
            "fun": self.fun,
            "repeat": self.repeat,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Example:
        return cls(
            call_id=row["call_id"], site=row["site"], args=json.loads(row["args_json"]),
            result=json.loads(row["result_json"]), prompt=row["prompt"], text=row["text"],
            fun=row.get("fun"), repeat=int(row.get("repeat", 1)),
        )


@dataclass
class Dataset:
    """Train and held-out examples of one site, plus what curation removed."""

    site: str
    train: list[Example]
    eval: list[Example]
    stats: dict[str, int] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None  #: the site's output schema as the teacher saw it

    @property
    def hash(self) -> str:
        """sha256 of every text in order (first 16 hex digits): names the data a version saw."""
        h = hashlib.sha256()
        for split in (self.train, self.eval):
            for ex in split:
                h.update(ex.text.encode())
                h.update(b"\x00%d\x00" % ex.repeat)
            h.update(b"\x01")
        return h.hexdigest()[:16]

    def train_texts(self, *, seed: int = 0) -> list[str]:
        """The training stream: every example ``repeat`` times, shuffled (seeded)."""
        texts = [ex.text for ex in self.train for _ in range(ex.repeat)]
        order = np.random.default_rng(seed).permutation(len(texts))
        return [texts[i] for i in order]

    def eval_texts(self) -> list[str]:
        return [ex.text for ex in self.eval]

    def train_pairs(self, *, seed: int = 0) -> list[tuple[str, str]]:
        """:meth:`train_texts` as ``(prompt, completion)`` pairs, in the same order (pretrained bases
        lay them out in their chat template and learn the completion only)."""
        pairs = [(ex.prompt, ex.completion) for ex in self.train for _ in range(ex.repeat)]
        order = np.random.default_rng(seed).permutation(len(pairs))
        return [pairs[i] for i in order]

    def eval_pairs(self) -> list[tuple[str, str]]:
        return [(ex.prompt, ex.completion) for ex in self.eval]

    @property
    def heldout_specs(self) -> list[dict[str, Any]]:
        """Arguments of the held-out calls (one per distinct spec)."""
        seen: dict[str, dict[str, Any]] = {}
        for ex in self.eval:
            seen.setdefault(ex.spec_key, ex.args)
        return list(seen.values())

    def export(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``train.jsonl``, ``eval.jsonl`` and ``dataset_info.json``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"train": out / TRAIN_FILE, "eval": out / EVAL_FILE, "info": out / META_FILE}
        for split, rows in (("train", self.train), ("eval", self.eval)):
            tmp = paths[split].with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for ex in rows:
                    fh.write(json.dumps(ex.to_row(), ensure_ascii=False) + "\n")
            tmp.replace(paths[split])
        info = {
            "site": self.site,
            "hash": self.hash,
            "train_examples": len(self.train),
            "train_stream": sum(ex.repeat for ex in self.train),
            "eval_examples": len(self.eval),
            "stats": self.stats,
            "output_schema": self.output_schema,
            "load_with": f'datasets.load_dataset("json", data_files={{"train": "{TRAIN_FILE}", "validation": "{EVAL_FILE}"}})',
        }
        paths["info"].write_text(json.dumps(info, indent=2), encoding="utf-8")
        return paths


def load_exported(out_dir: str | Path) -> Dataset:
    """Read a dataset written by :meth:`Dataset.export`."""
    d = Path(out_dir)
    try:
        info = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        splits = []
        for name in (TRAIN_FILE, EVAL_FILE):
            with open(d / name, encoding="utf-8") as fh:
                splits.append([Example.from_row(json.loads(line)) for line in fh if line.strip()])
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"cannot read the exported dataset in {d} ({exc}); export it again") from None
    return Dataset(site=info["site"], train=splits[0], eval=splits[1], stats=info.get("stats", {}),
                   output_schema=info.get("output_schema"))


# ------------------------------------------------------------------ curation


def examples_from_calls(
    site: str, calls: Iterable[Any], stats: dict[str, int], schemas: list[dict[str, Any]] | None = None,
    *, row_stride: int | None = None,
) -> list[Example]:
    """Encode valid stored calls (``StoredCall``-like: ``.record``, ``.fun``) as examples.

    The first output schema seen is appended to ``schemas`` when given.
    """
    out: list[Example] = []
    for key in ("records", "not_valid", "unencodable", "student_answers"):
        stats.setdefault(key, 0)
    level = is_level_site(site)
    for call in calls:
        rec = call.record
        stats["records"] += 1
        if rec.backend == "student" and not level:
            # A generic site learns the teacher's answers only: its students' own (shadow, served) answers
            # are valid but may be wrong, and are judged against the teacher's (D26).
            stats["student_answers"] += 1
            continue
        if rec.valid is not True or not isinstance(rec.result, dict):
            stats["not_valid"] += 1
            continue
        if schemas is not None and not schemas and rec.output_schema:
            schemas.append(rec.output_schema)
        args = dict(rec.args or {})
        try:
            text = encode_example(site, args, rec.result, row_stride=row_stride)
            prompt = encode_prompt(site, args)
        except (CodecError, KeyError, TypeError, ValueError) as exc:
            stats["unencodable"] += 1
            log.debug("skipping call %s: %s", rec.call_id, exc)
            continue
        out.append(Example(rec.call_id, site, args, rec.result, prompt, text, call.fun))
    return out


def _dedupe(examples: list[Example], site: str, threshold: float, stats: dict[str, int]) -> list[Example]:
    seen: set[str] = set()
    unique = []
    for ex in examples:
        key = ex.text
        if key in seen:
            continue
        seen.add(key)
        unique.append(ex)
    stats["exact_duplicates"] = len(examples) - len(unique)
    stats["near_duplicates"] = 0
    if not is_level_site(site) or threshold < 0:
        return unique
    levels = [as_level(ex.result) for ex in unique]
    idx = [i for i, lv in enumerate(levels) if lv is not None]
    drop = near_duplicates([levels[i].grid for i in idx], threshold=threshold)
    dropped = {idx[j] for j in np.flatnonzero(drop)}
    stats["near_duplicates"] = len(dropped)
    return [ex for i, ex in enumerate(unique) if i not in dropped]


def _split_by_spec(examples: list[Example], cfg: DatasetConfig) -> tuple[list[Example], list[Example]]:
    keys = sorted({ex.spec_key for ex in examples})
    if len(keys) < 2:
        raise DatasetError(
            f"only {len(keys)} distinct spec(s) in the data: a held-out split needs at least 2; "
            "record more varied calls (or run --bootstrap N)"
        )
    rng = np.random.default_rng(cfg.seed)
    n_eval = int(round(cfg.heldout_fraction * len(keys)))
    n_eval = min(max(1, n_eval), cfg.max_heldout, len(keys) - 1)
    held = {keys[i] for i in rng.permutation(len(keys))[:n_eval]}
    train = [ex for ex in examples if ex.spec_key not in held]
    evals = [ex for ex in examples if ex.spec_key in held]
    return train, evals


def _fun_oversample(train: list[Example], cfg: DatasetConfig, stats: dict[str, int]) -> None:
    scored = [i for i, ex in enumerate(train) if ex.fun is not None]
    stats["with_fun"] = len(scored)
    if not cfg.fun_weighting or not scored or cfg.fun_oversample <= 0:
        return
    weights = np.array([max(0.0, float(train[i].fun)) for i in scored]) + 1e-3
    n_extra = int(round(cfg.fun_oversample * len(train)))
    draws = np.random.default_rng(cfg.seed + 1).choice(len(scored), size=n_extra, p=weights / weights.sum())
    for j in draws:
        train[scored[int(j)]].repeat += 1
    stats["fun_extra_draws"] = n_extra


def build_dataset(store: Any, site: str, cfg: DatasetConfig | None = None) -> Dataset:
    """Curate the valid calls of ``site`` in ``store`` (a :class:`generator.store.Store`)."""
    cfg = cfg or DatasetConfig()
    stats: dict[str, int] = {}
    schemas: list[dict[str, Any]] = []
    examples = examples_from_calls(site, store.iter_calls(site, valid_only=True), stats, schemas,
                                   row_stride=cfg.row_stride if is_level_site(site) else None)
    if cfg.max_examples is not None and len(examples) > cfg.max_examples:
        examples = examples[-cfg.max_examples:]  # the newest
    examples = _dedupe(examples, site, cfg.near_duplicate_threshold, stats)
    if len(examples) < cfg.min_examples:
        raise DatasetError(
            f"{site}: {len(examples)} usable examples after curation ({stats}), need {cfg.min_examples}; "
            "play more, or make procedural-teacher data with `python -m generator.train --bootstrap 2000`"
        )
    train, evals = _split_by_spec(examples, cfg)
    _fun_oversample(train, cfg, stats)
    stats.update(usable=len(examples), train=len(train), eval=len(evals))
    log.info("dataset %s: %s", site, stats)
    return Dataset(site=site, train=train, eval=evals, stats=stats, output_schema=schemas[0] if schemas else None)
