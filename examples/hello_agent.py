"""A minimal agent: agenttui calls run(query) and shows what it returns.

A real agent would call its model here (Ollama at $OLLAMA_HOST, Bedrock, or an
OpenAI-compatible endpoint at $OPENAI_BASE_URL); the model id arrives as $MODEL_ID.
"""

import os
import platform


def run(query: str) -> str:
    print(f"received query: {query!r}")
    print(f"model configured: {os.environ.get('MODEL_ID', '(none)')}")
    words = query.split()
    return f"You said {len(words)} word(s); reversed: {' '.join(reversed(words))} (python {platform.python_version()})"
