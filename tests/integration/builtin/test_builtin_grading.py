"""Each built-in competition, imported into a real registry, grades as its leaderboard says."""

from __future__ import annotations

import pandas as pd
import pytest
from mleb.client import AsyncClient
from mleb.ranking import medal_positions

from services.builtin.baselines import baseline_named, predict
from services.builtin.catalog import BUILTINS
from services.builtin.definition import prepare


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("competition_id", list(BUILTINS))
async def test_builtin_grades_through_real_servers(builtin_stack, lab_token, competition_id):
    stack = await builtin_stack([competition_id])
    definition = BUILTINS[competition_id].definition
    folder = stack.built / competition_id
    sample = (folder / "public" / "sample_submission.csv").read_bytes()
    answers = pd.read_csv(folder / "private" / "answers.csv")
    board = pd.read_csv(folder / "leaderboard.csv")
    gold_position = medal_positions(len(board))[0]

    async with AsyncClient(grader=stack.grader_addr, token=lab_token) as client:
        validation = await client.validate_submission(competition_id, sample)
        assert validation.valid, validation.message

        # The private answers themselves, reordered, are a perfect submission.
        perfect = _csv(answers.sample(frac=1, random_state=0))
        report = (await client.grade_submission(competition_id, perfect)).report
        best = 0.0 if definition.lower_is_better else 1.0
        assert report.valid_submission and report.score == best
        assert report.gold_medal and report.is_lower_better is definition.lower_is_better

        # A baseline re-run scores what the leaderboard says and lands at its place there.
        prepared = prepare(definition)
        for position, medal in ((gold_position, "gold"), (len(board), None)):
            row = board.iloc[position - 1]
            baseline = baseline_named(definition.task, row.team_name)
            submission = _csv(predict(definition, prepared, baseline))
            report = (await client.grade_submission(competition_id, submission)).report
            assert report.score == row.score, row.team_name
            assert report.gold_medal is (medal == "gold")
            assert report.any_medal is (medal is not None)
            assert report.above_median is (medal is not None)
