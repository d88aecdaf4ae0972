"""A Python scorer for the example suite (docs/suites.md). agenttui runs it in each test's own
sandbox once the agent has answered: it gets the response and the test's record (outcome, exit
code, response, error, duration) and returns pass/fail, or a score with a reason."""


def one_sentence(response, test):
    """A capital's answer is one sentence: (passed, reason)."""
    if test["outcome"] != "completed":
        return False, f"the agent {test['outcome']}: {test['error']}"
    sentences = [part for part in (response or "").split(".") if part.strip()]
    return len(sentences) == 1, f"{len(sentences)} sentences in {response!r}"
