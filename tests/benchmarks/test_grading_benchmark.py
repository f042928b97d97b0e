"""The grading benchmark's own logic: an in-process run and how it reports the primary's choices."""

from benchmarks.grading import describe_choices, in_process_run
from sites.data.brain import MODALITIES

TINY = ["task.model=cmg", "size=smoke", "task.n_train=8", "task.n_validation=4", "task.n_test=4", "task.depth=4",
        "task.image_size=16", "task.channels=[4,8]", "task.batch_size=4", "task.local_steps=2",
        "scenario.rounds_per_stage=3"]


def test_an_in_process_sequential_run_logs_the_choice_after_every_warm_up_round():
    run = in_process_run(["scenario=sequential_sites", *TINY], {})
    assert run.trained == ["A", "B", "C", "D"] and run.held_out == ["E"]
    assert set(run.final) == {"A", "B", "C", "D", "E"} and all("auc-t1ce" in m for m in run.final.values())
    assert [len(stage) for stage in run.choices] == [3, 3, 3, 3]  # four stages, three warm-up rounds each
    assert {choice for stage in run.choices for choice in stage} <= set(MODALITIES)
    aucs = {m: run.figures[f"validation_auc_{m}"] for m in MODALITIES}
    assert aucs[run.choices[-1][-1]] == max(aucs.values())  # the last round's choice is the stage's


def test_models_without_guidance_log_no_choice():
    assert in_process_run(["scenario=centralized", *TINY, "task.model=late_fusion"], {}).choices == []


def test_the_choices_are_described_per_stage_with_their_changes_and_figures():
    figures = {"validation_auc_t1": 0.5, "validation_auc_t1ce": 0.75,
               "validation_nll_t1": 0.69, "validation_nll_t1ce": 0.6}
    text = describe_choices([["t1", "t1ce", "t1ce"], ["t1ce", "t1", "t1ce"]], figures)
    assert "stage 1: t1 t1ce t1ce (1 changes); stage 2: t1ce t1 t1ce (2 changes)" in text
    assert text.endswith("validation AUC t1 0.500 t1ce 0.750, cross entropy t1 0.690 t1ce 0.600")
