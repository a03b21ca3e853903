"""The offline rule planner: one chat message plus the session context -> an EditPlan.

Deterministic and fast (well under a millisecond for a typical message; see
bench/plan.py), no network and no key. What it understands is described in
docs/planners.md.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from chatface.engine.types import Attribute, EditOp, EditPlan, PlanContext
from chatface.plugins.rule_planner import offers, replies
from chatface.plugins.rule_planner.followups import (
    find_topic,
    followup_changes,
    resolve_edits,
    user_messages,
)
from chatface.plugins.rule_planner.parse import Analysis, analyze
from chatface.plugins.rule_planner.script import is_simplified, to_traditional
from chatface.plugins.rule_planner.vocabulary import Vocabulary, aliases_of, build_vocabulary

logger = logging.getLogger(__name__)

_VOCABULARIES = 8  # attribute sets kept per planner (one in practice)
_ANALYSES = 256  # parsed recent turns kept, so a long chat is not re-read each time


class RulePlanner:
    """Plans with word tables; the vocabulary comes from the registered attributes."""

    name = "rules"

    def __init__(self, config: Any = None) -> None:
        # The rule planner has no settings of its own; the config is accepted for the
        # factory signature (and for planners that subclass this one).
        self.config = config
        self._vocabularies: OrderedDict[tuple[object, ...], Vocabulary] = OrderedDict()
        self._analyses: OrderedDict[tuple[int, str], Analysis] = OrderedDict()

    def plan(self, message: str, context: PlanContext) -> EditPlan:
        """Never raises: anything unexpected becomes a polite chat reply."""
        try:
            return self._plan(message if isinstance(message, str) else "", context)
        except Exception:  # a planner must answer every message; the log has the details
            logger.exception("the rule planner failed on a message")
            return EditPlan("chat", reply=replies.fallback_reply())

    def vocabulary(self, attributes: tuple[Attribute, ...]) -> Vocabulary:
        """The vocabulary of these attributes, built once and cached."""
        # What the vocabulary is made of, hashable even when a plugin used lists.
        key = tuple((a.name, a.description, aliases_of(a)) for a in attributes)
        vocab = self._vocabularies.get(key)
        if vocab is None:
            vocab = build_vocabulary(attributes)
            self._vocabularies[key] = vocab
            if len(self._vocabularies) > _VOCABULARIES:
                self._vocabularies.popitem(last=False)
                self._analyses.clear()  # they are keyed by vocabulary id, which may be reused
        return vocab

    def analyze(self, text: str, vocab: Vocabulary) -> Analysis:
        """``analyze`` with a small cache keyed by vocabulary and text."""
        key = (id(vocab), text)
        analysis = self._analyses.get(key)
        if analysis is None:
            analysis = analyze(text, vocab)
            self._analyses[key] = analysis
            if len(self._analyses) > _ANALYSES:
                self._analyses.popitem(last=False)
        return analysis

    def _plan(self, message: str, context: PlanContext) -> EditPlan:
        attributes = tuple(a for a in context.attributes if isinstance(a, Attribute))
        vocab = self.vocabulary(attributes)
        analysis = self.analyze(message, vocab)
        plan = self._decide(message, context, vocab, analysis)
        if analysis.chinese and self._traditional(message, analysis, context, vocab):
            return replace(plan, reply=to_traditional(plan.reply))
        return plan

    def _traditional(
        self, message: str, analysis: Analysis, context: PlanContext, vocab: Vocabulary
    ) -> bool:
        """Whether the user writes Traditional Chinese, so the reply should too.

        A message in characters both scripts share ("微笑") says nothing by itself; in a
        chat that had Traditional, the newest user message whose characters tell decides,
        so one "笑" does not switch a Traditional chat to Simplified.
        """
        if analysis.traditional:
            return True
        history = user_messages(context.recent or ())
        if not any(self.analyze(text, vocab).traditional for text in history):
            return False  # the common case, settled without loading the s2tw tables
        for text in (message, *history):
            if self.analyze(text, vocab).traditional:
                return True
            if is_simplified(text):
                return False
        return False

    def _decide(
        self, message: str, context: PlanContext, vocab: Vocabulary, analysis: Analysis
    ) -> EditPlan:
        names = vocab.attributes
        zh = analysis.chinese
        if analysis.command:
            return EditPlan(
                analysis.command, reply=replies.command_reply(analysis.command, zh, names)
            )
        state = dict(context.state.strengths) if context.state is not None else {}
        if analysis.edits:
            removals = {e.attribute: e.removal for e in analysis.edits}
            changes = resolve_edits(analysis.edits, state)
            return self._edit_plan(changes, removals, analysis)
        if analysis.followup:
            topic = find_topic(
                message, context.recent or (), state, names, lambda t: self.analyze(t, vocab)
            )
            if not topic:
                return EditPlan("chat", reply=replies.missing_topic_reply(zh))
            changes = followup_changes(analysis.followup, analysis.magnitude, topic, state)
            removal = analysis.followup == "remove"
            return self._edit_plan(changes, {a: removal for a, _ in changes}, analysis)
        if analysis.steps:
            return EditPlan(
                "edit", steps=analysis.steps, reply=replies.steps_reply(analysis.steps, zh)
            )
        learn = offers.confirmation(analysis, context, vocab) or offers.offer(
            message, analysis, context, vocab
        )
        return learn or EditPlan("chat", reply=replies.chat_reply(analysis, names))

    def _edit_plan(
        self, changes: list[tuple[str, float]], removals: dict[str, bool], analysis: Analysis
    ) -> EditPlan:
        ops = []
        for attribute, change in changes:
            strength = round(max(-1.0, min(1.0, change)), 3)
            if strength:
                ops.append(EditOp(attribute, strength))
        if not ops:
            return EditPlan("chat", reply=replies.unchanged_reply(analysis.chinese))
        described = [(op.attribute, op.strength, removals.get(op.attribute, False)) for op in ops]
        reply = replies.edit_reply(described, analysis.steps, analysis.chinese)
        return EditPlan("edit", tuple(ops), analysis.steps, reply)
