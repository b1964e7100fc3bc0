"""Rules files that would cost unbounded time or memory, or reach outside the
pack: each is an error at its file:line:col, found within 2 s and 100 MB.

Each case runs ``lint`` in a fresh process, which reports the seconds and the
growth of its peak resident memory over what it had before reading the pack.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.packs.rulefiles import MAX_YAML_BYTES, default_rules_dir

LAUGHS = "\n".join(['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
                   + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"
RULE = """
- rule: fin_hostile
  title: hostile
  risk: FIN-01
  when: {when}
  message: "{message}"
"""
BIG = "1" + "0" * 400

# name -> (file to write, its text, the file:line:col and words the error must have)
CASES = {
    "billion laughs": ("hostile.yaml", LAUGHS, "hostile.yaml:1:4", "anchor '&a'"),
    "a loop of aliases": ("hostile.yaml", "- &a [*a]\n", "hostile.yaml:1:3", "anchor"),
    "an alias as a key": ("hostile.yaml", "x: &k key\n*k : 1\n", "hostile.yaml:1:4", "anchor"),
    "laughs in the risk list": ("risk_list.yaml", LAUGHS, "risk_list.yaml:1:4", "anchor"),
    "nesting 999 deep": ("hostile.yaml", "[" * 999 + "]" * 999 + "\n", "hostile.yaml:1:", "nested deeper"),
    "mappings 900 deep": ("hostile.yaml", "{a: " * 900 + "1" + "}" * 900 + "\n", "hostile.yaml:1:", "nested deeper"),
    "400 digits in a rule": ("hostile.yaml", RULE.format(when=f"amount > {BIG}", message="{org_id}"),
                             "hostile.yaml:5:", "out of range"),
    "400 digits as a value": ("hostile.yaml", f"- rule: fin_x\n  title: {BIG}\n", "hostile.yaml:2:10", "out of range"),
    "an infinite parameter": ("params.yaml", "  no_contract_payment_limit: .inf\n", "params.yaml:", "not finite"),
    "a width of 20,000,000": ("hostile.yaml", RULE.format(when="amount > 1", message="{amount:>20000000}"),
                              "hostile.yaml:6:", "too wide"),
    "a precision of 999,999,999": ("hostile.yaml", RULE.format(when="amount > 1", message="{amount:.999999999f}"),
                                   "hostile.yaml:6:", "too precise"),
    "a spec of 5,000 digits": ("hostile.yaml", RULE.format(when="amount > 1", message="{amount:" + "9" * 5000 + "}"),
                               "hostile.yaml:6:", "too wide"),
    "a spec outside the language": ("hostile.yaml", RULE.format(when="amount > 1", message="{amount:%Y-%m}"),
                                    "hostile.yaml:6:", "not one this language allows"),
    "a file of 5 MB": ("hostile.yaml", "# " + "x" * (5 * MAX_YAML_BYTES) + "\n", "hostile.yaml:1:1", "at most"),
}

PROBE = """
import json, resource, sys, time
from monitor.packs.rulefiles import lint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
pack, problems = lint(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started,
                  "grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ok": pack is not None,
                  "errors": [str(p) for p in problems if p.level == "error"]}))
"""


def lint_in_a_process(folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_rules_file_is_an_error_found_cheaply(tmp_path, name):
    file, content, where, words = CASES[name]
    folder = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), folder)
    target = folder / file
    if file == "params.yaml":  # keep the other parameters: only the hostile one is wrong
        lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith("  no_contract_payment_limit:"))
        lines[at] = content
        content = "".join(lines)
        where = f"params.yaml:{at + 1}:30"
    target.write_text(content, encoding="utf-8")
    result = lint_in_a_process(folder)
    assert not result["ok"]
    assert any(where in e and words in e for e in result["errors"]), result["errors"]
    assert result["seconds"] < 2.0, result
    assert result["grew_mb"] < 100, result


def test_a_model_file_outside_the_pack_is_refused(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), folder)
    secret = tmp_path / "elsewhere.npz"
    shutil.copy(next((folder / "models").glob("*.npz")), secret)  # a valid model, but not the pack's
    detectors = folder / "detectors.yaml"
    text = detectors.read_text(encoding="utf-8")
    for outside in ("../elsewhere.npz", str(secret), "models/../../elsewhere.npz"):
        detectors.write_text(text.replace("model_file: models/", f"model_file: {outside} #", 1), encoding="utf-8")
        result = lint_in_a_process(folder)
        assert not result["ok"], outside
        assert any("outside the rules folder" in e for e in result["errors"]), result["errors"]
