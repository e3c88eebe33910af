"""Tables and logs are written whole or not at all."""

import os
import stat

import pytest

from dfqbench.files import write_whole


def test_a_file_is_replaced_whole_with_the_umasks_permissions(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old")
    old_umask = os.umask(0o022)
    try:
        write_whole(path, "| Method | ± |\n")
    finally:
        os.umask(old_umask)
    assert path.read_text(encoding="utf-8") == "| Method | ± |\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not a temporary file's 0600: a group may read the results
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_litter(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_whole(path, "| a |\n" * 1000 + "\udc80")  # a lone surrogate: fails after the first lines are out
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_failure_names_the_file_not_the_one_written_aside(tmp_path):
    (tmp_path / "table.md").mkdir()  # a folder in the way
    with pytest.raises(IsADirectoryError) as caught:
        write_whole(tmp_path / "table.md", "text")
    assert caught.value.filename == str(tmp_path / "table.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
