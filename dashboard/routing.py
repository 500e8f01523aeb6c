"""Websocket routes. Each consumer checks the user and the object before it accepts."""

from __future__ import annotations

from django.urls import path

from dashboard.consumers.events import EventsConsumer
from dashboard.consumers.jobs import JobConsumer
from dashboard.consumers.logs import LogsConsumer
from dashboard.consumers.stats import StatsConsumer
from dashboard.consumers.terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/jobs/<uuid:job_id>/", JobConsumer.as_asgi()),
    path("ws/containers/<str:container_id>/logs/", LogsConsumer.as_asgi()),
    path("ws/containers/<str:container_id>/stats/", StatsConsumer.as_asgi()),
    path("ws/containers/<str:container_id>/terminal/", TerminalConsumer.as_asgi()),
]
