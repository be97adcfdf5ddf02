from django.urls import path

from webmail.consumers import MailEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", MailEventsConsumer.as_asgi()),
]
