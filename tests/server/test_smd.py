"""Site-Modulated Diffusion on the server (server/smd.py) with a tiny generator and fake sites:
what each site is sent to train the generator on, what the server keeps of the replies, and how
it samples replay."""

import pytest
import torch
from flwr.app import ArrayRecord, MetricRecord, RecordDict
from helpers.fake_grid import CannedGrid

from server.replay import build_replay_source
from server.replay_config import GeneratorSettings, ReplayConfig
from server.site_grid import SiteGrid
from server.smd import SiteModulatedDiffusion, load_generator
from sites.protocol import TRAIN_GENERATOR, GeneratorConfig, RecordName
from sites.replay import unpack_domains
from sites.tasks import build_task

SITE_OF_NODE = {41: "A", 42: "B", 43: "C"}
#: Each site moves every generator weight by its step and its prompt by ten times it, and reports its examples.
STEP, EXAMPLES = {"A": 1.0, "B": 3.0, "C": 5.0}, {"A": 1, "B": 3, "C": 2}
TINY = GeneratorSettings(channels=[4, 8], embed_dim=8, heads=2, prompt_tokens=2, steps=3, batch_size=2,
                         sampling_steps=2, prompt_dropout=0.25, guidance=1.5)


def _source(task, seed=5) -> SiteModulatedDiffusion:
    source = build_replay_source(ReplayConfig(source="smd", per_site=4, generator=TINY), task, seed)
    assert isinstance(source, SiteModulatedDiffusion)
    return source


def _grid() -> CannedGrid:
    def answer(message):
        site = SITE_OF_NODE[message.metadata.dst_node_id]
        generator = message.content[RecordName.GENERATOR].to_torch_state_dict()
        prompt = message.content[RecordName.PROMPT].to_torch_state_dict()[RecordName.PROMPT]
        return RecordDict({
            RecordName.GENERATOR: ArrayRecord({k: v + STEP[site] if v.is_floating_point() else v
                                               for k, v in generator.items()}),
            RecordName.PROMPT: ArrayRecord({RecordName.PROMPT: prompt + 10 * STEP[site]}),
            RecordName.METRICS: MetricRecord({"num-examples": EXAMPLES[site], "generator-loss": STEP[site]})})

    return CannedGrid(SITE_OF_NODE, answer)


def _sent_prompts(grid) -> dict[str, torch.Tensor]:
    return {SITE_OF_NODE[m.metadata.dst_node_id]: m.content[RecordName.PROMPT].to_torch_state_dict()[RecordName.PROMPT]
            for m in grid.sent}


@pytest.fixture
def segmentation(small_task_config):
    return build_task({**small_task_config, "image_size": 16})


def test_sites_train_the_generator_and_their_own_prompt_and_the_server_averages_the_generator(segmentation):
    source, grid = _source(segmentation), _grid()
    start = {k: v.clone() for k, v in source.network.state_dict().items()}
    source.learn(SiteGrid(grid, SITE_OF_NODE, ["A", "B"]), timeout=5)
    for message in grid.sent:
        assert message.metadata.message_type == TRAIN_GENERATOR.type
        assert TRAIN_GENERATOR.config_of(message) == GeneratorConfig([4, 8], 8, 2, 3, 2, 1.0e-3, 0.25)
        for name, value in message.content[RecordName.GENERATOR].to_torch_state_dict().items():
            assert torch.equal(value, start[name])
        assert RecordName.REPLAY not in message.content.array_records  # nothing learned before
    sent = _sent_prompts(grid)
    assert sent["A"].shape == (2, 8) and not torch.equal(sent["A"], sent["B"])
    # the same seed gives the same new prompts
    again = _grid()
    _source(segmentation).learn(SiteGrid(again, SITE_OF_NODE, ["A", "B"]), timeout=5)
    assert all(torch.equal(sent[site], prompt) for site, prompt in _sent_prompts(again).items())
    # example-weighted: (1 * 1 + 3 * 3) / 4; each site's prompt as it came back
    for name, value in source.network.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, start[name] + 2.5)
    assert torch.equal(source.prompts["B"], sent["B"] + 30)
    assert source.summary().figures["training"] == {"A": [{"num-examples": 1, "generator-loss": 1.0}],
                                            "B": [{"num-examples": 3, "generator-loss": 3.0}]}


def test_a_later_stage_trains_on_the_replay_of_the_earlier_sites_under_their_prompts(segmentation):
    source, grid = _source(segmentation), _grid()
    source.learn(SiteGrid(grid, SITE_OF_NODE, ["A", "B"]), timeout=5)
    kept = dict(source.prompts)
    replay = source.replay(["A", "B"])
    images, masks = replay["A"].tensors
    assert images.shape == (4, 1, 16, 16) and masks.shape == (4, 1, 16, 16) and set(masks.unique().tolist()) <= {0, 1}
    later = _grid()
    source.learn(SiteGrid(later, SITE_OF_NODE, ["B", "C"]), timeout=5)
    to = {SITE_OF_NODE[m.metadata.dst_node_id]: m.content for m in later.sent}
    # B is sent its own prompt back and A's replay only; C, new, gets a prompt of its own and both
    assert torch.equal(_sent_prompts(later)["B"], kept["B"])
    assert not any(torch.equal(_sent_prompts(later)["C"], prompt) for prompt in kept.values())
    assert list(unpack_domains(to["B"][RecordName.REPLAY])) == ["A"]
    assert list(unpack_domains(to["C"][RecordName.REPLAY])) == ["A", "B"]
    assert all(torch.equal(sent, drawn) for sent, drawn in zip(unpack_domains(to["C"][RecordName.REPLAY])["A"].tensors,
                                                                (images, masks)))
    assert torch.equal(to["C"][RecordName.REPLAY_PROMPTS].to_torch_state_dict()["A"], kept["A"])


def test_sampling_is_class_conditional_reproducible_and_new_with_every_draw(small_debiasing_config, tmp_path):
    task = build_task({**small_debiasing_config, "image_size": 16})
    source = _source(task)
    source.learn(SiteGrid(_grid(), SITE_OF_NODE, ["A"]), timeout=5)
    first, second = source.generate("A", 6), source.generate("A", 6)
    images, labels = first.tensors[:2]
    assert images.shape == (6, 1, 16, 16)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]  # the classes in equal shares
    assert not torch.equal(images, second.tensors[0])
    twin = _source(task)
    twin.learn(SiteGrid(_grid(), SITE_OF_NODE, ["A"]), timeout=5)
    assert torch.equal(twin.generate("A", 6).tensors[0], images)
    summary = source.summary()
    assert summary.source == "smd" and summary.private and summary.figures["samples_per_draw"] == 4
    assert len(summary.figures["sampling_seconds"]) == 2
    assert summary.figures["generator_parameters"] == sum(p.numel() for p in source.network.parameters())
    # what is saved builds the same generator again, with every prompt
    source.save(tmp_path / "replay.pt")
    network, prompts = load_generator(tmp_path / "replay.pt", task)
    assert prompts.keys() == {"A"} and torch.equal(prompts["A"], source.prompts["A"])
    for name, value in source.network.state_dict().items():
        assert torch.equal(network.state_dict()[name], value)
