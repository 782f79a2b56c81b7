"""Agreement: is a student's answer the teacher's answer to the same call?

Size: over 400 lines on purpose. Comparing two answers, the statistics over
many, the ``[judge]`` settings that choose the comparison and the pairing of
recorded calls are one definition of "agrees"; the trainer, the router and
``generator.sites`` all use it, so it is kept in one leaf module.

Validity says an answer parses into the return type; agreement says it is
the *same* answer the teacher gave on the same arguments.  A student that
writes well-formed bounties with the wrong monster, reward and band is valid
and useless: the training gates and the shadow -> local rule judge
agreement wherever answers can be compared.

Answers are compared field by field, by type (from the site's output schema
where it has one, else from the JSON values):

- enum, bool, int: exact;
- float: within a relative tolerance (``float_tolerance``, default 1 %);
- string: normalised exact (Unicode NFKC, case-folded, runs of whitespace
  collapsed, surrounding whitespace and ``.,;:!?"'`` stripped), with a
  similarity score in [0, 1] beside it (rapidfuzz's normalised Indel ratio);
- lists: same length and element by element; objects: key by key.

A whole answer agrees when every field agrees.  How a site is judged is its
*judge mode*, set in ``forge.toml`` (see :class:`JudgeConfig`):

=================  ============================================================
``fields``         the rules above (default for objects, enums, numbers, lists)
``exact``          the JSON values must be identical (no normalisation, no tolerance)
``similarity``     as ``fields``, but a string agrees when its similarity is at
                   least ``min_similarity`` (default for a free-text ``str`` return)
``validity-only``  no agreement: the site is judged by validity alone (always so
                   for the level site, judged by its gates, likeness and fun)
=================  ============================================================

>>> spec = JudgeSpec("fields")
>>> c = compare({"title": "Slay the Ogre", "reward": 250}, {"title": "slay the  ogre.", "reward": 250}, spec=spec)
>>> c.agree, c.fields["title"].agree, c.fields["reward"].agree
(True, True, True)
>>> c = compare({"title": "Slay the Ogre", "reward": 200}, {"title": "Slay the Ogre", "reward": 250}, spec=spec)
>>> c.agree, c.fields["reward"].agree
(False, False)
>>> stats = AgreementStats.of([c])
>>> stats.weakest_field
'reward'
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from generator.errors import ConfigError
from generator.settings import JUDGE_MODES, JudgeSettings

__all__ = [
    "MODES",
    "JudgeSpec",
    "JudgeConfig",
    "FieldVerdict",
    "Comparison",
    "FieldStats",
    "AgreementStats",
    "compare",
    "normalise",
    "similarity",
    "default_mode",
    "SKIPPED",
    "SiteAgreement",
    "site_agreement",
]

#: Judge modes a site can have (declared with the ``[judge]`` settings).
MODES: Final = JUDGE_MODES
#: The path of the whole answer when the answer is not an object.
ROOT: Final = "$"

_STRIP: Final = " \t\r\n.,;:!?\"'"
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True)
class JudgeSpec:
    """How one site's answers are compared."""

    mode: str = "fields"
    float_tolerance: float = 0.01  #: relative tolerance for floats (with an absolute floor of 1e-9)
    min_similarity: float = 0.85  #: ``similarity`` mode: a string agrees at or above this score
    source: str = "default"  #: where the mode came from (for reports)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"judge mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not (self.float_tolerance >= 0 and math.isfinite(self.float_tolerance)):
            raise ConfigError(f"judge float_tolerance must be a finite number >= 0, got {self.float_tolerance}")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"judge min_similarity must be within [0, 1], got {self.min_similarity}")

    @property
    def compares(self) -> bool:
        """False for ``validity-only``: no agreement is measured."""
        return self.mode != "validity-only"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- values


