"""Benchmarks write their measured README sections between markers, in place, atomically; no markers, no write."""

from __future__ import annotations

import pytest

from benchmarks.readme_sections import read_section, write_section


def test_a_section_is_replaced_in_place_and_read_back(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n## One\n<!-- a:start -->\nold\n<!-- a:end -->\n\n## Two\ntext\n")
    write_section(readme, "a", "new table")
    assert readme.read_text() == "# B\n\n## One\n<!-- a:start -->\nnew table\n<!-- a:end -->\n\n## Two\ntext\n"
    assert read_section(readme, "a") == "\nnew table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]  # no temp file left


@pytest.mark.parametrize("text", ["# B\n", "<!-- a:end -->\n<!-- a:start -->\n", "<!-- b:start -->\n<!-- b:end -->\n"])
def test_without_the_markers_nothing_is_written_and_the_error_is_one_line_exit_2(tmp_path, capsys, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    for call in (lambda: write_section(readme, "a", "x"), lambda: read_section(readme, "a")):
        with pytest.raises(SystemExit) as exc:
            call()
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1
        assert err[0] == f"error: {readme}: a: expected the markers <!-- a:start --> and <!-- a:end -->, found none"
    assert readme.read_text() == text
