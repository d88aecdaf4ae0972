"""The editor's Entry point field (issue 16, point 1): validated next to the field, stored on the
queued request, and filled back in by edit-and-retry."""

from __future__ import annotations

from textual.widgets import Input

from .conftest import make_app, wait_until


async def test_the_entry_point_field_is_validated_and_stored(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#query", Input).value = "q"
        app.query_one("#entrypoint", Input).value = "app-graph"
        await pilot.pause()
        await pilot.press("ctrl+j")
        await pilot.pause()
        assert "Python name or dotted path" in app.editor.errors_shown["entrypoint"]

        app.query_one("#entrypoint", Input).value = " app.graph "
        await pilot.pause()
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.views, what="test queued")
        request = await app.client.request(1)
        assert request.entrypoint == "app.graph"
        app.query_one("#entrypoint", Input).value = ""
        app.editor.load_request(request, retry_of=1)
        assert app.query_one("#entrypoint", Input).value == "app.graph"
