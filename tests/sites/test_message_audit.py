"""The message audit itself must catch raw data leaving a site (its use on whole runs of every
task is in test_e2e.py)."""

from conftest import undeclared_content

SHAPES = {"conv.weight": [8, 1, 3, 3], "conv.bias": [8]}


def _train_event(**content):
    return {"event": "train", "site": "A", "content": content}


def test_a_model_update_and_scalar_metrics_pass():
    event = _train_event(arrays={"kind": "arrays", "shapes": SHAPES},
                         metrics={"kind": "metrics", "lengths": {"train_loss": None, "num-examples": None}})
    assert undeclared_content([event], SHAPES) == []


def test_images_sent_as_arrays_are_caught():
    leaked = {**SHAPES, "images": [16, 1, 64, 64]}
    event = _train_event(arrays={"kind": "arrays", "shapes": leaked})
    assert undeclared_content([event], SHAPES) == ["train reply of site A: arrays are not the model's "
                                                   "(['conv.bias', 'conv.weight', 'images']...)"]


def test_samples_smuggled_as_metric_lists_or_extra_records_are_caught():
    events = [
        _train_event(metrics={"kind": "metrics", "lengths": {"pixels": 4096}}),
        _train_event(metrics={"kind": "metrics", "lengths": {"hist-y0-b1": 4096}}),
        _train_event(extra={"kind": "config", "values": {"patient": "Jane Doe"}}),
        {"event": "site", "site": "A", "content": {"site": {"kind": "config", "values": {"site-id": "A", "ip": "x"}}}},
        {"event": "unlearn", "site": "A", "content": {}},
    ]
    assert len(undeclared_content(events, SHAPES)) == 5
