"""The docs site and the README's way into it.

`mkdocs build --strict` (mkdocs.yml's `validation`: every link, anchor and page checked)
must pass; a broken link or a page left out of the nav must fail it (checked on a copy);
the README stays short and its relative links lead to files and headings that exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
    )


def test_site_builds_strict(tmp_path: Path) -> None:
    out = mkdocs_build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stdout + out.stderr
    pages = sorted(p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        html = tmp_path / "site" / page.with_suffix("") / "index.html"
        if page.name == "index.md":
            html = tmp_path / "site" / page.parent / "index.html"
        assert html.is_file(), f"{page} was not built"


@pytest.mark.parametrize(
    "break_it, expect",
    [
        (lambda d: (d / "orphan.md").write_text("# Orphan\n"), "orphan.md"),
        (
            lambda d: (d / "limitations.md").write_text(
                (d / "limitations.md").read_text() + "\n[gone](no-such-page.md)\n"
            ),
            "no-such-page.md",
        ),
        (
            lambda d: (d / "limitations.md").write_text(
                (d / "limitations.md").read_text() + "\n[gone](aws.md#no-such-heading)\n"
            ),
            "no-such-heading",
        ),
    ],
    ids=["orphan-page", "broken-link", "broken-anchor"],
)
def test_strict_build_refuses(tmp_path: Path, break_it, expect: str) -> None:
    """The strict build is a check that can fail: a page outside the nav, a link to no
    page and a link to no heading each fail it, naming what is wrong."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    break_it(project / "docs")
    out = mkdocs_build(project, tmp_path / "site")
    assert out.returncode != 0, out.stdout + out.stderr
    assert expect in out.stdout + out.stderr


def _headings(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.S)
    found = set()
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if m:
            found.add(slugify(m.group(1), "-"))
    return found


def test_readme_is_short_and_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    opening = "\n".join(lines[:8])
    assert "bash scripts/demo.sh" in opening and "bash scripts/test.sh" in opening


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z]+://|mailto:", t)]
    assert any(t.startswith("docs/") for t in targets), "README links to no docs page"
    for target in targets:
        path, _, anchor = target.partition("#")
        file = ROOT / path if path else ROOT / "README.md"
        assert file.exists(), f"README links to {target}: {file} does not exist"
        if anchor:
            assert anchor in _headings(file), f"README links to {target}: no such heading"


def test_every_docs_page_is_linked_from_readme() -> None:
    """The README's map covers the whole site."""
    text = (ROOT / "README.md").read_text()
    linked = {t.partition("#")[0] for t in LINK.findall(text)}
    pages = {f"docs/{p.relative_to(ROOT / 'docs')}" for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= linked, f"not in README's map: {sorted(pages - linked)}"
