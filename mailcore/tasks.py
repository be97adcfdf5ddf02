"""Celery's autodiscovery imports ``<app>.tasks``; the tasks live with their concern."""

from celery import shared_task
from django.db import close_old_connections

from mailcore.relay.tasks import batch_deliver, queue_dispatch, queue_kick, queue_purge
from mailcore.store.index import search_index_pending


@shared_task(name="mailcore.tasks.search_index", ignore_result=True)
def search_index() -> int:
    """Beat, every SEARCH_INDEX_INTERVAL seconds: full-text vectors for newly stored messages."""
    close_old_connections()
    return search_index_pending()


__all__ = ["batch_deliver", "queue_dispatch", "queue_kick", "queue_purge", "search_index"]
