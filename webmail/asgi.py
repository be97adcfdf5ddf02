import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webmail.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from webmail.limits import BodySizeLimit  # noqa: E402
from webmail.routing import websocket_urlpatterns  # noqa: E402

if "daphne.server" in sys.modules:  # served by daphne: refuse oversized bodies as they arrive
    from webmail import daphne_limit

    daphne_limit.install(lambda: int(settings.MAX_REQUEST_BODY))

application = ProtocolTypeRouter(
    {
        "http": BodySizeLimit(django_asgi_app, limit=lambda: int(settings.MAX_REQUEST_BODY)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
