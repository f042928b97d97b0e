"""A run killed with SIGKILL mid-way and resumed ends exactly where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import EWC_PBBL_OVERRIDES, ROOT, read_json, run_cli

from server.checkpoint import LATEST, Position, RunState

# A strategy with state (EWC: Fisher and anchors) and a task with two phases and site counts
# summed between them (PBBL), so that every part of the checkpoint matters.
OVERRIDES = EWC_PBBL_OVERRIDES
# Mid-stage: after the first of stage 2's two rounds.
KILL_AFTER = Position(stage=2, phase=0, rounds=1)


def _position(run_dir) -> Position | None:
    try:
        return RunState.load(run_dir / "checkpoints").position
    except Exception:  # noqa: BLE001 - not written yet
        return None


def _reached(position: Position | None) -> bool:
    return position is not None and (position.stage, position.phase, position.rounds) >= (
        KILL_AFTER.stage, KILL_AFTER.phase, KILL_AFTER.rounds)


def _site_replies(run_dir) -> list[dict]:
    """Training and evaluation replies in order: what the sites computed, whichever process asked."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] in ("train", "evaluate", "matrix", "failure")]


@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_the_uninterrupted_result(ewc_pbbl_run, ray_head, tmp_path):
    whole, killed = ewc_pbbl_run, tmp_path / "killed"

    # Attached to the session's Ray head, as the uninterrupted run; the resumed run attaches
    # again, by its saved config.
    process = subprocess.Popen([sys.executable, "-m", "simulations.run", *OVERRIDES, f"hydra.run.dir={killed}",
                                f"backend.address={ray_head}"],
                               cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _reached(_position(killed)) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the run and everything it started; Ray ends its actors
        process.wait()
    assert _reached(_position(killed)), "the run never reached its mid-way checkpoint"
    assert not (killed / "matrix.json").exists(), "the run finished before it was killed"
    assert (killed / "checkpoints" / LATEST).exists()

    resumed = run_cli(f"resume={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_json(killed / "matrix.json") == read_json(whole / "matrix.json")
    assert _site_replies(killed) == _site_replies(whole)


@pytest.mark.slow  # with the resume test above: resuming is exercised as a whole in the slow run
def test_resume_refuses_other_overrides_and_finished_runs(tmp_path):
    missing = run_cli(f"resume={tmp_path / 'nothing'}")
    assert missing.returncode != 0 and "no run to resume" in missing.stderr
    finished = tmp_path / "finished"
    finished.mkdir()
    for name in ("config.yaml", "report.md"):
        (finished / name).write_text("")
    assert "finished run" in run_cli(f"resume={finished}").stderr
    mixed = run_cli(f"resume={finished}", "seed=3")
    assert mixed.returncode != 0 and "resume: a resumed run keeps its saved config; drop seed=3" in mixed.stderr
