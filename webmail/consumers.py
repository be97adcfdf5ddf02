"""The browser's live channel: events of the signed-in account, as JSON frames."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from mailcore.events import account_group

CLOSE_UNAUTHENTICATED = 4401


class MailEventsConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = account_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello"})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def mail_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({k: event.get(k) for k in ("type", "folder", "kind", "modseq")})