def normalise(text: str) -> str:
    """The form two strings are compared in (``fields`` mode).

    >>> normalise("  Slay the  OGRE of Greyhollow. ")
    'slay the ogre of greyhollow'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", text).strip(_STRIP)


def similarity(a: str, b: str) -> float:
    """Similarity of two strings in [0, 1] after :func:`normalise` (rapidfuzz's normalised Indel ratio).

    >>> similarity("Slay the Ogre", "slay the ogre")
    1.0
    >>> round(similarity("Slay the Ogre of Greyhollow", "Slay the Oulem of Greyhollow"), 2)
    0.91
    """
    from rapidfuzz import fuzz

    return float(fuzz.ratio(normalise(a), normalise(b))) / 100.0


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


@dataclass
class FieldVerdict:
    """One field of one answer: did it agree, and (strings) how similar it was."""

    agree: bool
    similarity: float | None = None


@dataclass
class Comparison:
    """A student answer against the teacher's: the whole answer and each field (``path -> verdict``)."""

    agree: bool
    fields: dict[str, FieldVerdict] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"agree": self.agree, "fields": {k: asdict(v) for k, v in self.fields.items()}}

    def disagreeing(self) -> list[str]:
        return [k for k, v in self.fields.items() if not v.agree]


# ----------------------------------------------------------------------------- schemas


