"""The repository stands alone: a user's clone has nothing beside it.

Why: the team works with a read-only kit in a folder beside the repository; a test or script that
reads it passes on the team's machines and in CI, and fails on every user's clone (this happened:
14 failures and 21 errors on a clean clone). Everything the repository needs lives inside it.
"""

import re
import subprocess

from tests.conftest import REPO

# Spelled in pieces so this file does not match itself.
SIBLING = re.compile(r"\.\./" + "shared" + r"|(?:parent|parents\[\d+\])\s*/\s*['\"]" + "shared" + r"['\"]")
SKIP_DIRS = {".git", ".venv", ".state", "__pycache__", ".pytest_cache", ".terraform", ".ruff_cache", ".mypy_cache"}


def _repository_files():
    """The tracked files when git knows the tree, else every file under the repository."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        names = [n for n in listed.decode().split("\0") if n]
        if names:
            return [REPO / n for n in names]
    except (OSError, subprocess.CalledProcessError):
        pass
    return [p for p in REPO.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(REPO).parts)]


def test_the_pattern_sees_a_sibling_reference():
    """The check can fail: each way of reaching the kit is seen, the repository's own shared/ is not."""
    assert SIBLING.search('open("../' + 'shared/data/real/x.csv")')
    assert SIBLING.search("REPO.parent / " + '"shared" / "data"')
    assert SIBLING.search("Path(__file__).parents[2] / " + "'shared'")
    assert not SIBLING.search('REPO / "shared" / "settings.py"')
    assert not SIBLING.search("from shared.core import settings")


def test_nothing_reaches_outside_the_repository():
    files = _repository_files()
    assert len(files) > 50, "the file listing found too little to be the repository"
    offenders = []
    for path in files:
        if not path.exists() or path.suffix in {".gz", ".parquet", ".png"}:
            continue
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if SIBLING.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "files reach for a folder beside the repository:\n" + "\n".join(offenders)


def test_test_data_has_its_sources():
    """Every file under tests/data is named in its SOURCES.md, with an origin."""
    data = REPO / "tests" / "data"
    sources = (data / "SOURCES.md").read_text()
    missing = [p.name for p in data.iterdir() if p.name != "SOURCES.md" and p.name not in sources]
    assert not missing, f"tests/data files without a line in SOURCES.md: {missing}"
