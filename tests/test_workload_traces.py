"""Trace loaders: tiny fixtures, the real public traces, replay options and bad input."""

from __future__ import annotations

import gzip
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.workload import tracefile, traces
from infersim.workload.traces import Trace, load_trace, replay, with_arrivals

FIXTURES = Path(__file__).parent / "fixtures" / "traces"
REAL = Path(__file__).resolve().parents[2] / "shared" / "traces"


def fixture(name: str) -> Path:
    return FIXTURES / name


# ---------------------------------------------------------------------------------------------
# Tiny fixtures


@pytest.mark.parametrize("name", ["azure_2023.csv", "azure_2023.csv.gz"])
def test_azure_2023_seven_decimal_timestamps_and_failed_row(name):
    trace = load_trace(fixture(name), "azure")
    # 18:15:46.6805900 -> 50.9951690 -> 51.2 -> 53.0805900; the 0-output row is dropped.
    np.testing.assert_allclose(trace.arrival_s, [0.0, 4.314579, 4.51941, 6.4], atol=1e-9)
    assert trace.prompt_tokens.tolist() == [374, 396, 2048, 12]
    assert trace.output_tokens.tolist() == [44, 109, 1, 300]
    assert trace.dropped == 1
    assert trace.prefix_hashes is None


def test_azure_2024_utc_offsets():
    trace = load_trace(fixture("azure_2024.csv"), "azure")
    # The last row is 02:00:01.25 at +02:00, i.e. 00:00:01.25 UTC.
    np.testing.assert_allclose(trace.arrival_s, [0.0, 0.5, 0.993833, 1.243833], atol=1e-9)
    assert trace.prompt_tokens.tolist() == [4808, 3180, 110, 90]


@pytest.mark.parametrize("name", ["mooncake.jsonl", "mooncake.jsonl.gz"])
def test_mooncake_ms_timestamps_and_prefix_blocks(name):
    trace = load_trace(fixture(name), "mooncake")
    assert trace.arrival_s.tolist() == [0.0, 0.0, 3.0, 6.0]
    assert trace.prompt_tokens.tolist() == [1000, 1030, 512, 2049]
    assert [h.tolist() for h in trace.prefix_hashes] == [[0, 1], [0, 2, 3], [4], [0, 1, 5, 6, 7]]
    assert all(len(h) == math.ceil(p / 512)
               for h, p in zip(trace.prefix_hashes, trace.prompt_tokens, strict=True))
    assert trace.prefix_block_tokens == 512


def test_burstgpt_drops_failed_requests_and_filters_models():
    trace = load_trace(fixture("burstgpt.csv"), "burstgpt")
    assert trace.dropped == 1  # the row with 0 response tokens
    assert trace.arrival_s.tolist() == [0.0, 113.0, 125.5]
    assert trace.output_tokens.tolist() == [18, 276, 151]
    gpt4 = load_trace(fixture("burstgpt.csv"), "burstgpt", model="GPT-4")
    assert gpt4.prompt_tokens.tolist() == [417] and gpt4.arrival_s.tolist() == [0.0]


def test_burstgpt_unknown_model_lists_the_known_ones():
    with pytest.raises(InfersimError) as err:
        load_trace(fixture("burstgpt.csv"), "burstgpt", model="Claude")
    assert str(err.value) == f"{fixture('burstgpt.csv')}: Model: expected one of ChatGPT, GPT-4, got 'Claude'"


def test_length_table_known_columns_and_named_columns(tmp_path):
    trace = load_trace(fixture("lengths.csv"), "lengths")
    assert trace.arrival_s is None
    assert trace.prompt_tokens.tolist() == [3772, 2015, 100]
    assert trace.output_tokens.tolist() == [54, 156, 7]
    (tmp_path / "t.csv").write_text("q,a\n5,6\n")
    named = load_trace(tmp_path / "t.csv", "lengths", prompt_column="q", output_column="a")
    assert named.prompt_tokens.tolist() == [5] and named.output_tokens.tolist() == [6]


# ---------------------------------------------------------------------------------------------
# Replay


