"""Tables in Markdown, CSV and LaTeX from the same rows."""

import csv
import io

import pytest

from bidl.pipeline.tables import latex_escape, to_csv, to_frame, to_latex, write_table

ROWS = [
    {"experiment": "dvs128_asm", "top-1 (%)": "89.6", "note": "a & b, 50% #1"},
    {"experiment": "imdb", "top-1 (%)": "99.7", "note": "~x^2 {y} \\z $"},
]
COLUMNS = ("experiment", "top-1 (%)", "note")


def test_latex_escapes_every_special_character_and_code_spans():
    assert latex_escape("a & b, 50% #1") == r"a \& b, 50\% \#1"
    assert latex_escape("~x^2 {y} \\z $") == (
        r"\textasciitilde{}x\textasciicircum{}2 \{y\} \textbackslash{}z \$"
    )
    assert latex_escape("preset `default_1`") == r"preset \texttt{default\_1}"


def test_to_latex_right_aligns_numeric_columns_and_captions_title_and_notes():
    text = to_latex("Table 2 (preset `default`)", COLUMNS, ROWS, ["Config: `default`."], label="tab:t2")
    assert r"\begin{tabular}{lrl}" in text
    assert r"\caption{Table 2 (preset \texttt{default}). Config: \texttt{default}.}" in text
    assert r"\label{tab:t2}" in text
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert body[0] == r"dvs128\_asm & 89.6 & a \& b, 50\% \#1 \\"
    assert len(body) == 2


def test_write_table_writes_the_three_formats_from_the_same_rows(tmp_path):
    paths = write_table(tmp_path / "t", "T", COLUMNS, ROWS, ["Data: stand-in."])
    assert [p.name for p in paths] == ["t.md", "t.csv", "t.tex"]
    assert list(csv.DictReader((tmp_path / "t.csv").open())) == ROWS
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.startswith("# T\n\nData: stand-in.\n") and "| imdb | 99.7 |" in markdown
    assert "stand-in" in (tmp_path / "t.tex").read_text()


def test_write_table_names_a_missing_column_and_writes_nothing(tmp_path):
    with pytest.raises(KeyError, match="note"):
        write_table(tmp_path / "t", "T", COLUMNS, [{"experiment": "x", "top-1 (%)": "1"}])
    assert list(tmp_path.iterdir()) == []


def test_the_csv_from_pandas_equals_the_csv_modules_and_reads_back_as_written():
    """pandas writes the CSV: byte for byte what the csv module writes for awkward cells (none, numbers,
    quotes, commas, a line break, an empty string), and pandas reads the formatted strings back unchanged."""
    columns = ["a", "b", "c", "d", "e", "f", "top-1"]
    rows = [{"a": None, "b": 1, "c": 0.1, "d": 'say "hi", then', "e": "x\ny", "f": "", "top-1": "61.0"}]
    reference = io.StringIO()
    writer = csv.DictWriter(reference, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = to_csv(columns, rows)
    assert text == reference.getvalue()
    import pandas as pd

    back = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(back.columns) == columns and back.loc[0, "top-1"] == "61.0" and back.loc[0, "e"] == "x\ny"
    assert list(to_frame(columns, rows).columns) == columns
