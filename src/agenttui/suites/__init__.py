"""Agent regression suites (issue 20): a TOML file of cases with assertions, run case × repeat
through the queue, judged per case against a blessed baseline run, and reported as JUnit XML,
one self-contained HTML file, JSON and a terminal table. See docs/suites.md."""
