"""Google QUEST Q&A labeling: mean column-wise Spearman correlation over the 30 targets; rows
paired by qa_id (MLE-bench never compares the ids; see docs/grading.md)."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.correlation import mean_column_spearman

TARGETS = [
    *(
        f"question_{name}"
        for name in (
            "asker_intent_understanding",
            "body_critical",
            "conversational",
            "expect_short_answer",
            "fact_seeking",
            "has_commonly_accepted_answer",
            "interestingness_others",
            "interestingness_self",
            "multi_intent",
            "not_really_a_question",
            "opinion_seeking",
            "type_choice",
            "type_compare",
            "type_consequence",
            "type_definition",
            "type_entity",
            "type_instructions",
            "type_procedure",
            "type_reason_explanation",
            "type_spelling",
            "well_written",
        )
    ),
    *(
        f"answer_{name}"
        for name in (
            "helpful",
            "level_of_information",
            "plausible",
            "relevance",
            "satisfaction",
            "type_instructions",
            "type_procedure",
            "type_reason_explanation",
            "well_written",
        )
    ),
]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["qa_id", *TARGETS])
    if len(submission.columns) != len(TARGETS) + 1:
        extra = [c for c in submission.columns if c not in {"qa_id", *TARGETS}]
        raise InvalidSubmission(
            f"Submission must have only qa_id and the {len(TARGETS)} target columns; "
            f"unexpected or repeated column(s): {extra or 'repeated names'}."
        )
    sub, ans = align_on_ids(submission, answers, "qa_id")
    return mean_column_spearman(
        [ans[t].to_numpy() for t in TARGETS], [sub[t].to_numpy() for t in TARGETS]
    )


SPEC = CompetitionSpec(id="google-quest-challenge", lower_is_better=False, grade=grade)
