"""C4 pretraining Tasks on mocked TFDS data, with a SentencePiece model trained here."""

from __future__ import annotations

import random

import numpy as np
import pytest
import seqio
import sentencepiece as spm
import tensorflow as tf
import tensorflow_datasets as tfds

from scratchpad.tasks import c4, get_task_info
from scratchpad.tasks.vocabulary import SPM_ENV, PauseSentencePieceVocabulary

LENGTH = 64
SUFFIX = "_test"
STD, PAUSE = f"c4_std{SUFFIX}", f"c4_std{SUFFIX}_inserted10pct"
_WORDS = ("the cat dog sat ran on a mat in house of big small red blue quickly slowly and but "
          "jumped walked over under tree river old new happy sad bird sings morning evening").split()


def sentences(rng: random.Random, n: int) -> list[str]:
  return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
          for _ in range(n)]


# Long enough that most documents are cut into several pieces of LENGTH - 1 tokens.
DOCUMENTS = [" ".join(sentences(random.Random(i), 8 + 2 * i)) for i in range(10)]


@pytest.fixture(scope="module")
def spm_path(tmp_path_factory) -> str:
  prefix = tmp_path_factory.mktemp("spm") / "spm"
  # The mocked TFDS text is random "a".."j" and spaces: the corpus covers those characters.
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences(random.Random(0), 400)), model_prefix=str(prefix), vocab_size=100,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2)
  return f"{prefix}.model"


@pytest.fixture(scope="module")
def vocab(spm_path) -> PauseSentencePieceVocabulary:
  vocabulary = PauseSentencePieceVocabulary(spm_path)
  assert c4.register(vocabulary, suffix=SUFFIX) == (STD, PAUSE)
  return vocabulary


@pytest.fixture
def long_documents():
  """C4 with DOCUMENTS as its text, through the real TFDS builder and seqio source."""

  def as_dataset(self, *args, **kwargs):
    blank = [""] * len(DOCUMENTS)
    return tf.data.Dataset.from_tensor_slices({"text": DOCUMENTS, "url": blank, "content-type": blank,
                                               "content-length": blank, "timestamp": blank})

  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset):
    yield


def examples(task: str, length: int = LENGTH, **kwargs) -> list[np.ndarray]:
  # Mocked TFDS has no split sizes, which seqio's in-memory cache asks for (real C4 is far too big for it).
  ds = seqio.get_mixture_or_task(task).get_dataset({"targets": length}, split="train", try_in_mem_cache=False,
                                                   **kwargs)
  return [ex["targets"] for ex in tfds.as_numpy(ds)]


def test_vocabulary_puts_pause_after_the_pieces(spm_path, vocab):
  pieces = spm.SentencePieceProcessor(model_file=spm_path).get_piece_size()
  # The pause is the one id after the model's pieces, and an embedding row exists for it.
  assert vocab.vocab_size == pieces + 1
  assert vocab.pause_id == pieces
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)


def test_std_cuts_documents_into_pieces_that_fit(vocab, long_documents):
  std = examples(STD, shuffle=False)
  assert len(std) > len(DOCUMENTS)  # documents were cut
  assert all(len(ex) <= LENGTH and ex[-1] == vocab.eos_id for ex in std)
  assert not any((ex == vocab.pause_id).any() for ex in std)
  # The pieces, eos removed, are the documents' tokens in order, none lost.
  assert np.concatenate([ex[:-1] for ex in std]).tolist() == sum(map(vocab.encode, DOCUMENTS), [])


def pauses_kept(plain: np.ndarray, paused: np.ndarray, pause_id: int) -> int:
  """Checks one pause piece against its std piece; returns how many pauses it holds."""
  assert len(paused) == len(plain)
  count = int((paused == pause_id).sum())
  # round(10%) are inserted, then the piece is trimmed back: those in the cut tail go with it.
  assert count <= round(0.1 * len(plain))
  assert paused[paused != pause_id].tolist() == plain[:len(plain) - count].tolist()
  return count


def expected_pauses(lengths) -> float:
  """Mean pauses kept: k inserted among n + k slots, the first n of them kept."""
  return sum(round(0.1 * n) * n / (n + round(0.1 * n)) for n in lengths)


def test_pause_pieces_are_std_pieces_with_ten_percent_pauses(vocab, long_documents):
  std, paused = examples(STD, shuffle=False), examples(PAUSE, shuffle=False)
  assert len(paused) == len(std)
  assert all(len(ex) <= LENGTH for ex in paused)
  kept = sum(pauses_kept(plain, ex, vocab.pause_id) for plain, ex in zip(std, paused))
  assert kept == pytest.approx(expected_pauses(map(len, std)), rel=0.15)


def test_shuffled_pause_task_is_reproducible_from_its_seed(vocab, long_documents):
  first = examples(PAUSE, shuffle=True, seed=7)
  assert [ex.tolist() for ex in first] == [ex.tolist() for ex in examples(PAUSE, shuffle=True, seed=7)]
  assert [ex.tolist() for ex in first] != [ex.tolist() for ex in examples(PAUSE, shuffle=True, seed=8)]
  kept = sum(int((ex == vocab.pause_id).sum()) for ex in first)
  assert kept == pytest.approx(expected_pauses(map(len, first)), rel=0.15)


def test_random_tfds_examples_flow_through_both_tasks(vocab):
  # The builder's own random examples (MockPolicy.USE_CODE): short texts, cut at 8 tokens.
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    std, paused = examples(STD, length=8, shuffle=False), examples(PAUSE, length=8, shuffle=False)
  assert len(std) == len(paused) > 20
  assert all(len(ex) <= 8 for ex in std + paused)
  assert sum(pauses_kept(plain, ex, vocab.pause_id) for plain, ex in zip(std, paused)) > 0


def test_registration_is_recorded_and_idempotent(vocab):
  assert c4.register(vocab, suffix=SUFFIX) == (STD, PAUSE)
  for name in (STD, PAUSE):
    info = get_task_info(name)
    assert info.max_lengths is None and info.alphabet is None
    assert SPM_ENV in info.description
    task = seqio.get_mixture_or_task(name)
    assert list(task.output_features) == ["targets"] and not task.metric_fns
    assert set(task.splits) == {"train", "validation"}


def test_missing_spm_model_is_one_clear_error_when_the_data_is_used(monkeypatch):
  monkeypatch.delenv(SPM_ENV, raising=False)
  std, paused = c4.register(suffix="_nospm")  # registering reads no model
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE):
    for name in (std, paused):
      with pytest.raises(ValueError, match=SPM_ENV) as error:
        examples(name, shuffle=False)
      assert "in user code" not in str(error.value)  # raised as itself, not from inside a traced map