def test_replay_window_speedup_and_cap():
    trace = load_trace(fixture("mooncake.jsonl"), "mooncake")
    full = replay(trace)
    assert full.arrival_s.tolist() == [0.0, 0.0, 3.0, 6.0]
    fast = replay(trace, speedup=2.0)
    assert fast.arrival_s.tolist() == [0.0, 0.0, 1.5, 3.0]
    window = replay(trace, window_s=(1.0, 6.0))  # [start, end): the 6 s request is outside
    assert window.arrival_s.tolist() == [0.0]  # relative to the first kept arrival
    assert window.prompt_tokens.tolist() == [512]
    assert [h.tolist() for h in window.prefix_hashes] == [[4]]
    capped = replay(trace, max_requests=3)
    assert len(capped) == 3 and capped.arrival_s[-1] == 3.0


def test_replay_sorts_unsorted_traces_stably(tmp_path):
    (tmp_path / "t.jsonl").write_text(
        '{"timestamp": 5000, "input_length": 1, "output_length": 1}\n'
        '{"timestamp": 1000, "input_length": 2, "output_length": 1}\n'
        '{"timestamp": 5000, "input_length": 3, "output_length": 1}\n')
    table = replay(load_trace(tmp_path / "t.jsonl", "mooncake"))
    assert table.arrival_s.tolist() == [0.0, 4.0, 4.0]
    assert table.prompt_tokens.tolist() == [2, 1, 3]


def test_lengths_table_under_synthetic_arrivals():
    trace = load_trace(fixture("lengths.csv"), "lengths")
    table = with_arrivals(trace, np.array([0.0, 1.0]), max_requests=2)
    assert table.prompt_tokens.tolist() == [3772, 2015]
    with pytest.raises(InfersimError) as err:
        replay(trace)
    assert "a trace with timestamps (a lengths table needs an arrival process)" in str(err.value)


def test_window_without_requests_says_how_long_the_trace_is():
    trace = load_trace(fixture("mooncake.jsonl"), "mooncake")
    with pytest.raises(InfersimError) as err:
        replay(trace, window_s=(100, 200))
    assert str(err.value) == (f"{fixture('mooncake.jsonl')}: window_s: expected a window holding "
                              "requests (the trace spans 6.0 s), got [100, 200]")


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the file, the line and the field

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900,374,44\n"
BG = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


