"""Evaluation: batched compiled greedy decoding and the tasks' seqio metrics.

Prompts are the decoder's view of an input: the bos id (0, as seqio's
feature converter shifts in) then the input tokens with their eos.

Scoring applies each Task's own postprocessor and `metric_fns`, as `seqio.Evaluator` does,
without going through Evaluator: its `predict_fn` receives the whole split on every process
and must return every prediction, so the per-process shards, their order by length and the
gather would live inside `predict_fn` all the same, and what Evaluator would add is its metric
loop (the few lines of `evaluate_split`) and its loggers, which have no place for the accuracy
by length or the prediction files (input, target, prediction) the reports read.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
import seqio
from jax.experimental import multihost_utils

from scratchpad import files
from scratchpad.evaluation import run_record
from scratchpad.model import decode
from scratchpad.tasks import VOCABULARY, get_task_info, pause_tasks
from scratchpad.tasks.vocabulary import EOS_ID, PAD_ID, SCRATCH_CLOSE, check_text


def split_examples(task_name: str, split: str, max_examples: int = 0) -> list[dict]:
  """The split's examples in order: input ids (eos and any pauses included), the text of
  both features, and the whole preprocessed example (postprocessors read gold answers there)."""
  ds = seqio.get_mixture_or_task(task_name).get_dataset(
      sequence_length=None, split=split, shuffle=False, trim_output_features=False)
  if max_examples:
    ds = ds.take(max_examples)
  return [{"inputs": ex["inputs"].tolist(),
           "inputs_text": ex["inputs_pretokenized"].decode(),
           "targets_text": ex["targets_pretokenized"].decode(),
           "example": ex} for ex in ds.as_numpy_iterator()]


def left_pad(sequences: list[list[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
  tokens = np.full((len(sequences), length), PAD_ID, np.int32)
  segment_ids = np.zeros((len(sequences), length), np.int32)
  for row, seq in enumerate(sequences):
    if len(seq) > length:
      raise ValueError(f"prompt of {len(seq)} tokens is longer than the decoder's {length}")
    tokens[row, length - len(seq):] = seq
    segment_ids[row, length - len(seq):] = 1
  return tokens, segment_ids


def prompt_ids(input_ids: list[int]) -> list[int]:
  return [PAD_ID] + list(input_ids)  # PAD_ID doubles as bos, as in seqio's converter


def generate(graphdef, params, prompts: list[list[int]], prompt_length: int, max_new_tokens: int,
             batch_size: int, vocabulary: seqio.Vocabulary = VOCABULARY) -> list[str]:
  """Greedy completions of `prompts`, as text up to (not including) eos.

  With several processes each decodes its own shard (`process_shards`): a global batch is
  every process's rows side by side, decoded as one sharded program, and every process then
  reads all the completions. Every batch has the same shape (the last is padded), so
  decoding compiles once; rows go in order of length, so a batch's rows tend to finish
  together and the decode loop stops early.
  """
  processes = jax.process_count()
  local_batch = -(-batch_size // processes)
  if processes > 1:  # each of this process's devices decodes as many rows
    local_batch = -(-local_batch // jax.local_device_count()) * jax.local_device_count()
  shards = process_shards(prompts, processes)
  if processes > 1:
    print(f"process {jax.process_index()}: decoding {len(shards[jax.process_index()])} of {len(prompts)} "
          "examples", flush=True)
  num_batches = -(-max(map(len, shards)) // local_batch)
  texts = [""] * len(prompts)
  for b in range(num_batches):
    rows = [shard[b * local_batch:(b + 1) * local_batch] for shard in shards]  # every process's
    tokens, segment_ids = left_pad(_padded([prompts[i] for i in rows[jax.process_index()]], local_batch),
                                   prompt_length)
    if processes > 1:
      tokens, segment_ids = (_global_rows(x) for x in (tokens, segment_ids))
    out_BxT = decode.greedy_decode(graphdef, params, tokens, segment_ids,
                                   max_new_tokens=max_new_tokens, eos_id=EOS_ID)
    out_BxT = np.asarray(multihost_utils.process_allgather(out_BxT, tiled=True) if processes > 1 else out_BxT)
    for p, shard_rows in enumerate(rows):
      for i, row in zip(shard_rows, out_BxT[p * local_batch:(p + 1) * local_batch]):
        ids = row.tolist()
        texts[i] = vocabulary.decode(ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids)
  return texts


def process_shards(prompts: list[list[int]], processes: int) -> list[list[int]]:
  """Each process's prompt indices: every `processes`-th of them in order of length, so the
  shards are equal in size and in the lengths they decode."""
  order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
  return [order[p::processes] for p in range(processes)]


def _padded(rows: list[list[int]], size: int) -> list[list[int]]:
  """`size` prompts: a short (or empty) last batch repeats a prompt; the repeats are dropped."""
  return rows + [rows[-1] if rows else [PAD_ID]] * (size - len(rows))


def _global_rows(local_BxL: np.ndarray) -> jax.Array:
  """Every process's rows of a batch as one array, split over all devices by rows."""
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("rows",))
  return jax.make_array_from_process_local_data(
      jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows")), local_BxL)


def evaluate_split(task_name: str, split: str, graphdef, params, batch_size: int, max_examples: int = 0,
                   max_new_tokens: int = 0):
  """Decodes a split and scores it with the task's postprocessor and metric functions.

  Prompts carry the task's pauses (M_inf), so the answer is read from after the
  last one. `max_new_tokens` (0: the split's longest target) bounds decoding.
  """
  info, task = get_task_info(task_name), seqio.get_mixture_or_task(task_name)
  examples = split_examples(task_name, split, max_examples)
  if not max_new_tokens:
    if info.max_lengths is None:
      raise ValueError(f"task {task_name} has no measured target length: give max_new_tokens")
    max_new_tokens = info.max_lengths[split]["targets"]
  prompts = [prompt_ids(e["inputs"]) for e in examples]
  t0 = time.perf_counter()
  predictions = generate(graphdef, params, prompts, max(map(len, prompts)), max_new_tokens,
                         min(batch_size, len(examples)), task.output_features["targets"].vocabulary)
  seconds = time.perf_counter() - t0
  targets = [e["targets_text"] for e in examples]
  gold = [task.postprocess_fn(t, example=e["example"], is_target=True) for t, e in zip(targets, examples)]
  predicted = [task.postprocess_fn(p, example=e["example"], is_target=False) for p, e in zip(predictions, examples)]
  metrics = {}
  for metric_fn in task.metric_fns:
    metrics.update(metric_fn(gold, predicted))
  if info.breakdown:
    metrics[info.breakdown.metric] = accuracy_by_count(
        info, [e["inputs_text"] for e in examples], gold, predicted)
  metrics["num_examples"] = len(examples)
  metrics["decode_seconds"] = seconds
  records = [{"input": e["inputs_text"], "target": t, "prediction": p}
             for e, t, p in zip(examples, targets, predictions)]
  return metrics, records


def accuracy_by_count(info, inputs: list[str], targets: list[str], predictions: list[str]) -> dict[str, float]:
  """Answer accuracy in % per count of the task's breakdown (`{"1": ..., "2": ...}`, by
  operand digits for addition, terms for polynomials), counts in increasing order."""
  right: dict[int, list[bool]] = {}
  for text, target, prediction in zip(inputs, targets, predictions):
    right.setdefault(info.breakdown.count_fn(text), []).append(info.answer_fn(target) == info.answer_fn(prediction))
  return {str(n): 100.0 * sum(right[n]) / len(right[n]) for n in sorted(right)}


def results_path(workdir: str, name: str = "results") -> str:
  """Where `evaluate(..., name=name)` writes its metrics: WORKDIR/NAME.json."""
  return os.path.join(workdir, f"{name}.json")


def decode_limit(cfg, task: str) -> int:
  """Tokens to decode: the config's targets length for corpora too big to measure, else 0
  (the split's longest target)."""
  return cfg.data.targets_length if get_task_info(task).max_lengths is None else 0


def evaluate(cfg, workdir: str, graphdef, params, num_pauses: int | None = None,
             name: str = "results") -> dict[str, dict[str, float]]:
  """Evaluates every split of `cfg.eval.splits` on `config.eval_task(cfg, num_pauses)`.

  Writes WORKDIR/NAME.json, with the run's record (`run_record`), and
  WORKDIR/predictions/NAME_SPLIT.jsonl (NAME `results`: predictions/SPLIT.jsonl).
  """
  t0 = time.perf_counter()
  task = pause_tasks.eval_task(cfg, num_pauses)
  max_new_tokens = decode_limit(cfg, task)
  results = {}
  for split in cfg.eval.splits:
    metrics, records = evaluate_split(task, split, graphdef, params, cfg.eval.batch_size,
                                      cfg.eval.max_examples, max_new_tokens)
    results[split] = metrics
    prefix = "" if name == "results" else f"{name}_"
    files.write_text(os.path.join(workdir, "predictions", f"{prefix}{split}.jsonl"),
                     "".join(json.dumps(r) + "\n" for r in records))  # each process decodes a shard, one writes
  results[run_record.RUN_KEY] = run_record.record(workdir, time.perf_counter() - t0)
  files.write_json(results_path(workdir, name), results)
  return results


def answer_accuracy_fn(cfg, graphdef, split: str, max_examples: int):
  """params -> answer accuracy (%) on the first `max_examples` of `split`: `eval.every_accuracy`'s
  callback for the trainer."""
  task = pause_tasks.eval_task(cfg)
  max_new_tokens = decode_limit(cfg, task)

  def accuracy(params) -> float:
    metrics, _ = evaluate_split(task, split, graphdef, params, cfg.eval.batch_size, max_examples, max_new_tokens)
    return metrics[get_task_info(task).headline_metric]

  return accuracy


def check_input(task_name: str, text: str) -> str | None:
  """Raises ValueError if `text` is not an input of the task's format (its alphabet, and the
  task's own parser); returns a warning if it lies outside the counts the task trains on."""
  info = get_task_info(task_name)
  check_text(text, info.alphabet)
  if info.parse_input:
    info.parse_input(text)
  if info.breakdown:
    count, (lo, hi) = info.breakdown.count_fn(text), info.breakdown.trained
    if not lo <= count <= hi:
      return (f"{count} {info.breakdown.unit}, outside the {lo}-{hi} {info.breakdown.unit} the model "
              "was trained on: decoding it anyway")
  return None


def prompt_for_text(task_name: str, text: str) -> list[int]:
  """A typed input as the task's prompt: bos, its ids, eos, and the task's pauses."""
  info = get_task_info(task_name)
  check_input(task_name, text)
  vocabulary = seqio.get_mixture_or_task(task_name).output_features["inputs"].vocabulary
  pauses = [getattr(vocabulary, "pause_id", None)] * info.num_pauses
  ids = vocabulary.encode(text) + [vocabulary.eos_id]
  return prompt_ids(pauses + ids if info.prepend_pauses else ids + pauses)


def predict(task_name: str, graphdef, params, texts: list[str], max_new_tokens: int = 1024,
            batch_size: int = 500) -> list[str]:
  """The model's greedy completions of input texts (decoding stops at eos), in batches."""
  prompts = [prompt_for_text(task_name, text) for text in texts]
  vocabulary = seqio.get_mixture_or_task(task_name).output_features["targets"].vocabulary
  return generate(graphdef, params, prompts, max(map(len, prompts)), max_new_tokens,
                  min(batch_size, len(prompts)), vocabulary)


def answer_text(prediction: str) -> str:
  """What a prediction answers: the text after `</scratch>`, or all of it (direct formats)."""
  return prediction.rsplit(SCRATCH_CLOSE, 1)[-1].strip()
