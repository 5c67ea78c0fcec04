"""The command line: train, evaluate, predict, and one-line errors that write nothing."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, check_results_table, snapshot, table_rows
from scratchpad import cli
from scratchpad.tasks import get_task_info, programs

CONFIG = f"--config={ROOT / 'configs' / 'addition.py'}:scratchpad,tiny"
TINY = ["--config.model.num_layers=2", "--config.model.d_model=32",
        "--config.model.num_heads=2", "--config.model.mlp_dim=64", "--config.train.batch_size=8",
        "--config.train.steps=4", "--config.train.log_every=2", "--config.eval.max_examples=16",
        "--config.eval.batch_size=16", "--config.data.inputs_length=0", "--config.data.targets_length=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  assert cli.main(["train", CONFIG, *TINY, f"--workdir={workdir}"]) == 0
  return workdir


def error_of(capsys, argv):
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: "), err
  return err[0]


def test_train_writes_checkpoints_metrics_and_config(trained):
  assert os.path.isdir(os.path.join(trained, "checkpoints", "4"))
  lines = open(os.path.join(trained, "metrics.jsonl")).read().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [2, 4]
  assert {"loss", "tokens_per_second", "learning_rate"} <= set(json.loads(lines[-1]))
  assert os.listdir(os.path.join(trained, "tensorboard"))


def test_evaluate_writes_results_and_prints_a_table(trained, capsys):
  assert cli.main(["evaluate", f"--workdir={trained}"]) == 0
  out = capsys.readouterr().out
  results = json.load(open(os.path.join(trained, "results.json")))
  assert set(results) == {"test", "ood", "run"}
  for split in ("test", "ood"):
    metrics = results[split]
    assert {"answer_accuracy", "sequence_accuracy"} <= set(metrics) and metrics["num_examples"] == 16
    lengths = metrics["answer_accuracy_by_length"]  # by the longer operand's digits
    assert lengths and set(lengths) <= ({str(n) for n in range(1, 9)} if split == "test" else {"9", "10"})
  # The printed table: a row per split (of the run at its step 4), the numbers written to results.json.
  task = json.load(open(os.path.join(trained, "config.json")))["task"]
  rows = check_results_table(out, {f"{task}@4": results})
  assert [(row["split"], row["examples"]) for row in rows] == [("test", "16"), ("ood", "16")]
  assert list(rows[0]) == ["run", "split", "answer_accuracy %", "sequence_accuracy %", "examples"]
  run = results["run"]  # where the figure came from
  assert run["training"]["steps"] == 4 and run["training"]["seconds"] > 0 and run["cpu_cores"] >= 1
  assert run["packages"]["jax"] and run["cpu"] and run["kernels"] and "git_commit" in run


@pytest.mark.parametrize("argv,expected", [
    (["train", CONFIG, "--config.train.stepz=3"], "unknown config key 'train.stepz'"),
    (["train", f"--config={ROOT / 'configs' / 'addition.py'}:scratchpad,huge"], "unknown variant 'huge'"),
    (["train", CONFIG, "--config.task=addition_multiply"], "unknown task 'addition_multiply'"),
    (["train", "--config=configs/nowhere.py"], "config file 'configs/nowhere.py' does not exist"),
    (["train", CONFIG, "--config.train.steps=many"], "bad value for config key 'train.steps'"),
    (["fly", CONFIG], "invalid choice: 'fly'"),
    (["compare", CONFIG, "--config.task=addition_multiply"], "unknown task 'addition_multiply'"),
    (["evaluate"], "has no config.json: it is not the workdir of a training run"),
    (["compare", CONFIG, "--formats=direct,chain_of_thought"], "unknown variant 'chain_of_thought'"),
    (["sweep", "--config=configs/sweeps/nowhere.py"], "sweep file 'configs/sweeps/nowhere.py' does not exist"),
    (["sweep", f"--config={ROOT / 'configs' / 'sweeps' / 'addition_sizes.py'}:huge"], "unknown sweep variant 'huge'"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, expected, capsys, tmp_path):
  workdir = tmp_path / "new"
  assert expected in error_of(capsys, argv + [f"--workdir={workdir}"])
  assert not workdir.exists()


@pytest.mark.e2e  # 20-25 s: whole runs; CI runs it with `-m e2e`
def test_a_run_on_a_non_local_filesystem_writes_everything_of_its_own_there(tmp_path, monkeypatch, capsys):
  """TensorFlow's ram:// stands in for gs://: both go through gfile. Orbax's arrays go through
  TensorStore, which serves gs:// but not ram://, so the checkpoints alone stay local here."""
  import tensorflow as tf
  from scratchpad.train import checkpoints
  monkeypatch.setattr(checkpoints, "DIRECTORY", str(tmp_path / "checkpoints"))  # joined to the workdir: absolute wins
  workdir = f"ram://{tmp_path.name}/runs"
  compare = ["compare", CONFIG.replace(":scratchpad,tiny", ":tiny"), "--formats=scratchpad", *TINY, f"--workdir={workdir}"]
  assert cli.main(compare) == 0
  assert cli.main([*compare, "--config.train.steps=6"]) == 0  # resumed: config, data position and records read back
  assert cli.main(["report", f"--workdir={workdir}"]) == 0
  written = {os.path.relpath(os.path.join(root, name), workdir)
             for root, _, names in tf.io.gfile.walk(workdir) for name in names}
  run = "scratchpad/"
  assert {"results.json", "results.md", "report.md", run + "config.json", run + "training.json",
          run + "metrics.jsonl", run + "results.json", run + "predictions/test.jsonl"} <= written
  assert any(f.endswith(".png") for f in written) and any(f.startswith(run + "tensorboard/") for f in written)
  assert any(f.startswith(run + "data_state/6/") for f in written)
  logged = [json.loads(line)["step"] for line in tf.io.gfile.GFile(f"{workdir}/{run}metrics.jsonl").read().splitlines()]
  assert logged == [2, 4, 6]
  assert json.loads(tf.io.gfile.GFile(f"{workdir}/{run}training.json").read())["sessions"] == 2
  assert sorted(os.listdir(tmp_path)) == ["checkpoints"]  # nothing else was written locally
  tf.io.gfile.rmtree(f"ram://{tmp_path.name}")


