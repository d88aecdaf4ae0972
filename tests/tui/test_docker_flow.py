"""The real thing: type an agent and a query, submit, watch it reach COMPLETED in a real
Docker container with the response on screen (R-24, R-19)."""

from __future__ import annotations

import pytest
from textual.widgets import Input, TextArea

from agenttui.core.config import load_settings

from .conftest import make_app, screen_text, status_of, type_text, wait_until

pytestmark = pytest.mark.docker



async def test_type_an_agent_submit_and_watch_it_complete():
    app = make_app(load_settings())  # docker backend, the test base image (conftest)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set, what="first snapshot")
        code = app.query_one("#agent-code", TextArea)
        code.load_text("")
        code.focus()
        # Typed key by key; the editor does not auto-indent, so indent by hand.
        await type_text(pilot, "def run(query):\n    print('agent got', query)\n    return query.upper()\n")
        assert code.text == "def run(query):\n    print('agent got', query)\n    return query.upper()\n"
        app.query_one("#query", Input).focus()
        await type_text(pilot, "hello docker")
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: status_of(app, 1) in ("QUEUED", "BUILDING", "RUNNING", "COMPLETED"),
                         what="test 1 queued")
        await wait_until(pilot, lambda: status_of(app, 1) == "COMPLETED", timeout=90, what="test 1 COMPLETED")
        await wait_until(pilot, lambda: app.log_view.ended, what="whole log shown")
        await pilot.pause(0.2)
        lines = list(app.log_view.lines)
        assert "agent got hello docker" in lines  # streamed from the container
        assert any(line.startswith("[agenttui] running (container") for line in lines)  # phase lines inline
        assert "[agenttui] COMPLETED" in lines
        text = screen_text(app)
        assert "HELLO DOCKER" in text  # the response: in the log pane and the history row
        assert "COMPLETED" in text
        view = app.views[1]
        assert view.response == "HELLO DOCKER" and view.exit_code == 0
