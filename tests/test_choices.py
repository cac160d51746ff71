"""The page of choices between the paper's text and the authors' code (docs/choices.md): every row names
both sources, and every named variant of the paper preset is on it."""

from pathlib import Path

from bidl.pipeline.config import load_yaml, variant_names

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "choices.md"


def _rows() -> list[dict[str, str]]:
    lines = [line for line in PAGE.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_every_row_names_the_papers_words_and_the_authors_code():
    rows = _rows()
    assert len(rows) >= 10
    for row in rows:
        assert row["the paper's words"], row["topic"]  # the paper's words, or that it is silent
        code = row["the authors' code"]
        assert code and code != "-", row["topic"]
        assert row["the paper preset runs"] not in ("", "-"), row["topic"]
    assert [int(row["#"]) for row in rows] == list(range(1, len(rows) + 1))


def test_every_named_variant_of_the_paper_preset_is_on_the_page():
    text = PAGE.read_text()
    config = load_yaml(REPO / "config" / "paper.yaml")
    variants = {name.split(".", 1)[1] for name in variant_names(config)}
    variants |= set(config["colearning"].get("variants") or {})
    assert variants, "the paper preset has named variants"
    for variant in sorted(variants):
        assert f"`{variant}`" in text, variant