@pytest.mark.parametrize("fmt, text, message", [
    ("azure", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,374\n",
     "{f}:1: GeneratedTokens: no column GeneratedTokens; expected a header naming it, got "
     "'TIMESTAMP,ContextTokens'"),
    ("azure", AZ + ROW + "yesterday,396,109\n",
     "{f}:3: TIMESTAMP: expected a timestamp such as '2023-11-16 18:17:03.9799600', got "
     "'yesterday'"),
    ("azure", AZ + ROW + "2023-11-16 18:15:47,-3,109\n",
     "{f}:3: ContextTokens: expected a token count >= 0, got -3"),
    ("azure", AZ + "2023-11-16 18:15:46.6805900,374,4.5\n",
     "{f}:2: GeneratedTokens: expected a whole number of tokens, got 4.5"),
    ("azure", AZ + "2023-11-16 18:15:46.6805900,374\n",
     "{f}:2: GeneratedTokens: expected a whole number of tokens, got ''"),
    ("azure", AZ + ROW + "\n2023-11-16 18:15:47,12,x\n",
     "{f}:4: GeneratedTokens: expected a whole number of tokens, got 'x'"),
    ("azure", AZ + ROW + ROW + "2023-11-16 18:15:46.6805900,374,44,9\n",
     "{f}:4: malformed row; expected 3 fields as in the header, got '4 fields'"),
    ("azure", AZ + "2023-11-16 18:15:46.6805900,374,44,9\n",
     "{f}:2: malformed row; expected 3 fields as in the header, got 'more fields'"),
    ("azure", "", "{f}:1: empty file; expected a CSV header row then at least one request"),
    ("azure", AZ, "{f}: no requests; expected at least one data row"),
    ("mooncake", '{"timestamp": 0, "input_length": 10, "output_length": 2}\n'
                 '{"timestamp": 5, "input_length": -1, "output_length": 2}\n',
     "{f}:2: input_length: expected a value >= 0, got -1"),
    ("mooncake", '{"timestamp": 0, "input_length": 10}\n',
     "{f}:1: output_length: no output_length; expected every line to have it"),
    ("mooncake", '{"timestamp": "soon", "input_length": 10, "output_length": 2}\n',
     "{f}:1: timestamp: expected a number, got 'soon'"),
    ("mooncake", '{"timestamp": 0, "input_length": 10.5, "output_length": 2}\n',
     "{f}:1: input_length: expected a whole number, got 10.5"),
    ("mooncake", '\n{"timestamp": 0, "input_length": 10, "output_length": 2\n',
     "{f}:2: invalid JSON (Expecting ',' delimiter, character 57); expected one JSON object per "
     "line"),
    ("mooncake", "", "{f}: empty file; expected at least one JSON line"),
    ("mooncake", '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [1]}\n'
                 '{"timestamp": 0, "input_length": 10, "output_length": 2}\n',
     "{f}:2: hash_ids: hash_ids missing; expected hash_ids on every line or on none"),
    ("burstgpt", BG + "-1,ChatGPT,1,1,2,API log\n",
     "{f}:2: Timestamp: expected a time >= 0 in seconds, got -1"),
    ("burstgpt", BG + "5,ChatGPT,472,0,490,Conversation log\n",
     "{f}: all 1 rows have 0 prompt or output tokens; expected at least one request with tokens "
     "each way"),
    ("lengths", "a,b\n1,2\n",
     "{f}:1: prompt_column: no prompt/output length columns; expected a header with a known pair "
     "such as num_prefill_tokens,num_decode_tokens, or prompt_column and output_column naming "
     "them, got 'a,b'"),
    ("lengths", "num_prefill_tokens,num_decode_tokens\n1,2\n3,-4\n",
     "{f}:3: num_decode_tokens: expected a token count >= 0, got -4"),
    ("parquet", "a,b\n1,2\n",
     "{f}: format: expected one of azure, mooncake, burstgpt, lengths, got 'parquet'"),
])
def test_bad_input_is_one_line_naming_file_line_and_field(tmp_path, fmt, text, message):
    path = tmp_path / "trace.txt"
    path.write_text(text)
    with pytest.raises(InfersimError) as err:
        load_trace(path, fmt)
    assert str(err.value) == message.format(f=path)
    assert "\n" not in str(err.value)


