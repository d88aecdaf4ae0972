"""The editor's budget fields (issue 18, point 4): validated next to the field in agenttui's words,
stored on the queued request, and filled back in by edit-and-retry."""

from __future__ import annotations

from textual.widgets import Input

from .conftest import make_app, wait_until


async def test_the_budget_fields_are_validated_and_stored(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#query", Input).value = "q"
        app.query_one("#max-tokens", Input).value = "-5"
        app.query_one("#max-cost", Input).value = "lots"
        await pilot.pause()
        await pilot.press("ctrl+j")
        await pilot.pause()
        assert "must be between 0 and" in app.editor.errors_shown["budget.max_tokens"]
        assert "must be a number of US dollars, e.g. 0.50" in app.editor.errors_shown["budget.max_cost_usd"]

        app.query_one("#max-tokens", Input).value = "2000"
        app.query_one("#max-cost", Input).value = "0.25"
        app.query_one("#max-model-calls", Input).value = " 3 "
        await pilot.pause()
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.views, what="test queued")
        request = await app.client.request(1)
        assert request.budget.model_dump() == {"max_cost_usd": 0.25, "max_tokens": 2000, "max_model_calls": 3}
        for widget_id in ("max-tokens", "max-cost", "max-model-calls"):
            app.query_one(f"#{widget_id}", Input).value = ""
        app.editor.load_request(request, retry_of=1)
        assert [app.query_one(f"#{w}", Input).value for w in ("max-cost", "max-tokens", "max-model-calls")] == [
            "0.25", "2000", "3"]
