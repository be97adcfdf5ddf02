"""Celery's autodiscovery imports ``<app>.tasks``; the tasks live with their concern."""

from mailcore.relay.tasks import batch_deliver, queue_dispatch, queue_kick, queue_purge

__all__ = ["batch_deliver", "queue_dispatch", "queue_kick", "queue_purge"]
