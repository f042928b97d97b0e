"""Replies the handlers share."""

from collections.abc import Mapping

from flwr.app import Message, RecordDict

from ..protocol import RecordName, SiteIdentity
from ..spec import SiteSpec


def reply(message: Message, records: Mapping) -> Message:
    """The reply to ``message`` holding ``records`` (record name -> Flower record)."""
    return Message(RecordDict(dict(records)), reply_to=message)


def identity(site: SiteSpec, message: Message) -> Message:
    """The reply that says which site this node plays."""
    return reply(message, {RecordName.SITE: SiteIdentity(site.id).to_record()})
