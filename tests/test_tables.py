"""The one Markdown table writer."""

from lls.tables import markdown_table


def test_markdown_table_rows_and_separator():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, "y"]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | y |"
    assert markdown_table(["only"], []) == "| only |\n|---|"