def test_checkpoint_from_another_model_shape_is_refused(trained, capsys):
  before = snapshot(trained)
  message = error_of(capsys, ["train", CONFIG, *TINY, "--config.model.d_model=64", f"--workdir={trained}"])
  assert "another config" in message and "d_model=64" in message
  assert snapshot(trained) == before


def test_predict_rejects_characters_the_task_never_uses(trained, capsys):
  before = snapshot(trained)
  message = error_of(capsys, ["predict", f"--workdir={trained}", "--input=2 9 * 5 7"])
  assert "'*'" in message
  assert snapshot(trained) == before


def test_predict_reads_an_input_file_and_prints_json_lines(trained, tmp_path, capsys):
  inputs = tmp_path / "inputs.txt"
  inputs.write_text("2 9 + 5 7\n1 2 3 4 5 6 7 8 9 + 6\n")
  assert cli.main(["predict", f"--workdir={trained}", f"--input_file={inputs}", "--max_new_tokens=30"]) == 0
  captured = capsys.readouterr()
  lines = [json.loads(line) for line in captured.out.strip().splitlines()]
  assert [line["input"] for line in lines] == ["2 9 + 5 7", "1 2 3 4 5 6 7 8 9 + 6"]
  for line in lines:
    assert line["answer"] == line["prediction"].rsplit("</scratch>", 1)[-1].strip()
  warning, = captured.err.strip().splitlines()  # the 9-digit input lies beyond the trained 1-8
  assert warning.startswith("warning: line 2 of") and "outside the 1-8 digits" in warning


@pytest.mark.parametrize("lines, bad_line, expected", [
    ("2 9 + 5 7\n29 + 57\n", 2, "is not an addition input"),
    ("2 9 + 5 7\n\n3 + 4\n", 2, "is not an addition input"),
    ("a\n", 1, "characters this task never uses: 'a'"),
    ("1 + 2\n0 7 + 1\n", 2, "leading zero"),
])
def test_predict_names_the_first_bad_line_before_decoding(trained, tmp_path, capsys, lines, bad_line, expected):
  inputs = tmp_path / "inputs.txt"
  inputs.write_text(lines)
  before = snapshot(trained)
  message = error_of(capsys, ["predict", f"--workdir={trained}", f"--input_file={inputs}"])
  assert message.startswith(f"error: line {bad_line} of {inputs}: ") and expected in message
  assert capsys.readouterr().out == "" and snapshot(trained) == before


@pytest.mark.e2e  # 20-25 s: whole runs; CI runs it with `-m e2e`
def test_compare_trains_each_format_and_prints_one_table(tmp_path, capsys):
  config = f"--config={ROOT / 'configs' / 'addition.py'}:tiny,laptop"
  assert cli.main(["compare", config, *TINY, "--config.train.steps=2", f"--workdir={tmp_path}"]) == 0
  results = json.load(open(tmp_path / "results.json"))
  assert set(results) == {"direct", "scratchpad"}
  assert json.load(open(tmp_path / "direct" / "config.json"))["task"] == "addition_direct_symbols"
  out = capsys.readouterr().out
  table = out[out.index("| run"):out.index("answer accuracy % by digits")]
  assert len(table.strip().splitlines()) == 2 + 4  # header, rule, 2 formats x (test, ood)
  assert [(row["run"], row["split"]) for row in check_results_table(out, results)] == [
      ("direct", "test"), ("direct", "ood"), ("scratchpad", "test"), ("scratchpad", "ood")]
  assert "train/test 1-8 digits, ood 9-10" in out  # the table says what range it was trained on
  by_length = out[out.index("answer accuracy % by digits"):].splitlines()[2]  # the header row
  assert [c.strip() for c in by_length.strip("|").split("|")][-3:] == ["8", "9 (ood)", "10 (ood)"], by_length
  assert (tmp_path / "accuracy_by_length.png").stat().st_size > 10_000  # the paper's figure 3 shape