def _schema_root(schema: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not isinstance(schema, Mapping):
        return None
    from generator.validation.sites import json_schema_of

    return json_schema_of(dict(schema))


def _resolve(node: Any, root: Mapping[str, Any], depth: int = 0) -> Mapping[str, Any]:
    """Follow ``$ref`` and single non-null ``anyOf``/``oneOf``/``allOf`` branches to a concrete schema."""
    if not isinstance(node, Mapping) or depth > 20:
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        return _resolve(target, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key)
        if isinstance(branches, list):
            concrete = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
            if len(concrete) == 1:
                merged = {k: v for k, v in node.items() if k != key}
                return {**merged, **_resolve(concrete[0], root, depth + 1)}
    return node


def _kind(node: Mapping[str, Any], value: Any) -> str:
    """``enum``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``object`` or ``any``."""
    if "enum" in node or "const" in node:
        return "enum"
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    kinds = {"boolean": "bool", "integer": "int", "number": "float", "string": "str", "array": "list", "object": "object"}
    if t in kinds:
        return kinds[t]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return "any"


def default_mode(site: str, schema: Mapping[str, Any] | None, example: Any = None) -> str:
    """The judge mode a site gets when ``forge.toml`` names none.

    The level site: ``validity-only``; a free-text string return (no schema, or
    a string schema without an enum): ``similarity``; anything else: ``fields``.

    >>> default_mode("demo:f#1", {"type": "object", "properties": {"n": {"type": "integer"}}})
    'fields'
    >>> default_mode("demo:haiku#1", None, "an old pond")
    'similarity'
    """
    from generator.local.codec import is_level_site

    if is_level_site(site):
        return "validity-only"
    root = _schema_root(schema)
    if root is None:
        return "similarity" if isinstance(example, str) or example is None else "fields"
    node = _resolve(root, root)
    return "similarity" if _kind(node, example) == "str" else "fields"


# ----------------------------------------------------------------------------- comparing


def compare(
    student: Any,
    teacher: Any,
    *,
    schema: Mapping[str, Any] | None = None,
    spec: JudgeSpec = JudgeSpec(),
) -> Comparison:
    """Compare ``student``'s JSON answer with ``teacher``'s; ``student=None`` (no answer) disagrees everywhere.

    Field paths: ``title``, ``monster.name``, ``steps`` (a list as a whole),
    ``ingredients[].grams`` (a field of every element); ``$`` for a non-object answer.
    """
    root = _schema_root(schema) or {}
    fields: dict[str, FieldVerdict] = {}
    whole = _cmp(MISSING if student is None else student, teacher, root, root, spec, "", fields)
    return Comparison(whole, fields)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _note(fields: dict[str, FieldVerdict], path: str, verdict: FieldVerdict) -> None:
    """A path seen several times in one answer (list elements) agrees only if every instance does."""
    path = path or ROOT
    old = fields.get(path)
    if old is None:
        fields[path] = verdict
        return
    sims = [s for s in (old.similarity, verdict.similarity) if s is not None]
    fields[path] = FieldVerdict(old.agree and verdict.agree, min(sims) if sims else None)


def _cmp(s: Any, t: Any, node: Any, root: Mapping[str, Any], spec: JudgeSpec, path: str,
         fields: dict[str, FieldVerdict]) -> bool:
    node = _resolve(node, root)
    probe = t if t is not MISSING else s
    kind = _kind(node, probe)
    if kind == "object" and (isinstance(t, Mapping) or isinstance(s, Mapping)):
        props = node.get("properties") if isinstance(node.get("properties"), Mapping) else {}
        keys = list(dict.fromkeys([*(t.keys() if isinstance(t, Mapping) else ()),
                                   *(s.keys() if isinstance(s, Mapping) else ())]))
        ok = isinstance(s, Mapping) and isinstance(t, Mapping)
        for key in keys:
            sv = s.get(key, MISSING) if isinstance(s, Mapping) else MISSING
            tv = t.get(key, MISSING) if isinstance(t, Mapping) else MISSING
            ok = _cmp(sv, tv, props.get(key, {}), root, spec, _join(path, str(key)), fields) and ok
        if path:
            _note(fields, path, FieldVerdict(ok))
        return ok
    if kind == "list" and (isinstance(t, list) or isinstance(s, list)):
        items = node.get("items", {})
        sl = s if isinstance(s, list) else []
        tl = t if isinstance(t, list) else []
        ok = isinstance(s, list) and isinstance(t, list) and len(sl) == len(tl)
        element_kind = _kind(_resolve(items, root), (tl or sl or [None])[0])
        sub: dict[str, FieldVerdict] = {}
        for i in range(max(len(sl), len(tl))):
            sv = sl[i] if i < len(sl) else MISSING
            tv = tl[i] if i < len(tl) else MISSING
            ok = _cmp(sv, tv, items, root, spec, f"{path}[]", sub) and ok
        if element_kind in ("object", "list"):
            for k, v in sub.items():
                if k != f"{path}[]":
                    _note(fields, k, v)
        sims = [v.similarity for v in sub.values() if v.similarity is not None]
        _note(fields, path, FieldVerdict(ok, (sum(sims) / len(sims)) if sims and element_kind == "str" else None))
        return ok
    verdict = _leaf(s, t, kind, spec)
    _note(fields, path, verdict)
    return verdict.agree


def _leaf(s: Any, t: Any, kind: str, spec: JudgeSpec) -> FieldVerdict:
    if s is MISSING or t is MISSING:
        return FieldVerdict(False, 0.0 if kind == "str" else None)
    if spec.mode == "exact":
        same = json.dumps(s, sort_keys=True) == json.dumps(t, sort_keys=True)
        return FieldVerdict(same, (similarity(s, t) if isinstance(s, str) and isinstance(t, str) else None))
    if isinstance(s, str) and isinstance(t, str) and kind in ("str", "any"):
        sim = similarity(s, t)
        if spec.mode == "similarity":
            return FieldVerdict(sim >= spec.min_similarity - 1e-12, sim)
        return FieldVerdict(normalise(s) == normalise(t), sim)
    if kind == "float" or (isinstance(s, float) or isinstance(t, float)) and kind == "any":
        if _number(s) and _number(t):
            return FieldVerdict(math.isclose(float(s), float(t), rel_tol=spec.float_tolerance, abs_tol=1e-9))
        return FieldVerdict(False)
    if kind == "int" and _number(s) and _number(t):
        return FieldVerdict(float(s) == float(t) and float(s).is_integer())
    # enum, bool, null, and anything of mismatched type: equal values, equal types
    return FieldVerdict(type(s) is type(t) and s == t)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ----------------------------------------------------------------------------- statistics


@dataclass
class FieldStats:
    """One field over many answers: the share of answers in which it agreed."""

    n: int
    agree: int
    rate: float
    lower95: float
    similarity: float | None = None  #: mean similarity, for string fields

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AgreementStats:
    """Whole-answer agreement with its Wilson 95 % interval, and agreement per field."""

    n: int
    agree: int
    rate: float
    lower95: float
    upper95: float
    fields: dict[str, FieldStats] = field(default_factory=dict)

    @classmethod
    def of(cls, comparisons: Iterable[Comparison]) -> AgreementStats:
        from generator.evaluate.metrics import wilson_interval

        comps = list(comparisons)
        n = len(comps)
        k = sum(1 for c in comps if c.agree)
        lo, hi = wilson_interval(k, n)
        paths: dict[str, list[FieldVerdict]] = {}
        for c in comps:
            for p, v in c.fields.items():
                paths.setdefault(p, []).append(v)
        fields = {}
        for p, vs in paths.items():
            fk = sum(1 for v in vs if v.agree)
            sims = [v.similarity for v in vs if v.similarity is not None]
            fields[p] = FieldStats(len(vs), fk, fk / len(vs), wilson_interval(fk, len(vs))[0],
                                   (sum(sims) / len(sims)) if sims else None)
        return cls(n, k, (k / n) if n else 0.0, lo, hi, fields)

    @property
    def weakest_field(self) -> str | None:
        """The field that agreed least often (ties: the first in answer order); None without fields."""
        if not self.fields:
            return None
        return min(self.fields, key=lambda p: (self.fields[p].rate, list(self.fields).index(p)))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "agree": self.agree, "rate": self.rate, "lower95": self.lower95,
                "upper95": self.upper95, "weakest_field": self.weakest_field,
                "fields": {p: f.to_dict() for p, f in self.fields.items()}}

    def describe(self, limit: int = 6) -> str:
        """``agreement 0.40 (13/20 ...); per field: band 0.20, reward 0.35, ...`` (weakest first)."""
        ordered = sorted(self.fields.items(), key=lambda kv: kv[1].rate)[:limit]
        per = ", ".join(f"{p} {f.rate:.2f}" for p, f in ordered)
        return (f"agreement {self.rate:.2f} ({self.agree}/{self.n}, 95 % lower bound {self.lower95:.3f})"
                + (f"; per field: {per}" if per else ""))


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class JudgeConfig:
    """The ``[judge]`` table of ``forge.toml``: defaults for every site, and per-site settings.

    .. code-block:: toml

        [judge]                               # every site (all keys optional)
        float_tolerance = 0.01
        min_similarity = 0.85
        [judge.sites."bounty_board:post_bounty"]  # module:qualname, or the full site id
        mode = "fields"                       # exact | fields | similarity | validity-only

    The table is read and checked with the rest of ``forge.toml`` by
    :mod:`generator.settings` (:class:`~generator.settings.JudgeSettings`).
    A site without a ``mode`` gets :func:`default_mode` from its return type.
    The level site is always ``validity-only``.

    >>> from generator.settings import convert
    >>> cfg = JudgeConfig.from_settings(convert({"judge": {"sites": {"a:b": "exact"}}}, origin="example").judge)
    >>> cfg.for_site("a:b#12345678").mode, cfg.for_site("a:c#12345678", None, "a poem").mode
    ('exact', 'similarity')
    """

    settings: JudgeSettings = field(default_factory=JudgeSettings)

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> JudgeConfig:
        """From the typed ``[judge]`` table (``generator.settings.load(...).judge``)."""
        return cls(settings)

    @classmethod
    def load(cls, data_dir: str | Path | None = None) -> JudgeConfig:
        """From ``<data dir>/forge.toml`` (the defaults when the file or the table is absent)."""
        from generator.settings import load

        return cls.from_settings(load(data_dir, env={}).judge)

    def _build(self, site: str, mode: str, source: str) -> JudgeSpec:
        from generator.store.callsite import site_name

        judge = self.settings
        entry = judge.site(site) or judge.site(site_name(site))
        chosen, tolerance, minimum = judge.mode or mode, judge.float_tolerance, judge.min_similarity
        if judge.mode is not None:
            source = "forge.toml [judge]"
        if entry is not None:
            if entry.mode is not None:
                chosen, source = entry.mode, "forge.toml [judge.sites]"
            tolerance = judge.float_tolerance if entry.float_tolerance is None else entry.float_tolerance
            minimum = judge.min_similarity if entry.min_similarity is None else entry.min_similarity
        return JudgeSpec(mode=chosen, float_tolerance=tolerance, min_similarity=minimum, source=source)

    def for_site(self, site: str, schema: Mapping[str, Any] | None = None, example: Any = None) -> JudgeSpec:
        """The spec a site is judged with: its own entry, else the defaults, else :func:`default_mode`."""
        from generator.local.codec import is_level_site

        mode = default_mode(site, schema, example)
        if is_level_site(site):
            return JudgeSpec("validity-only", source="the level site is judged by its gates")
        return self._build(site, mode, source=f"default for its return type ({mode})")


