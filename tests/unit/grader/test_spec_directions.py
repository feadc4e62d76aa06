"""Each grading spec declares its metric's direction (issue 12, section 3), checked against
MLE-bench's grade functions and Kaggle's leaderboards: errors, distances and losses are
lower-is-better, everything else higher."""

from __future__ import annotations

from services.grader.competitions import all_specs
from services.grader.generic_specs import generic_lower_is_better, generic_spec

LOWER_IS_BETTER = {
    "billion-word-imputation",  # mean Levenshtein distance
    "bms-molecular-translation",  # mean Levenshtein distance
    "champs-scalar-coupling",  # log MAE
    "denoising-dirty-documents",  # RMSE
    "dog-breed-identification",  # log loss
    "dogs-vs-cats-redux-kernels-edition",  # log loss
    "hms-harmful-brain-activity-classification",  # KL divergence
    "icecube-neutrinos-in-deep-ice",  # mean angular error
    "inaturalist-2019-fgvc6",  # top-1 error
    "leaf-classification",  # log loss
    "lmsys-chatbot-arena",  # log loss
    "multi-modal-gesture-recognition",  # Levenshtein distance
    "new-york-city-taxi-fare-prediction",  # RMSE
    "nomad2018-predict-transparent-conductors",  # RMSLE
    "petfinder-pawpularity-score",  # RMSE
    "predict-volcanic-eruptions-ingv-oe",  # MAE
    "rsna-2022-cervical-spine-fracture-detection",  # weighted log loss
    "smartphone-decimeter-2022",  # haversine distance
    "spooky-author-identification",  # log loss
    "stanford-covid-vaccine",  # MCRMSE
    "statoil-iceberg-classifier-challenge",  # log loss
    "ventilator-pressure-prediction",  # MAE
}


def test_every_spec_declares_its_direction() -> None:
    specs = all_specs()
    assert set(specs) >= LOWER_IS_BETTER
    for competition_id, spec in specs.items():
        assert isinstance(spec.lower_is_better, bool), competition_id
        assert spec.lower_is_better is (competition_id in LOWER_IS_BETTER), competition_id


def test_osic_log_likelihood_is_higher_is_better() -> None:
    # A negative log likelihood where higher (closer to 0) is better, despite "log".
    assert all_specs()["osic-pulmonary-fibrosis-progression"].lower_is_better is False


def test_metric_named_specs_take_the_metric_direction() -> None:
    for metric, lower in (("rmse", True), ("mae", True), ("log-loss", True), ("accuracy", False)):
        spec = generic_spec("own", metric, ["id"], ["y"])
        assert spec is not None and spec.lower_is_better is lower, metric
        assert generic_lower_is_better(metric) is lower
    assert generic_lower_is_better("root-mean-squared-error") is True
    assert generic_lower_is_better("nonsense") is None
