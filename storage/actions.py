"""``SqlActionStore``: proposed writes and the tool audit log (``core.actions.ActionStore``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.actions import AuditEntry, Proposal, ProposalState
from core.types import ConversationKey
from storage.models import ProposalRow, ToolAuditRow


class SqlActionStore:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def propose(self, proposal: Proposal) -> int:
        row = ProposalRow(
            conversation_id=proposal.conversation_id,
            key=str(proposal.key),
            customer_id=proposal.customer_id,
            direct=proposal.direct,
            tool=proposal.tool,
            arguments=proposal.arguments,
            summary=proposal.summary[:4000],
            staff_approval=proposal.staff_approval,
            state=ProposalState.PENDING.value,
            expires_at=proposal.expires_at,
            created_at=proposal.created_at,
        )
        async with self._sessions.begin() as session:
            session.add(row)
            await session.flush()
            return row.id

    async def proposal(self, proposal_id: int) -> Proposal | None:
        async with self._sessions() as session:
            row = await session.get(ProposalRow, proposal_id)
        if row is None:
            return None
        return Proposal(
            key=ConversationKey.parse(row.key),
            conversation_id=row.conversation_id,
            customer_id=row.customer_id,
            direct=row.direct,
            tool=row.tool,
            arguments=row.arguments,
            summary=row.summary,
            staff_approval=row.staff_approval,
            expires_at=row.expires_at,
            created_at=row.created_at,
            id=row.id,
            state=ProposalState(row.state),
        )

    async def settle(self, proposal_id: int, *, to: ProposalState, by: str, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(ProposalRow)
                .where(
                    ProposalRow.id == proposal_id,
                    ProposalRow.state == ProposalState.PENDING.value,
                )
                .values(state=to.value, decided_by=by[:100], decided_at=now)
            )
            return moved.rowcount == 1

    async def audit(self, entry: AuditEntry) -> None:
        async with self._sessions.begin() as session:
            session.add(
                ToolAuditRow(
                    conversation_id=entry.conversation_id,
                    key=str(entry.key),
                    customer_id=entry.customer_id,
                    actor=entry.actor[:100],
                    tool=entry.tool,
                    arguments=entry.arguments,
                    outcome=entry.outcome,
                    detail=entry.detail[:1000],
                    created_at=entry.at,
                )
            )

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ToolAuditRow).order_by(ToolAuditRow.id.desc()).limit(limit)
            )
            found = list(rows)
        return [
            AuditEntry(
                conversation_id=r.conversation_id,
                key=ConversationKey.parse(r.key),
                customer_id=r.customer_id,
                tool=r.tool,
                arguments=r.arguments,
                outcome=r.outcome,
                detail=r.detail,
                at=r.created_at,
                actor=r.actor,
            )
            for r in reversed(found)
        ]