def test_bad_bytes_truncated_gzip_and_missing_file(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(InfersimError, match=r"bin.csv: undecodable bytes; expected UTF-8 text"):
        load_trace(tmp_path / "bin.csv", "azure")
    body = gzip.compress(b'{"timestamp": 0, "input_length": 10, "output_length": 2}\n' * 50,
                         mtime=0)
    (tmp_path / "cut.jsonl.gz").write_bytes(body[:-12])
    with pytest.raises(InfersimError, match=r"cut.jsonl.gz: unreadable gzip stream .*; expected "
                                            r"a complete gzip file$"):
        load_trace(tmp_path / "cut.jsonl.gz", "mooncake")
    with pytest.raises(InfersimError, match=r"nope.csv: no such file; expected an existing trace"):
        load_trace(tmp_path / "nope.csv", "azure")


def test_gzip_is_recognised_by_magic_bytes_not_suffix(tmp_path):
    (tmp_path / "renamed.csv").write_bytes(fixture("azure_2023.csv.gz").read_bytes())
    assert len(load_trace(tmp_path / "renamed.csv", "azure")) == 4


# ---------------------------------------------------------------------------------------------
# The real public traces (../shared/traces); CI machines without them skip these.


def real(relative: str) -> Path:
    path = REAL / relative
    if not path.is_file():
        pytest.skip(f"real trace {relative} not present")
    return path


@pytest.mark.parametrize("relative, fmt, rows, mean_in, mean_out, span_min", [
    ("azure-2023/AzureLLMInferenceTrace_conv.csv", "azure", 19_366, 1_155, 211, 58.4),
    ("azure-2023/AzureLLMInferenceTrace_code.csv", "azure", 8_819, 2_048, 27.9, 57.3),
    ("mooncake-fast25/conversation_trace.jsonl", "mooncake", 12_031, 12_035, 343, 59.0),
    ("mooncake-fast25/synthetic_trace.jsonl", "mooncake", 3_993, 15_326, 149, 17.0),
    ("arxiv-summarization/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
     "lengths", 28_257, 2_588, 291, None),
])
def test_real_traces_match_their_published_statistics(relative, fmt, rows, mean_in, mean_out,
                                                      span_min):
    trace = load_trace(real(relative), fmt)
    assert len(trace) == rows and trace.dropped == 0
    assert trace.prompt_tokens.mean() == pytest.approx(mean_in, rel=5e-4)
    assert trace.output_tokens.mean() == pytest.approx(mean_out, rel=5e-3)
    if span_min is not None:
        assert trace.span_s / 60 == pytest.approx(span_min, abs=0.06)  # README rounds to 0.1
        assert np.all(np.diff(trace.arrival_s) >= 0)  # all four are recorded in order
    if fmt == "mooncake":
        lengths = np.array([len(h) for h in trace.prefix_hashes])
        assert np.array_equal(lengths, np.ceil(trace.prompt_tokens / 512).astype(int))


def test_real_mooncake_prefix_reuse_matches_the_published_hit_rate():
    trace = load_trace(real("mooncake-fast25/conversation_trace.jsonl"), "mooncake")
    # With an unbounded cache a block hits when an earlier request (or an earlier block of the
    # same request) already carried its id: 36.6 % per the trace README.
    flat = np.concatenate(trace.prefix_hashes)
    hit_rate = 1 - len(np.unique(flat)) / len(flat)
    assert hit_rate == pytest.approx(0.366, abs=0.002)


def test_real_azure_conv_replayed_twice_as_fast_in_a_window():
    table = replay(load_trace(real("azure-2023/AzureLLMInferenceTrace_conv.csv"), "azure"),
                   window_s=(600, 1200), speedup=2.0, max_requests=1000)
    assert len(table) == 1000 and table.arrival_s[0] == 0.0
    # ~5.5 req/s in trace time is ~11 req/s after a 2x speed-up.
    assert len(table) / table.arrival_s[-1] == pytest.approx(11.0, rel=0.15)


@settings(max_examples=60, deadline=None)
@given(times=st.lists(st.floats(0, 1e4), min_size=1, max_size=60),
       speedup=st.floats(0.1, 10), cap=st.one_of(st.none(), st.integers(1, 80)),
       window=st.one_of(st.none(), st.tuples(st.floats(0, 5e3), st.floats(1, 5e3))))
def test_replay_invariants(times, speedup, cap, window):
    n = len(times)
    arrival = np.asarray(times) - min(times)
    trace = Trace(path=Path("t"), format="mooncake", arrival_s=arrival,
                  prompt_tokens=np.arange(1, n + 1), output_tokens=np.ones(n, dtype=np.int64))
    window_s = None if window is None else (window[0], window[0] + window[1])
    try:
        table = replay(trace, speedup=speedup, window_s=window_s, max_requests=cap)
    except InfersimError as err:  # only an empty window is refused
        assert window_s is not None and "a window holding requests" in str(err)
        assert not np.any((arrival >= window_s[0]) & (arrival < window_s[1]))
        return
    assert table.arrival_s[0] == 0 and np.all(np.diff(table.arrival_s) >= 0)
    assert len(table) <= (n if cap is None else min(n, cap))
    # Every kept request is a distinct trace row, and its gaps are the trace's, divided.
    rows = table.prompt_tokens - 1
    assert len(set(rows.tolist())) == len(rows)
    np.testing.assert_allclose(table.arrival_s * speedup, arrival[rows] - arrival[rows[0]],
                               rtol=1e-9, atol=1e-9)
    if window_s is not None:
        assert np.all((arrival[rows] >= window_s[0]) & (arrival[rows] < window_s[1]))
    if cap is None and window_s is None:
        assert len(table) == n


# ---------------------------------------------------------------------------------------------
# Reading stops early for a window or a cap, and never changes what is replayed


def _write_mooncake(path: Path, stamps_ms, lengths) -> None:
    path.write_text("".join(
        f'{{"timestamp": {t}, "input_length": {n}, "output_length": {n % 3}}}\n'
        for t, n in zip(stamps_ms, lengths, strict=True)))


def test_reading_stops_past_the_window_of_an_ordered_trace(tmp_path, monkeypatch):
    monkeypatch.setattr(traces, "_CHECK_LINES", 2)
    path = tmp_path / "t.jsonl"
    _write_mooncake(path, [1000 * i for i in range(20)], range(1, 21))
    partial = load_trace(path, "mooncake", ordered=True, window_s=(2, 5))
    # Read in pairs up to the first arrival at or past 5 s (rows with 0 output are dropped).
    assert len(partial) + partial.dropped == 6
    assert table_bytes(replay(partial, window_s=(2, 5))) == table_bytes(
        replay(load_trace(path, "mooncake"), window_s=(2, 5)))
    capped = load_trace(path, "mooncake", ordered=True, max_requests=3)
    assert len(capped) + capped.dropped == 4
    # Without the promise of order the whole file is read.
    whole = load_trace(path, "mooncake", window_s=(2, 5))
    assert len(whole) + whole.dropped == 20


def test_a_trace_declared_ordered_must_be(tmp_path, monkeypatch):
    monkeypatch.setattr(traces, "_CHECK_LINES", 2)
    path = tmp_path / "t.jsonl"
    stamps = [1000 * i for i in range(20)]
    stamps[1], stamps[15] = stamps[15], stamps[1]
    _write_mooncake(path, stamps, range(1, 21))
    with pytest.raises(InfersimError) as err:
        load_trace(path, "mooncake", ordered=True)
    assert str(err.value) == (f"{path}:3: out of order; expected rows in arrival order (the "
                              "trace is declared ordered), got 'an arrival 13 s before the "
                              "previous row'")
    # Undeclared, it is read whole and sorted: the misplaced early row is found.
    assert replay(load_trace(path, "mooncake", window_s=(0, 2)), window_s=(0, 2)
                  ).prompt_tokens.tolist() == [1, 16]


def test_csv_reading_stops_by_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(tracefile, "CHUNK_ROWS", 3)
    rows = "".join(f"2023-11-16 18:15:{s:02d}.5000000,{s + 1},{s % 4 + 1}\n" for s in range(30))
    (tmp_path / "a.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows)
    path = tmp_path / "a.csv"
    assert len(load_trace(path, "azure", ordered=True, max_requests=4)) == 6  # two chunks
    assert len(load_trace(path, "azure", ordered=True, window_s=(0, 7))) == 9
    assert len(load_trace(path, "azure", max_requests=4)) == 30
    (tmp_path / "b.csv").write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows
                                    + "2023-11-16 18:15:01,1,1\n")
    with pytest.raises(InfersimError, match=r"b.csv:32: out of order"):
        load_trace(tmp_path / "b.csv", "azure", ordered=True)


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(0, 5000), min_size=1, max_size=40),
       cap=st.one_of(st.none(), st.integers(1, 50)),
       window=st.one_of(st.none(), st.tuples(st.floats(0, 60), st.floats(0.5, 60))),
       chunk=st.integers(1, 7))
def test_stopping_early_never_changes_the_replay(gaps, cap, window, chunk):
    stamps = np.cumsum(gaps).tolist()
    window_s = None if window is None else (window[0], window[0] + window[1])
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(traces, "_CHECK_LINES", chunk)
        path = Path(folder) / "t.jsonl"
        _write_mooncake(path, stamps, range(1, len(stamps) + 1))
        results = []
        for limits in ({}, {"ordered": True, "window_s": window_s, "max_requests": cap}):
            try:
                results.append(table_bytes(replay(load_trace(path, "mooncake", **limits),
                                                  window_s=window_s, max_requests=cap)))
            except InfersimError as err:
                results.append(str(err).split("(the trace spans")[0])
        assert results[0] == results[1]


def table_bytes(t) -> bytes:
    parts = [t.arrival_s.tobytes(), t.prompt_tokens.tobytes(), t.output_tokens.tobytes()]
    return b"|".join(parts)
