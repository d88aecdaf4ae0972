"""The editor: field-level validation (nothing queued while invalid), loading an agent file
with its requirements.txt / Dockerfile, and keys that must type rather than act."""

from __future__ import annotations

from textual.widgets import Input, Select, TabbedContent, TextArea

from .conftest import make_app, screen_text, type_text, wait_until


async def test_invalid_fields_are_shown_next_to_them_and_nothing_is_queued(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        app.query_one("#agent-code", TextArea).load_text("def run(query):\n    return (\n")
        app.query_one("#requirements", TextArea).load_text("requests>=2\nnot a requirement!!\n")
        app.query_one("#timeout", Input).value = "5"
        app.query_one("#memory", Input).value = ""
        app.query_one("#cpus", Input).value = "0"
        await pilot.pause()
        await pilot.press("ctrl+j")
        await pilot.pause()
        shown = app.editor.errors_shown
        assert set(shown) == {"agent_code", "requirements", "query", "timeout_s", "limits.memory_mb", "limits.cpus"}
        assert "line 2" in shown["agent_code"]
        assert "line 2" in shown["requirements"]
        assert "10 s" in shown["timeout_s"] and "5 s" in shown["timeout_s"]
        assert "must be a number" in shown["limits.memory_mb"]
        assert "1–2000 characters" in shown["query"]
        # The first bad field is brought into view; the tabs holding bad fields are marked.
        tabs = app.query_one("#editor-tabs", TabbedContent)
        assert tabs.active == "tab-agent"
        assert "✗" in str(tabs.get_tab("tab-options").label)
        assert "✗" in str(tabs.get_tab("tab-requirements").label)
        assert "not queued: 6 fields to fix" in screen_text(app)
        await pilot.pause(0.5)
        assert (await app.client.queue()).tests == [] and await app.client.history() == []

        # Fixing a field clears its message; a valid request is then queued.
        app.query_one("#agent-code", TextArea).load_text("def run(query):\n    return query\n")
        app.query_one("#requirements", TextArea).load_text("")
        app.query_one("#timeout", Input).value = "30"
        app.query_one("#memory", Input).value = "512"
        app.query_one("#cpus", Input).value = "0.5"
        app.query_one("#query", Input).value = "ok now"
        app.query_one("#priority", Select).value = "high"
        await pilot.pause()
        assert app.editor.errors_shown == {}
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.views, what="test queued")
        request = await app.client.request(1)
        assert request.timeout_s == 30 and request.limits.memory_mb == 512 and request.limits.cpus == 0.5
        assert request.priority.name == "HIGH"
        assert "✗" not in str(tabs.get_tab("tab-options").label)


async def test_agent_file_loads_with_its_requirements_and_dockerfile(noop_settings, tmp_path):
    agent = tmp_path / "weather_agent.py"
    agent.write_text("def run(query):\n    return 'sunny'\n")
    (tmp_path / "requirements.txt").write_text("httpx>=0.27\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.12-slim\n")
    app = make_app(noop_settings, agent_path=agent)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        assert app.query_one("#agent-code", TextArea).text == agent.read_text()
        assert app.query_one("#requirements", TextArea).text == "httpx>=0.27\n"
        assert app.query_one("#dockerfile", TextArea).text == "FROM python:3.12-slim\n"
        assert "weather_agent.py" in screen_text(app)
        app.query_one("#query", Input).value = "weather?"
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: 1 in app.views)
        assert (await app.client.request(1)).agent_filename == "weather_agent.py"


async def test_the_editor_uses_python_highlighting(noop_settings):
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        code = app.query_one("#agent-code", TextArea)
        assert code.language == "python"
        assert code.is_syntax_aware  # tree-sitter + the Python grammar are installed


async def test_letters_and_symbols_type_into_the_editor_not_actions(noop_settings):
    """Single-letter keys (c r e d x) and ? / never act while typing."""
    app = make_app(noop_settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, app.data_loaded.is_set)
        code = app.query_one("#agent-code", TextArea)
        code.load_text("")
        code.focus()
        await type_text(pilot, "credx?/ z")
        assert code.text == "credx?/ z"
        assert app.screen is app.main_screen  # no help screen, no confirm screen
        query = app.query_one("#query", Input)
        query.focus()
        await type_text(pilot, "c?/r")
        assert query.value == "c?/r"
        assert app.screen is app.main_screen
        # esc leaves the code editor; tab then moves on (keyboard only).
        code.focus()
        await pilot.press("escape")
        assert app.focused is not code
