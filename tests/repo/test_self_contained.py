"""The repository is self-contained: no test, tool, script or Makefile rule reads a path outside
it. A user's clone has nothing beside it (no `shared/` folder, no workplace layout), and CI runs
on a machine that may have such things, so only this check can see the mistake.

Each finding names the file and line. What counts as "outside":
- the folder `shared/` next to the clone, however spelled (a `..` step to it, a parent path
  joined with "shared", a join of `".."` and `"shared"`, ...);
- a relative path whose `..` steps climb above the repository root, read from the file's own
  folder and from the root (where make and the tests run);
- `Path(__file__).parents[N]` or `.parent` chains and `REPO.parent` that leave the repository;
- absolute paths into this workplace or a user's home (`/work/`, `/home/`, `/root/`).
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve()

# Prose and lockfiles are not code; everything else is checked.
SKIP_SUFFIXES = {".md", ".lock", ".png", ".jpg", ".wasm"}
SKIP_NAMES = {"package-lock.json"}
SKIP_DIRS = {".git", "target", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".state"}

SHARED = [
    re.compile(r"(?:\.\./)+shared\b"),
    re.compile(r"\bparents?\b[^\n]*[\"']shared[\"']"),
    re.compile(r"[\"']\.\.[\"'][^\n]*[\"']shared[\"']"),
    re.compile(r"\bshared/(?:crds|reference|design\.md|hooks)\b"),
]
WORKPLACE = re.compile(r"(?<![\w.$-])/(?:work|home|root)/")
DOTDOT_PATH = re.compile(r"(?<![\w.])((?:\.\./)+)")
DOTDOT_ARGS = re.compile(r"[\"']\.\.[\"']")
PARENTS_INDEX = re.compile(r"__file__[^\n]*\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)?(?:\.resolve\(\))?((?:\.parent\b)+)")
ROOT_PARENT = re.compile(r"\b(?:REPO|ROOT|REPO_ROOT|repo_root|repo)\b(?:\.parent\b|\s*/\s*[\"']\.\.[\"'])")


def tracked_files(root):
    """Files of the working tree that git would commit (tracked or new), else every file."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=30).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [os.path.relpath(os.path.join(d, f), root) for d, dirs, files in os.walk(root)
                 for f in files if not (dirs.__setitem__(slice(None), [x for x in dirs if x not in SKIP_DIRS]))]
    for name in names:
        path = Path(root) / name
        if path.suffix in SKIP_SUFFIXES or path.name in SKIP_NAMES or not path.is_file():
            continue
        if set(Path(name).parts) & SKIP_DIRS:
            continue
        yield path


def _escapes(root, start, up):
    """Does climbing `up` folders from `start` leave `root`?"""
    return len(start.relative_to(root).parts) < up


def findings(root, path):
    """(line number, reason) for each line of `path` that reaches outside `root`."""
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return []
    root = Path(root)
    folder = path.parent
    depth = len(folder.relative_to(root).parts)  # folders between the root and the file
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        reasons = []
        if any(p.search(line) for p in SHARED):
            reasons.append("refers to the shared/ folder beside the clone")
        if WORKPLACE.search(line):
            reasons.append("absolute path into a workplace or home folder")
        for m in DOTDOT_PATH.finditer(line):
            up = m.group(1).count("../")
            if _escapes(root, folder, up) and _escapes(root, root, up):
                reasons.append(f"{m.group(1)!r} climbs above the repository")
        args = len(DOTDOT_ARGS.findall(line))
        if args and "__file__" in line and args > depth:
            reasons.append(f"{args} '..' steps from {path.relative_to(root)} climb above the repository")
        for m in PARENTS_INDEX.finditer(line):
            if int(m.group(1)) > depth:
                reasons.append(f"parents[{m.group(1)}] of {path.relative_to(root)} is outside the repository")
        for m in PARENT_CHAIN.finditer(line):
            if m.group(1).count(".parent") > depth + 1:
                reasons.append(f"{m.group(1)} of __file__ is outside the repository")
        if ROOT_PARENT.search(line):
            reasons.append("the repository root's parent")
        out += [(no, r) for r in reasons]
    return out


def scan(root):
    return [f"{p.relative_to(root)}:{no}: {reason}" for p in tracked_files(root) if p.resolve() != SELF
            for no, reason in findings(root, p)]


def test_nothing_reads_outside_the_repository():
    checked = list(tracked_files(REPO))
    assert len(checked) > 50, f"only {len(checked)} files found under {REPO}: the scan itself is broken"
    problems = scan(REPO)
    assert not problems, "paths outside the repository (a user's clone has nothing beside it):\n" + "\n".join(problems)


# The examples spell the outside folder in pieces, so that this file itself names no such path.
UP_SHARED = "../" + "shared"

BAD = {
    "tests/e2e/test_x.py": [
        ('CRDS = REPO.parent' + ' / "shared" / "crds"', "shared/"),
        ('ROOT = Path(__file__).resolve().parents[3]', "parents[3]"),
        ('up = Path(__file__).parent.parent.parent.parent', "of __file__"),
        ('p = os.path.join(os.path.dirname(__file__), "..", "..", "..")', "'..' steps"),
        ('open("/work/shared/design.md")', "workplace"),
        ('sibling = REPO.parent', "root's parent"),
    ],
    "Makefile": [
        (f"\tpython3 {UP_SHARED}/tool.py", "shared/"),
        ("\tcp ../other/x .", "climbs above"),
    ],
    "src/lib.rs": [(f'const D: &str = include_str!("../{UP_SHARED}/crds/istio-crds.yaml");', "shared/")],
}
GOOD = {
    "tests/e2e/test_y.py": ['REPO = Path(__file__).resolve().parents[2]',
                            'HERE = os.path.join(os.path.dirname(__file__), "..", "..")',
                            'shared_keys = {"a": 1}  # shared by all tests', 'open("/etc/envoy/envoy.yaml")'],
    "tools/stack/x.py": ['from ..procs import free_port', 'x = Path(__file__).parent.parent.parent'],
    "src/jwt/x.rs": ['use super::super::keys;', 'let p = "../README.md";'],
}


def _write(root, files):
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(line if isinstance(line, str) else line[0] for line in lines) + "\n")


def test_the_guard_names_file_and_line_of_each_escape(tmp_path):
    _write(tmp_path, BAD)
    _write(tmp_path, GOOD)
    problems = scan(tmp_path)
    for name, lines in BAD.items():
        for no, (line, why) in enumerate(lines, 1):
            hits = [p for p in problems if p.startswith(f"{name}:{no}: ")]
            assert hits and any(why in h for h in hits), f"{name}:{no} {line!r} not flagged ({why}): {problems}"
    flagged_good = [p for p in problems if p.split(":")[0] in GOOD]
    assert not flagged_good, flagged_good


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_guard_fails_the_run(tmp_path, name):
    _write(tmp_path, {name: BAD[name]})
    assert scan(tmp_path), f"{name} was not flagged"
