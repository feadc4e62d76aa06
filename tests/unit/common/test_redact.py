"""Server paths never reach clients (issue 12): stored text is redacted on the way out."""

from services.common.redact import redact_server_paths


def test_absolute_paths_keep_only_their_last_component() -> None:
    stored = "/tmp/pytest-7/data/x/prepared/public is missing or empty; run `mlebench prepare`"
    assert redact_server_paths(stored) == "…/public is missing or empty; run `mlebench prepare`"
    assert "/srv" not in redact_server_paths("pointer; run `git lfs pull` in /srv/mle-bench")


def test_text_without_server_paths_is_unchanged() -> None:
    for text in ("x/prepared/public is missing", "1/2 of rows", "see https://kaggle.com/c/x"):
        assert redact_server_paths(text) == text
