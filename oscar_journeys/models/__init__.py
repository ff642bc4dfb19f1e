from .campaigns import Campaign, CampaignChannel, CampaignStep, ExclusionRule, FrequencyCap, MessageTemplate
from .channels import Channel
from .consent import Consent, Suppression
from .delivery import Decision, DueStep, Enrollment, Message
from .journeys import FollowUp, Journey, PolicyVersion
from .segments import MicroSegment, TargetGroup, TrainingRun
from .snapshots import Snapshot
from .sources import EventSource
from .timeline import Customer, CustomerIdentifier, CustomerMerge, Event

__all__ = [
    "Campaign",
    "CampaignChannel",
    "CampaignStep",
    "Channel",
    "Consent",
    "Customer",
    "CustomerIdentifier",
    "CustomerMerge",
    "Decision",
    "DueStep",
    "Enrollment",
    "Event",
    "EventSource",
    "ExclusionRule",
    "FollowUp",
    "FrequencyCap",
    "Journey",
    "Message",
    "MicroSegment",
    "MessageTemplate",
    "PolicyVersion",
    "Snapshot",
    "Suppression",
    "TargetGroup",
    "TrainingRun",
]
