"""QA: a trace replay tells the user when it drops rows (failed requests with 0 tokens).

The rows are dropped on purpose (the simulator's requests carry at least one token each way),
but a user replaying BurstGPT must learn that the replay has fewer requests than the file: at
INFO level nothing is shown, since infersim configures no logging handler; a WARNING reaches
stderr through Python's last-resort handler.
"""

from __future__ import annotations

import logging

from infersim.workload.traces import load_burstgpt


def test_dropped_rows_are_reported_as_a_warning(tmp_path, caplog):
    path = tmp_path / "burst.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "0,ChatGPT,100,0,100,Conversation log\n"
                    "1.5,ChatGPT,100,20,120,Conversation log\n"
                    "2.0,ChatGPT,80,10,90,Conversation log\n")
    with caplog.at_level(logging.WARNING, logger="infersim"):
        trace = load_burstgpt(path)
    assert trace.dropped == 1 and len(trace.prompt_tokens) == 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(path) in message and "dropped 1 of 3 rows" in message
