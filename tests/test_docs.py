"""The docs site stays in step with the code: every setting and `operator.yml` section is in the
configuration reference, and every link in the README and docs/ leads somewhere real."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields
from pathlib import Path

import pytest

import config
from config import FILE_SECTIONS, Settings
from tests.support.paths import REPO

DOCS = REPO / "docs"
REFERENCE = DOCS / "configuration.md"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])

# config._parse reads Settings.<field> from the variable FIELD (its `value(key)` helper upper-cases
# the key). The exceptions: a field read from a differently named variable, or from operator.yml
# (None): `file` holds every section, `heartbeats` the parsed `heartbeats:` section.
NOT_NAMED_AFTER_THEIR_FIELD: dict[str, str | None] = {
    "authorized": "AUTHORIZED_NUMBERS",
    "file": None,
    "heartbeats": None,
    "integrations": None,
}


def described(name: str) -> bool:
    """A row of its own in one of the reference's tables: | `NAME` | default | meaning |."""
    return re.search(rf"^\| `{re.escape(name)}` \|", REFERENCE.read_text(), re.M) is not None


def section_described(section: str) -> bool:
    """A row of its own in the table of operator.yml sections: | `section` | holds | read |."""
    return described(section)


def variable_of(field: str) -> str | None:
    return NOT_NAMED_AFTER_THEIR_FIELD.get(field, field.upper())


@pytest.mark.parametrize("field", [f.name for f in fields(Settings)])
def test_every_settings_field_is_described_in_the_configuration_reference(field):
    name = variable_of(field)
    if name is None:
        sections = FILE_SECTIONS if field == "file" else (field,)
        assert set(sections) <= set(FILE_SECTIONS)
        assert all(section_described(s) for s in sections), f"Settings.{field}: a section is not described"
        return
    source = Path(config.__file__).read_text()
    # The mapping is the one _parse uses: value("field") or the variable read by name.
    assert f'value("{field}"' in source or f'"{name}"' in source, f"config.py reads {field} from elsewhere"
    assert described(name), f"docs/configuration.md has no row for {name} (Settings.{field})"


def env_example_variables() -> list[str]:
    """Every variable of .env.example, those commented out (`# WEB_CONCURRENCY=2`) included."""
    text = (REPO / ".env.example").read_text()
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M)


@pytest.mark.parametrize("name", env_example_variables())
def test_every_env_example_variable_is_described_in_the_configuration_reference(name):
    assert described(name), f"docs/configuration.md has no row for {name} (.env.example)"


def test_the_commented_out_env_example_variables_are_read_too():
    assert "WEB_CONCURRENCY" in env_example_variables()


def test_the_timezone_setting_is_described_in_the_configuration_reference():
    assert described("TIMEZONE")
    assert "Europe/Berlin" in REFERENCE.read_text()


@pytest.mark.parametrize("section", FILE_SECTIONS)
def test_every_operator_yml_section_is_described_in_the_configuration_reference(section):
    assert section_described(section), f"docs/configuration.md has no row for the {section}: section"


def test_every_section_the_code_reads_is_a_known_operator_yml_section():
    code = [*REPO.glob("*.py")]
    for package in REPO.iterdir():
        if package.is_dir() and (package / "__init__.py").exists() and package.name != "tests":
            code += package.rglob("*.py")
    read = {s for path in code for s in re.findall(r"\bfile\.get\(\"(\w+)\"\)", path.read_text())}
    assert read and read <= set(FILE_SECTIONS), read - set(FILE_SECTIONS)


FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(path: Path) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked (links stay)."""
    kept, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return kept


def slug(heading: str) -> str:
    """MkDocs' (Python-Markdown toc) anchor: the heading's text, lower-case, punctuation removed,
    spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    return {slug(m[2]) for line in prose(path) if (m := HEADING.match(line))}


def links(path: Path) -> list[str]:
    found = []
    for line in prose(path):
        found += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return found


def test_the_slug_rules_match_mkdocs():
    assert slug("Heartbeats (dead man's switch)") == "heartbeats-dead-mans-switch"
    assert slug("What `/sms` accepts") == "what-sms-accepts"
    assert slug("operator.yml") == "operatoryml"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_in_the_readme_and_the_docs_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"(https?|mailto):", target):
            continue  # not fetched
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.is_file():
            broken.append(f"{target}: no file {file}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_docs_have_links_to_check():
    assert len(links(DOCS / "index.md")) >= 10 and links(REPO / "README.md")


def test_every_docs_page_is_in_the_site_navigation():
    nav = (REPO / "mkdocs.yml").read_text()
    missing = [str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if str(p.relative_to(DOCS)) not in nav]
    assert not missing


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
