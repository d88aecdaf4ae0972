"""The API's own HTTP headers: light to import, for the submit a client sends before it loads
the wire schema (agenttui.client.early).

- BUILD_HEADER, on a submit: the build (agenttui.build_id) of the client, which wants its
  personal server to run that code. A server running other code refuses the submit with
  SERVER_OUTDATED before it reads the body; the client replaces it and submits again.
- HEALTH_HEADER, on a submit's answer: the server's Health (agenttui.core.wire), as
  GET /v1/health answers it, so the submitter learns it without a request of its own.
"""

BUILD_HEADER = "X-Agenttui-Build"
HEALTH_HEADER = "X-Agenttui-Health"
