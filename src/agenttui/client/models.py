"""What clients see of a test and of the queue: the wire schema (agenttui.core.wire), the same
in-process and over a socket."""

from agenttui.core.wire import LogEntry, QueueView, TestView

__all__ = ["LogEntry", "QueueView", "TestView"]
