"""Websocket consumers. Frame protocol, shared by all of them:

- The server sends JSON text frames: {"type": "...", ...}. Error frames are {"type": "error", "message": "..."},
  followed by a close with code 4000 + HTTP status (4401 not logged in, 4403 forbidden, 4404 not found).
- The terminal consumer also sends raw output as binary frames, and accepts JSON control frames
  {"type": "stdin", "data": "..."} and {"type": "resize", "rows": N, "cols": N}.
Every consumer checks origin (AllowedHostsOriginValidator in asgi.py), then login, then the user's
right to the object, before it accepts.
"""