def test_predict_prints_a_completion_from_the_command_line(trained, tmp_path, capsys):
  inputs = tmp_path / "inputs.txt"
  inputs.write_text("2 9 + 5 7\n")
  run = subprocess.run([sys.executable, "-m", "scratchpad", "predict", f"--workdir={trained}",
                        "--input=2 9 + 5 7", "--max_new_tokens=40"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert run.returncode == 0, run.stderr
  # An untrained model's text, but text from the real path: the checkpoint's greedy completion,
  # as `predict --input_file` prints it in its JSON line (one line: the completion alone).
  assert run.stdout.strip()
  assert cli.main(["predict", f"--workdir={trained}", f"--input_file={inputs}", "--max_new_tokens=40"]) == 0
  (line,) = capsys.readouterr().out.strip().splitlines()
  assert run.stdout == json.loads(line)["prediction"] + "\n"


@pytest.mark.e2e  # 20-25 s: whole runs; CI runs it with `-m e2e`
def test_compare_on_programs_reports_trace_line_accuracy(tmp_path, capsys):
  config = f"--config={ROOT / 'configs' / 'programs.py'}:tiny,paper"
  assert cli.main(["compare", config, *TINY, "--config.train.steps=2", "--config.eval.max_examples=4",
                   f"--workdir={tmp_path}"]) == 0
  results = json.load(open(tmp_path / "results.json"))
  assert "trace_line_accuracy" in results["scratchpad"]["test"]
  assert "trace_line_accuracy" not in results["direct"]["test"]
  # One table: a row per format and split, trace-line accuracy only where there is a trace.
  out = capsys.readouterr().out
  assert (tmp_path / "results.md").read_text() in out, "results.md is the printed summary"
  rows = check_results_table(out, results)  # "-": direct outputs have no trace lines
  assert [(row["run"], row["split"], row["examples"]) for row in rows] == [
      ("direct", "test", "4"), ("scratchpad", "test", "4")]  # the eval splits of configs/programs.py: test
  assert [row["trace_line_accuracy %"] == "-" for row in rows] == [True, False]


def test_trace_prints_a_programs_trace_without_tensorflow_or_jax(tmp_path):
  program = tmp_path / "p.py"
  program.write_text("def double(v):\n    return 2 * v\noutput = double(3)\n")
  check = "import sys; from scratchpad import cli; assert cli.main(['trace', sys.argv[1]]) == 0; " \
          "heavy = {'tensorflow', 'jax', 'seqio'} & set(sys.modules); assert not heavy, heavy"
  run = subprocess.run([sys.executable, "-c", check, str(program)], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
  assert run.returncode == 0, run.stderr
  assert run.stdout.splitlines() == [
      "state: {}", "line: def double(v):", 'state: {"double": "<callable_object double>"}',
      "line: output = double(3)", 'state: {"v": 3}', "line: return 2 * v",
      'state: {"double": "<callable_object double>", "output": 6}']


def test_data_prints_splits_and_what_was_dropped(capsys):
  assert cli.main(["data", "--task=programs_direct"]) == 0
  out = capsys.readouterr().out
  info = get_task_info("programs_direct")
  assert out.startswith(f"programs_direct: {info.description}\n")
  rows = table_rows(out, "split")
  assert [(row["split"], row["examples"]) for row in rows] == [("test", "200"), ("validation", "100"), ("train", "400")]
  for row in rows:
    longest = info.max_lengths[row["split"]]
    assert (row["longest input"], row["longest target"]) == (str(longest["inputs"]), str(longest["targets"]))
    assert row["build"] == str(programs.PROGRAM_REPORTS[("programs", row["split"])])
    assert row["build"].startswith(f"{row['examples']} kept; dropped: ")  # every kept program is an example
  assert "too long for the target length" in rows[0]["build"]


@pytest.mark.parametrize("argv,expected", [
    (["trace", "nowhere.py"], "program file 'nowhere.py' does not exist"),
    (["trace"], "trace needs a Python file"),
    (["data", "--task=programs_forever"], "unknown task 'programs_forever'"),
])
def test_trace_and_data_errors_are_one_line(argv, expected, capsys):
  assert expected in error_of(capsys, argv)
