"""Shared subscriptions: `$share/{group}/{filter}` delivers each message to one member."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.engine.session import Session
    from broker.engine.topics import SubOptions


class SharedGroup:
    """The members of one share name on one filter, served round robin."""

    __slots__ = ("name", "topic_filter", "members", "_order", "_next")

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members: dict[Session, SubOptions] = {}
        self._order: list[Session] = []
        self._next = 0

    def add(self, session: Session, opts: SubOptions) -> bool:
        new = session not in self.members
        self.members[session] = opts
        if new:
            self._order.append(session)
        return new

    def remove(self, session: Session) -> bool:
        if session not in self.members:
            return False
        del self.members[session]
        self._order.remove(session)
        return True

    def pick(self) -> tuple[Session, SubOptions] | None:
        """The next member that can take a message now.

        Online members that are not backlogged come first, in turn; failing that, the next
        persistent member (online or not) so a QoS 1/2 message waits in its queue; None
        when nobody can take it.
        """
        order = self._order
        n = len(order)
        if not n:
            return None
        start = self._next
        fallback: Session | None = None
        for i in range(n):
            session = order[(start + i) % n]
            if session.accepts_now():
                self._next = (start + i + 1) % n
                return session, self.members[session]
            if fallback is None and session.persistent:
                fallback = session
        if fallback is None:
            return None
        self._next = (order.index(fallback) + 1) % n
        return fallback, self.members[fallback]
