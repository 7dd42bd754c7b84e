"""The four shipped study configs (`spinemets run --config study-a|b|c|d`): valid, and study B end to end."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from SpineMetsApp.pipeline.config import CONFIG_DIR, ConfigError, load_config
from SpineMetsPhantom import PhantomConfig
from SpineMetsPhantom.studies import STUDIES, manifest_columns, write_study_cohort


@pytest.mark.parametrize("key", sorted(STUDIES))
def test_shipped_study_config_is_valid_and_fits_its_phantom(key: str) -> None:
    config = load_config(f"study-{key}")
    spec = STUDIES[key]
    assert config["study"]["kind"] == key
    columns = set(manifest_columns(spec))
    split = config["study"]["split_column"]
    assert split in columns
    assert set(config["study"]["development_values"]) & set(spec.splits)
    assert set(config["study"]["evaluation_sets"]) <= set(spec.splits)
    assert config["statistics"]["bootstrap"] == 1000
    for task in config["tasks"]:
        assert task["label"] == spec.label
        assert set(task["split"]["test_values"]) <= set(spec.splits)
        assert task["split"]["column"] == split
        for model in task["models"]:
            if model["kind"] == "deep":
                assert set(model["options"]["sequences"]) <= set(spec.sequences)
    kinds = {m["kind"] for t in config["tasks"] for m in t["models"]}
    if key in ("a", "b"):
        assert kinds == {"classical", "deep"}
    if key == "c":
        names = {m["name"] for m in config["tasks"][0]["models"]}
        assert len(names) == 21 and {"Rad-M-lr", "DRad-M-lr", "CRad-M-lr"} <= names
        assert set(config["study"]["deep_features"]["sequences"]) <= set(spec.sequences)
    if key == "d":
        assert config["study"]["unet"]["sequences"] == list(spec.sequences)
        assert set(config["study"]["reader_study"]) == {"resident", "expert"}


def test_study_section_errors_name_the_key() -> None:
    values = yaml.safe_load((CONFIG_DIR / "study-b.yaml").read_text(encoding="utf-8"))
    bad = copy.deepcopy(values)
    bad["study"]["kind"] = "e"
    with pytest.raises(ConfigError, match="study.kind"):
        load_config(bad)
    bad = copy.deepcopy(values)
    bad["study"]["unkown"] = 1
    with pytest.raises(ConfigError, match="study.unkown"):
        load_config(bad)


def test_study_b_runs_end_to_end_on_a_tiny_cohort(tmp_path: Path) -> None:
    from SpineMetsApp.pipeline import run_pipeline

    manifest = write_study_cohort("b", tmp_path / "cohort", n_cases=16, seed=1,
                                  config=PhantomConfig(size=(48, 64, 10)))
    values = yaml.safe_load((CONFIG_DIR / "study-b.yaml").read_text(encoding="utf-8"))
    task = values["tasks"][0]
    task["models"][1]["options"].update(epochs=1, width=0.25, size=[32, 32], batch_size=4, n_slices=2)
    task["models"][0]["feature_set"] = "segmentation"  # radiomics of every case would dominate the test's time
    values["features"]["radiomics"] = False
    task["cv_folds"] = task["inner_folds"] = 2
    task["grid"] = "none"
    values["statistics"]["bootstrap"] = 50
    values["explain"]["enabled"] = False
    result = run_pipeline(manifest, values, tmp_path / "run", workers=0)
    assert not result.failed
    table = pd.read_csv(tmp_path / "run" / "study" / "paper_vs_phantom.csv")
    assert list(table.columns) == ["figure", "paper", "phantom"]
    figures = dict(zip(table["figure"], table["phantom"], strict=True))
    pixel = float(figures["pixel accuracy of the segmentation"])
    assert 0.9 < pixel <= 1.0
    radiomics = float(str(figures["accuracy, radiomics"]).split()[0])
    cnn = float(str(figures["accuracy, deep model (mean)"]).split()[0])
    assert 0.0 <= radiomics <= 1.0 and 0.0 <= cnn <= 1.0
    predictions = pd.read_csv(tmp_path / "run" / "tasks" / "diagnosis" / "predictions.csv")
    assert set(predictions["model"]) == {"radiomics-lr", "CNN"}
    assert len(predictions[predictions["model"] == "CNN"]) == (pd.read_csv(manifest)["split"] == "test").sum()
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "Study B" in report and "not the paper's results" in report.replace("&#x27;", "'")


def test_study_d_reader_study_and_segmentation_classifier(tmp_path: Path) -> None:
    """With a perfect model proposal, assisted readers score higher; the FM classifier separates axSpA."""
    from types import SimpleNamespace

    from SpineMetsApp.pipeline.config import defaults
    from SpineMetsApp.pipeline.studies import STUDY_SECTION, reader_study, segmentation_classifier
    from SpineMetsPhantom.sacroiliac import SIConfig

    manifest = write_study_cohort("d", tmp_path / "cohort", n_cases=24, seed=2, si_config=SIConfig(size=(48, 36, 8)))
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    base = manifest.parent
    frame = pd.DataFrame({
        "case_id": rows["case_id"], "split": rows["split"], "axspa": rows["axspa"],
        "mask": [str(base / m) for m in rows["mask"]],
        "segmentation_file": [str(base / m) for m in rows["mask"]],
        "fm_volume_ml": rows["fm_volume_ml"].astype(float), "fm_components": rows["fm_components"].astype(float),
        "fm_t1_ratio": 1.0, "fm_stir_ratio": 1.0})
    section = defaults(STUDY_SECTION.children)
    section.update(kind="d", development_values=["train", "validation"],
                   evaluation_sets=["internal_test", "external_test", "train"],
                   reader_study={"resident": {"skill": 0.7, "trust": 0.7}, "expert": {"skill": 0.9, "trust": 0.1}})
    plan = SimpleNamespace(out=tmp_path / "run", config={"seed": 0, "statistics": {"bootstrap": 50}})
    readers = reader_study(plan, section, frame).set_index("reader")
    assert readers.loc["resident", "dice_assisted"] > readers.loc["resident", "dice_unassisted"] + 0.05
    assert readers.loc["expert", "dice_unassisted"] > readers.loc["resident", "dice_unassisted"]
    assert 0.0 <= readers.loc["resident", "p_wilcoxon"] < 0.05
    auc, predictions = segmentation_classifier(plan, section, frame)
    assert len(predictions) == 24 and predictions["prob_yes"].between(0, 1).all()
    train = auc.set_index("set").loc["train"]
    assert train["auc"] > 0.7 and train["auc_ci_low"] <= train["auc"] <= train["auc_ci_high"]
    assert (tmp_path / "run" / "study" / "reader_study.csv").is_file()
