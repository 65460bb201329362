"""The activities a flow is made of: one module each, one line each in ``KINDS``."""

from __future__ import annotations

from collections.abc import Mapping

from payivr.core.flow.activities.collect import CollectDigits
from payivr.core.flow.activities.comment import Comment
from payivr.core.flow.activities.condition import Condition
from payivr.core.flow.activities.hangup import HangUp
from payivr.core.flow.activities.http import Http
from payivr.core.flow.activities.menu import Menu
from payivr.core.flow.activities.pay import Pay
from payivr.core.flow.activities.queue import Queue
from payivr.core.flow.activities.say import Say
from payivr.core.flow.activities.set_variable import SetVariables
from payivr.core.flow.activities.switch import Switch
from payivr.core.flow.activities.transfer import Transfer

ActivityType = (
    type[CollectDigits]
    | type[Comment]
    | type[Condition]
    | type[HangUp]
    | type[Http]
    | type[Menu]
    | type[Pay]
    | type[Queue]
    | type[Say]
    | type[SetVariables]
    | type[Switch]
    | type[Transfer]
)

KINDS: Mapping[str, ActivityType] = {
    cls.kind: cls
    for cls in (
        Http,
        SetVariables,
        Condition,
        Switch,
        Say,
        Menu,
        CollectDigits,
        Queue,
        Transfer,
        Pay,
        HangUp,
        Comment,
    )
}
