"""The same card-JSON harness driven by hypothesis instead of atheris, to compare the two engines here.

    PYTHONPATH=/tmp/before/src:. python bench/fuzz_hypothesis.py --seconds 300   # the code before the fixes

hypothesis generates cards from a strategy (a V1/V2/V3 skeleton whose fields, lorebook entries and
extensions take arbitrary JSON values) without coverage feedback; bench/fuzz_cards.py's atheris run
mutates real card files guided by coverage. Both feed tests/card_fuzz.check ("json" reader), and both
count crash classes the same way. Prints one JSON line: examples, seconds, crash classes, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="stop after this long")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from tests.card_fuzz import Violation, check

    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                          max_leaves=12)
    entry = st.fixed_dictionaries({}, optional={k: values for k in (
        "keys", "content", "extensions", "enabled", "insertion_order", "secondary_keys", "selective", "constant",
        "id", "priority", "position", "case_sensitive", "use_regex", "name", "comment")})
    book = st.fixed_dictionaries({"entries": st.lists(entry, max_size=4) | values},
                                 optional={k: values for k in ("extensions", "scan_depth", "token_budget", "name")})
    fields = ("name", "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes", "tags",
              "alternate_greetings", "creator", "extensions", "nickname", "assets", "group_only_greetings")
    data = st.fixed_dictionaries({"name": st.text(min_size=1) | values},
                                 optional={**{k: values for k in fields[1:]}, "character_book": book | values})
    card = st.one_of(data, st.builds(lambda d, spec, version: {"spec": spec, "spec_version": version, "data": d},
                                     data, st.sampled_from(["chara_card_v2", "chara_card_v3"]), values))
    found: dict[str, str] = {}
    count = [0]
    workdir = Path(tempfile.mkdtemp(prefix="rolecraft-hypothesis-"))
    deadline = time.perf_counter() + args.seconds

    class TimeUp(Exception):
        pass

    @settings(max_examples=10**9, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(card)
    def one(value: dict) -> None:
        if time.perf_counter() > deadline:
            raise TimeUp  # hypothesis reports it as a failure: the way to end a run on time
        count[0] += 1
        try:
            check("json", json.dumps(value).encode(), workdir)
        except Violation as v:
            found.setdefault(v.key, str(v))

    started = time.perf_counter()
    try:
        one()
    except TimeUp:
        pass
    seconds = time.perf_counter() - started
    shutil.rmtree(workdir, ignore_errors=True)
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"engine": "hypothesis", "reader": "json", "examples": count[0], "seconds": round(seconds, 1),
                      "peak_rss_mb": int(peak.split()[1]) // 1024, "crash_classes": sorted(found)}))


if __name__ == "__main__":
    main()
