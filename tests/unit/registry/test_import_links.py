"""No link in a competition folder is ever followed on import, at any level (issue 16, item 7).

A competition folder whose description.md linked to /etc/shadow once imported as prepared
and served the host file to labs. Each case here links one file or folder the importers read
to a secret outside the folder, and checks the import is refused without quoting the secret.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from services.common.errors import InvalidArgumentError, NotFoundError
from services.registry.importers.install import ImportStatus
from services.registry.importers.mlebench import import_mlebench
from services.registry.importers.own_format import import_competition, validate_competition
from tests.fixtures.registry_trees import build_mlebench_tree, build_own_competition

SECRET = "root:SECRET-HASH-do-not-serve:19000:0:99999:7:::\n"


def _replace_with_link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.copytree(path, target, dirs_exist_ok=True)
        shutil.rmtree(path)
    else:
        path.unlink()
    os.symlink(target, path)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def _refusal(folder: Path) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_competition(folder)
    text = caught.value.message + " ".join(v.description for v in caught.value.violations)
    assert "SECRET" not in text
    return text


@pytest.mark.parametrize(
    "name", ["description.md", "description_obfuscated.md", "competition.yaml", "leaderboard.csv"]
)
def test_own_format_linked_file_is_refused(tmp_path: Path, secret: Path, name: str) -> None:
    folder = build_own_competition(tmp_path)
    if name == "description_obfuscated.md":
        (folder / name).write_text("obfuscated")
    # A link to a file the importer would accept, and to a secret it would happily serve.
    if name != "description.md":
        secret.write_text((folder / name).read_text() + "\n# " + SECRET)
    _replace_with_link(folder / name, secret)
    assert "symbolic link" in _refusal(folder)


@pytest.mark.parametrize("link", ["public", "private", "public/sub", "private/answers.csv"])
def test_own_format_linked_folder_or_data_file_is_refused(
    registry, tmp_path: Path, link: str
) -> None:
    folder = build_own_competition(tmp_path)
    if link == "public/sub":
        (folder / "public" / "sub").mkdir()
        (folder / "public" / "sub" / "extra.csv").write_text("a\n1\n")
    _replace_with_link(folder / link, tmp_path / "outside-target")
    with pytest.raises(InvalidArgumentError) as caught:
        import_competition(registry.installer, folder)
    assert "symbolic link" in caught.value.message + str(caught.value.violations)
    with pytest.raises(NotFoundError):
        registry.core.get_competition("own-comp")


def test_own_format_link_inside_the_folder_is_refused_too(registry, tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path)
    os.symlink(folder / "public" / "train.csv", folder / "public" / "copy.csv")
    with pytest.raises(InvalidArgumentError, match=r"public/copy\.csv is a symbolic link"):
        import_competition(registry.installer, folder)


def test_own_format_binary_files_get_a_clean_error(tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path)
    (folder / "description.md").write_bytes(b"\xff\xfe\x00bad")
    (folder / "leaderboard.csv").write_bytes(b"score\n\xff\n")
    text = _refusal(folder)
    assert "description.md is not UTF-8" in text and "not UTF-8 text" in text
    (folder / "competition.yaml").write_bytes(b"\x80\x81")
    assert "competition.yaml is not UTF-8" in _refusal(folder)


@pytest.mark.parametrize(
    "relative",
    [
        "description.md",
        "config.yaml",
        "leaderboard.csv",
        "checksums.yaml",
        "description_obfuscated.md",
        ".",  # the competition's folder itself
    ],
)
def test_mlebench_linked_file_fails_the_competition(
    registry, tmp_path: Path, secret: Path, relative: str
) -> None:
    tree = build_mlebench_tree(tmp_path)
    folder = tree.competition_dir("alpha-cls")
    if relative == "description_obfuscated.md":
        (folder / relative).write_text("obfuscated")
    path = folder / relative if relative != "." else folder
    if relative == ".":
        _replace_with_link(path, tmp_path / "outside" / "alpha-cls")
    else:
        secret.write_text((path.read_text() if path.exists() else "") + "\n" + SECRET)
        _replace_with_link(path, secret)
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    [result] = report.results
    assert result.status is ImportStatus.FAILED, result
    assert "symbolic link" in result.error and "SECRET" not in result.error
    with pytest.raises(NotFoundError):
        registry.core.get_competition("alpha-cls")


@pytest.mark.parametrize("link", ["prepared", "prepared/public", "prepared/private"])
def test_mlebench_linked_prepared_folder_fails_the_competition(
    registry, tmp_path: Path, link: str
) -> None:
    tree = build_mlebench_tree(tmp_path)
    _replace_with_link(tree.data_dir / "alpha-cls" / link, tmp_path / "outside-prepared")
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    [result] = report.results
    assert result.status is ImportStatus.FAILED, result
    assert "symbolic link" in result.error


def test_mlebench_non_utf8_description_fails_cleanly(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    (tree.competition_dir("alpha-cls") / "description.md").write_bytes(b"\xff\xfe bad")
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    [result] = report.results
    assert result.status is ImportStatus.FAILED and "not UTF-8" in result.error
