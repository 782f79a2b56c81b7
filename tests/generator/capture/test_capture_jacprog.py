"""A foreign Jac program run with `jac run` is captured per call site, against a fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes import jac_support as support  # noqa: E402  (tests are imported from the project root)
fake = support.load_fake("openai_server")

RECIPE = {"title": "Tamago rice", "ingredients": [{"name": "egg", "grams": 60}], "steps": ["fry", "serve"], "minutes": 12}
FAKE_KEY = "sk-forge-jacprog-SECRET-abcdefghijklmnop"


def test_jac_run_program_is_captured_into_the_data_dir(_forge_home):
    script = [fake.Reply.ok(json.dumps(RECIPE), usage=(300, 90)), fake.Reply.ok("egg on warm rice\nsteam\nquiet", usage=(50, 12))]
    jac = Path(sys.executable).with_name("jac")
    with fake.FakeOpenAIServer(script) as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": FAKE_KEY,
            "BYLLM_DEFAULT_MODEL": "gpt-4o-mini",
            "FORGE_HOME": str(_forge_home),
        }
        proc = subprocess.run(
            [str(jac), "run", str(support.JACPROG / "recipes.jac")],
            env=env, capture_output=True, text=True, timeout=180,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RECIPE Tamago rice 12" in proc.stdout  # the program's own results are unchanged
    assert "dungeon_forge_capture" not in proc.stderr

    calls = sorted(support.read_calls(_forge_home), key=lambda r: r.created)
    assert [c.site.split("#")[0] for c in calls] == ["recipes:invent_recipe", "recipes:haiku_for"]
    recipe_call, haiku_call = calls
    assert recipe_call.args == {"pantry": ["rice", "egg", "scallion"], "cuisine": "japanese"}
    assert recipe_call.result == RECIPE and recipe_call.valid is True
    assert recipe_call.output_schema["json_schema"]["name"] == "Recipe"
    assert (recipe_call.prompt_tokens, recipe_call.completion_tokens) == (300, 90)
    assert recipe_call.model == "gpt-4o-mini" and recipe_call.backend == "llm"
    assert haiku_call.result.startswith("egg on warm rice") and haiku_call.output_schema is None
    everything = proc.stdout + proc.stderr + "".join(json.dumps(c.messages) + str(c.error) for c in calls)
    assert FAKE_KEY not in everything
