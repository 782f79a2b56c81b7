"""`python -m generator.sites` shows per site how often its student's answers were the teacher's."""

from __future__ import annotations

import json

from tests.fakes import jac_support as support  # noqa: E402
from generator import sites  # noqa: E402
from generator.store.records import CallRecord  # noqa: E402
from generator.store import Store  # noqa: E402

bounty = support.load_fake("bounty_teacher")


def test_sites_shows_shadow_and_spot_check_agreement_per_site(_forge_home, capsys):
    site = bounty.site()
    with Store.open(_forge_home / "forge.db") as store:
        for i, args in enumerate(bounty.calls(10)):
            right = bounty.bounty(args["monster"], args["town"])
            teacher = CallRecord(site=site, backend="llm", args=args, output_schema=bounty.OUTPUT_SCHEMA,
                                 result=right, valid=True, served=True)
            student = right if i < 7 else {**right, "band": "deadly" if right["band"] != "deadly" else "low"}
            store.record_calls([teacher, CallRecord(site=site, backend="student", model_version="v0001", args=args,
                                                    output_schema=bounty.OUTPUT_SCHEMA, result=student, valid=True,
                                                    request_id=teacher.call_id)])
        store.set_site_state(site, "shadow", "v0001", {"reason": "test"})
    assert sites.main(["--json", "--data-dir", str(_forge_home)]) == 0
    (row,) = json.loads(capsys.readouterr().out)["sites"]
    a = row["agreement"]
    assert a["version"] == "v0001" and a["judge"]["mode"] == "fields"
    assert (a["shadow"]["n"], a["shadow"]["agree"], a["shadow"]["weakest_field"]) == (10, 7, "band")
    assert a["shadow"]["fields"]["title"]["rate"] == 1.0 and 0.0 < a["shadow"]["lower95"] < 0.7
    assert sites.main(["--data-dir", str(_forge_home)]) == 0
    table = capsys.readouterr().out
    assert "agree" in table.splitlines()[0] and "70% of 10" in table
