"""Handler that trains the replay generator of Site-Modulated Diffusion at the site
(``train.generator``, :mod:`sites.diffusion`)."""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord

from .. import protocol
from ..protocol import RecordName
from ..replay import unpack_domains
from .replies import reply
from .runtime import SiteRuntime


def train_site_generator(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """Train the generator and this site's prompt tokens on the site's training split, with the
    server's replay of earlier sites under their own prompts; only the weights and the prompt
    go back."""
    # diffusers takes seconds to import: only runs that train a generator pay for it.
    from ..diffusion import build_generator, train_generator

    site, data = runtime.load(context)
    task = runtime.task
    config = protocol.TRAIN_GENERATOR.config_of(message)
    content = message.content
    network = build_generator(task, config)
    network.load_state_dict(content[RecordName.GENERATOR].to_torch_state_dict())
    prompt = torch.nn.Parameter(content[RecordName.PROMPT].to_torch_state_dict()[RecordName.PROMPT])
    x, classes = task.encode_replay(data.train)
    replay = []
    if RecordName.REPLAY in content.array_records:
        prompts = content[RecordName.REPLAY_PROMPTS].to_torch_state_dict()
        replay = [(*task.encode_replay(domain), prompts[name])
                  for name, domain in unpack_domains(content[RecordName.REPLAY]).items()]
    metrics = train_generator(network, prompt, x, classes, config.steps, config.batch_size, config.lr,
                              runtime.next_call_seed(site, context), replay, task.compute, config.prompt_dropout)
    return reply(message, {RecordName.GENERATOR: ArrayRecord(network.state_dict()),
                           RecordName.PROMPT: ArrayRecord({RecordName.PROMPT: prompt.detach()}),
                           RecordName.METRICS: MetricRecord(metrics)})
