"""Settings: one typed model of ``forge.toml`` and the ``FORGE_*`` environment, read once.

Size: over 400 lines on purpose. Every table this model owns shares one
reader, one precedence rule and one error format; splitting it by table
would split those, and the tables' defaults are documented where they are
defined.

    # forge.toml in the data directory
    [generator]                 # GeneratorConfig: the facade's cascade, deadline, retries
    backends = ["llm", "procedural"]
    deadline_s = 20.0
    [routing]                   # RoutingPolicy (docs/routing.md)
    min_shadow_samples = 30
    [store]                     # StoreSettings: postgresql://… or sqlite:///… (docs/store.md)
    url = "postgresql://forge@db.example/forge"
    [judge]                     # JudgeSettings: how answers are compared (generator.evaluate.agreement)
    float_tolerance = 0.01
    [judge.sites]
    "bounty_board:post_bounty" = "fields"

:func:`load` reads the file once, lays the environment over it
(``FORGE_BACKENDS=llm,procedural``, ``FORGE_DEADLINE_S``,
``FORGE_MAX_ATTEMPTS``, ``FORGE_PROCEDURAL_RESERVE_S``, ``FORGE_RECORD``,
``FORGE_DB_URL``, …; :data:`ENV` lists them) and
converts the whole with ``msgspec.convert``, so a bad value is an error that
says where it is::

    /home/me/.local/share/dungeon-forge/forge.toml: Expected `int`, got `str` - at `$.generator.max_attempts`

It owns ``[generator]``, ``[routing]``, ``[teacher]``, ``[student_server]``,
``[store]`` (:func:`store_settings` reads that table alone, so the store opens
whatever is wrong elsewhere in the file) and ``[judge]`` (a call site's entry
is located by its name: ``$.judge.sites['bounty_board:post_bounty'].mode``).
This module imports nothing of the store or of the judge: they ask it for
their settings.

>>> s = convert({"generator": {"backends": ["procedural"], "deadline_s": 5}}, origin="example")
>>> s.generator.backends, s.generator.deadline_s, s.routing.min_shadow_samples
(('procedural',), 5.0, 30)
>>> convert({"routing": {"min_shadow_samples": "lots"}}, origin="example")
Traceback (most recent call last):
...
generator.errors.ConfigError: example: Expected `int`, got `str` - at `$.routing.min_shadow_samples`
>>> convert({"judge": {"sites": {"a:b": {"mode": "fuzzy"}}}}, origin="example")
Traceback (most recent call last):
...
generator.errors.ConfigError: example: Invalid enum value 'fuzzy' - at `$.judge.sites['a:b'].mode`; judge mode 'fuzzy' is not one of exact, fields, similarity, validity-only
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from generator.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "BACKEND_NAMES",
    "RemoteStudentConfig",
    "TeacherConfig",
    "ENV",
    "GeneratorConfig",
    "JUDGE_MODES",
    "JudgeSettings",
    "JudgeSiteSettings",
    "RoutingPolicy",
    "Settings",
    "StoreSettings",
    "config_path",
    "convert",
    "load",
    "store_settings",
    "teacher_configured",
    "teacher_settings",
]


#: Backend names a cascade may list.
BACKEND_NAMES: Final = ("llm", "student", "remote_student", "procedural")
#: Setting an OpenAI-compatible endpoint (a local server) also enables the LLM teacher (the key
#: variables are ``generator.store.redact.KEY_VARIABLES``; their values are never read here).
ENDPOINT_VARIABLE: Final = "OPENAI_BASE_URL"

def teacher_configured(
    env: Mapping[str, str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> bool:
    """True when the teacher can be reached: its key variable or an endpoint is set."""
    env = os.environ if env is None else env
    try:
        return teacher_settings(data_dir, env=env).usable(env)
    except ConfigError:
        log.warning("teacher settings are invalid; the LLM teacher is off", exc_info=True)
        return False


BackendName = Literal["llm", "student", "remote_student", "procedural"]


class GeneratorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the facade serves levels (``[generator]`` of ``forge.toml``).  ``backends`` empty means
    "choose": the LLM teacher when a key or endpoint is configured, then procedural."""

    backends: tuple[BackendName, ...] = ()
    deadline_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Wall-clock budget of one request; a valid level is returned within it."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    """Attempts per backend (the first plus retries with validation feedback)."""
    procedural_reserve_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Time kept back for the procedural fallback: backends are skipped once less is left."""
    record: bool = True
    """Record every attempt in the store."""

    def __post_init__(self) -> None:  # the same rules for a config built in code (convert checks them first)
        unknown = [b for b in self.backends if b not in BACKEND_NAMES]
        if unknown:
            raise ConfigError(f"unknown backend(s) {unknown} in generator settings; known: {', '.join(BACKEND_NAMES)}")
        if not self.deadline_s > 0:
            raise ConfigError(f"generator setting deadline_s must be > 0 seconds, got {self.deadline_s}")
        if self.procedural_reserve_s < 0:
            raise ConfigError(f"generator setting procedural_reserve_s must be >= 0, got {self.procedural_reserve_s}")
        if self.max_attempts < 1:
            raise ConfigError(f"generator setting max_attempts must be >= 1, got {self.max_attempts}")

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "settings") -> GeneratorConfig:
        """Build from a ``[generator]`` table (types converted and checked, unknown keys refused)."""
        return convert({"generator": dict(data)}, origin=origin).generator

    @classmethod
    def load(
        cls, data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> GeneratorConfig:
        """Defaults < ``forge.toml`` ``[generator]`` < ``FORGE_*`` env < ``overrides`` (None ignored)."""
        cfg = load(data_dir, env=env).generator
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls.from_mapping({**msgspec.structs.asdict(cfg), **given}, origin="arguments") if given else cfg

    def replace(self, **changes: Any) -> GeneratorConfig:
        """A copy with ``changes`` (checked like any config built in code)."""
        return type(self)(**{**msgspec.structs.asdict(self), **changes})

    # ------------------------------------------------------------------ derived

    def cascade(
        self, env: Mapping[str, str] | None = None, data_dir: str | os.PathLike[str] | None = None
    ) -> tuple[str, ...]:
        """The backend names to try, in order, always ending with ``procedural``."""
        names = list(self.backends) or (["llm"] if teacher_configured(env, data_dir) else [])
        names = [n for n in dict.fromkeys(names) if n != "procedural"]
        return (*names, "procedural")

    def describe(self) -> dict[str, Any]:
        """Settings for logs and reports (no secrets: only whether a key is set)."""
        out = msgspec.to_builtins(self)
        out["cascade"] = list(self.cascade())
        out["teacher_key_set"] = teacher_configured()
        return out


def teacher_settings(data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Any:
    """The teacher's :class:`TeacherConfig` for this data dir."""
    path = config_path(data_dir)
    return TeacherConfig.load(env=env, toml_path=path if path.is_file() else None)


def config_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``forge.toml`` lives for a data directory."""
    from generator.paths import CONFIG_NAME
    from generator.paths import data_dir as resolve

    return resolve(data_dir) / CONFIG_NAME


class RoutingPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The numbers behind every routing decision (``[routing]``; defaults documented in docs/routing.md)."""

    min_shadow_samples: int = 30
    """Shadow answers needed before a student may serve."""
    promote_lower_bound: float = 0.80
    """Wilson 95 % lower bound of shadow validity (first attempt) that promotion needs, or of shadow
    agreement with the teacher for a site judged by agreement (``[judge]`` in forge.toml)."""
    min_confidence: float | None = None
    """Serve a student output only if its mean token log-probability is at least this (None: any)."""
    spot_check_rate: float = 0.05
    """Share of locally served requests also sent to the teacher for comparison."""
    rollback_min_samples: int = 20
    """Live samples of a version (and of its predecessor) needed before a rollback is judged."""
    rollback_validity_margin: float = 0.10
    """Roll back when live validity's Wilson upper bound is below the predecessor's rate minus this."""
    rollback_fun_margin: float = 0.10
    """... or when mean fun is this much below the predecessor's and the drop is significant."""
    alpha: float = 0.05
    """Significance level of the fun test (one-sided Mann-Whitney U)."""
    shadow_backlog: Annotated[int, msgspec.Meta(ge=1)] = 32
    """Shadow answers a Jac program may have queued; a call beyond it is recorded as skipped."""
    shadow_exit_wait_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """At program exit, wait at most this long for queued shadow answers; the rest are recorded as skipped."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "routing settings") -> RoutingPolicy:
        """Build from a ``[routing]`` table (types converted and checked, unknown keys refused)."""
        return convert({"routing": dict(data)}, origin=origin).routing

    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike[str] | None = None) -> RoutingPolicy:
        """``[routing]`` of the data dir's ``forge.toml`` (defaults when absent)."""
        return load(data_dir, env={}).routing


class TeacherConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The teacher model and its explicit limits, never library defaults (``[teacher]``).

    Settings come from, in order of precedence: environment variables, the
    ``[teacher]`` table of ``forge.toml`` in the data directory (or a TOML file
    given explicitly), then the defaults.

    ===================  ========================  ==================================
    environment          TOML key                  meaning
    ===================  ========================  ==================================
    FORGE_TEACHER        model                     litellm model name: ``gpt-4o-mini``,
                                                   ``anthropic/claude-3-5-haiku-latest``,
                                                   ``gemini/gemini-2.0-flash``,
                                                   ``openai/<name>`` for a local server
    OPENAI_BASE_URL      base_url                  an OpenAI-compatible endpoint
                                                   (vLLM, llama.cpp server, a proxy)
    FORGE_TEACHER_TIMEOUT  timeout_s               seconds per HTTP request
    FORGE_TEACHER_RETRIES  max_retries             HTTP retries (429 honours Retry-After)
    ===================  ========================  ==================================

    API keys are never part of this config: litellm reads them from the
    provider's usual variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
    ``GEMINI_API_KEY``), and nothing here logs, stores or formats them.

    >>> cfg = TeacherConfig.load(env={"FORGE_TEACHER": "anthropic/claude-3-5-haiku-latest"}, toml_path=None)
    >>> cfg.model, cfg.key_env()
    ('anthropic/claude-3-5-haiku-latest', 'ANTHROPIC_API_KEY')
    >>> cfg.usable(env={})
    False
    """

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """Per HTTP request (litellm's default is 600 s)."""
    max_retries: Annotated[int, msgspec.Meta(ge=0)] = 1
    """HTTP-level retries by the client, honouring Retry-After on 429."""
    transient_retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    """byllm's extra retries on timeouts/5xx (its default is 2)."""
    max_output_retries: Annotated[int, msgspec.Meta(ge=0)] = 1
    """byllm re-asks on unparsable JSON (its default is 3)."""
    temperature: float = 0.7
    max_tokens: int = 4096

    def __post_init__(self) -> None:  # the same rules for a config built in code
        if not self.model.strip():
            raise ConfigError("teacher model is empty; set FORGE_TEACHER or [teacher].model in forge.toml")
        if not self.timeout_s > 0:
            raise ConfigError(f"teacher timeout_s must be > 0, got {self.timeout_s}; fix [teacher].timeout_s")
        for name in ("max_retries", "transient_retries", "max_output_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"teacher {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None | bool = True,
    ) -> TeacherConfig:
        """Defaults < ``[teacher]`` in TOML < environment.

        ``toml_path=True`` reads ``forge.toml`` in the data directory when it
        exists; a path reads that file (it must exist); None/False reads none.
        """
        env = os.environ if env is None else env
        return _load_file(_teacher_toml(toml_path, env), env).teacher

    def key_env(self) -> str | None:
        """The environment variable holding this provider's key (None: unknown provider)."""
        name = self.model.lower()
        if name.startswith(("anthropic/", "claude")):
            return "ANTHROPIC_API_KEY"
        if name.startswith(("gemini/", "gemini-", "vertex_ai/")):
            return "GEMINI_API_KEY"
        if name.startswith(("openai/", "gpt-", "o1", "o3", "o4", "chatgpt")):
            return "OPENAI_API_KEY"
        return None

    def usable(self, env: Mapping[str, str] | None = None) -> bool:
        """True when a call can be attempted: the provider's key is set, or an endpoint is."""
        env = os.environ if env is None else env
        if self.base_url:
            return True
        key = self.key_env()
        if key == "GEMINI_API_KEY":
            return bool(env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY"))
        return bool(key and env.get(key))

    def placeholder_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """A dummy key for a keyless OpenAI-compatible endpoint; None when a real one is set."""
        env = os.environ if env is None else env
        if self.base_url and not env.get("OPENAI_API_KEY"):
            return _NO_KEY_PLACEHOLDER
        return None

    def describe(self) -> dict[str, Any]:
        """The settings as a dict for logs and reports (holds no secrets)."""
        out = msgspec.to_builtins(self)
        out["key_env"] = self.key_env()
        return out


def _teacher_toml(toml_path: str | os.PathLike[str] | None | bool, env: Mapping[str, str]) -> Path | None:
    if toml_path is None or toml_path is False:
        return None
    if toml_path is True:
        from generator.paths import CONFIG_NAME, data_dir

        candidate = data_dir(env.get("FORGE_HOME") or None, create=False) / CONFIG_NAME
        return candidate if candidate.is_file() else None
    path = Path(toml_path)
    if not path.is_file():
        raise ConfigError(f"teacher config {path} does not exist; pass an existing TOML file")
    return path


class RemoteStudentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the remote student is: ``[student_server]`` in ``forge.toml``, then ``FORGE_STUDENT_*``.

    The key shared with ``python -m generator.serve`` is read from
    ``FORGE_STUDENT_API_KEY`` only, never from a file.

    >>> RemoteStudentConfig.from_mapping({"url": "http://box:8088/v1", "timeout_s": 5}).timeout_s
    5.0
    """

    url: str = ""
    site: str = ""
    """Model id on the server; empty: ``level`` (the server's level site) or the caller's site."""
    timeout_s: float = 30.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "settings") -> RemoteStudentConfig:
        """Build from a ``[student_server]`` table (types converted and checked, unknown keys refused)."""
        return convert({"student_server": dict(data)}, origin=origin).student_server

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str] | None = None, *,
             env: Mapping[str, str] | None = None) -> RemoteStudentConfig:
        """Defaults < ``[student_server]`` of ``<data dir>/forge.toml`` < ``FORGE_STUDENT_*`` variables."""
        return load(data_dir, env=env).student_server


class StoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the store is (``[store]``; ``FORGE_DB_URL`` wins over the file, see :func:`store_settings`).

    ``url`` is a ``postgresql://`` or ``sqlite:///`` URL; empty means ``forge.db``
    in the data directory.  It may hold a password, so nothing here shows it:
    a type error names only the location (``$.store.url``), ``repr`` hides the
    value, and the store checks the URL's form and shows it redacted
    (:func:`generator.store.dialect.configured_url`).

    >>> convert({"store": {"url": 5432}}, origin="forge.toml").store
    Traceback (most recent call last):
    ...
    generator.errors.ConfigError: forge.toml: Expected `str`, got `int` - at `$.store.url`
    >>> StoreSettings(url="postgresql://forge:secret@db/forge")
    StoreSettings(url='***')
    """

    url: str = ""

    def __repr__(self) -> str:
        return f"StoreSettings(url={'***' if self.url else ''!r})"


JudgeMode = Literal["exact", "fields", "similarity", "validity-only"]
#: Judge modes a call site can have (``generator.evaluate.agreement`` says what each compares).
JUDGE_MODES: Final[tuple[str, ...]] = get_args(JudgeMode)
_Tolerance = Annotated[float, msgspec.Meta(ge=0)]
_Similarity = Annotated[float, msgspec.Meta(ge=0, le=1)]


def _check_tolerance(value: float | None) -> None:
    # msgspec turns a ValueError raised while converting into a located error
    if value is not None and not math.isfinite(value):
        raise ValueError(f"judge float_tolerance must be a finite number >= 0, got {value}")


class JudgeSiteSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One call site's entry in ``[judge.sites]``: a key left out takes ``[judge]``'s value."""

    mode: JudgeMode | None = None
    float_tolerance: _Tolerance | None = None
    min_similarity: _Similarity | None = None

    def __post_init__(self) -> None:
        _check_tolerance(self.float_tolerance)


#: A ``[judge.sites]`` value: a mode string (``"a:b" = "exact"``) or a table with the keys of :class:`JudgeSiteSettings`.
JudgeSiteValue = JudgeMode | JudgeSiteSettings


class JudgeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How call sites' answers are compared with the teacher's (``[judge]``; used by
    :class:`generator.evaluate.agreement.JudgeConfig`).

    ``sites`` is keyed by call-site name (``module:qualname``, or the full site id).

    >>> j = convert({"judge": {"float_tolerance": 0.05, "sites": {"a:b": "exact", "c:d": {"min_similarity": 0.9}}}},
    ...             origin="example").judge
    >>> j.mode, j.float_tolerance, j.sites["a:b"], j.sites["c:d"].min_similarity
    (None, 0.05, 'exact', 0.9)
    """

    mode: JudgeMode | None = None
    """Every site's mode; None: the default for the site's return type."""
    float_tolerance: _Tolerance = 0.01
    """Relative tolerance of a float field (finite, >= 0)."""
    min_similarity: _Similarity = 0.85
    """``similarity`` mode: a string agrees at or above this score (0..1)."""
    sites: dict[str, JudgeSiteValue] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_tolerance(self.float_tolerance)

    def site(self, name: str) -> JudgeSiteSettings | None:
        """``sites[name]`` as a table (a mode string becomes ``mode = …``); None when absent or empty."""
        entry = self.sites.get(name)
        if isinstance(entry, str):
            return JudgeSiteSettings(mode=entry)
        return entry if entry is not None and entry != JudgeSiteSettings() else None


class Settings(msgspec.Struct, frozen=True):
    """The tables of ``forge.toml`` this model owns; other tables are left to their readers."""

    generator: GeneratorConfig = msgspec.field(default_factory=GeneratorConfig)
    routing: RoutingPolicy = msgspec.field(default_factory=RoutingPolicy)
    teacher: TeacherConfig = msgspec.field(default_factory=TeacherConfig)
    student_server: RemoteStudentConfig = msgspec.field(default_factory=RemoteStudentConfig)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    judge: JudgeSettings = msgspec.field(default_factory=JudgeSettings)


#: Environment variable naming the store's database URL (wins over ``[store] url``; its value is never shown).
STORE_URL_ENV: Final = "FORGE_DB_URL"
#: Environment variable -> (table, key) it sets; the environment wins over the file.
ENV: Final[dict[str, tuple[str, str]]] = {
    "FORGE_BACKENDS": ("generator", "backends"),
    "FORGE_DEADLINE_S": ("generator", "deadline_s"),
    "FORGE_MAX_ATTEMPTS": ("generator", "max_attempts"),
    "FORGE_PROCEDURAL_RESERVE_S": ("generator", "procedural_reserve_s"),
    "FORGE_RECORD": ("generator", "record"),
    "FORGE_TEACHER": ("teacher", "model"),
    "OPENAI_BASE_URL": ("teacher", "base_url"),
    "FORGE_TEACHER_TIMEOUT": ("teacher", "timeout_s"),
    "FORGE_TEACHER_RETRIES": ("teacher", "max_retries"),
    "FORGE_STUDENT_URL": ("student_server", "url"),
    "FORGE_STUDENT_SITE": ("student_server", "site"),
    "FORGE_STUDENT_TIMEOUT_S": ("student_server", "timeout_s"),
    STORE_URL_ENV: ("store", "url"),
}
_TABLES: Final = ("generator", "routing", "teacher", "student_server", "store", "judge")
#: Environment variable holding the key shared with ``python -m generator.serve`` (never read from a file).
STUDENT_API_KEY_ENV: Final = "FORGE_STUDENT_API_KEY"
_NO_KEY_PLACEHOLDER: Final = "unused"  # keyless local servers still need a non-empty header
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def convert(doc: Mapping[str, Any], *, origin: str, hints: Mapping[str, str] | None = None,
            tables: tuple[str, ...] = _TABLES) -> Settings:
    """``doc`` (TOML tables as dicts) as :class:`Settings`; a :class:`ConfigError` naming ``origin`` and the path.

    ``hints`` maps a location (``$.generator.record``) to where its value came from (an environment variable);
    only ``tables`` are read (the others keep their defaults).
    """
    server = doc.get("student_server")
    if isinstance(server, Mapping) and "api_key" in server:
        raise ConfigError(f"{origin}: the remote student's key is never read from a file; "
                          f"set {STUDENT_API_KEY_ENV} in the environment instead")
    try:
        return msgspec.convert({k: doc[k] for k in tables if k in doc}, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = _name_the_site(str(exc), doc)
        where = next((f" (set by {var})" for at, var in (hints or {}).items() if message.endswith(f"`{at}`")), "")
        raise ConfigError(f"{origin}: {message}{where}{_explain(message)}") from None


_SITE_AT: Final = "judge.sites["


def _name_the_site(message: str, doc: Mapping[str, Any]) -> str:
    """msgspec writes a table's key as ``[...]``: put the name of the call site whose entry failed there."""
    marker = f"`$.{_SITE_AT}...]"
    judge = doc.get("judge")
    sites = judge.get("sites") if isinstance(judge, Mapping) else None
    if marker not in message or not isinstance(sites, Mapping):
        return message
    for name, value in sites.items():  # msgspec stops at the first bad entry, in this order
        try:
            msgspec.convert(value, JudgeSiteValue, strict=False)
        except msgspec.ValidationError:
            return message.replace(marker, f"`$.{_SITE_AT}{str(name)!r}]")
    return message


def _explain(message: str) -> str:
    """What the value at a failed location should be: a table's known keys, a judge setting's rule."""
    at = message.rpartition("- at `$.")[2].rstrip("`")
    site = at.startswith(_SITE_AT) and "]." not in at
    if message.startswith("Object contains unknown field"):
        known = _section_type(at) if at in _TABLES else JudgeSiteSettings if site else None
        if known is None:
            return ""
        table = "judge" if site else at
        return (f"; known: {', '.join(known.__struct_fields__)}"
                f"; rename or remove the unknown {table} setting `{message.split('`')[1]}`")
    if not at.startswith("judge"):
        return ""
    key = at.rpartition(".")[2]
    if message.startswith("Invalid enum value") and (key == "mode" or site):
        value = message.removeprefix("Invalid enum value ").rpartition(" - at ")[0]
        return f"; judge mode {value} is not one of {', '.join(JUDGE_MODES)}"
    if key == "min_similarity":
        return "; judge min_similarity must be within [0, 1]"
    if key == "float_tolerance":
        return "; judge float_tolerance must be a finite number >= 0"
    if at == "judge.sites":
        return "; [judge.sites] must be a table of call sites"
    if site and message.startswith("Expected"):
        return f"; a call site's judge is a mode ({', '.join(JUDGE_MODES)}) or a table"
    return ""


def _section_type(table: str) -> type[msgspec.Struct]:
    return {"generator": GeneratorConfig, "routing": RoutingPolicy, "teacher": TeacherConfig,
            "student_server": RemoteStudentConfig, "store": StoreSettings, "judge": JudgeSettings}[table]


def _env_value(key: str, raw: str) -> Any:
    if key == "backends":
        return [p.strip() for p in raw.split(",") if p.strip()]
    low = raw.strip().lower()
    if key == "record" and low in _TRUE | _FALSE:
        return low in _TRUE
    return raw


def load(data_dir: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < ``forge.toml`` of the data dir < ``FORGE_*`` environment, checked twice.

    The file alone is checked first, so an error in it names the file; then
    the environment laid over it, so an error there names the variable.
    """
    from generator.paths import CONFIG_NAME
    from generator.paths import data_dir as resolve

    env = os.environ if env is None else env
    path = resolve(data_dir, create=False) / CONFIG_NAME
    return _load_file(path if os.path.lexists(path) else None, env, shown=path)


def store_settings(data_dir: str | os.PathLike[str] | None = None, *,
                   env: Mapping[str, str] | None = None) -> StoreSettings:
    """``[store]`` of ``<data dir>/forge.toml`` (this table alone), or ``FORGE_DB_URL`` when it is set.

    The environment wins outright: with ``FORGE_DB_URL`` set the file is not
    read (a blank value counts as unset).  Nothing is created.
    """
    from generator.paths import CONFIG_NAME
    from generator.paths import data_dir as resolve

    env = os.environ if env is None else env
    path: Path | None = resolve(data_dir, create=False) / CONFIG_NAME
    if env.get(STORE_URL_ENV, "").strip():
        path = None
    else:
        env = {k: v for k, v in env.items() if k != STORE_URL_ENV}
    return _load_file(path if path is not None and os.path.lexists(path) else None, env, tables=("store",)).store


def _load_file(path: Path | None, env: Mapping[str, str], *, shown: Path | None = None,
               tables: tuple[str, ...] = _TABLES) -> Settings:
    from generator.paths import read_toml

    doc: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v
                           for k, v in (read_toml(path) if path is not None else {}).items() if k in tables}
    origin = str(path or shown or "settings")
    settings = convert(doc, origin=origin, tables=tables)
    hints: dict[str, str] = {}
    for var, (table, key) in ENV.items():
        if table in tables and env.get(var):
            section = doc.setdefault(table, {})
            if isinstance(section, dict):
                section[key] = _env_value(key, env[var])
            hints[f"$.{table}.{key}"] = var
    return convert(doc, origin=f"{origin} and the environment", hints=hints, tables=tables) if hints else settings
