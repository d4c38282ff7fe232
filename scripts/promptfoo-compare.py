#!/usr/bin/env python3
"""Runs promptfoo itself beside promptlab on the promptfoo configs under tests/promptfoo
and prints where their verdicts differ, with the agreement of assertion and test verdicts.

    scripts/promptfoo-compare.py              # compare with the recorded fixtures
    scripts/promptfoo-compare.py --record     # run promptfoo and record its verdicts
    scripts/promptfoo-compare.py --promptfoo  # run promptfoo now instead of the fixtures

Each config's `expected.json` holds promptfoo's verdicts: for every (test, column) cell,
whether the test passed and each assertion's verdict. The CI test
(tests/integration/promptfoo_dialect.rs) checks promptlab against those files without
promptfoo. promptfoo 0.118 is looked for in $PROMPTFOO_DIR (default
/root/.cache/promptlab/promptfoo, see docs/src/promptfoo.md for installing it).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "promptfoo"
PROMPTFOO_DIR = Path(os.environ.get("PROMPTFOO_DIR", "/root/.cache/promptlab/promptfoo"))


def promptfoo_verdicts(config: Path) -> dict:
    config = config.resolve()
    """{"cells": [{"test", "column", "pass", "assertions": [bool]}]} from a promptfoo run."""
    binary = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
    if not binary.exists():
        sys.exit(f"promptfoo not found at {binary}: install promptfoo@0.118 there")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = dict(os.environ)
        env.update(
            PROMPTFOO_DISABLE_TELEMETRY="1",
            PROMPTFOO_DISABLE_UPDATE="1",
            PROMPTFOO_DISABLE_SHARING="1",
            PROMPTFOO_CONFIG_DIR=str(Path(tmp) / "config"),
        )
        run = subprocess.run(
            [str(binary), "eval", "-c", str(config), "--no-cache", "-o", str(out),
             "--no-progress-bar", "--no-table"],
            cwd=config.parent, env=env, capture_output=True, text=True, timeout=300,
        )
        if not out.exists():
            raise RuntimeError(f"promptfoo wrote no results:\n{run.stdout}\n{run.stderr}")
        results = json.loads(out.read_text())["results"]["results"]
    cells = []
    for r in results:
        grading = r.get("gradingResult") or {}
        components = grading.get("componentResults") or []
        cells.append({
            "test": r["testIdx"],
            "column": r["promptIdx"],
            "pass": bool(r.get("success")),
            "assertions": [bool(c.get("pass")) for c in components],
        })
    cells.sort(key=lambda c: (c["test"], c["column"]))
    return {"cells": cells}


def promptlab_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "promptlab"


def promptlab_verdicts(config: Path) -> dict:
    config = config.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        run = subprocess.run(
            [str(promptlab_binary()), "eval", str(config), "-o", str(report)],
            cwd=tmp, capture_output=True, text=True, timeout=300,
        )
        if not report.exists():
            return {"error": (run.stdout + run.stderr).strip()[-600:], "cells": []}
        data = json.loads(report.read_text())
    cells = [
        {
            "test": c["case"],
            "column": c["column"],
            "pass": bool(c["passed"]),
            "assertions": [bool(a["passed"]) for a in c.get("assertions", [])],
        }
        for c in data["cells"]
    ]
    cells.sort(key=lambda c: (c["test"], c["column"]))
    return {"cells": cells}


def compare(name: str, expected: dict, got: dict, totals: dict) -> None:
    mine = {(c["test"], c["column"]): c for c in got["cells"]}
    if "error" in got:
        print(f"{name}: promptlab refused it: {got['error']}")
    for cell in expected["cells"]:
        key = (cell["test"], cell["column"])
        other = mine.get(key)
        totals["tests"] += 1
        totals["assertions"] += len(cell["assertions"])
        if other is None:
            print(f"{name}: test {key[0]} column {key[1]}: missing in promptlab")
            continue
        if other["pass"] == cell["pass"]:
            totals["tests_agree"] += 1
        else:
            print(f"{name}: test {key[0]} column {key[1]}: promptfoo "
                  f"{'passes' if cell['pass'] else 'fails'}, promptlab does not agree")
        for i, verdict in enumerate(cell["assertions"]):
            theirs = other["assertions"][i] if i < len(other["assertions"]) else None
            if theirs == verdict:
                totals["assertions_agree"] += 1
            else:
                print(f"{name}: test {key[0]} column {key[1]} assert[{i}]: promptfoo {verdict}, "
                      f"promptlab {theirs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record promptfoo's verdicts")
    parser.add_argument("--promptfoo", action="store_true", help="run promptfoo, not fixtures")
    parser.add_argument("configs", nargs="*", help="config folders (default: all)")
    args = parser.parse_args()
    folders = [Path(c).resolve() for c in args.configs] or sorted(
        p.parent for p in CONFIGS.glob("*/promptfooconfig.yaml"))
    totals = dict(tests=0, tests_agree=0, assertions=0, assertions_agree=0)
    for folder in folders:
        config = folder / "promptfooconfig.yaml"
        fixture = folder / "expected.json"
        if args.record or args.promptfoo:
            expected = promptfoo_verdicts(config)
            if args.record:
                fixture.write_text(json.dumps(expected, indent=1) + "\n")
        else:
            expected = json.loads(fixture.read_text())
        compare(folder.name, expected, promptlab_verdicts(config), totals)
    for what in ("assertions", "tests"):
        n, ok = totals[what], totals[f"{what}_agree"]
        print(f"{what}: {ok} of {n} verdicts agree ({100 * ok / max(n, 1):.1f}%)")


if __name__ == "__main__":
    main()