def compare_many(
    students: Sequence[Any], teachers: Sequence[Any], *, schema: Mapping[str, Any] | None = None,
    spec: JudgeSpec = JudgeSpec(),
) -> AgreementStats:
    """:class:`AgreementStats` of ``students[i]`` against ``teachers[i]``."""
    if len(students) != len(teachers):
        raise ValueError(f"{len(students)} student answers for {len(teachers)} teacher answers")
    return AgreementStats.of(compare(s, t, schema=schema, spec=spec) for s, t in zip(students, teachers))


# ----------------------------------------------------------------------------- recorded calls

#: Failure code of a shadow call the student did not answer (busy, still loading, the program exited):
#: recorded so it can be counted, never judged.
SKIPPED: Final = "V0.skipped"


@dataclass
class SiteAgreement:
    """Agreement evidence of one call site, per student version, from its recorded calls.

    ``shadow``: the student's shadow answers, each against the teacher's answer to the
    same call (the shadow record's ``request_id`` is the teacher record's ``call_id``);
    ``spot``: answers the student served, each against the teacher's spot-check answer
    (the spot-check record's ``request_id`` is the served record's ``call_id``);
    ``skipped``: shadow calls recorded as skipped (never judged).
    """

    spec: JudgeSpec
    shadow: dict[str | None, list[Comparison]] = field(default_factory=dict)
    spot: dict[str | None, list[Comparison]] = field(default_factory=dict)
    skipped: dict[str | None, int] = field(default_factory=dict)

    def stats(self, kind: str, version: str | None) -> AgreementStats:
        return AgreementStats.of(getattr(self, kind).get(version, []))


