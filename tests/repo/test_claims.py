"""docs/claims.md names, for each claim of the README and docs/behaviour.md, the tests that prove
it. A renamed or deleted test would leave a claim pointing at nothing: every name it gives must be
a test function (or fixture) of the file it names, and every ignored "finding" test it names must
still be ignored with a `finding:` reason (un-ignoring one means the row's status changes too)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLAIMS = REPO / "docs" / "claims.md"
# `kind/name::` -> the file it means.
PREFIXES = [
    (re.compile(r"e2e/([a-z0-9_]+)::"), lambda m: REPO / "tests" / "e2e" / f"{m.group(1)}.py"),
    (re.compile(r"src/([a-z0-9_/]+)::"), lambda m: REPO / "src" / f"{m.group(1)}.rs"),
    (re.compile(r"cli::"), lambda m: REPO / "cli" / "tests" / "cli.rs"),
    (re.compile(r"([a-z0-9_]+)::"), lambda m: REPO / "tests" / f"{m.group(1)}.rs"),
]


def references():
    """(row, file, test name) for every name in the table cells that cite tests."""
    for line in CLAIMS.read_text().splitlines():
        cells = line.split("|")
        if not line.startswith("|") or line.startswith("|---") or len(cells) < 4:
            continue
        for group in cells[2].split(";"):
            group = group.strip()
            for pattern, path_of in PREFIXES:
                m = pattern.match(group)
                if m:
                    for name in group[m.end():].split(","):
                        name = re.sub(r"\s*\(.*", "", name).strip()
                        if re.fullmatch(r"[a-z0-9_]+", name):
                            yield line, path_of(m), name
                    break


def test_every_test_claims_md_names_exists():
    refs = list(references())
    assert len(refs) > 200, f"only {len(refs)} test names read from {CLAIMS}"
    missing = []
    for line, path, name in refs:
        if not path.exists() or not re.search(rf"\b(?:fn|def) {name}\b", path.read_text()):
            missing.append(f"{path.relative_to(REPO)}::{name} (row: {line[:80]})")
    assert not missing, "docs/claims.md names tests that do not exist:\n" + "\n".join(missing)


def test_findings_are_the_ignored_tests():
    for line, path, name in references():
        if line.rstrip().endswith("| finding |"):
            text = path.read_text()
            m = re.search(rf"#\[ignore = \"finding: [^\"]+\"\]\s*fn {name}\b", text)
            assert m, f"{path.relative_to(REPO)}::{name} is marked finding in docs/claims.md but not ignored as one"
