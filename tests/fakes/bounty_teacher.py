"""A teacher for ``docs/examples/bounty_board.jac``: OpenAI-compatible on 127.0.0.1, answering a fixed rule.

It reads the monster and the town from the prompt byllm sends
(``monster = (Monster(name='Ogre', level=7, heads=2), '')``) and answers the
rule the program's semstrings describe, so every captured answer is right and
a student can be judged by how often it gives the same answer:

>>> bounty({"name": "Ogre", "level": 7, "heads": 2}, "Greyhollow")
{'title': 'Slay the Ogre of Greyhollow', 'reward': 330, 'band': 'high'}

``python tests/fakes/bounty_teacher.py`` serves it until interrupted and
prints its URL (for trying the guide by hand).
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import FakeOpenAIServer, Reply  # noqa: E402

_MONSTER = re.compile(r"monster = \(Monster\(name='(?P<name>[^']*)', level=(?P<level>-?\d+), heads=(?P<heads>-?\d+)\)")
_TOWN = re.compile(r"town = \('(?P<town>[^']*)'")


#: The example program (what `jac run` executes in the tests and the guide).
PROGRAM = Path(__file__).resolve().parents[2] / "docs" / "examples" / "bounty_board.jac"
#: The output schema byllm sends for ``post_bounty`` (as the capture plugin records it).
OUTPUT_SCHEMA: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "Bounty", "schema": {
    "title": "Bounty", "description": "A notice for the board.", "type": "object", "properties": {
        "title": {"type": "string", "title": "Title", "description": "'Slay the <monster name> of <town>'."},
        "reward": {"type": "integer", "title": "Reward", "description": "Gold: 40 per level plus 25 per head."},
        "band": {"description": "How dangerous a bounty is.\nThe value *should* be one in this list: ['low', 'medium', "
                                "'high', 'deadly'] where the names are [LOW, MEDIUM, HIGH, DEADLY].",
                 "type": "string", "enum": ["low", "medium", "high", "deadly"]}},
    "required": ["title", "reward", "band"], "additionalProperties": False}, "strict": True}}
NAMES = ["Ogre", "Wyvern", "Basilisk", "Troll", "Ghoul", "Hydra", "Manticore", "Wraith", "Gorgon", "Chimera", "Kraken",
         "Banshee"]
TOWNS = ["Greyhollow", "Ashford", "Millbrook", "Stonemere", "Duskvale", "Ravenmoor", "Thornwick", "Eastmarch"]


def site() -> str:
    """The call-site id of ``post_bounty``."""
    from generator.store.callsite import site_id

    return site_id("bounty_board", "post_bounty", OUTPUT_SCHEMA)


def calls(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The arguments the program passes in a run with ``BOUNTY_CALLS=n BOUNTY_SEED=seed`` (as captured)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        monster = {"name": rng.choice(NAMES), "level": rng.randint(1, 12), "heads": rng.randint(1, 3)}
        out.append({"monster": monster, "town": rng.choice(TOWNS)})
    return out


def band(level: int) -> str:
    return "low" if level < 4 else "medium" if level < 7 else "high" if level < 10 else "deadly"


def bounty(monster: dict[str, Any], town: str) -> dict[str, Any]:
    """The right answer for ``post_bounty(monster, town)`` (the captured args' shape)."""
    level, heads = int(monster["level"]), int(monster["heads"])
    return {"title": f"Slay the {monster['name']} of {town}", "reward": 40 * level + 25 * heads, "band": band(level)}


def wrong_but_valid(monster: dict[str, Any], town: str) -> dict[str, Any]:
    """A well-formed bounty that is wrong in every field: what an undertrained student writes."""
    return {"title": f"Slay the Oulem of {town}", "reward": 40 * int(monster["level"]),
            "band": "low" if band(int(monster["level"])) != "low" else "medium"}


@dataclass
class _Output:
    """The fields of ``generator.local.student.StudentOutput`` the gates read."""

    text: str
    result: dict[str, Any] | None
    mean_logprob: float = -0.1
    tokens: int = 20
    latency_ms: float = 1.0


class RuleStudent:
    """A stand-in for a trained student: answers with ``rule(monster, town)``, through the student interface.

    Training a student that learns the rule takes minutes; the gate and
    routing tests use this to show what the gates do with a right or a
    wrong (but valid) answer.
    """

    def __init__(self, rule: Any = bounty) -> None:
        self.rule = rule

    def generate(self, args: dict[str, Any], **_: Any) -> _Output:
        started = time.perf_counter()
        result = self.rule(args["monster"], args["town"])
        return _Output(json.dumps(result), result, latency_ms=(time.perf_counter() - started) * 1000)

    def __call__(self, args: dict[str, Any]) -> dict[str, Any]:  # a local answerer (routing)
        return self.rule(args["monster"], args["town"])


def _prompt(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


def answer(body: dict[str, Any]) -> Reply:
    """The scripted reply to one chat-completions request body."""
    text = _prompt(body)
    m, t = _MONSTER.search(text), _TOWN.search(text)
    if m is None or t is None:
        return Reply.error(400, "the bounty teacher only answers post_bounty prompts")
    monster = {"name": m["name"], "level": int(m["level"]), "heads": int(m["heads"])}
    return Reply.ok(json.dumps(bounty(monster, t["town"])), usage=(160, 24))


def server() -> FakeOpenAIServer:
    """``with server() as s:`` then point byllm at ``s.url`` (``OPENAI_BASE_URL``)."""
    return FakeOpenAIServer(answer)


if __name__ == "__main__":
    import time

    with server() as s:
        print(s.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