def _is_skipped(r: Any) -> bool:
    return r.valid is None and any(isinstance(f, Mapping) and f.get("code") == SKIPPED for f in (r.failures or ()))


def site_agreement(records: Iterable[Any], spec: JudgeSpec | None = None, *, config: JudgeConfig | None = None,
                   since: float | None = None) -> SiteAgreement:
    """Pair a site's student answers with the teacher's answers to the same calls and compare them.

    ``records``: the site's :class:`~generator.store.records.CallRecord` s (any order).
    ``spec``: how to compare; by default ``config`` (or the defaults) for the
    site, from its recorded output schema.  ``since``: only student answers
    recorded at or after this time.  A teacher answer judged invalid is no
    reference and pairs with nothing; an invalid student answer disagrees.
    """
    rows = list(records)
    by_id = {r.call_id: r for r in rows}
    if spec is None:
        site = rows[0].site if rows else ""
        schema = next((r.output_schema for r in rows if r.output_schema), None)
        example = next((r.result for r in rows if r.backend != "student" and r.result is not None), None)
        spec = (config or JudgeConfig()).for_site(site, schema, example)
    out = SiteAgreement(spec)
    if not spec.compares:
        return out

    def reference(r: Any) -> Any:
        return r if (r is not None and r.backend != "student" and r.valid is not False
                     and r.result is not None and r.error is None) else None

    for r in rows:
        if since is not None and r.backend == "student" and r.created < since:
            continue
        if r.backend == "student" and not r.served and r.request_id:
            if _is_skipped(r):
                out.skipped[r.model_version] = out.skipped.get(r.model_version, 0) + 1
                continue
            teacher = reference(by_id.get(r.request_id))
            if teacher is None or r.valid is None:
                continue
            c = compare(r.result if r.valid else None, teacher.result, schema=r.output_schema, spec=spec)
            out.shadow.setdefault(r.model_version, []).append(c)
        elif r.backend != "student" and not r.served and r.request_id:
            student = by_id.get(r.request_id)
            if (student is None or student.backend != "student" or not student.served
                    or reference(r) is None or (since is not None and student.created < since)):
                continue
            c = compare(student.result if student.valid is not False else None, r.result,
                        schema=r.output_schema, spec=spec)
            out.spot.setdefault(student.model_version, []).append(c)
    return out
